"""The differential harness: the same bundle and commands through runc and through pyrunc.

A Scenario is a config tweak (a jq program over `runc spec`'s config.json, the way people
script runc, and/or a Python function over the dict) and a list of steps.  run_scenario()
runs every step with runc (/usr/sbin/runc, the reference), then with pyrunc, each side in
its own directory (<scratch>/<side>/: root/, bundle/, files) with its own container ids,
normalises what each command printed (ids, paths, pids, times, the program's own name) and
compares the two sides step by step: the exit status, stdout in the step's mode, stderr's
shape.  A step where pyrunc deliberately differs carries a Differs(reason, check): the
check asserts the difference instead of equality.

Steps:
- Cmd(args...): one command; tokens {id} {id2} {bundle} {root} {dir} are replaced.
  stdout modes: "exact" (after normalisation), "json" (same keys, types and layout),
  "json-top" (the same, three levels deep: the stats of `events`, whose zero fields
  runc omits: the keys of data.cpu, data.memory and the others, not their numbers,
  memory.cache aside: a page cache counter, there when not 0),
  "json-values" (same document after normalisation), "json-lines" (a JSON document a
  line, as many or not: the same kinds of line, by their keys and "type"), "table" (same
  header, same row and column counts), "help" (same sections and flag names), "ignore".
  stderr modes: "shape" (empty on both sides or on neither; pyrunc's error is one line),
  "lines" (as many lines on both sides: a warning that runc gives once, pyrunc too),
  "exact", "ignore".
  tty=True runs the command on a new pty (its controlling terminal) and reads its stdio
  from the master, as a user at a terminal.  background=True starts it and goes on; a
  later Wait() collects and compares it.  fds=(path, ...) opens each file (expanded) as
  fd 3, 4, ... of the command, as a caller of --preserve-fds passes them.
- WaitStatus(status): poll `state` until the container has that status.
- File(path, mode): compare a file both sides left ("exists", "exact", "log-text" and
  "log-json": each line's keys and level, "log-levels": the kinds of lines).
- Host(fn): call fn(side) (a SideRun) for what no command does (send a signal, read
  a cgroup file); what it returns is compared exactly.
"""

import json
import os
import re
import select
import shlex
import socket
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable

import pyrunc_testlib as lib

RUNC = "/usr/sbin/runc"
TIMEOUT = lib.TIMEOUT
SIDES = ("runc", "pyrunc")


# --------------------------------------------------------------------------------------------
# Scenario description


@dataclass(frozen=True)
class Differs:
    """pyrunc differs from runc here on purpose; check(runc_result, pyrunc_result) asserts
    what pyrunc does instead (the reason is shown on failure and read by reviewers): it
    asserts, or returns True (a False is a failure, not a silent pass)."""
    reason: str
    check: Callable

    def assert_holds(self, runc, pyrunc):
        held = self.check(runc, pyrunc)
        assert held is None or held is True, f"not as recorded ({self.reason}): {held!r}"


@dataclass(frozen=True)
class Cmd:
    args: tuple
    stdout: str = "exact"
    stderr: str = "shape"
    global_args: tuple = ()
    input: str | None = None
    tty: bool = False
    background: bool = False
    differs: Differs | None = None
    timeout: float = TIMEOUT
    fds: tuple = ()

    def __init__(self, *args, **kw):
        object.__setattr__(self, "args", tuple(args))
        for name, value in kw.items():
            if name not in self.__dataclass_fields__:
                raise TypeError(f"Cmd: unknown option {name}")
            object.__setattr__(self, name, value)


@dataclass(frozen=True)
class Wait:
    """Collect the oldest background command still running and compare it like a Cmd."""
    stdout: str = "exact"
    stderr: str = "shape"
    differs: Differs | None = None


@dataclass(frozen=True)
class WaitStatus:
    status: str
    cid: str = "{id}"


@dataclass(frozen=True)
class File:
    path: str
    mode: str = "exists"
    differs: Differs | None = None


@dataclass(frozen=True)
class Host:
    fn: Callable
    differs: Differs | None = None


@dataclass(frozen=True)
class Scenario:
    name: str
    steps: tuple
    jq: str | None = None          # a jq program over `runc spec`'s config.json
    config: Callable | None = None  # fn(dict) editing the config after jq
    ids: int = 1
    marks: tuple = ()


# --------------------------------------------------------------------------------------------
# One command's result and the normalisation


@dataclass
class Result:
    rc: int
    stdout: str
    stderr: str
    argv: tuple = ()
    raw_stdout: str = ""
    raw_stderr: str = ""

    def describe(self):
        return (f"$ {' '.join(self.argv)}\n  exit {self.rc}\n  stdout: {self.raw_stdout!r}\n"
                f"  stderr: {self.raw_stderr!r}")


RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")


def _suffix(i):
    """{id}, {id2}, {id3}...: the first container id has no number."""
    return str(i + 1) if i else ""


@dataclass
class SideRun:
    """One side (runc or pyrunc) of one scenario: its binary, directory and ids."""
    name: str
    binary: str
    dir: str
    runtime: lib.Runtime
    ids: list = field(default_factory=list)
    background: list = field(default_factory=list)
    receivers: list = field(default_factory=list)

    @property
    def root(self):
        return os.path.join(self.dir, "root")

    @property
    def bundle(self):
        return os.path.join(self.dir, "bundle")

    def expand(self, text):
        text = str(text)
        for i, cid in enumerate(self.ids):
            text = text.replace("{id" + _suffix(i) + "}", cid)
        return (text.replace("{bundle}", self.bundle).replace("{root}", self.root)
                .replace("{dir}", self.dir))

    def normalise(self, text):
        """Ids, paths and times as tokens; pyrunc's own name as runc's."""
        for i, cid in reversed(list(enumerate(self.ids))):
            text = text.replace(cid, "<ID" + _suffix(i) + ">")
        text = (text.replace(self.bundle, "<BUNDLE>").replace(self.root, "<ROOT>")
                .replace(self.dir, "<DIR>").replace(self.binary, "runc"))
        text = RFC3339.sub("<TIME>", text)
        if self.name == "pyrunc":  # its name where runc prints its own ("pyrunc: ...")
            text = re.sub(r"\bpyrunc\b", "runc", text)
        return text

    def argv(self, step):
        return [self.binary, "--root", self.root, *map(self.expand, step.global_args),
                *map(self.expand, step.args)]

    def spawn_argv(self, step, argv):
        """argv, behind a shell that opens step.fds as fds 3, 4, ... when there are any."""
        if not step.fds:
            return argv
        opens = " ".join(f"{3 + i}<{shlex.quote(self.expand(path))}"
                         for i, path in enumerate(step.fds))
        return ["/bin/sh", "-c", f'exec {opens} "$@"', "sh", *argv]

    def result(self, argv, rc, out, err):
        return Result(rc, self.normalise(out), self.normalise(err), tuple(argv), out, err)

    def run(self, step):
        argv = self.argv(step)
        if step.tty:
            rc, out = run_on_pty(argv, self.bundle, step.input, step.timeout)
            return self.result(argv, rc, out, "")
        # files, not pipes: a container keeps the stdio of `create` and `run -d` open
        n = len(os.listdir(self.dir))
        with open(os.path.join(self.dir, f"{n}.out"), "w+b") as out, \
                open(os.path.join(self.dir, f"{n}.err"), "w+b") as err:
            proc = subprocess.run(self.spawn_argv(step, argv), cwd=self.bundle,
                                  input=(step.input or "").encode(), stdout=out, stderr=err,
                                  timeout=step.timeout, check=False)
            texts = []
            for f in (out, err):
                f.seek(0)
                texts.append(f.read().decode(errors="replace"))
        return self.result(argv, proc.returncode, *texts)

    def start_background(self, step):
        argv = self.argv(step)
        out = open(os.path.join(self.dir, f"bg{len(self.background)}.out"), "w+b")
        err = open(os.path.join(self.dir, f"bg{len(self.background)}.err"), "w+b")
        proc = subprocess.Popen(self.spawn_argv(step, argv), cwd=self.bundle,
                                stdin=subprocess.DEVNULL, stdout=out,
                                stderr=err)
        self.background.append((argv, proc, out, err))

    def wait_background(self):
        argv, proc, out, err = self.background.pop(0)
        try:
            proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
        texts = []
        for f in (out, err):
            f.seek(0)
            texts.append(f.read().decode(errors="replace"))
            f.close()
        return self.result(argv, proc.returncode, *texts)

    def state(self, cid):
        res = subprocess.run([self.binary, "--root", self.root, "state", cid],
                             capture_output=True, text=True, timeout=TIMEOUT)
        return json.loads(res.stdout) if res.returncode == 0 else None

    def wait_status(self, cid, status):
        deadline = time.monotonic() + TIMEOUT
        while True:
            state = self.state(cid)
            now = state["status"] if state else "gone"
            if now == status:
                return now
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: {cid} is {now}, never {status}")
            time.sleep(0.02)


def run_on_pty(argv, cwd, text, timeout):
    """argv on a new pty that is its controlling terminal; (exit status, what it wrote)
    with \r\n as \n.  \r\r\n, when the runtime's output reached the terminal before it
    made it raw (a race in runc exec -t), is the same text."""
    rc, out = lib.run_on_pty(argv, cwd=cwd, text=text, timeout=timeout, controlling=True)
    return rc, re.sub(r"\r+\n", "\n", out)


class ConsoleReceiver:
    """The other end of --console-socket, as an engine's (conmon, containerd's shim): takes
    the pty master the runtime sends with SCM_RIGHTS and reads everything the container
    writes to its terminal until the last copy of the pty peer closes."""

    def __init__(self, path, text=None):
        self.path = path
        self.text = text
        self.chunks = []
        self.error = None
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(1)
        self.sock.settimeout(TIMEOUT)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            conn, _ = self.sock.accept()
            with conn:
                fds = []
                _msg, ancdata, _flags, _addr = conn.recvmsg(1024, socket.CMSG_SPACE(4))
                for level, kind, data in ancdata:
                    if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                        fds.append(int.from_bytes(data[:4], "little"))
            if not fds:
                self.error = "no fd received"
                return
            master = fds[0]
            try:
                if self.text:
                    os.write(master, self.text.encode())
                deadline = time.monotonic() + TIMEOUT
                while time.monotonic() < deadline:
                    if not select.select([master], [], [], 0.1)[0]:
                        continue
                    try:
                        data = os.read(master, 65536)
                    except OSError:  # EIO: the container's end is closed
                        break
                    if not data:
                        break
                    self.chunks.append(data)
            finally:
                os.close(master)
        except OSError as e:
            self.error = str(e)
        finally:
            self.sock.close()

    def output(self):
        self.thread.join(TIMEOUT)
        if self.error:
            return f"<receiver: {self.error}>"
        return b"".join(self.chunks).decode(errors="replace").replace("\r\n", "\n")


def receive_console(name="console.sock", text=None):
    """A step: listen on {dir}/NAME for the pty master (see ConsoleReceiver)."""
    def start(side):
        side.receivers.append(ConsoleReceiver(os.path.join(side.dir, name), text))
    return Host(start)


def output_lines(n):
    """A step: wait until the latest background command has printed n more whole lines
    than it had; "exited" when it ends before that."""
    def wait(side):
        _argv, proc, out, _err = side.background[-1]
        start = os.pread(out.fileno(), 1 << 20, 0).count(b"\n")
        deadline = time.monotonic() + TIMEOUT
        while os.pread(out.fileno(), 1 << 20, 0).count(b"\n") < start + n:
            if proc.poll() is not None:
                return "exited"
            if time.monotonic() > deadline:
                raise AssertionError(f"{side.name}: fewer than {n} more lines from "
                                     f"{' '.join(_argv)}")
            time.sleep(0.02)
        return f"{n} more lines"
    return Host(wait)


def console_output():
    """A step: what the container wrote to the terminal the oldest receiver took."""
    return Host(lambda side: side.normalise(side.receivers.pop(0).output()))


# --------------------------------------------------------------------------------------------
# Comparisons


def json_skeleton(value, depth=-1):
    """The shape of a JSON document: keys and value types, recursively (depth levels of
    it, when depth >= 0)."""
    if depth == 0:
        return type(value).__name__
    if isinstance(value, dict):
        return {k: json_skeleton(v, depth - 1) for k, v in value.items()}
    if isinstance(value, list):
        return [json_skeleton(v, depth - 1) for v in value]
    return type(value).__name__


def json_layout(text):
    """How the document is laid out: its line count and indentation characters."""
    lines = text.rstrip("\n").split("\n")
    indents = {line[:len(line) - len(line.lstrip())][:1] for line in lines[1:]}
    return {"lines": len(lines), "indent": sorted(indents - {""}),
            "trailing newline": text.endswith("\n")}


# values that differ between any two runs or runtimes (the spec version each implements)
VOLATILE = {"pid": "<PID>", "ociVersion": "<VERSION>"}


def _json_values(value):
    if isinstance(value, dict):
        return {k: (VOLATILE[k] if k in VOLATILE and isinstance(v, (int, str))
                    else _json_values(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_values(v) for v in value]
    return value


def json_line_kinds(text):
    """The kinds of line of a stream of JSON documents (events): keys and "type"."""
    try:
        docs = [json.loads(line) for line in text.splitlines()]
    except ValueError as e:
        raise AssertionError(f"a line is not JSON: {e}") from None
    return sorted({(tuple(sorted(d)), d.get("type")) for d in docs})


def table_shape(text):
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return {"header": None, "rows": 0}
    return {"header": lines[0].split(), "rows": len(lines) - 1,
            "columns": [len(line.split()) for line in lines[1:]]}


HELP_SECTIONS = ("NAME", "USAGE", "VERSION", "COMMANDS", "OPTIONS", "GLOBAL OPTIONS")


def help_shape(text):
    """runc's (urfave/cli) help: its section titles and the flags it lists."""
    sections = [line.rstrip(":") for line in text.splitlines()
                if line.rstrip(":") in HELP_SECTIONS and line.endswith(":")]
    flags = sorted(set(re.findall(r"(?m)^\s+(--?[a-z][a-z0-9-]*)", text))
                   | set(re.findall(r",\s(-[a-z])\b", text)))
    commands = []
    in_commands = False
    for line in text.splitlines():
        if line.startswith("COMMANDS:"):
            in_commands = True
            continue
        if in_commands:
            if not line.startswith("   "):
                in_commands = False
                continue
            commands.append(line.split()[0].rstrip(","))
    return {"sections": sections, "flags": flags, "commands": sorted(commands)}


def compare_stdout(mode, a, b):
    if mode == "ignore":
        return
    if mode == "exact":
        assert a.stdout == b.stdout, "stdout differs:\n" + show_difference(a.stdout, b.stdout)
    elif mode in ("json", "json-top", "json-values"):
        try:
            ja, jb = json.loads(a.stdout), json.loads(b.stdout)
        except ValueError as e:
            raise AssertionError(f"stdout is not JSON: {e}") from None
        if mode == "json-top":  # the page cache a host's memory pressure moves about
            for doc in (ja, jb):
                doc.get("data", {}).get("memory", {}).pop("cache", None)
        if mode in ("json", "json-top"):
            depth = 3 if mode == "json-top" else -1
            assert json_skeleton(ja, depth) == json_skeleton(jb, depth), (
                "JSON keys or types differ")
        else:
            assert _json_values(ja) == _json_values(jb), "JSON values differ"
        assert json_layout(a.stdout) == json_layout(b.stdout), (
            f"JSON layout differs: {json_layout(a.stdout)} vs {json_layout(b.stdout)}")
    elif mode == "json-lines":
        assert json_line_kinds(a.stdout) == json_line_kinds(b.stdout), (
            f"JSON lines differ: {json_line_kinds(a.stdout)} vs {json_line_kinds(b.stdout)}")
    elif mode == "table":
        assert table_shape(a.stdout) == table_shape(b.stdout), "table differs"
    elif mode == "help":
        assert help_shape(a.stdout) == help_shape(b.stdout), (
            f"help differs: {help_shape(a.stdout)} vs {help_shape(b.stdout)}")
    else:
        raise ValueError(f"unknown stdout mode {mode}")


def compare_stderr(mode, a, b):
    if mode == "ignore":
        return
    if mode == "exact":
        assert a.stderr == b.stderr, "stderr differs"
        return
    if mode == "lines":
        assert len(a.stderr.splitlines()) == len(b.stderr.splitlines()), (
            "stderr has another number of lines")
    assert bool(a.stderr.strip()) == bool(b.stderr.strip()), "stderr empty on one side only"
    if b.rc != 0 and b.stderr.strip():
        assert len(b.stderr.strip().splitlines()) == 1, "pyrunc's error is not one line"


def show_difference(a, b):
    """runc's and pyrunc's values; a unified diff when both are long texts."""
    if isinstance(a, str) and isinstance(b, str) and (a.count("\n") > 3 or b.count("\n") > 3):
        import difflib

        return "\n".join(difflib.unified_diff(a.splitlines(), b.splitlines(), "runc", "pyrunc",
                                               lineterm=""))
    return f"runc: {a!r}\npyrunc: {b!r}"


def compare_results(step, a, b):
    if step.differs is not None:
        step.differs.assert_holds(a, b)
        return
    assert a.rc == b.rc, f"exit status: runc {a.rc}, pyrunc {b.rc}"
    compare_stdout(step.stdout, a, b)
    compare_stderr(step.stderr, a, b)


def read_file(side, path, mode):
    path = side.expand(path)
    if mode == "exists":
        return os.path.lexists(path)
    try:
        with open(path) as f:
            text = side.normalise(f.read())
    except FileNotFoundError:
        return None
    if mode == "exact":
        return text
    if mode == "log-text":
        # runc's logrus text lines: time="..." level=L msg="..."; their keys and levels
        pairs = [re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)', line) for line in text.splitlines()]
        return [(sorted(k for k, _ in p), dict(p).get("level")) for p in pairs]
    if mode == "log-levels":
        # which kinds of lines (keys, level) there are, not how many: runc's debug lines
        # trace its nsexec stages, pyrunc's its operations
        pairs = [re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)', line) for line in text.splitlines()]
        return sorted({(tuple(sorted(k for k, _ in p if k in ("time", "level", "msg"))),
                        dict(p).get("level")) for p in pairs})
    if mode == "log-json":
        return [(sorted(json.loads(line)), json.loads(line).get("level"))
                for line in text.splitlines()]
    raise ValueError(f"unknown file mode {mode}")


# --------------------------------------------------------------------------------------------
# Running a scenario


def base_config(session_dir):
    """`runc spec`'s config.json, made once per session."""
    path = os.path.join(session_dir, "runc-spec")
    if not os.path.exists(os.path.join(path, "config.json")):
        os.makedirs(path, exist_ok=True)
        subprocess.run([RUNC, "spec", "--bundle", path], check=True, capture_output=True,
                       timeout=TIMEOUT)
    with open(os.path.join(path, "config.json")) as f:
        return f.read()


def make_config(scenario, base_text):
    text = base_text
    if scenario.jq:
        text = subprocess.run(["jq", scenario.jq], input=text, check=True, text=True,
                              capture_output=True, timeout=TIMEOUT).stdout
    config = json.loads(text)
    if scenario.config:
        scenario.config(config)
    return config


def prepare_side(name, binary, scratch, rootfs, config, nids):
    side_dir = os.path.join(scratch.path, name)
    os.makedirs(side_dir, 0o755)
    rt = lib.Runtime(binary, os.path.join(side_dir, "root"), scratch)
    scratch.runtimes.append(rt)  # teardown: delete --force and cgroups of every id
    side = SideRun(name, binary, side_dir, rt)
    for _ in range(nids):
        side.ids.append(rt.use_id(lib.ID_PREFIX + uuid.uuid4().hex[:12]))
    os.mkdir(side.bundle, 0o755)
    lib.copy_rootfs(rootfs, os.path.join(side.bundle, "rootfs"))
    text = json.dumps(config, indent=2)
    with open(os.path.join(side.bundle, "config.json"), "w") as f:
        f.write(side.expand(text))
    return side


def run_steps(side, steps):
    results = []
    for step in steps:
        if isinstance(step, Cmd):
            if step.background:
                side.start_background(step)
                results.append(None)
            else:
                results.append(side.run(step))
        elif isinstance(step, Wait):
            results.append(side.wait_background())
        elif isinstance(step, WaitStatus):
            results.append(side.wait_status(side.expand(step.cid), step.status))
        elif isinstance(step, File):
            results.append(read_file(side, step.path, step.mode))
        elif isinstance(step, Host):
            results.append(step.fn(side))
        else:
            raise TypeError(f"unknown step {step!r}")
    while side.background:  # a background command no Wait collected: do not leak it
        side.wait_background()
    return results


def run_scenario(scenario, scratch, rootfs, base_text, pyrunc_bin):
    """Run scenario with runc then pyrunc; assert the two agree step by step."""
    config = make_config(scenario, base_text)
    sides = {}
    results = {}
    for name, binary in (("runc", RUNC), ("pyrunc", pyrunc_bin)):
        sides[name] = prepare_side(name, binary, scratch, rootfs, config, scenario.ids)
        try:
            results[name] = run_steps(sides[name], scenario.steps)
        finally:
            for cid in sides[name].ids:  # this side's containers go before the other runs
                subprocess.run([binary, "--root", sides[name].root, "delete", "--force", cid],
                               capture_output=True, timeout=TIMEOUT, check=False)
    problems = []
    for i, step in enumerate(scenario.steps):
        a, b = results["runc"][i], results["pyrunc"][i]
        try:
            if isinstance(step, (Cmd, Wait)):
                if a is None:  # a background start: compared at its Wait
                    continue
                compare_results(step, a, b)
            elif isinstance(step, (File, Host)) and step.differs is not None:
                step.differs.assert_holds(a, b)
            else:
                assert a == b, show_difference(a, b)
        except AssertionError as e:
            detail = ""
            if isinstance(a, Result):
                detail = f"\n runc:   {a.describe()}\n pyrunc: {b.describe()}"
            problems.append(f"step {i} {step!r}: {e}{detail}")
    assert not problems, f"{scenario.name}: runc and pyrunc differ\n" + "\n".join(problems)
    return results

