"""The hostile-input campaigns' harness (issue 12): one input, a real container, a host check.

An input is the text of a config.json (usually `pyrunc spec`'s config with one field
mutated) or a command line.  run_config() runs it through create, start, exec, update, state
and `delete --force` against a busybox bundle with a unique id and its own --root, and
returns the problems found (an empty list is a pass):

- the contract of every command: exit 0, or a non-zero exit with exactly one line on stderr
  that starts with "pyrunc: ", and never a traceback, a signal death or a hang;
- nothing left afterwards: state dir, exec.fifo, cgroup, mount, process (pyrunc_testlib's
  assert_nothing_left), nothing in the decoy directory the rootfs' escape symlinks point
  to, no mount left in the runtime's own mount namespace;
- the host unchanged (HostSnapshot): root cgroup files, which long-lived processes sit in
  each root cgroup, a set of /proc/sys values, the /dev listing, the host's system mounts,
  processes and top-level cgroup directories carrying the campaign's marker.

Safety: every pyrunc command runs in a private mount namespace of its own (`unshare -m
--propagation private`), so a mount mistake dies with it.  Cgroup and sysctl writes are not
namespaced, so guard() looks at an input before it runs: a cgroupsPath that is a
hierarchy root or climbs (it must be refused, naming the field), one that names an
existing cgroup, or an odd resources.unified key runs with a tmpfs over /sys/fs/cgroup
(SANDBOX); inputs that
could touch the host outside any sandbox (a namespace path to a real namespace, a host
network device, a sysctl of the host's, a hook program other than true/false) are not run.
"""

import copy
import errno
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
if TESTS not in sys.path:
    sys.path.insert(0, TESTS)

import pyrunc_testlib as lib  # noqa: E402

REPO = os.path.dirname(TESTS)
SCHEMA_PATH = os.path.join(REPO, "specs", "config-schema.json")
# ids of the campaign: the testlib's prefix (its teardown helpers accept them), then "fz"
# (not a hex digit, so no other test's id starts like this)
ID_MARK = lib.ID_PREFIX + "fz"
TIMEOUT = 30.0
SANDBOX = "sandbox"
REAL = "real"
# the campaign's containers run this; exec runs `true` in them
BASE_ARGS = ["sleep", "1000"]

# /proc/sys values the runtime could touch if a guard failed (sysctl, hostname, ...)
HOST_SYSCTLS = (
    "kernel/hostname", "kernel/domainname", "kernel/panic", "kernel/sysrq",
    "kernel/msgmax", "kernel/msgmnb", "kernel/msgmni", "kernel/sem", "kernel/shmmax",
    "kernel/shmall", "kernel/shmmni", "kernel/shm_rmid_forced", "kernel/pid_max",
    "kernel/core_pattern", "kernel/modprobe", "fs/mqueue/queues_max", "fs/mqueue/msg_max",
    "fs/file-max", "fs/protected_symlinks", "vm/overcommit_memory", "vm/swappiness",
    "net/ipv4/ip_forward", "net/ipv4/ping_group_range", "net/core/somaxconn",
    "net/ipv4/ip_unprivileged_port_start", "user/max_user_namespaces",
)
# host mount points a leaked mount would hurt (other tests' scratch mounts are noise here)
SYSTEM_MOUNTS = ("/", "/proc", "/sys", "/dev", "/dev/shm", "/dev/pts", "/dev/mqueue",
                 "/run", "/tmp", "/sys/fs/cgroup", "/proc/sys", "/etc", "/usr", "/var")


# --------------------------------------------------------------------------------------------
# Small readers


_read = lib.read_or_none


def _start_time(pid):
    """The process's start time (clock ticks since boot) or None when it is gone."""
    text = _read(f"/proc/{pid}/stat")
    if text is None:
        return None
    return int(text[text.rindex(")") + 2:].split()[19])


def _uptime_ticks():
    return float(_read("/proc/uptime").split()[0]) * os.sysconf("SC_CLK_TCK")


def _pids():
    return [int(n) for n in os.listdir("/proc") if n.isdigit()]


def hierarchy_roots():
    """{name: mount point} of every cgroup hierarchy under /sys/fs/cgroup ("" for cgroup2)."""
    roots = {}
    for m in lib.read_mountinfo():
        if m["fstype"] not in ("cgroup", "cgroup2"):
            continue
        if not m["mountpoint"].startswith(lib.CGROUP_ROOT) or m["root"] != "/":
            continue
        roots[os.path.basename(m["mountpoint"])] = m["mountpoint"]
    return roots


# --------------------------------------------------------------------------------------------
# The host snapshot


class HostSnapshot:
    """What a runtime mistake would change on the host, and what it must not.

    Only what is stable on a shared host goes in: files of the root cgroups (no engine
    writes them), the root-cgroup membership of processes older than a few seconds (none
    may leave it for the container's cgroup; a fork on its way to its own cgroup is
    young), sysctls, /dev, the system mount points, and things that
    carry the container's id (processes, cgroup directories)."""

    ROOT_FILES = ("devices.list", "cpuset.cpus", "cpuset.mems", "cgroup.subtree_control",
                  "memory.use_hierarchy", "cgroup.clone_children", "release_agent",
                  "notify_on_release", "cpu.rt_runtime_us", "cpu.shares", "blkio.weight")
    OLD_ENOUGH = 5.0  # seconds

    def __init__(self):
        self.sysctl = {k: _read(f"/proc/sys/{k}") for k in HOST_SYSCTLS}
        self.dev = self._dev()
        self.cgroup_files = {}
        self.root_members = {}
        self.cgroup_dirs = set()
        for name, root in hierarchy_roots().items():
            for fname in self.ROOT_FILES:
                value = _read(os.path.join(root, fname))
                if value is not None:
                    self.cgroup_files[os.path.join(root, fname)] = value
            procs = _read(os.path.join(root, "cgroup.procs")) or ""
            self.root_members[name] = {int(p) for p in procs.split()}
            try:
                self.cgroup_dirs |= {os.path.join(root, d) for d in os.listdir(root)
                                     if os.path.isdir(os.path.join(root, d))}
            except OSError:
                pass
        self.mounts = {(m["mountpoint"], m["fstype"], m["source"], m["root"])
                       for m in lib.read_mountinfo() if m["mountpoint"] in SYSTEM_MOUNTS}
        self.marked = self._marked_processes()
        limit = _uptime_ticks() - self.OLD_ENOUGH * os.sysconf("SC_CLK_TCK")
        self.old = {}
        for pid in set().union(*self.root_members.values()) if self.root_members else ():
            start = _start_time(pid)
            if start is not None and start < limit:
                self.old[pid] = start

    @staticmethod
    def _dev():
        out = set()
        for name in os.listdir("/dev"):
            try:
                st = os.lstat(os.path.join("/dev", name))
            except OSError:
                continue
            out.add((name, stat.S_IFMT(st.st_mode), st.st_rdev))
        return out

    @staticmethod
    def _marked_processes():
        found = {}
        for pid in _pids():
            cmdline = _read(f"/proc/{pid}/cmdline", "rb") or b""
            if ID_MARK.encode() in cmdline:
                found[pid] = cmdline.replace(b"\0", b" ").decode(errors="replace")
        return found

    def changes(self, after, cid):
        """Problems: what differs between this (before) and after; of the things that
        carry the campaign's marker, only those of container cid count (another campaign
        may run at the same time)."""
        problems = []
        for key, value in self.sysctl.items():
            if after.sysctl.get(key) != value:
                problems.append(f"/proc/sys/{key} changed: {value!r} -> {after.sysctl[key]!r}")
        for entry in sorted(self.dev ^ after.dev):
            problems.append(f"/dev changed: {entry} {'appeared' if entry in after.dev else 'gone'}")
        for path, value in self.cgroup_files.items():
            if after.cgroup_files.get(path) != value:
                problems.append(f"host cgroup file {path} changed")
        for name, members in self.root_members.items():
            now = after.root_members.get(name, set())
            for pid, start in self.old.items():
                if _start_time(pid) != start:
                    continue  # gone (or the pid reused)
                if pid in members and pid not in now and cid in (
                        _read(f"/proc/{pid}/cgroup") or ""):
                    problems.append(f"host process {pid} was moved into the container's "
                                    f"{name} cgroup")
        for d in sorted(after.cgroup_dirs - self.cgroup_dirs):
            if cid in d:
                problems.append(f"cgroup directory left: {d}")
        own = {p.strip("/").split("/")[0] for p in lib.own_cgroup_paths() if p != "/"}
        for d in sorted(self.cgroup_dirs - after.cgroup_dirs):
            name = os.path.basename(d)
            if name in own or name.endswith((".slice", ".scope")):
                problems.append(f"host cgroup directory gone: {d}")
        for m in sorted(self.mounts ^ after.mounts):
            problems.append(f"host mount {'added' if m in after.mounts else 'removed'}: {m}")
        for pid, cmdline in after.marked.items():
            if pid not in self.marked and cid in cmdline and _start_time(pid) is not None:
                problems.append(f"process left: {pid} {cmdline!r}")
        return problems


# --------------------------------------------------------------------------------------------
# The campaign's bundle


class Env:
    """A runtime (unique ids, private --root) and one bundle reused by every input.

    The rootfs holds symlinks that point out of it, at a decoy directory next to it:
    fz-out (absolute host path), fz-rel (relative, up through the bundle), fz-loop (to
    itself).  A runtime that followed one while working in the rootfs would create
    something in the decoy, which the harness checks after every input."""

    def __init__(self, runtime, path, rootfs_template, default_config):
        self.runtime = runtime
        self.path = path
        os.makedirs(path, 0o755)
        self.rootfs = lib.copy_rootfs(rootfs_template, os.path.join(path, "rootfs"))
        self.decoy = os.path.join(path, "decoy")
        os.mkdir(self.decoy)
        self.bind_source = os.path.join(path, "fzsrc")
        os.mkdir(self.bind_source)
        os.symlink(self.decoy, os.path.join(self.rootfs, "fz-out"))
        os.symlink("../decoy", os.path.join(self.rootfs, "fz-rel"))
        os.symlink("fz-loop", os.path.join(self.rootfs, "fz-loop"))
        self.bundle_entries = set(os.listdir(path))
        config = copy.deepcopy(default_config)
        config["root"] = {"path": "rootfs", "readonly": True}
        config["process"]["args"] = list(BASE_ARGS)
        config["process"]["terminal"] = False
        self.base = config
        self.mountinfo_dir = os.path.join(path, "..", "mountinfo")
        os.makedirs(self.mountinfo_dir, exist_ok=True)
        self._baseline = None

    def base_config(self):
        return copy.deepcopy(self.base)

    def new_id(self):
        return self.runtime.use_id(ID_MARK + uuid.uuid4().hex[:10])

    def write(self, text):
        data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
        with open(os.path.join(self.path, "config.json"), "wb") as f:
            f.write(data)

    # --- commands in a private mount namespace ---------------------------------------------
    def command(self, args, cid, mode=REAL, timeout=TIMEOUT, mountinfo=True, pass_fds=()):
        """Run `pyrunc --root R ARGS` in a private mount namespace of its own; with
        mode=SANDBOX a tmpfs covers /sys/fs/cgroup in it.  Returns a CompletedProcess with
        .mounts_left, the mounts that the command left in its own namespace."""
        mi = os.path.join(self.mountinfo_dir, f"{cid}.mi")
        script = ""
        if mode == SANDBOX:
            script += ("mount -t tmpfs -o size=4m,mode=755 fz-cgroup-sandbox /sys/fs/cgroup"
                       " || exit 99\n")
        if mountinfo:
            script += 'cat /proc/self/mountinfo >"$FZ_MI.0"\n'
        script += '"$@" 3>&-; rc=$?\n'
        if mountinfo:
            script += 'cat /proc/self/mountinfo >"$FZ_MI.1"\n'
        script += "exit $rc\n"
        env = dict(os.environ, FZ_MI=mi)
        wrapper = ["unshare", "-m", "--propagation", "private", "--", "sh", "-c", script, "fz"]
        rt = self.runtime
        result = _run([*wrapper, rt.binary, "--root", rt.root, *map(str, args)], timeout,
                      env=env, cwd=self.path, stdout_path=rt.output_path(cid),
                      pass_fds=pass_fds)
        result.mounts_left = []
        if mountinfo:
            before = _read(mi + ".0")
            after = _read(mi + ".1")
            if before is not None and after is not None:
                old = {_mount_key(m) for m in lib.parse_mountinfo(before)}
                result.mounts_left = [m["line"] for m in lib.parse_mountinfo(after)
                                      if _mount_key(m) not in old]
            for suffix in (".0", ".1"):
                try:
                    os.unlink(mi + suffix)
                except FileNotFoundError:
                    pass
        return result


def _mount_key(m):
    return (m["mountpoint"], m["fstype"], m["source"], m["root"])


def _run(argv, timeout, env=None, cwd=None, stdout_path=None, pass_fds=()):
    """argv with stdout to a file (a container inherits it) and stderr captured; a
    CompletedProcess, returncode None when it hung (killed after timeout)."""
    out = open(stdout_path, "ab") if stdout_path else tempfile.TemporaryFile()
    err = tempfile.TemporaryFile()
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                env=env, cwd=cwd, pass_fds=pass_fds, start_new_session=True)
        try:
            proc.wait(timeout=timeout)
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            rc = None
        err.seek(0)
        return subprocess.CompletedProcess(argv, rc, "", err.read().decode(errors="replace"))
    finally:
        out.close()
        err.close()


# --------------------------------------------------------------------------------------------
# The contract


def contract(step, result, must_succeed=False):
    """Problems with one command's result: a hang, a signal death, a traceback, a failure
    that is not exactly one "pyrunc: " line."""
    rc, err = result.returncode, result.stderr
    if rc is None:
        return [f"{step}: hung (killed after {TIMEOUT}s); stderr {err[-500:]!r}"]
    problems = []
    if "Traceback" in err:
        problems.append(f"{step}: traceback: {err.strip().splitlines()[-1][:300]!r}")
    # negative: a signal; 129-254: a signal as the wrapper's sh reports it (255 is runc's
    # status for a failed exec); 99: the sandbox could not be made
    if rc < 0 or 128 < rc < 255 or rc == 99:
        problems.append(f"{step}: died with status {rc}; stderr {err[-500:]!r}")
    elif rc != 0:
        # warnings ("pyrunc: warning: ...") may come first; then exactly one error line
        lines = [line for line in err.splitlines() if not line.startswith("pyrunc: warning: ")]
        if len(lines) != 1 or not lines[0].startswith("pyrunc: "):
            problems.append(f"{step}: exit {rc} without exactly one 'pyrunc: ' line: "
                            f"{err[-600:]!r}")
        elif must_succeed:
            problems.append(f"{step}: failed: {lines[0]}")
    if getattr(result, "mounts_left", None):
        problems.append(f"{step}: left mounts in its own namespace: {result.mounts_left[:5]}")
    return problems


def leftovers(env, cid):
    """Problems: what the container left (state, cgroups, mounts, processes, decoy)."""
    problems = []
    try:
        lib.assert_nothing_left(env.runtime, env.path, cid)
    except AssertionError as e:
        problems.append(str(e))
    escaped = os.listdir(env.decoy)
    if escaped:
        problems.append(f"something escaped the rootfs into the decoy: {escaped}")
    extra = set(os.listdir(env.path)) - env.bundle_entries - {"config.json"}
    if extra:
        problems.append(f"new entries in the bundle directory: {sorted(extra)}")
    return problems


def cleanup(env, cid, mode=REAL):
    """After a failed input: whatever the runtime left, gone (so the next input starts
    clean); nothing here can touch what the campaign did not make."""
    if os.path.lexists(os.path.join(env.runtime.root, cid)):
        env.command(["delete", "--force", cid], cid, mode=mode, mountinfo=False)
    lib.kill_and_remove_cgroups(cid)
    for pid, _why in lib.processes_of(cid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    state_dir = os.path.join(env.runtime.root, cid)
    if os.path.lexists(state_dir):
        shutil.rmtree(state_dir, ignore_errors=True)
    for name in os.listdir(env.decoy):
        p = os.path.join(env.decoy, name)
        if lib.umount_detach(p) not in (0, errno.EINVAL, errno.ENOENT):
            continue
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p, ignore_errors=True)
        else:
            os.unlink(p)
    for name in set(os.listdir(env.path)) - env.bundle_entries - {"config.json"}:
        p = os.path.join(env.path, name)
        shutil.rmtree(p, ignore_errors=True) if os.path.isdir(p) else os.unlink(p)


# --------------------------------------------------------------------------------------------
# Guards: what an input may do on this host


class Unsafe(Exception):
    """The input could change the host outside any sandbox: the harness does not run it."""


def _get(d, *keys):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def cgroup_class(path, cid):
    """How a cgroupsPath may run here: "own" (unset, or a component names the container:
    REAL), "new" (a cgroup nobody has: REAL), "existing" (some hierarchy has it: SANDBOX,
    it could be a host cgroup) or "escape" (the root, or climbing: SANDBOX, and it must be
    refused)."""
    if path == "":
        return "own"  # unset: the runtime's default, /pyrunc-<id>
    if not isinstance(path, str) or "\0" in path or ":" in path:
        return "escape"
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts or not parts:
        return "escape"
    if any(p.startswith(cid) for p in parts):
        return "own"
    rel = "/".join(parts)
    bases = list(hierarchy_roots().values())
    bases += [os.path.join(b, o.strip("/")) for b in bases for o in lib.own_cgroup_paths()]
    if any(os.path.lexists(os.path.join(b, rel)) for b in bases):
        return "existing"
    return "new"


def guard(config, cid, bundle):
    """REAL or SANDBOX for a parsed config (None: not JSON, runs REAL: it cannot get far);
    raises Unsafe for an input that must not run at all."""
    if not isinstance(config, dict):
        return REAL
    mode = REAL
    linux = config.get("linux")
    if isinstance(linux, dict):
        if "cgroupsPath" in linux and cgroup_class(linux["cgroupsPath"], cid) in (
                "existing", "escape"):
            mode = SANDBOX
        unified = _get(linux, "resources", "unified")
        if isinstance(unified, dict) and any(
                not isinstance(k, str) or "/" in k or k.startswith(".") or "\0" in k
                for k in unified):
            mode = SANDBOX
        _guard_namespaces(linux)
        _guard_netdevices(linux)
        _guard_sysctl(linux)
        _guard_listener(linux)
        _guard_uts(config, linux)
    elif "hostname" in config or "domainname" in config:
        raise Unsafe("hostname without a uts namespace")
    _guard_hooks(config)
    _guard_root(config, bundle)
    return mode


def _guard_root(config, bundle):
    path = _get(config, "root", "path")
    if not isinstance(path, str) or "\0" in path:
        return
    real = os.path.realpath(os.path.join(bundle, path))
    if os.path.isdir(real) and not real.startswith(os.path.dirname(bundle) + "/"):
        raise Unsafe(f"root.path {path!r} is the host's {real}")
    if real in (bundle, os.path.realpath(bundle)):
        # a valid choice, but then the rootfs' mount points are the bundle's entries and
        # the bundle check cannot tell them from leftovers
        raise Unsafe(f"root.path {path!r} is the bundle itself")


def _ns_types(linux):
    nss = linux.get("namespaces")
    if not isinstance(nss, list):
        return {}
    return {n["type"]: n.get("path") for n in nss
            if isinstance(n, dict) and isinstance(n.get("type"), str)}


def _guard_uts(config, linux):
    nss = _ns_types(linux)
    if ("hostname" in config or "domainname" in config) and (
            "uts" not in nss or nss["uts"]):
        raise Unsafe("hostname without a uts namespace of its own")


def _guard_namespaces(linux):
    nss = linux.get("namespaces")
    if not isinstance(nss, list):
        return
    nsfs = os.stat("/proc/self/ns/net").st_dev
    for n in nss:
        path = n.get("path") if isinstance(n, dict) else None
        if not isinstance(path, str) or not path or "\0" in path:
            continue
        try:
            st = os.stat(path)
        except (OSError, ValueError):
            continue
        if st.st_dev == nsfs or path.startswith("/proc") or "/ns/" in path:
            raise Unsafe(f"namespace path {path!r} is a real namespace")


def _guard_netdevices(linux):
    devs = linux.get("netDevices")
    if isinstance(devs, dict):
        for name in devs:
            if isinstance(name, str) and "\0" not in name and "/" not in name and (
                    name in (".", "..") or os.path.exists(f"/sys/class/net/{name}")):
                raise Unsafe(f"netDevices moves host device {name!r}")


def _guard_sysctl(linux):
    sysctl = linux.get("sysctl")
    if not isinstance(sysctl, dict):
        return
    nss = _ns_types(linux)
    for key, value in sysctl.items():
        if not isinstance(key, str) or "\0" in key:
            continue
        name = key.replace("/", ".") if "/" in key and "." not in key else key
        host = f"/proc/sys/{name.replace('.', '/')}"
        if ".." in name.split(".") or not os.path.exists(host):
            continue
        own_net = name.startswith("net.") and "network" in nss and not nss["network"]
        if own_net:
            continue
        # a host parameter: only its current value (a write that slipped through changes
        # nothing); the refusal is what is tested
        if value != (_read(host) or "").strip():
            raise Unsafe(f"sysctl {key!r}: a host value other than its current one")


def _guard_listener(linux):
    path = _get(linux, "seccomp", "listenerPath")
    if isinstance(path, str) and path and "\0" not in path:
        try:
            if stat.S_ISSOCK(os.stat(path).st_mode):
                raise Unsafe(f"seccomp listener {path!r} is a real socket")
        except (OSError, ValueError):
            pass


HOOK_PROGRAMS = ("/bin/true", "/bin/false", "/usr/bin/true", "/usr/bin/false")


def _guard_hooks(config):
    hooks = config.get("hooks")
    if not isinstance(hooks, dict):
        return
    for entries in hooks.values():
        for h in entries if isinstance(entries, list) else ():
            path = h.get("path") if isinstance(h, dict) else None
            if not isinstance(path, str) or "\0" in path or path in HOOK_PROGRAMS:
                continue
            try:
                real = os.path.realpath(path)
                st = os.stat(real)
            except (OSError, ValueError):
                continue
            if stat.S_ISREG(st.st_mode) and real not in HOOK_PROGRAMS and not (
                    real.endswith("/busybox") and os.path.basename(path) in ("true", "false")):
                raise Unsafe(f"hook program {path!r} is a real program")


# --------------------------------------------------------------------------------------------
# One config input


def run_config(env, text, expect_refusal=None):
    """Run one config.json text (str or bytes) through the lifecycle; the problems found.

    expect_refusal: words of which a refusal at create must name one; create must fail.
    (The guarded cgroupsPath inputs run in SANDBOX and pass only when refused.)"""
    cid = env.new_id()
    # "{id}" in a value stands for the container's id (a cgroupsPath of its own)
    text = text.replace(b"{id}", cid.encode()) if isinstance(text, bytes) else text.replace(
        "{id}", cid)
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError, UnicodeDecodeError):
        parsed = None
    try:
        mode = guard(parsed, cid, env.path)  # may raise Unsafe
    except (TypeError, AttributeError, ValueError) as e:
        raise Unsafe(f"the guard cannot judge this input: {e!r}") from None
    before = HostSnapshot()
    env.write(text)
    problems = []
    create = env.command(["create", "--bundle", env.path, cid], cid, mode=mode)
    problems += contract("create", create)
    linux = parsed.get("linux") if isinstance(parsed, dict) else None
    escape = isinstance(linux, dict) and "cgroupsPath" in linux and cgroup_class(
        linux["cgroupsPath"], cid) == "escape"
    if escape and create.returncode == 0:
        problems.append("create with a cgroupsPath at or above a hierarchy root was not "
                        "refused (it ran with a tmpfs over /sys/fs/cgroup)")
    elif escape and "cgroupspath" not in create.stderr.lower():
        problems.append(f"refusal does not name cgroupsPath: {create.stderr.strip()!r}")
    if expect_refusal and create.returncode == 0:
        problems.append(f"create accepted an input it must refuse ({expect_refusal[0]})")
    elif expect_refusal and not any(w.lower() in create.stderr.lower() for w in expect_refusal):
        problems.append(f"refusal names none of {expect_refusal}: {create.stderr.strip()!r}")
    if create.returncode == 0:
        steps = [] if mode == SANDBOX else [
            (["start", cid], "start"), (["exec", cid, "true"], "exec"),
            (["update", "--pids-limit", "100", cid], "update"), (["state", cid], "state")]
        for args, step in steps:
            problems += contract(step, env.command(args, cid, mode=mode))
        result = env.command(["delete", "--force", cid], cid, mode=mode)
        problems += contract("delete --force", result, must_succeed=True)
    problems += leftovers(env, cid)
    problems += before.changes(HostSnapshot(), cid)
    if problems:
        cleanup(env, cid, mode)
    return problems


def describe(problems):
    return "\n  ".join(problems)


# --------------------------------------------------------------------------------------------
# The schema: every field of a config, and a base config in which each exists


def schema_fields(schema_path=SCHEMA_PATH):
    """[(path tuple, kind)] for every leaf field of the config schema; kind is the $defs
    name for the shared types (uint32, AbsolutePath, ...) or the JSON type.  Array items
    are index 0, free-form map keys "*"."""
    with open(schema_path) as f:
        schema = json.load(f)
    defs = schema["$defs"]
    leaves = ("int32", "int64", "uint16", "uint32", "uint64", "AbsolutePath",
              "ArrayOfStrings", "ArrayOfAbsolutePaths", "MapStringString")
    out = {}

    def walk(node, path, depth):
        if depth > 16:
            return
        if "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            if name in leaves:
                out.setdefault(path, name)
            else:
                walk(defs[name], path, depth + 1)
            return
        for key in ("allOf", "anyOf", "oneOf"):
            for sub in node.get(key, ()):
                walk(sub, path, depth + 1)
        if "properties" in node:
            for k, v in node["properties"].items():
                walk(v, path + (k,), depth + 1)
            return
        if node.get("type") == "array" and "items" in node:
            walk(node["items"], path + (0,), depth + 1)
            return
        if isinstance(node.get("additionalProperties"), dict) and path:
            walk(node["additionalProperties"], path + ("*",), depth + 1)
            return
        if path and not any(k in node for k in ("allOf", "anyOf", "oneOf")):
            kind = node.get("type") or ("enum" if "enum" in node else "any")
            out.setdefault(path, kind if isinstance(kind, str) else kind[0])

    walk(schema, (), 0)
    return sorted(out.items(), key=lambda item: [str(p) for p in item[0]])


MAP_KEYS = {("linux", "netDevices"): "fzdummy0", ("linux", "resources", "rdma"): "fz_hca0"}
HOOK = {"path": "/bin/true", "args": ["true"], "env": ["FZ=1"], "timeout": 5}
IDMAP = {"containerID": 0, "hostID": 100000, "size": 65536}


def _add_ns(config, kind):
    nss = config["linux"].setdefault("namespaces", [])
    if not any(n.get("type") == kind for n in nss):
        nss.append({"type": kind})


def _with_userns(config):
    _add_ns(config, "user")
    config["linux"].setdefault("uidMappings", [dict(IDMAP)])
    config["linux"].setdefault("gidMappings", [dict(IDMAP)])


def _hook_template(kind):
    return lambda c: c.setdefault("hooks", {}).update({kind: [dict(HOOK)]})


def _throttle_template(key):
    return lambda c: c["linux"]["resources"]["blockIO"].update(
        {key: [{"major": 1, "minor": 3, "rate": 1 << 20}]})


# the valid section a field lives in, for fields `pyrunc spec` leaves out: prefix -> how to
# add it (the mutation then changes one field of an otherwise valid section)
def _templates(env):
    seccomp = {"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1,
               "architectures": ["SCMP_ARCH_X86_64"], "flags": [],
               "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                             "args": [{"index": 0, "value": 0, "valueTwo": 0,
                                       "op": "SCMP_CMP_GE"}]}]}
    return {
        ("mounts", 0): lambda c: c["mounts"].insert(0, {
            "destination": "/mnt/fz", "type": "bind", "source": env.bind_source,
            "options": ["rbind", "ro"]}),
        ("mounts", 0, "uidMappings"): lambda c: (
            c["mounts"][0].update(uidMappings=[dict(IDMAP)], gidMappings=[dict(IDMAP)]),
            _with_userns(c)),
        ("mounts", 0, "gidMappings"): lambda c: (
            c["mounts"][0].update(uidMappings=[dict(IDMAP)], gidMappings=[dict(IDMAP)]),
            _with_userns(c)),
        ("process", "consoleSize"): lambda c: c["process"].update(
            consoleSize={"height": 24, "width": 80}),
        ("process", "user", "additionalGids"): lambda c: c["process"]["user"].update(
            additionalGids=[0]),
        ("process", "capabilities", "inheritable"): lambda c: c["process"][
            "capabilities"].update(inheritable=["CAP_KILL"]),
        ("process", "capabilities", "ambient"): lambda c: c["process"][
            "capabilities"].update(ambient=["CAP_KILL"], inheritable=["CAP_KILL"]),
        ("process", "scheduler"): lambda c: c["process"].update(
            scheduler={"policy": "SCHED_OTHER", "nice": 0, "priority": 0, "flags": [],
                       "runtime": 0, "deadline": 0, "period": 0}),
        ("process", "scheduler", "flags"): lambda c: c["process"]["scheduler"].update(
            flags=["SCHED_FLAG_RESET_ON_FORK"]),
        ("process", "ioPriority"): lambda c: c["process"].update(
            ioPriority={"class": "IOPRIO_CLASS_BE", "priority": 4}),
        ("process", "execCPUAffinity"): lambda c: c["process"].update(
            execCPUAffinity={"initial": "0", "final": "0"}),
        ("process", "commandLine"): lambda c: None,
        ("process", "apparmorProfile"): lambda c: None,
        ("process", "selinuxLabel"): lambda c: None,
        ("process", "oomScoreAdj"): lambda c: c["process"].update(oomScoreAdj=0),
        ("hooks",): lambda c: c.setdefault("hooks", {}),
        **{("hooks", h): _hook_template(h)
           for h in ("prestart", "createRuntime", "createContainer", "startContainer",
                     "poststart", "poststop")},
        ("annotations",): lambda c: c.update(annotations={"fz": "1"}),
        ("linux", "uidMappings"): _with_userns,
        ("linux", "gidMappings"): _with_userns,
        ("linux", "timeOffsets"): lambda c: (_add_ns(c, "time"), c["linux"].update(
            timeOffsets={"boottime": {"secs": 0, "nanosecs": 0},
                         "monotonic": {"secs": 0, "nanosecs": 0}})),
        ("linux", "devices"): lambda c: c["linux"].update(devices=[{
            "path": "/dev/fz0", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666,
            "uid": 0, "gid": 0}]),
        ("linux", "netDevices"): lambda c: (_add_ns(c, "network"), c["linux"].update(
            netDevices={"fzdummy0": {"name": "eth9"}})),
        ("linux", "cgroupsPath"): lambda c: None,
        ("linux", "resources"): lambda c: c["linux"].setdefault("resources", {}),
        ("linux", "resources", "memory"): lambda c: c["linux"]["resources"].update(
            memory={"limit": 64 << 20}),
        ("linux", "resources", "cpu"): lambda c: c["linux"]["resources"].update(
            cpu={"shares": 1024}),
        ("linux", "resources", "pids"): lambda c: c["linux"]["resources"].update(
            pids={"limit": 100}),
        ("linux", "resources", "blockIO"): lambda c: c["linux"]["resources"].update(
            blockIO={"weight": 500}),
        **{("linux", "resources", "blockIO", k): _throttle_template(k)
           for k in ("throttleReadBpsDevice", "throttleWriteBpsDevice",
                     "throttleReadIOPSDevice", "throttleWriteIOPSDevice")},
        ("linux", "resources", "blockIO", "weightDevice"): lambda c: c["linux"]["resources"][
            "blockIO"].update(weightDevice=[{"major": 1, "minor": 3, "weight": 500}]),
        ("linux", "resources", "hugepageLimits"): lambda c: c["linux"]["resources"].update(
            hugepageLimits=[{"pageSize": "2MB", "limit": 1 << 30}]),
        ("linux", "resources", "network"): lambda c: c["linux"]["resources"].update(
            network={"classID": 1}),
        ("linux", "resources", "network", "priorities"): lambda c: c["linux"]["resources"][
            "network"].update(priorities=[{"name": "lo", "priority": 1}]),
        ("linux", "resources", "rdma"): lambda c: c["linux"]["resources"].update(
            rdma={"fz_hca0": {"hcaHandles": 1, "hcaObjects": 1}}),
        ("linux", "resources", "unified"): lambda c: c["linux"]["resources"].update(
            unified={}),
        ("linux", "intelRdt"): lambda c: c["linux"].update(intelRdt={"closID": "fz"}),
        ("linux", "seccomp"): lambda c: c["linux"].update(seccomp=copy.deepcopy(seccomp)),
        ("linux", "seccomp", "listenerPath"): lambda c: c["linux"]["seccomp"].update(
            listenerPath="/run/fz-no-listener.sock", defaultAction="SCMP_ACT_ALLOW"),
        ("linux", "sysctl"): lambda c: (_add_ns(c, "ipc"), c["linux"].setdefault(
            "sysctl", {})),
        ("linux", "personality"): lambda c: c["linux"].update(
            personality={"domain": "LINUX", "flags": []}),
        ("linux", "memoryPolicy"): lambda c: c["linux"].update(
            memoryPolicy={"mode": "MPOL_DEFAULT", "nodes": "", "flags": []}),
        ("linux", "mountLabel"): lambda c: None,
        ("linux", "rootfsPropagation"): lambda c: None,
        ("linux", "maskedPaths"): lambda c: None,
        ("linux", "readonlyPaths"): lambda c: None,
    }


def config_with(env, path, value):
    """The base config with the section that holds path added (valid), then path set to
    value.  value may be a Raw (JSON text put in as is).  Returns the config text."""
    config = env.base_config()
    config.setdefault("linux", {})
    templates = _templates(env)
    for i in range(1, len(path) + 1):
        add = templates.get(path[:i])
        if add is not None and (path[:i] in (("mounts", 0),) or _get_path(config, path[:i])
                                is _MISSING):
            add(config)
    parent = config
    for i, key in enumerate(path[:-1]):
        key = MAP_KEYS.get(path[:i], key) if key == "*" else key
        nxt = path[i + 1]
        if isinstance(parent, list):
            while len(parent) <= key:
                parent.append({} if not isinstance(nxt, int) else [])
            parent = parent[key]
        else:
            parent = parent.setdefault(key, [] if isinstance(nxt, int) else {})
    last = path[-1]
    if last == "*":
        last = MAP_KEYS.get(path[:-1], "fzkey")
    holder = Raw.placeholder(value)
    if isinstance(parent, list):
        while len(parent) <= last:
            parent.append(None)
    parent[last] = holder
    return Raw.render(config, value)


_MISSING = object()


def _get_path(config, path):
    node = config
    for key in path:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return _MISSING
    return node


class Raw:
    """A value given as JSON text (numbers JSON cannot round-trip through Python, deep
    nesting, broken escapes); config_with() pastes it in place of a placeholder."""

    MARK = "\x01fz-raw\x01"

    def __init__(self, text):
        self.text = text

    def __repr__(self):
        return f"Raw({self.text[:40]!r}{'...' if len(self.text) > 40 else ''})"

    @classmethod
    def placeholder(cls, value):
        return cls.MARK if isinstance(value, Raw) else value

    @classmethod
    def render(cls, config, value):
        text = json.dumps(config, indent=1)
        if isinstance(value, Raw):
            text = text.replace(json.dumps(cls.MARK), value.text, 1)
        return text


# --------------------------------------------------------------------------------------------
# One command-line input


def expand(args, cid, env):
    """{id}, {bundle} and {dir} (the campaign's scratch directory) in args."""
    scratch = os.path.dirname(env.path)
    return [a.replace("{id}", cid).replace("{bundle}", env.path).replace("{dir}", scratch)
            for a in args]


def start_container(env, cid, start=True):
    """create (and start) the base config's container; the problems if that failed."""
    env.write(json.dumps(env.base))
    problems = contract("create", env.command(["create", "--bundle", env.path, cid], cid),
                        must_succeed=True)
    if start and not problems:
        problems += contract("start", env.command(["start", cid], cid), must_succeed=True)
    return problems


def run_flags(env, args, setup=None):
    """Run one hostile command line (with {id} etc. expanded) against no container, a
    created or a running one (setup None, "created", "running"); the problems found."""
    cid = env.new_id()
    before = HostSnapshot()
    root_before = set(os.listdir(env.runtime.root)) if os.path.isdir(env.runtime.root) else set()
    problems = []
    if setup:
        problems += start_container(env, cid, start=setup == "running")
    result = env.command(expand(args, cid, env), cid)
    problems += contract(" ".join(args[:1]), result)
    # the container, and any an accepted odd id made (it must be deletable by that id)
    made = set(os.listdir(env.runtime.root)) - root_before if os.path.isdir(
        env.runtime.root) else set()
    for name in sorted(made | {cid}):
        if os.path.lexists(os.path.join(env.runtime.root, name)):
            problems += contract(f"delete --force {name!r}", env.command(
                ["delete", "--force", name], cid), must_succeed=True)
    problems += leftovers(env, cid)
    if os.path.isdir(env.runtime.root):
        extra = set(os.listdir(env.runtime.root)) - root_before
        if extra:
            problems.append(f"new entries under --root: {sorted(extra)}")
    problems += before.changes(HostSnapshot(), cid)
    if problems:
        cleanup(env, cid)
        if os.path.isdir(env.runtime.root):
            for name in set(os.listdir(env.runtime.root)) - root_before:
                shutil.rmtree(os.path.join(env.runtime.root, name), ignore_errors=True)
    return problems


# --------------------------------------------------------------------------------------------
# kill -9 at many points


def spawn(env, args, cid):
    """Start `pyrunc --root R ARGS` in a private mount namespace and return the Popen; its
    pid is pyrunc's own (unshare and sh exec it), so a SIGKILL hits pyrunc itself."""
    rt = env.runtime
    out = open(rt.output_path(cid), "ab")
    try:
        return subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "--", rt.binary, "--root", rt.root,
             *args], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.DEVNULL,
            cwd=env.path)
    finally:
        out.close()


def _motion(cid):
    """{pid: (state, syscall, CPU ticks)} of the container's processes (lib.processes_of)."""
    seen = {}
    for pid, _ in lib.processes_of(cid):
        stat_text = lib.read_or_none(f"/proc/{pid}/stat")
        syscall = lib.read_or_none(f"/proc/{pid}/syscall")
        if stat_text is None or syscall is None:
            continue  # gone meanwhile
        fields = stat_text[stat_text.rindex(")") + 2:].split()
        seen[pid] = (fields[0], syscall.split()[0], int(fields[11]) + int(fields[12]))
    return seen


def settle(cid, timeout=TIMEOUT):
    """Wait until what is left of the container stopped moving: every process asleep (or
    stopped) in the same system call, with no CPU time spent, over two looks 20 ms apart
    (none left at all settles at once); a process still on its way never looks so."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        now = _motion(cid)
        if not now or (now == last and all(s in "SDtT" and c != "running"
                                           for s, c, _ in now.values())):
            return
        last = now
        time.sleep(0.02)


def kill9_problems(env, op, delay):
    """Run op (create, start, run, exec, delete) and SIGKILL pyrunc after delay seconds;
    then: what is left must be visible to pyrunc (`state` works) or nothing is left, and
    `delete --force` must leave nothing at all.

    Returns (invisible, problems): invisible is the problem when pyrunc could not see what
    the kill left (the rest of the problems then follow from it), else None."""
    cid = env.new_id()
    before = HostSnapshot()
    problems = []
    if op in ("start", "exec", "delete"):
        problems += start_container(env, cid, start=op != "start")
        if problems:
            cleanup(env, cid)
            return None, problems
    env.write(json.dumps(env.base))
    args = {"create": ["create", "--bundle", env.path, cid],
            "run": ["run", "--bundle", env.path, cid],
            "start": ["start", cid],
            "exec": ["exec", cid, "sleep", "1000"],
            "delete": ["delete", "--force", cid]}[op]
    proc = spawn(env, args, cid)
    if delay:
        time.sleep(delay)
    proc.kill()
    proc.wait()
    # what pyrunc started goes on for a moment without it (an init on its way to the
    # exec fifo): let it get where it stops before looking
    settle(cid)
    invisible = None
    if env.command(["state", cid], cid, mountinfo=False).returncode != 0:
        state_dir = os.path.join(env.runtime.root, cid)
        if os.path.isdir(state_dir) and not os.listdir(state_dir):
            # killed between the directory's mkdir and its first record: an empty
            # directory (no process, cgroup or fifo yet), which must not block the id
            again = env.command(["create", "--bundle", env.path, cid], cid, mountinfo=False)
            if again.returncode != 0:
                invisible = (f"after kill -9 of {op} at {delay * 1000:.0f} ms, the id is "
                             f"blocked: {again.stderr.strip()}")
            env.command(["delete", "--force", cid], cid, mountinfo=False)
        try:
            lib.assert_nothing_left(env.runtime, env.path, cid)
        except AssertionError as e:
            invisible = invisible or (f"after kill -9 of {op} at {delay * 1000:.0f} ms, "
                                      f"pyrunc does not see the container but: {e}")
    result = env.command(["delete", "--force", cid], cid, mountinfo=False)
    problems += contract("delete --force", result)
    problems += leftovers(env, cid)
    problems += before.changes(HostSnapshot(), cid)
    if problems or invisible:
        cleanup(env, cid)
    return invisible, problems
