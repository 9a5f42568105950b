"""Helpers for the tests that run real pyrunc containers (tests/integration).

- build_rootfs(): a minimal busybox rootfs (Debian's busybox-static, one static binary, so
  nothing of the host's loader or libraries is needed inside the container);
- Runtime and Bundle: the objects the `runtime` and `bundle` fixtures (tests/conftest.py)
  hand to each test;
- host inspection: mountinfo, cgroup directories and processes of a container, and
  assert_nothing_left(), the check that a container left no trace on the host;
- assert_error(): the runtime's one-line error contract.

It is a plain module with a unique name (not conftest) so that test modules can import it
whatever order pytest loads the conftest files in.
"""

import ctypes
import errno
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid

BUSYBOX = "/bin/busybox"
CGROUP_ROOT = "/sys/fs/cgroup"
# what /proc/PID/exe of a created (parked) container process reads
STAGE_EXE = "/memfd:pyrunc-stage (deleted)"
ID_PREFIX = "pyrunc-test-"
# Generous: an operation that takes this long is hung, not slow.  The VM batch
# (tests/cgroupv2/vmguest.py) raises it: code there runs ~15x slower under emulation.
TIMEOUT = float(os.environ.get("PYRUNC_TEST_TIMEOUT", "30"))
MNT_DETACH = 2
TOP_DIRS = ("bin", "dev", "etc", "proc", "sys", "tmp", "root", "mnt", "var", "run")


# --------------------------------------------------------------------------------------------
# The busybox rootfs


def busybox_applets(busybox=BUSYBOX):
    """The applet names of the host's busybox, without "busybox" itself."""
    out = subprocess.run([busybox, "--list"], check=True, capture_output=True, text=True).stdout
    return sorted(name for name in out.split() if name and name != "busybox")


def build_rootfs(dest, applets, busybox=BUSYBOX):
    """Create a busybox rootfs at dest (which must not exist yet) and return its path.

    The usual top-level directories exist, so the default mounts need not create them (a
    test that wants the runtime to create a mount point uses another name).  Directories
    are 0755 and files world-readable: a container whose root is mapped to an unprivileged
    host uid (user namespace) must still be able to walk and run it.
    """
    os.mkdir(dest, 0o755)
    for name in TOP_DIRS:
        os.mkdir(os.path.join(dest, name), 0o755)
    os.chmod(os.path.join(dest, "tmp"), 0o1777)
    bindir = os.path.join(dest, "bin")
    shutil.copyfile(busybox, os.path.join(bindir, "busybox"))
    os.chmod(os.path.join(bindir, "busybox"), 0o755)
    for name in applets:
        os.symlink("busybox", os.path.join(bindir, name))
    with open(os.path.join(dest, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    with open(os.path.join(dest, "etc", "group"), "w") as f:
        f.write("root:x:0:\nnogroup:x:65534:\n")
    return dest


def copy_rootfs(template, dest):
    """A private copy of a rootfs made by build_rootfs (files copied, symlinks kept)."""
    return shutil.copytree(template, dest, symlinks=True)


_libc = None


def umount_detach(path):
    """umount2(path, MNT_DETACH); returns 0 or the errno."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    if _libc.umount2(os.fsencode(path), MNT_DETACH) != 0:
        return ctypes.get_errno()
    return 0


def _unescape_mount_path(field):
    """mountinfo escapes space, tab, newline and backslash as \\ooo."""
    out, i = [], 0
    while i < len(field):
        octal = field[i + 1:i + 4]
        if field[i] == "\\" and len(octal) == 3 and all(c in "01234567" for c in octal):
            out.append(chr(int(octal, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text):
    """[{'id', 'parent', 'root', 'mountpoint', 'options', 'optional', 'fstype', 'source',
    'super_options', 'line'}] for the text of a mountinfo file (e.g. read in a container)."""
    entries = []
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        sep = fields.index("-")
        entries.append({
            "id": fields[0], "parent": fields[1], "root": _unescape_mount_path(fields[3]),
            "mountpoint": _unescape_mount_path(fields[4]), "options": fields[5].split(","),
            "optional": fields[6:sep], "fstype": fields[sep + 1],
            "source": fields[sep + 2], "super_options": fields[sep + 3].split(","),
            "line": line,
        })
    return entries


def read_mountinfo(pid="self"):
    """parse_mountinfo() of /proc/<pid>/mountinfo."""
    with open(f"/proc/{pid}/mountinfo") as f:
        return parse_mountinfo(f.read())


MS_RDONLY, MS_BIND, MS_REC = 1, 4096, 16384
MS_UNBINDABLE, MS_PRIVATE, MS_SLAVE, MS_SHARED = 1 << 17, 1 << 18, 1 << 19, 1 << 20


def mount(source, target, fstype=None, flags=0, data=None):
    """mount(2) on the host (for test fixtures: submounts, shared peers); OSError on failure.
    Anything mounted under a test's scratch directory is detached at teardown."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)

    def enc(value):
        return None if value is None else os.fsencode(value)

    if _libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags),
                   enc(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), target)


def mounts_under(path):
    """Mount points in this (the host's) mount namespace at or below path, deepest first."""
    path = os.path.realpath(path)
    found = [m["mountpoint"] for m in read_mountinfo()
             if m["mountpoint"] == path or m["mountpoint"].startswith(path + "/")]
    return sorted(set(found), key=len, reverse=True)


def cgroup_hierarchies():
    """Mount points of every cgroup hierarchy under /sys/fs/cgroup."""
    out = []
    for m in read_mountinfo():
        if m["fstype"] in ("cgroup", "cgroup2") and (
                m["mountpoint"] == CGROUP_ROOT or m["mountpoint"].startswith(CGROUP_ROOT + "/")):
            out.append(m["mountpoint"])
    return sorted(set(out))


def own_cgroup_paths():
    """The paths of this process's cgroups (a relative cgroupsPath lands below them)."""
    paths = set()
    with open("/proc/self/cgroup") as f:
        for line in f:
            paths.add(line.rstrip("\n").split(":", 2)[2])
    return paths


def container_cgroup_dirs(container_id):
    """Every cgroup directory whose name mentions container_id: at each hierarchy's root
    (pyrunc's default /pyrunc-<id>) and below this process's own cgroup in each hierarchy."""
    found = []
    bases = set()
    for hierarchy in cgroup_hierarchies():
        bases.add(hierarchy)
        for own in own_cgroup_paths():
            candidate = os.path.join(hierarchy, own.lstrip("/"))
            if own != "/" and os.path.isdir(candidate):
                bases.add(candidate)
    for base in sorted(bases):
        try:
            names = os.listdir(base)
        except OSError:
            continue
        for name in names:
            if container_id in name and os.path.isdir(os.path.join(base, name)):
                found.append(os.path.join(base, name))
    return found


def traced_cgroup_joins(runtime, bundle, scratch, wrapper=()):
    """Run `cat /proc/self/cgroup` in a container of bundle under strace -f (the process
    calls and the files opened or written): (the container's cgroup lines, the trace's
    lines).  wrapper: argv put between strace and pyrunc.  Skips without strace(1)."""
    import pytest

    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace(1) is needed to see how the container joins its cgroups")
    bundle.set_args("cat", "/proc/self/cgroup")
    bundle.write()
    cid = runtime.new_id()
    trace = os.path.join(scratch.path, f"trace-{cid}")
    done = subprocess.run(
        [strace, "-f", "-qq", "-o", trace, "-e", "trace=clone,clone3,fork,vfork,openat,write",
         *wrapper, runtime.binary, "--root", runtime.root, "run", "--bundle", bundle.path,
         cid], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT)
    runtime.delete(cid, "--force", check=False)
    assert done.returncode == 0, (done.returncode, done.stderr)
    with open(trace) as f:
        return cid, done.stdout.splitlines(), f.read().splitlines()


def _cgroup_pids(directory):
    pids = []
    for root, _dirs, files in os.walk(directory, topdown=False):
        if "cgroup.procs" in files:
            try:
                with open(os.path.join(root, "cgroup.procs")) as f:
                    pids += [int(x) for x in f.read().split()]
            except OSError:
                pass
    return pids


def read_or_none(path, mode="r"):
    """The file's content, or None when it cannot be read (a process gone, a cgroup
    removed)."""
    try:
        with open(path, mode) as f:
            return f.read()
    except OSError:
        return None


_read = read_or_none


def processes_of(container_id):
    """(pid, reason) for every live process that belongs to the container: any process in
    one of its cgroups (the parked exec stage, the program, its children), or a process
    whose command line names the id (a hung `pyrunc ... ID`)."""
    found = []
    me = os.getpid()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        pid = int(name)
        stat = _read(f"/proc/{pid}/stat")
        if stat is None or stat[stat.rindex(")") + 2] in "ZX":
            continue
        cgroup = _read(f"/proc/{pid}/cgroup") or ""
        cmdline = (_read(f"/proc/{pid}/cmdline", "rb") or b"").replace(b"\0", b" ")
        cmdline = cmdline.decode(errors="replace")
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            exe = ""
        if container_id in cgroup:
            found.append((pid, f"in cgroup ({exe or cmdline})"))
        elif container_id in cmdline:
            found.append((pid, f"cmdline {cmdline!r}"))
    return found


def _wait_gone(pids, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    pending = set(pids)
    while pending and time.monotonic() < deadline:
        for pid in list(pending):
            stat = _read(f"/proc/{pid}/stat")
            if stat is None or stat[stat.rindex(")") + 2] in "ZX":
                pending.discard(pid)
        if pending:
            time.sleep(0.01)
    return pending


def kill_and_remove_cgroups(container_id):
    """Teardown: SIGKILL everything in the container's cgroups, then rmdir them."""
    for directory in container_cgroup_dirs(container_id):
        for _ in range(50):
            pids = _cgroup_pids(directory)
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
            _wait_gone(pids, timeout=2)
        for root, _dirs, _files in os.walk(directory, topdown=False):
            for _ in range(100):
                try:
                    os.rmdir(root)
                    break
                except FileNotFoundError:
                    break
                except OSError as e:
                    if e.errno != errno.EBUSY:
                        break
                    time.sleep(0.01)


# --------------------------------------------------------------------------------------------
# The nothing-left check


def assert_nothing_left(runtime, bundle, container_id):
    """The container left no trace on the host: no state dir or exec.fifo under the
    runtime's --root, no cgroup directory, no mount mentioning the bundle, no process."""
    problems = []
    state_dir = os.path.join(runtime.root, container_id)
    if os.path.lexists(state_dir):
        problems.append(f"state dir {state_dir} exists: {sorted(os.listdir(state_dir))}")
    if os.path.lexists(os.path.join(state_dir, "exec.fifo")):
        problems.append("exec.fifo exists")
    bundle_path = bundle if isinstance(bundle, (str, os.PathLike)) else bundle.path
    bundle_path = os.path.realpath(bundle_path)
    if os.path.lexists(os.path.join(bundle_path, "exec.fifo")):
        problems.append("exec.fifo exists in the bundle")
    for directory in container_cgroup_dirs(container_id):
        problems.append(f"cgroup left: {directory}")
    for m in read_mountinfo():
        if bundle_path in m["line"] or container_id in m["line"]:
            problems.append(f"mount left: {m['line']}")
    for pid, why in processes_of(container_id):
        problems.append(f"process left: {pid} {why}")
    assert not problems, f"container {container_id} left things behind:\n  " + "\n  ".join(
        problems)


# --------------------------------------------------------------------------------------------
# The runtime helper


class CommandFailed(AssertionError):
    """A pyrunc command that had to succeed did not (the message has both outputs)."""


class Runtime:
    """One test's view of pyrunc: a private --root, unique container ids, and helpers.

    Every command's stdout and stderr go to files, never pipes: a container inherits the
    runtime's stdio, and a pipe it holds open would make the test wait for the container.
    """

    def __init__(self, binary, root, scratch):
        self.binary = binary
        self.root = root
        self.scratch = scratch
        self.ids = []

    # --- ids ------------------------------------------------------------------------------
    def new_id(self):
        cid = ID_PREFIX + uuid.uuid4().hex[:12]
        self.use_id(cid)
        return cid

    def use_id(self, cid):
        """Register an id for teardown.  Teardown kills processes whose cgroup or command
        line mentions the id, so only ids made by new_id() (unique, prefixed) are allowed."""
        assert cid.startswith(ID_PREFIX) and len(cid) >= len(ID_PREFIX) + 12, cid
        if cid not in self.ids:
            self.ids.append(cid)
        return cid

    def output_path(self, cid):
        """Where the stdout of `create`/`run -d` (so the container program's) goes."""
        return os.path.join(self.scratch.out, f"{cid}.stdout")

    # --- running the binary ---------------------------------------------------------------
    def run(self, *args, check=True, input=None, timeout=TIMEOUT, pass_fds=(), cwd=None,
            preexec_fn=None, umask=-1, env=None, stdout_path=None, global_args=()):
        """Run `pyrunc --root ROOT [global_args] ARGS...`; a CompletedProcess with text
        stdout/stderr.  check=True fails the test (with both outputs) on a non-zero exit."""
        argv = [self.binary, "--root", self.root, *global_args, *map(str, args)]
        out = open(stdout_path, "w+b") if stdout_path else tempfile.TemporaryFile(
            dir=self.scratch.out)
        err = tempfile.TemporaryFile(dir=self.scratch.out)
        try:
            proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                stdout=out, stderr=err, pass_fds=pass_fds, cwd=cwd, preexec_fn=preexec_fn,
                umask=umask, env=env)
            try:
                proc.communicate(input.encode() if isinstance(input, str) else input,
                                 timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise
            out.seek(0)
            err.seek(0)
            result = subprocess.CompletedProcess(
                argv, proc.returncode, out.read().decode(errors="replace"),
                err.read().decode(errors="replace"))
        finally:
            out.close()
            err.close()
        if check and result.returncode != 0:
            raise CommandFailed(
                f"{' '.join(argv)} exited {result.returncode}\n"
                f"stdout: {result.stdout!r}\nstderr: {result.stderr!r}")
        return result

    # --- the operations -------------------------------------------------------------------
    def create(self, bundle, *flags, cid=None, check=True, write=True, **kw):
        """`create --bundle B [flags] ID` (config.json written first unless write=False).
        The container program's stdout later lands in output_path(cid).  Returns the
        CompletedProcess with .cid set."""
        cid = self.use_id(cid) if cid else self.new_id()
        if write:
            bundle.write()
        result = self.run("create", "--bundle", bundle.path, *flags, cid, check=check,
                          stdout_path=self.output_path(cid), **kw)
        result.cid = cid
        return result

    def start(self, cid, check=True):
        return self.run("start", cid, check=check)

    def state(self, cid):
        return json.loads(self.run("state", cid).stdout)

    def status(self, cid):
        return self.state(cid)["status"]

    def kill(self, cid, *args, check=True):
        return self.run("kill", cid, *args, check=check)

    def delete(self, cid, *flags, check=True):
        return self.run("delete", *flags, cid, check=check)

    def run_container(self, bundle, *flags, cid=None, check=False, write=True, **kw):
        """Foreground `run --bundle B [flags] ID`: waits for the program and returns its
        output and exit status.  .cid is set on the result."""
        cid = self.use_id(cid) if cid else self.new_id()
        if write:
            bundle.write()
        result = self.run("run", "--bundle", bundle.path, *flags, cid, check=check, **kw)
        result.cid = cid
        return result

    def sh(self, bundle, script, *flags, **kw):
        """Run `sh -c script` in a container of this bundle; assert it exits 0, return its
        stdout."""
        bundle.config["process"]["args"] = ["sh", "-c", script]
        result = self.run_container(bundle, *flags, **kw)
        assert result.returncode == 0, (
            f"container script failed with {result.returncode}\nscript: {script}\n"
            f"stdout: {result.stdout!r}\nstderr: {result.stderr!r}")
        return result.stdout

    # --- waiting --------------------------------------------------------------------------
    def program_output(self, cid):
        return _read(self.output_path(cid)) or ""

    def wait_output(self, cid, text, timeout=TIMEOUT):
        """Wait until the program of a created+started container has written text."""
        deadline = time.monotonic() + timeout
        while True:
            out = self.program_output(cid)
            if text in out:
                return out
            if time.monotonic() > deadline:
                raise AssertionError(f"{cid}: {text!r} never appeared in the output {out!r}")
            time.sleep(0.01)

    def wait_exit(self, pid, timeout=TIMEOUT):
        """Wait until pid has exited (gone or a zombie waiting for its reaper)."""
        left = _wait_gone([pid], timeout)
        assert not left, f"process {pid} still alive after {timeout}s"


# --------------------------------------------------------------------------------------------
# A terminal for a command


def run_on_pty(argv, *, cwd=None, env=None, text=None, timeout=TIMEOUT, controlling=False):
    """Run argv in a new session with a new pty as its stdin, stdout and stderr (and, with
    controlling=True, as its controlling terminal: runc opens /dev/tty); text is typed
    into it.  Returns (exit status, everything it wrote to the terminal)."""
    import fcntl
    import select
    import termios

    master, slave = os.openpty()

    def become_session_leader():
        os.setsid()
        if controlling:
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    try:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=slave, stdout=slave,
                                stderr=slave, preexec_fn=become_session_leader)
    finally:
        os.close(slave)
    chunks = []
    try:
        if text:
            os.write(master, text.encode())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if select.select([master], [], [], 0.1)[0]:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every holder of the slave closed it
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None and not select.select([master], [], [], 0.05)[0]:
                break
        else:
            proc.kill()
        status = proc.wait(timeout)
    finally:
        os.close(master)
    return status, b"".join(chunks).decode(errors="replace")


# --------------------------------------------------------------------------------------------
# The bundle helper


class Bundle:
    """A bundle directory: config (a dict the test edits) written to config.json by write(),
    and a per-test busybox rootfs at <bundle>/rootfs."""

    def __init__(self, path, config, rootfs):
        self.path = path
        self.config = config
        self.rootfs = rootfs

    @property
    def process(self):
        return self.config["process"]

    @property
    def linux(self):
        return self.config.setdefault("linux", {})

    def set_args(self, *args):
        self.config["process"]["args"] = list(args)

    def sh(self, script):
        self.set_args("sh", "-c", script)

    def mount(self, destination, type_=None, source=None, options=None):
        entry = {"destination": destination}
        if type_ is not None:
            entry["type"] = type_
        if source is not None:
            entry["source"] = source
        if options is not None:
            entry["options"] = list(options)
        self.config.setdefault("mounts", []).append(entry)
        return entry

    def write(self, text=None):
        """Write config.json: the config dict, or text exactly as given."""
        with open(os.path.join(self.path, "config.json"), "w") as f:
            f.write(text if text is not None else json.dumps(self.config, indent=2))




# --------------------------------------------------------------------------------------------
# The error contract


def assert_error(result, *needles):
    """A failed pyrunc command: non-zero exit and exactly one line on stderr, starting with
    "pyrunc: ", that contains every needle (case-insensitive).  Returns that line."""
    assert result.returncode != 0, (
        f"expected a failure, got exit 0\nstdout: {result.stdout!r}\nstderr: {result.stderr!r}")
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"expected exactly one error line on stderr, got {lines!r}"
    line = lines[0]
    assert line.startswith("pyrunc: "), f"error line does not start with 'pyrunc: ': {line!r}"
    for needle in needles:
        assert needle.lower() in line.lower(), f"{needle!r} not in the error line {line!r}"
    return line


# --------------------------------------------------------------------------------------------
# One test's scratch space and its teardown


class Scratch:
    """One test's scratch directory and everything teardown must undo, in order:
    containers (delete --force, then SIGKILL what is left in their cgroups and remove the
    cgroups), the test's own finalizers, mounts under the directory, the directory."""

    def __init__(self, path):
        self.path = path
        self.out = os.path.join(path, "out")
        os.makedirs(self.out)
        os.chmod(path, 0o755)
        self.runtimes = []
        self.finalizers = []

    def add_finalizer(self, fn):
        """fn() runs at teardown, after the containers are gone (last added, first run)."""
        self.finalizers.append(fn)

    def teardown(self):
        """Undo everything; returns a list of problems (empty when all went well)."""
        errors = []
        for rt in self.runtimes:
            for cid in rt.ids:
                if os.path.lexists(os.path.join(rt.root, cid)):
                    try:
                        rt.run("delete", "--force", cid, check=False)
                    except Exception as e:  # keep cleaning up
                        errors.append(f"delete --force {cid}: {e}")
                kill_and_remove_cgroups(cid)
                for pid, _why in processes_of(cid):
                    try:
                        os.kill(pid, 9)
                    except ProcessLookupError:
                        pass
        for fn in reversed(self.finalizers):
            try:
                fn()
            except Exception as e:
                errors.append(f"finalizer {fn!r}: {e}")
        for mountpoint in mounts_under(self.path):
            umount_detach(mountpoint)
        left = mounts_under(self.path)
        if left:
            # never rmtree through a mount: it would delete the mounted host files
            errors.append(f"mounts left under {self.path}: {left}")
        else:
            shutil.rmtree(self.path, ignore_errors=True)
        return errors
