"""The shim's C front (containerd-shim-pyrunc-v2, ociruntime/_native/shim_front.c): it
relays `start` and `delete` to the namespace's starter exactly when shim.cli.Flags parses
the same command line to one of those with a key it can make, and otherwise, or when the
starter is absent, of another user, or answers anything but b"0..." or b"1...", execs the
Python shim with the same arguments.

The starters here are the tests' own listening SEQPACKET sockets at the path Python
computes for a private containerd address (a key only: nothing is created there), so the
socket's name is held to Python's.  The Python shim is, where only the front's decision is
looked at, a script beside a copy of the front that prints its argv."""

import os
import shutil
import socket
import subprocess
import sys
import threading
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shimlib import PYTHON_SHIM, SHIM

from ociruntime import paths
from ociruntime._native._sys import sha256_hex
from shim import cli

PRIVATE = f"/run/pyrunc-test-front-{uuid.uuid4().hex[:12]}"  # never created: keys only
ADDRESSES = [PRIVATE + "/containerd.sock", PRIVATE + "/other.sock"]
NAMESPACES = ["ns", "ns2", "n\u00e9"]
FAKE_PYTHON_SHIM = """#!/bin/sh
printf 'python shim:'
for a in "$0" "$@"; do printf ' [%s]' "$a"; done
"""


def starter_path(address, namespace):
    """Python's name for the starter's socket (the Python shim's relay and the starter)."""
    path = cli.starter_socket(address, namespace)
    key = paths.join(address, namespace, "pyrunc-starter")  # the protocol's, as written
    assert path == paths.join(cli.SOCKET_DIR, sha256_hex(key.encode()))
    return path


class Starter:
    """A peer at a starter's socket: answers every request with answer(request), bytes, or
    closes the connection unanswered when that is None."""

    def __init__(self, path, answer, user=None):
        self.path = path
        self.answer = answer
        self.requests = []
        self.stopped = False
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock.bind(path)
        self.server = None
        if user is None:
            self.sock.listen(16)
            self.sock.settimeout(0.1)
            self.thread = threading.Thread(target=self._serve, daemon=True)
            self.thread.start()
        else:  # listen() as that user: the connection's peer credentials are its own
            self.thread = None
            self.server = subprocess.Popen(
                [sys.executable, "-c", _SERVE_AS_USER, str(self.sock.fileno())],
                pass_fds=[self.sock.fileno()], user=user, stdin=subprocess.DEVNULL)

    def _serve(self):
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            with conn:
                conn.settimeout(10)
                try:
                    request = conn.recv(2 << 20)
                except OSError:
                    continue
                self.requests.append(request)
                reply = self.answer(request)
                if reply is not None:
                    try:
                        conn.send(reply)
                    except OSError:
                        pass

    def close(self):
        self.stopped = True
        if self.thread is not None:
            self.thread.join()
        if self.server is not None:
            self.server.kill()
            self.server.wait()
        self.sock.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


_SERVE_AS_USER = """
import socket, sys
s = socket.socket(fileno=int(sys.argv[1]))
s.listen(16)
while True:
    c, _ = s.accept()
    c.recv(2 << 20)
    c.send(b"0from another user")
    c.close()
"""


@pytest.fixture
def starters(host_paths_created):
    """starters(address, namespace, answer, user=None): a Starter, removed at teardown."""
    host_paths_created("/run/containerd", cli.SOCKET_DIR)
    os.makedirs(cli.SOCKET_DIR, 0o711, exist_ok=True)
    made = []

    def make(address, namespace, answer, user=None):
        made.append(Starter(starter_path(address, namespace), answer, user))
        return made[-1]

    yield make
    for starter in made:
        starter.close()


@pytest.fixture
def address():
    """A containerd address of the test's own (a key only), for its own starters."""
    return f"{PRIVATE}/{uuid.uuid4().hex[:8]}.sock"


@pytest.fixture(scope="module")
def front_copy(tmp_path_factory):
    """A copy of the installed front, with a Python shim beside it that prints its argv."""
    if not os.path.exists(SHIM):
        pytest.fail(f"{SHIM} is not installed (.ci/setup installs it)")
    bin_dir = tmp_path_factory.mktemp("front-bin")
    front = bin_dir / "containerd-shim-pyrunc-v2"
    shutil.copy2(SHIM, front)
    fake = bin_dir / "containerd-shim-pyrunc-v2-py"
    fake.write_text(FAKE_PYTHON_SHIM)
    fake.chmod(0o755)
    return str(front)


def fell_back(front, args):
    """What the fake Python shim beside front prints for args."""
    fake = os.fsencode(os.path.join(os.path.dirname(os.path.realpath(front)),
                                    "containerd-shim-pyrunc-v2-py"))
    return b"python shim:" + b"".join(b" [" + os.fsencode(a) + b"]" for a in [fake, *args])


def run(front, args, **kw):
    kw.setdefault("input", b"")
    return subprocess.run([front, *args], capture_output=True, timeout=30, **kw)


def relays(args, started=None):
    """The front's rule: what shim.cli.Flags parses to start or delete, with no -v, and an
    address and namespace that paths.join keys as ADDRESS/NAMESPACE/pyrunc-starter (and,
    given the (address, namespace) pairs that have a starter, one of those)."""
    try:
        flags = cli.Flags([os.fsdecode(a) for a in args])
    except SystemExit:
        return False
    address, namespace = flags.get("address"), flags.get("namespace")
    try:
        (address + namespace).encode()
    except UnicodeEncodeError:
        return False
    if started is not None and (address, namespace) not in started:
        return False
    return (not flags.bools & {"v", "version"} and flags.action in ("start", "delete")
            and address != "" and not address.endswith("/") and namespace != ""
            and "/" not in namespace)


STARTED = {(a, n) for a in ADDRESSES for n in NAMESPACES}


@pytest.fixture(scope="module")
def every_starter(front_copy):
    """A starter answering b"0relayed" for each of the private addresses and the
    namespaces a command line here names (a drawn one may key another pair: -address
    start, -namespace 1; no starter is made for those)."""
    os.makedirs(cli.SOCKET_DIR, 0o711, exist_ok=True)
    made = [Starter(starter_path(a, n), lambda request: b"0relayed") for a, n in STARTED]
    yield
    for starter in made:
        starter.close()


NAMES = [*cli.Flags.STRINGS, *cli.Flags.BOOLS, "bogus", "", "names"]
VALUES = [*ADDRESSES, PRIVATE + "/", "", *NAMESPACES, "a/b", b"n\xff", "1", "t", "TRUE",
          "false", "0", "start", "delete", "-namespace", "x=y"]
ACTIONS = ["start", "delete", "serve", "-", "--", "", "other"]
flag_token = st.builds(lambda dashes, name, value: (dashes + name).encode() + (
    b"" if value is None else b"=" + (value if isinstance(value, bytes)
                                      else value.encode())),
    st.sampled_from(["-", "--", "---"]), st.sampled_from(NAMES),
    st.none() | st.sampled_from(VALUES))
token = (flag_token | st.sampled_from(VALUES).map(lambda v: v if isinstance(v, bytes)
                                                  else v.encode())
         | st.sampled_from(ACTIONS).map(str.encode))
PREFIXES = [[], [b"-namespace", b"ns", b"-address", ADDRESSES[0].encode()],
            [b"-address=" + ADDRESSES[1].encode(), "--namespace=n\u00e9".encode()]]
command_line = st.tuples(st.sampled_from(PREFIXES), st.lists(token, max_size=6)).map(
    lambda t: t[0] + t[1])


@pytest.mark.parametrize("args", [
    ["-namespace", "ns", "-address", ADDRESSES[0], "-id", "c", "start"],
    ["--namespace=ns", "--address", ADDRESSES[0], "delete"],
    ["---namespace", "ns", "-address=" + ADDRESSES[1], "-publish-binary", "/x", "start"],
    ["-namespace", "ns", "-namespace", "n\u00e9", "-address", ADDRESSES[0], "start"],
    ["-namespace", "ns", "-address", ADDRESSES[0], "-debug=false", "-v=0", "start"],
    ["-namespace", "ns", "-address", ADDRESSES[0], "-debug", "--", "delete"],
    ["-namespace", "ns", "-address", ADDRESSES[0], "start", "-v"],
    ["-namespace", "ns", "-address", ADDRESSES[0], "-v", "start"],
    ["-namespace", "ns", "-address", ADDRESSES[0], "-version=TRUE", "start"],
    ["-namespace", "ns", "-address", ADDRESSES[0], "-bogus", "start"],
    ["-namespace", "ns", "-address", ADDRESSES[0], "-id"],
    ["-namespace", "ns", "-address", ADDRESSES[0], "serve"],
    ["-namespace", "ns", "-address", ADDRESSES[0], "--"],
    ["-namespace", "ns", "-address", ADDRESSES[0], "-", "start"],
    ["-namespace", "ns", "-address", ADDRESSES[0]],
    ["-namespace", "", "-address", ADDRESSES[0], "start"],
    ["-namespace", "a/b", "-address", ADDRESSES[0], "start"],
    ["-namespace", "ns", "-address", PRIVATE + "/", "start"],
    ["-namespace", "ns", "-address=", "start"],
    ["-namespace", "ns", "start"],
    [b"-namespace", b"n\xff", b"-address", ADDRESSES[0].encode(), b"start"],
    ["-namespace=", "ns", "-address", ADDRESSES[0], "start"],
    [],
])
def test_the_front_decides_as_flags_parses(front_copy, every_starter, args):
    done = run(front_copy, args)
    expected = b"relayed" if relays(args, STARTED) else fell_back(front_copy, args)
    assert done.stdout == expected, done.stderr


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(command_line)
def test_drawn_command_lines_decide_as_flags_parses(front_copy, every_starter, args):
    done = run(front_copy, args)
    expected = b"relayed" if relays(args, STARTED) else fell_back(front_copy, args)
    assert done.stdout == expected, (args, done.stderr)



def test_the_request_and_the_reply(front_copy, starters, address, tmp_path):
    """PROTOCOL's request (its cwd, argv[1:], environment), stdin read to EOF first for
    start, and b"0" + BYTES written to stdout as they are."""
    starter = starters(address, "ns", lambda request: b"0unix:///run/x\0\xff")
    args = ["-namespace", "ns", "-address", address, "-id", "c1", "start"]
    env = {"TTRPC_ADDRESS": "/t.sock", "EMPTY": "", "EQUALS": "a=b"}
    done = run(front_copy, args, cwd=tmp_path, env=env, input=b"options" * 10000)
    assert (done.returncode, done.stdout, done.stderr) == (0, b"unix:///run/x\0\xff", b"")
    [request] = starter.requests
    fields = request.split(b"\0")
    assert fields[:3] == [b"pyrunc-starter/1", os.fsencode(tmp_path), b"7"]
    assert fields[3:10] == [a.encode() for a in args]
    assert fields[10] == b"3" and fields[-1] == b""
    assert sorted(fields[11:-1]) == sorted(f"{k}={v}".encode() for k, v in env.items())


def test_a_failure_reply(front_copy, starters, address):
    starters(address, "ns", lambda request: b"1start: no such bundle")
    done = run(front_copy, ["-namespace", "ns", "-address", address, "delete"])
    assert (done.returncode, done.stdout, done.stderr) == (1, b"", b"start: no such bundle\n")


@pytest.mark.parametrize("answer", [
    lambda request: b"F",
    lambda request: None,  # closed unanswered
    lambda request: b"",
    lambda request: b"X0garbage",
    lambda request: b"F0relayed",
    lambda request: b"0" + b"x" * (65 << 10),  # past any reply the protocol has
], ids=["F", "closed", "empty", "garbage", "F-and-more", "too-long"])
def test_anything_but_0_or_1_falls_back(front_copy, starters, address, answer):
    starter = starters(address, "ns", answer)
    args = ["-namespace", "ns", "-address", address, "-id", "c", "start"]
    done = run(front_copy, args)
    assert (done.returncode, done.stdout) == (0, fell_back(front_copy, args)), done.stderr
    assert len(starter.requests) == 1


def test_no_starter_falls_back(front_copy):
    args = ["-namespace", "ns", "-address", PRIVATE + "/nobody.sock", "delete"]
    assert not os.path.exists(starter_path(args[3], "ns"))
    assert run(front_copy, args).stdout == fell_back(front_copy, args)


def test_a_socket_that_does_not_listen_falls_back(front_copy, starters, address):
    path = starter_path(address, "ns")
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as s:
        s.bind(path)  # bound, never listening: a dead starter's
        try:
            args = ["-namespace", "ns", "-address", address, "delete"]
            assert run(front_copy, args).stdout == fell_back(front_copy, args)
        finally:
            os.unlink(path)


def test_a_starter_of_another_user_gets_no_request(front_copy, starters, address):
    """The request carries containerd's environment: it goes only to a starter of the
    front's own user."""
    starters(address, "ns2", None, user=65534)
    args = ["-namespace", "ns2", "-address", address, "start"]
    assert run(front_copy, args).stdout == fell_back(front_copy, args)


def test_a_large_environment(front_copy, starters, address):
    """Up to PROTOCOL's 1 MiB a request goes in one message (past the default socket
    buffer); a larger one is the Python shim's to do."""
    starter = starters(address, "ns", lambda request: b"0ok")
    args = ["-namespace", "ns", "-address", address, "delete"]
    big = {f"BIG{i}": "x" * (100 << 10) for i in range(9)}  # MAX_ARG_STRLEN: 128 KiB each
    done = run(front_copy, args, env=big)
    assert done.stdout == b"ok"
    assert sorted(starter.requests[0].split(b"\0")[-10:-1]) == sorted(
        f"{k}={v}".encode() for k, v in big.items())
    done = run(front_copy, args, env={f"BIG{i}": "x" * (100 << 10) for i in range(11)})
    assert done.stdout == fell_back(front_copy, args)
    assert len(starter.requests) == 1, "the request too large for the protocol is not sent"


def test_the_python_shim_is_found_beside_the_real_path(front_copy, tmp_path):
    """As `ln -sf .venv/bin/containerd-shim-pyrunc-v2 /usr/local/bin/` installs it."""
    link = tmp_path / "containerd-shim-pyrunc-v2"
    link.symlink_to(front_copy)
    assert run(str(link), ["-v"]).stdout == fell_back(front_copy, ["-v"])


def test_no_python_shim_is_one_line_and_exit_1(tmp_path):
    front = tmp_path / "containerd-shim-pyrunc-v2"
    shutil.copy2(SHIM, front)
    done = run(str(front), ["-v"])
    assert (done.returncode, done.stdout) == (1, b"")
    assert done.stderr == (f"containerd-shim-pyrunc-v2: cannot run {tmp_path}/"
                           "containerd-shim-pyrunc-v2-py: No such file or directory\n").encode()


@pytest.mark.parametrize("args", [["-v"], ["--version=true"], ["-bogus"], ["-id"],
                                  ["-namespace", "ns", "other"], []])
def test_what_the_python_shim_answers_is_unchanged(args):
    """The installed front against the installed Python shim: the same output, status."""
    front, python = run(SHIM, args), run(PYTHON_SHIM, args)
    assert (front.returncode, front.stdout, front.stderr) == \
        (python.returncode, python.stdout, python.stderr)
