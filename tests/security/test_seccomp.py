"""linux.seccomp on real containers: actions, errno values, argument operators, flags, the
engines' default profiles, `exec`, and the cache of compiled programs."""

import glob
import json
import os
import signal

import pytest

from pyrunc_testlib import assert_error

PROFILES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "profiles")
SIGSYS_EXIT = 128 + signal.SIGSYS
CACHE_DIR = "@seccomp-cache"


def rule(names, action, errno_ret=None, args=()):
    entry = {"names": list(names), "action": action}
    if errno_ret is not None:
        entry["errnoRet"] = errno_ret
    if args:
        entry["args"] = [dict(a) for a in args]
    return entry


def arg(index, op, value, value_two=None):
    entry = {"index": index, "op": op, "value": value}
    if value_two is not None:
        entry["valueTwo"] = value_two
    return entry


def allow_all_but(*rules, **extra):
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": list(rules)}
    profile.update(extra)
    return profile


def engine_profile(name, caps):
    """An engine's default profile (docker/podman format) as the OCI linux.seccomp that the
    engine hands to its runtime on x86_64, for a container with these capabilities."""
    with open(os.path.join(PROFILES, name)) as f:
        src = json.load(f)
    arches = []
    for entry in src.get("archMap") or ():
        if entry["architecture"] == "SCMP_ARCH_X86_64":
            arches = [entry["architecture"], *(entry.get("subArchitectures") or ())]
    syscalls = []
    for call in src["syscalls"]:
        inc, exc = call.get("includes") or {}, call.get("excludes") or {}
        if "amd64" in (exc.get("arches") or ()) or set(exc.get("caps") or ()) & set(caps):
            continue
        if inc.get("arches") and "amd64" not in inc["arches"]:
            continue
        if not set(inc.get("caps") or ()) <= set(caps):
            continue
        out = {"names": call["names"], "action": call["action"]}
        if call.get("args"):
            out["args"] = [{k: a[k] for k in ("index", "value", "valueTwo", "op") if k in a}
                           for a in call["args"]]
        if call.get("errnoRet") is not None:
            out["errnoRet"] = call["errnoRet"]
        syscalls.append(out)
    profile = {"defaultAction": src["defaultAction"], "architectures": arches,
               "syscalls": syscalls}
    if src.get("defaultErrnoRet") is not None:
        profile["defaultErrnoRet"] = src["defaultErrnoRet"]
    return profile


def run_sh(runtime, bundle, script, profile, *flags, **kw):
    bundle.sh(script)
    bundle.linux["seccomp"] = profile
    return runtime.run_container(bundle, *flags, **kw)


def ok(result):
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return result.stdout


# --- actions and errno values ---------------------------------------------------------------

def test_errno_ret_and_the_eperm_default(runtime, bundle):
    profile = allow_all_but(rule(["mkdir", "mkdirat"], "SCMP_ACT_ERRNO", errno_ret=13),
                            rule(["rmdir"], "SCMP_ACT_ERRNO"))
    out = ok(run_sh(runtime, bundle, "mkdir /tmp/x 2>&1; rmdir /proc 2>&1; echo done",
                    profile))
    lines = out.splitlines()
    assert "Permission denied" in lines[0], out
    assert "Operation not permitted" in lines[1], out
    assert lines[-1] == "done"


def test_default_errno_with_an_allow_list(runtime, bundle):
    allowed = [name for call in engine_profile("docker-default.json", [])["syscalls"]
               if call["action"] == "SCMP_ACT_ALLOW" and "args" not in call
               for name in call["names"] if name not in ("mkdir", "mkdirat")]
    allowed.append("clone")  # docker allows it only with conditions on its flags
    profile = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
               "syscalls": [rule(allowed, "SCMP_ACT_ALLOW")]}
    out = ok(run_sh(runtime, bundle, "mkdir /tmp/x 2>&1; echo done", profile))
    assert "Function not implemented" in out.splitlines()[0], out
    assert out.splitlines()[-1] == "done"
    # no defaultErrnoRet: EPERM
    profile.pop("defaultErrnoRet")
    out = ok(run_sh(runtime, bundle, "mkdir /tmp/x 2>&1; echo done", profile))
    assert "Operation not permitted" in out.splitlines()[0], out


@pytest.mark.parametrize("action", ["SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL",
                                    "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP"])
def test_killing_actions_end_the_program_with_sigsys(runtime, bundle, action):
    # busybox runs mkdir inside the shell process (a NOFORK applet): the shell dies
    result = run_sh(runtime, bundle, "echo before; exec mkdir /tmp/x",
                    allow_all_but(rule(["mkdir", "mkdirat"], action)))
    assert result.returncode == SIGSYS_EXIT, (result.returncode, result.stdout,
                                              result.stderr)
    assert result.stdout == "before\n"


def test_log_and_trace_actions(runtime, bundle):
    # LOG allows (and logs); TRACE without a tracer fails the syscall with ENOSYS
    profile = allow_all_but(rule(["mkdir", "mkdirat"], "SCMP_ACT_LOG"),
                            rule(["rmdir"], "SCMP_ACT_TRACE", errno_ret=5))
    out = ok(run_sh(runtime, bundle, "mkdir /dev/shm/d && echo made; rmdir /dev/shm/d 2>&1;"
                    " test -d /dev/shm/d && echo still-there", profile))
    assert out.splitlines()[0] == "made", out
    assert "Function not implemented" in out.splitlines()[1], out
    assert out.splitlines()[2] == "still-there", out


# --- argument conditions --------------------------------------------------------------------

# echo writes its line with one write(2): the lengths 3 to 7 (newline included)
LENGTHS_SCRIPT = "for s in xx xxx xxxx xxxxx xxxxxx; do echo $s; done; exit 0"


def lengths_written(out):
    return "".join(str(len(line) + 1) for line in out.splitlines())


@pytest.mark.parametrize(("op", "value", "value_two", "written"), [
    ("SCMP_CMP_EQ", 5, None, "3467"),
    ("SCMP_CMP_NE", 5, None, "5"),
    ("SCMP_CMP_LT", 5, None, "567"),
    ("SCMP_CMP_LE", 5, None, "67"),
    ("SCMP_CMP_GE", 5, None, "34"),
    ("SCMP_CMP_GT", 5, None, "345"),
    ("SCMP_CMP_MASKED_EQ", 6, 4, "367"),  # count & 6 == 4: 4 and 5 are denied
])
def test_argument_operators(runtime, bundle, op, value, value_two, written):
    profile = allow_all_but(rule(["write"], "SCMP_ACT_ERRNO",
                                 args=[arg(2, op, value, value_two)]))
    out = ok(run_sh(runtime, bundle, LENGTHS_SCRIPT, profile))
    assert lengths_written(out) == written


def test_several_arguments_are_anded(runtime, bundle):
    # write(1, _, 3) is denied, write(2, _, 3) is not
    profile = allow_all_but(rule(["write"], "SCMP_ACT_ERRNO",
                                 args=[arg(0, "SCMP_CMP_EQ", 1), arg(2, "SCMP_CMP_EQ", 3)]))
    result = run_sh(runtime, bundle, "echo ab; echo abc; cat /nonexistent; exit 0", profile)
    assert ok(result) == "abc\n"
    assert "cat: can't open '/nonexistent'" in result.stderr


def test_the_same_argument_twice_makes_separate_rules(runtime, bundle):
    # runc's rule: conditions on one argument index are ORed, one rule each
    profile = allow_all_but(rule(["write"], "SCMP_ACT_ERRNO",
                                 args=[arg(2, "SCMP_CMP_EQ", 3), arg(2, "SCMP_CMP_EQ", 4)]))
    out = ok(run_sh(runtime, bundle, LENGTHS_SCRIPT, profile))
    assert lengths_written(out) == "567"


def test_deny_stderr_only(runtime, bundle):
    profile = allow_all_but(rule(["write"], "SCMP_ACT_ERRNO", args=[arg(0, "SCMP_CMP_EQ", 2)]))
    # a shell builtin's `>&2` writes on fd 1 (dup2'd): cat writes on fd 2 itself
    result = run_sh(runtime, bundle, "echo out; cat /nonexistent; echo out2", profile)
    assert ok(result) == "out\nout2\n"
    assert result.stderr == ""
    result = run_sh(runtime, bundle, "cat /nonexistent", allow_all_but())
    assert "nonexistent" in result.stderr


# --- the filter as the kernel sees it -------------------------------------------------------

def test_proc_status_shows_one_filter(runtime, bundle):
    out = ok(run_sh(runtime, bundle, "grep ^Seccomp /proc/1/status; "
                    "grep ^NoNewPrivs /proc/1/status",
                    allow_all_but(rule(["mkdir"], "SCMP_ACT_ERRNO"))))
    fields = dict(line.split(":\t") for line in out.splitlines())
    assert fields == {"Seccomp": "2", "Seccomp_filters": "1", "NoNewPrivs": "1"}


def test_no_seccomp_means_no_filter(runtime, bundle):
    bundle.sh("grep ^Seccomp: /proc/1/status")
    assert ok(runtime.run_container(bundle)).split() == ["Seccomp:", "0"]


@pytest.mark.parametrize("nnp", [True, False])
def test_unprivileged_user_with_and_without_no_new_privileges(runtime, bundle, nnp):
    # without noNewPrivileges the filter needs CAP_SYS_ADMIN: it is loaded before the
    # user and capabilities change (runc's order)
    bundle.process["user"] = {"uid": 1000, "gid": 1000}
    bundle.process["noNewPrivileges"] = nnp
    out = ok(run_sh(runtime, bundle, "id -u; grep -E '^(Seccomp|NoNewPrivs):' /proc/1/status;"
                    " mkdir /tmp/x 2>&1; true",
                    allow_all_but(rule(["mkdir", "mkdirat"], "SCMP_ACT_ERRNO", errno_ret=13))))
    lines = out.splitlines()
    assert lines[0] == "1000"
    assert lines[1] == f"NoNewPrivs:\t{int(nnp)}"
    assert lines[2] == "Seccomp:\t2"
    assert "Permission denied" in lines[3]


@pytest.mark.parametrize("flag", ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                                  "SECCOMP_FILTER_FLAG_TSYNC"])
def test_supported_flags(runtime, bundle, flag):
    out = ok(run_sh(runtime, bundle, "mkdir /tmp/x 2>&1; grep ^Seccomp: /proc/1/status",
                    allow_all_but(rule(["mkdir", "mkdirat"], "SCMP_ACT_ERRNO"), flags=[flag])))
    assert "Operation not permitted" in out.splitlines()[0]
    assert out.splitlines()[1] == "Seccomp:\t2"


# --- the engines' default profiles ------------------------------------------------------------

DOCKER_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
               "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
               "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]


@pytest.mark.parametrize("name", ["docker-default.json", "podman-default.json"])
@pytest.mark.parametrize("nnp", [True, False])
def test_engine_default_profiles(runtime, bundle, name, nnp):
    bundle.process["noNewPrivileges"] = nnp
    for key in ("bounding", "effective", "permitted"):
        bundle.process["capabilities"][key] = list(DOCKER_CAPS)
    profile = engine_profile(name, DOCKER_CAPS)
    assert len([n for call in profile["syscalls"] for n in call["names"]]) > 300
    result = run_sh(runtime, bundle, "echo ok; ls /; grep ^Seccomp: /proc/1/status; "
                    "unshare -U true 2>&1 || echo denied", profile)
    lines = ok(result).splitlines()
    assert lines[0] == "ok"
    assert "bin" in lines and "proc" in lines
    assert "Seccomp:\t2" in lines
    if name.startswith("docker"):
        assert lines[-1] == "denied"  # unshare needs CAP_SYS_ADMIN in docker's profile


# --- errors and warnings ----------------------------------------------------------------------

def test_unknown_syscall_names_only_warn(runtime, bundle):
    profile = allow_all_but(rule(["no_such_syscall", "mkdir", "mkdirat"], "SCMP_ACT_ERRNO"))
    result = run_sh(runtime, bundle, "mkdir /tmp/x 2>&1; echo done", profile)
    assert "Operation not permitted" in ok(result).splitlines()[0]
    assert "warning" in result.stderr and "no_such_syscall" in result.stderr


@pytest.mark.parametrize(("change", "needles"), [
    ({"defaultAction": "SCMP_ACT_BOGUS"}, ("linux.seccomp.defaultAction", "SCMP_ACT_BOGUS")),
    ({"syscalls": [rule(["mkdir"], "SCMP_ACT_FOO")]}, ("syscalls[0].action",)),
    ({"syscalls": [rule(["mkdir"], "SCMP_ACT_ALLOW", errno_ret=1)]}, ("errnoret",)),
    ({"syscalls": [rule(["write"], "SCMP_ACT_ERRNO", args=[arg(0, "SCMP_CMP_XX", 1)])]},
     ("args[0].op",)),
    ({"syscalls": [rule(["write"], "SCMP_ACT_ERRNO", args=[arg(6, "SCMP_CMP_EQ", 1)])]},
     ("args[0].index",)),
    ({"syscalls": [rule(["mkdir"], "SCMP_ACT_NOTIFY")]}, ("SCMP_ACT_NOTIFY",
                                                          "needs listenerPath")),
    ({"defaultAction": "SCMP_ACT_NOTIFY"}, ("defaultAction", "cannot be the default")),
    ({"syscalls": [rule(["mkdir"], "SCMP_ACT_NOTIFY")], "listenerPath": "agent.sock"},
     ("listenerPath", "absolute")),
    ({"architectures": ["SCMP_ARCH_NOPE"]}, ("architectures",)),
    ({"syscalls": [rule(["write"], "SCMP_ACT_NOTIFY")], "listenerPath": "/agent.sock"},
     ("syscalls[0]", "write")),  # runc refuses it too
])
def test_bad_profiles_are_refused(runtime, bundle, change, needles):
    profile = allow_all_but(rule(["mkdir"], "SCMP_ACT_ERRNO"))
    profile.update(change)
    bundle.linux["seccomp"] = profile
    result = runtime.create(bundle, check=False)
    assert_error(result, *needles)
    assert not os.path.exists(os.path.join(runtime.root, result.cid))


def test_other_architectures_are_added(runtime, bundle):
    profile = allow_all_but(rule(["mkdir", "mkdirat"], "SCMP_ACT_ERRNO"),
                            architectures=["SCMP_ARCH_X86", "SCMP_ARCH_X32",
                                           "SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64"])
    out = ok(run_sh(runtime, bundle, "mkdir /tmp/x 2>&1; true", profile))
    assert "Operation not permitted" in out


# --- exec -------------------------------------------------------------------------------------

def test_exec_applies_the_containers_profile(runtime, bundle):
    bundle.linux["seccomp"] = allow_all_but(
        rule(["mkdir", "mkdirat"], "SCMP_ACT_ERRNO", errno_ret=13))
    bundle.set_args("sleep", "30")
    cid = runtime.create(bundle).cid
    runtime.start(cid)
    result = runtime.run("exec", cid, "sh", "-c",
                         "mkdir /tmp/x 2>&1; grep ^Seccomp /proc/self/status", check=False)
    lines = result.stdout.splitlines()
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert "Permission denied" in lines[0]
    assert lines[1:] == ["Seccomp:\t2", "Seccomp_filters:\t1"]
    # --process with a user and no noNewPrivileges: the same profile
    proc = dict(bundle.process, args=["sh", "-c", "mkdir /tmp/y 2>&1"],
                user={"uid": 1000, "gid": 1000}, noNewPrivileges=False)
    path = os.path.join(bundle.path, "process.json")
    with open(path, "w") as f:
        json.dump(proc, f)
    result = runtime.run("exec", "--process", path, cid, check=False)
    assert "Permission denied" in result.stdout, (result.stdout, result.stderr)
    runtime.kill(cid, "KILL")


# --- the cache of compiled programs -----------------------------------------------------------

def test_compiled_programs_are_cached(runtime, bundle, scratch):
    profile = engine_profile("docker-default.json", DOCKER_CAPS)
    log_path = os.path.join(scratch.path, "debug.log")

    def run_once():
        result = run_sh(runtime, bundle, "echo ok", profile,
                        global_args=("--debug", "--log", log_path))
        assert ok(result) == "ok\n"

    run_once()
    cached = glob.glob(os.path.join(runtime.root, CACHE_DIR, "*.bpf"))
    assert len(cached) == 1
    size = os.path.getsize(cached[0])
    assert size > 0 and size % 8 == 0
    os.utime(cached[0], (1_000_000_000, 1_000_000_000))
    run_once()
    assert os.stat(cached[0]).st_mtime == 1_000_000_000  # read, not rewritten
    with open(log_path) as f:
        log = f.read()
    assert log.count("seccomp: compiling program") == 1
    assert log.count("from the cache") == 1
    # a different profile is another program
    profile["syscalls"].append(rule(["mkdir"], "SCMP_ACT_ERRNO", errno_ret=13))
    run_once()
    assert len(glob.glob(os.path.join(runtime.root, CACHE_DIR, "*.bpf"))) == 2


def test_a_damaged_cache_entry_is_recompiled(runtime, bundle):
    profile = allow_all_but(rule(["mkdir", "mkdirat"], "SCMP_ACT_ERRNO", errno_ret=13))
    ok(run_sh(runtime, bundle, "true", profile))
    [cached] = glob.glob(os.path.join(runtime.root, CACHE_DIR, "*.bpf"))
    with open(cached, "wb") as f:
        f.write(b"junk")
    out = ok(run_sh(runtime, bundle, "mkdir /tmp/x 2>&1; true", profile))
    assert "Permission denied" in out
    assert os.path.getsize(cached) % 8 == 0


# --- seccomp notify ---------------------------------------------------------------------------

SECCOMP_IOCTL_NOTIF_RECV = 0xC0502100  # _IOWR('!', 0, struct seccomp_notif), 80 bytes
SECCOMP_IOCTL_NOTIF_SEND = 0xC0182101  # _IOWR('!', 1, struct seccomp_notif_resp), 24 bytes


class NotifyAgent:
    """A seccomp agent on a unix socket: takes one container process state message with
    its fd, then answers every notification with an errno."""

    def __init__(self, path, errno_value):
        import socket
        import threading

        self.path, self.errno_value = path, errno_value
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(4)
        self.messages, self.notified, self.errors = [], [], []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        import array
        import socket
        import threading

        try:
            while True:
                conn, _ = self.server.accept()
                with conn:
                    fds = array.array("i")
                    data, anc, _, _ = conn.recvmsg(65536, socket.CMSG_SPACE(4 * 4))
                    for level, kind, payload in anc:
                        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                            fds.frombytes(payload[:len(payload) - len(payload) % 4])
                    while chunk := conn.recv(65536):  # one message: read until EOF
                        data += chunk
                self.messages.append((json.loads(data), len(fds)))
                threading.Thread(target=self._answer, args=(fds[0],), daemon=True).start()
        except OSError as e:  # the server socket closed at teardown, or a real failure
            if self.server.fileno() >= 0:
                self.errors.append(e)

    def _answer(self, listener):
        import fcntl
        import select
        import struct

        try:
            poller = select.poll()
            poller.register(listener, select.POLLIN)
            while True:
                events = poller.poll(10_000)
                if not events or events[0][1] & (select.POLLHUP | select.POLLERR):
                    break
                buf = bytearray(80)
                fcntl.ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, buf)
                notif_id, _pid, _flags, nr = struct.unpack_from("QIIi", buf)
                self.notified.append(nr)
                resp = struct.pack("QqiI", notif_id, 0, -self.errno_value, 0)
                fcntl.ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, bytearray(resp))
        except OSError as e:
            self.errors.append(e)
        finally:
            os.close(listener)

    def close(self):
        self.server.close()


@pytest.fixture
def agent(scratch):
    agents = []

    def make(errno_value):
        a = NotifyAgent(os.path.join(scratch.path, f"agent{len(agents)}.sock"), errno_value)
        agents.append(a)
        return a

    yield make
    for a in agents:
        a.close()


@pytest.mark.parametrize("nnp", [True, False])
def test_notify_sends_the_listener_to_the_agent(runtime, bundle, agent, nnp):
    a = agent(18)  # EXDEV
    bundle.process["noNewPrivileges"] = nnp
    profile = allow_all_but(rule(["mkdir", "mkdirat"], "SCMP_ACT_NOTIFY"),
                            listenerPath=a.path, listenerMetadata="hello agent",
                            flags=["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"])
    out = ok(run_sh(runtime, bundle, "mkdir /tmp/x 2>&1; echo done", profile))
    assert "Invalid cross-device link" in out.splitlines()[0], out
    assert not a.errors
    [(msg, nfds)] = a.messages
    assert nfds == 1
    assert msg["fds"] == ["seccompFd"] and msg["metadata"] == "hello agent"
    assert msg["ociVersion"] and msg["pid"] == msg["state"]["pid"] > 0
    assert msg["state"]["status"] == "creating" and msg["state"]["bundle"] == bundle.path
    assert len(a.notified) >= 1


def test_notify_in_exec(runtime, bundle, agent):
    a = agent(18)
    bundle.set_args("sleep", "30")
    bundle.linux["seccomp"] = allow_all_but(rule(["mkdir", "mkdirat"], "SCMP_ACT_NOTIFY"),
                                            listenerPath=a.path)
    cid = runtime.create(bundle).cid
    runtime.start(cid)
    result = runtime.run("exec", cid, "sh", "-c", "mkdir /tmp/x 2>&1; true")
    assert "Invalid cross-device link" in result.stdout
    assert [m["state"]["status"] for m, _ in a.messages] == ["creating", "running"]
    assert a.messages[1][0]["pid"] != a.messages[1][0]["state"]["pid"]
    assert "metadata" not in a.messages[1][0]
    runtime.kill(cid, "KILL")


def test_notify_fails_create_when_no_agent_listens(runtime, bundle, scratch):
    bundle.linux["seccomp"] = allow_all_but(
        rule(["mkdir"], "SCMP_ACT_NOTIFY"), listenerPath=os.path.join(scratch.path, "none"))
    result = runtime.create(bundle, check=False)
    assert_error(result, "listenerPath", "none")
    assert not os.path.exists(os.path.join(runtime.root, result.cid))


def test_features_report_seccomp(runtime):
    features = json.loads(runtime.run("features").stdout)["linux"]["seccomp"]
    assert features["enabled"] is True
    assert "SCMP_ACT_NOTIFY" in features["actions"] and "SCMP_ACT_KILL_PROCESS" in (
        features["actions"])
    assert "SCMP_CMP_MASKED_EQ" in features["operators"]
    assert "SCMP_ARCH_X86_64" in features["archs"]
    assert set(features["supportedFlags"]) <= set(features["knownFlags"])
