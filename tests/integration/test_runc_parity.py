"""pyrunc behaves as runc 1.1.5 does (issue #13, "a true drop-in runc"): each test runs the
same bundle through runc (Debian's /usr/sbin/runc, the reference) and pyrunc and compares
what the two containers did.  crun cannot run on this host's hybrid cgroup layout, so runc
alone is the reference here.
"""

import ctypes
import os
import shutil
import subprocess

import pytest

import pyrunc_testlib as lib

RUNC = "/usr/sbin/runc"


@pytest.fixture
def runc(scratch, host_can_run_containers):
    if not os.access(RUNC, os.X_OK):
        pytest.skip(f"{RUNC} (Debian's runc, the reference) is not installed")
    rt = lib.Runtime(RUNC, os.path.join(scratch.path, "runc-root"), scratch)
    scratch.runtimes.append(rt)
    return rt


@pytest.fixture
def both(runtime, runc, make_bundle):
    """[(name, Runtime, Bundle)] for pyrunc and runc, each with a fresh bundle of its own
    (same config, a private copy of the rootfs) so that one cannot see the other's work."""
    return [("pyrunc", runtime, make_bundle("bundle-pyrunc")),
            ("runc", runc, make_bundle("bundle-runc"))]


def outputs(both, edit, script):
    """Run `sh -c script` in a container of each runtime, after edit(bundle) changed the
    config (and rootfs); {name: (exit status, stdout)}."""
    seen = {}
    for name, rt, bundle in both:
        edit(bundle)
        bundle.sh(script)
        result = rt.run_container(bundle)
        seen[name] = (result.returncode, result.stdout)
    return seen


def same(seen):
    """Both runtimes gave the same result; returns it."""
    assert seen["pyrunc"] == seen["runc"], seen
    return seen["runc"]


# --- lifecycle ------------------------------------------------------------------------------


def test_delete_without_force_kills_a_created_container(both):
    # runc (and crun) kill and delete a container that was created and never started;
    # engines rely on it.  The spec's wording says otherwise: CHECKLIST.md "Deviations"
    for _name, rt, bundle in both:
        bundle.set_args("sleep", "1000")
        cid = rt.create(bundle).cid
        pid = rt.state(cid)["pid"]
        rt.delete(cid)
        rt.wait_exit(pid)
        assert rt.run("state", cid, check=False).returncode != 0
        lib.assert_nothing_left(rt, bundle, cid)


# --- process ---------------------------------------------------------------------------------


def test_home_comes_from_the_containers_passwd_when_env_lacks_it(both):
    def edit(env, uid):
        def apply(bundle):
            bundle.process["env"] = env
            bundle.process["user"] = {"uid": uid, "gid": uid}
        return apply

    script = 'echo "HOME=$HOME"'
    # root's entry in the image's /etc/passwd is /root
    assert same(outputs(both, edit(["PATH=/bin"], 0), script)) == (0, "HOME=/root\n")
    # an empty HOME counts as none
    assert same(outputs(both, edit(["PATH=/bin", "HOME="], 0), script)) == (0, "HOME=/root\n")
    # a uid with no entry gets "/"
    assert same(outputs(both, edit(["PATH=/bin"], 1234), script)) == (0, "HOME=/\n")
    # a HOME given is kept
    assert same(outputs(both, edit(["PATH=/bin", "HOME=/x"], 0), script)) == (0, "HOME=/x\n")


def test_exec_gets_home_too(both):
    seen = {}
    for name, rt, bundle in both:
        bundle.process["env"] = ["PATH=/bin"]
        bundle.sh("echo ready; exec sleep 1000")
        bundle.config["root"]["readonly"] = True
        cid = rt.create(bundle).cid
        rt.start(cid)
        rt.wait_output(cid, "ready")
        result = rt.run("exec", "--user", "65534:65534", cid, "sh", "-c", 'echo "$HOME"')
        seen[name] = result.stdout
        rt.delete(cid, "--force")
    assert seen["pyrunc"] == seen["runc"] == "/\n"  # nobody's home in the image


def test_missing_cwd_is_created_even_on_a_read_only_root(both):
    def edit(bundle):
        bundle.config["root"]["readonly"] = True
        bundle.process["cwd"] = "/work/a/b"
        bundle.process["user"] = {"uid": 65534, "gid": 65534}

    status, out = same(outputs(both, edit, "pwd; stat -c '%a %u:%g' /work/a /work/a/b"))
    assert (status, out) == (0, "/work/a/b\n755 0:0\n755 0:0\n")


# --- hooks -------------------------------------------------------------------------------------

HOOK = """#!/bin/sh
exec > "$1" 2>&1
echo "cwd=$(pwd)"
env | grep -v -e '^PWD=' -e '^SHLVL=' -e '^_=' -e '^OLDPWD=' | sort
echo "fds=$(ls /proc/self/fd | sort -n | tr '\\n' ' ')"
grep -E '^(Uid|NoNewPrivs|Seccomp):' /proc/self/status
"""


def hook_reports(both, scratch, mark):
    """Run a container with a createRuntime, a createContainer and a startContainer hook,
    none with env of its own, under a seccomp profile with noNewPrivileges;
    {runtime: {phase: what the hook saw}} (the bundle's path written as BUNDLE)."""
    seen = {}
    for name, rt, bundle in both:
        host_hook = os.path.join(scratch.path, "hook.sh")
        with open(host_hook, "w") as f:
            f.write(HOOK)
        os.chmod(host_hook, 0o755)
        with open(os.path.join(bundle.rootfs, "bin", "hook.sh"), "w") as f:
            f.write(HOOK)
        os.chmod(os.path.join(bundle.rootfs, "bin", "hook.sh"), 0o755)
        out = os.path.join(bundle.path, "hook-out")
        os.mkdir(out)
        bundle.config["root"]["readonly"] = False
        bundle.process["env"] = ["PATH=/bin", "CONTAINER_ONLY=1"]
        bundle.process["user"] = {"uid": 65534, "gid": 65534}
        bundle.process["noNewPrivileges"] = True
        bundle.linux["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mknod"], "action": "SCMP_ACT_ERRNO"}]}
        bundle.config["hooks"] = {
            "createRuntime": [{"path": host_hook, "args": ["h", f"{out}/createRuntime"]}],
            "createContainer": [{"path": host_hook, "args": ["h", f"{out}/createContainer"]}],
            "startContainer": [{"path": "/bin/hook.sh", "args": ["h", "/tmp/startContainer"]}],
        }
        bundle.set_args("true")
        result = rt.run_container(bundle, env=dict(os.environ, PARITY_RUNTIME_ENV=mark))
        assert result.returncode == 0, result.stderr
        reports = {}
        in_container = os.path.join(bundle.rootfs, "tmp", "startContainer")
        for phase, path in (("createRuntime", f"{out}/createRuntime"),
                            ("createContainer", f"{out}/createContainer"),
                            ("startContainer", in_container)):
            with open(path) as f:
                reports[phase] = f.read().replace(bundle.path, "BUNDLE")
        seen[name] = reports
    return seen


def test_hooks_without_env_get_what_runc_gives_them(both, scratch):
    seen = hook_reports(both, scratch, "from-the-caller")
    for name in ("pyrunc", "runc"):
        # createRuntime runs in the runtime: its environment (the caller's)
        assert "PARITY_RUNTIME_ENV=from-the-caller" in seen[name]["createRuntime"], name
        assert "CONTAINER_ONLY" not in seen[name]["createRuntime"], name
    assert seen["pyrunc"]["startContainer"] == seen["runc"]["startContainer"]
    cc = {name: [line for line in seen[name]["createContainer"].splitlines()
                 if not line.startswith("fds=")] for name in seen}  # runc leaks its fds here
    assert cc["pyrunc"] == cc["runc"]
    # createContainer: in the rootfs, with the container process's env (no HOME yet)
    assert cc["runc"][:3] == ["cwd=BUNDLE/rootfs", "CONTAINER_ONLY=1", "PATH=/bin"]
    # startContainer: in the container, as its user, under its filter, with its env and
    # HOME, and no fd of the runtime's
    assert seen["runc"]["startContainer"].splitlines() == [
        "cwd=/", "CONTAINER_ONLY=1", "HOME=/", "PATH=/bin", "fds=0 1 2 3 ",
        "Uid:\t65534\t65534\t65534\t65534", "NoNewPrivs:\t1", "Seccomp:\t2"]


RUNTIME_HOOK = """#!/bin/sh
echo "cwd=$(pwd) extra=$(test -e /proc/$$/fd/$EXTRA_FD && echo open || echo closed)" > "$1"
"""


def test_runtime_hooks_run_in_the_bundle_with_no_inherited_fd(both, scratch):
    # runc runs prestart, createRuntime and poststart (1.1: from create) in the bundle,
    # and none of them sees an fd the runtime inherited from its caller; poststop runs
    # where delete's caller is.  runc's delete leaks its inherited fds to poststop:
    # pyrunc's does not (CHECKLIST.md)
    hook = os.path.join(scratch.path, "runtime-hook.sh")
    with open(hook, "w") as f:
        f.write(RUNTIME_HOOK)
    os.chmod(hook, 0o755)
    extra = os.open(hook, os.O_RDONLY)  # inheritable in the runtime, through pass_fds
    scratch.add_finalizer(lambda: os.close(extra))
    phases = ("prestart", "createRuntime", "poststart", "poststop")
    seen = {}
    for name, rt, bundle in both:
        out = os.path.join(bundle.path, "hook-out")
        os.mkdir(out)
        bundle.config["hooks"] = {
            phase: [{"path": hook, "args": [hook, f"{out}/{phase}"],
                     "env": [f"EXTRA_FD={extra}", "PATH=/usr/bin:/bin"]}]
            for phase in phases}
        bundle.set_args("true")
        cid = rt.create(bundle, cwd="/", pass_fds=(extra,)).cid
        rt.run("start", cid, cwd="/", pass_fds=(extra,))
        rt.wait_exit(rt.state(cid)["pid"])
        rt.run("delete", cid, cwd="/", pass_fds=(extra,))
        reports = {}
        for phase in phases:
            with open(f"{out}/{phase}") as f:
                reports[phase] = f.read().replace(bundle.path, "BUNDLE")
        seen[name] = reports
    for phase in phases[:3]:
        assert seen["pyrunc"][phase] == seen["runc"][phase] == "cwd=BUNDLE extra=closed\n"
    assert seen["runc"]["poststop"] == "cwd=/ extra=open\n"
    assert seen["pyrunc"]["poststop"] == "cwd=/ extra=closed\n"


# --- mounts ----------------------------------------------------------------------------------


def test_tmpfs_takes_the_mode_of_the_directory_it_covers(both):
    def edit(bundle):
        os.mkdir(os.path.join(bundle.rootfs, "d750"), 0o750)
        os.chmod(os.path.join(bundle.rootfs, "d750"), 0o750)
        for dest, options in (("/mnt", ["mode=700"]), ("/d750", ["ro"]), ("/new", None)):
            bundle.mount(dest, "tmpfs", "tmpfs", options)

    script = "stat -c '%n %a' /mnt /d750 /new /dev /dev/shm"
    assert same(outputs(both, edit, script)) == (
        0, "/mnt 755\n/d750 750\n/new 1777\n/dev 755\n/dev/shm 1777\n")


def test_mount_target_through_a_dangling_symlink_is_created_inside_the_root(both, scratch):
    source = os.path.join(scratch.path, "bind-source")
    with open(source, "w") as f:
        f.write("bound\n")
    top = "parity-" + os.path.basename(scratch.path)  # exists nowhere, host or image

    def edit(bundle):
        # an absolute and a relative dangling link: followed on the host, either would
        # leave the root
        os.symlink(f"/{top}/data", os.path.join(bundle.rootfs, "data"))
        os.symlink("../" * 40 + f"{top}/file", os.path.join(bundle.rootfs, "flink"))
        bundle.mount("/data", "tmpfs", "tmpfs")
        bundle.mount("/flink", "bind", source, ["bind"])

    script = f"grep -c ' /{top}/' /proc/mounts; cat /{top}/file; ls /{top}"
    assert same(outputs(both, edit, script)) == (0, "2\nbound\ndata\nfile\n")
    assert not os.path.lexists("/" + top)


def test_read_only_dev_is_made_read_only_after_what_goes_below_it(both):
    def edit(bundle):
        for mount in bundle.config["mounts"]:
            if mount["destination"] == "/dev":
                mount["options"] = mount.get("options", []) + ["ro"]
        bundle.mount("/dev/extra", "tmpfs", "tmpfs", ["ro"])

    script = ("grep -o -e ' /dev tmpfs ro' -e ' /dev/pts devpts rw' -e ' /dev/extra tmpfs ro'"
              " /proc/mounts; ls /dev | tr '\\n' ' '; echo; touch /dev/x 2>/dev/null || echo ro")
    assert same(outputs(both, edit, script)) == (
        0, " /dev tmpfs ro\n /dev/pts devpts rw\n /dev/extra tmpfs ro\n"
           "extra fd full mqueue null ptmx pts random shm stderr stdin stdout tty urandom "
           "zero \nro\n")


def test_a_dev_ptmx_device_entry_is_accepted_and_the_link_stays(both):
    def edit(bundle):
        bundle.linux["devices"] = [{"path": "/dev/ptmx", "type": "c", "major": 5, "minor": 2,
                                    "fileMode": 0o666, "uid": 0, "gid": 0}]

    assert same(outputs(both, edit, "readlink /dev/ptmx")) == (0, "pts/ptmx\n")


@pytest.mark.parametrize("flags", [(), ("--no-pivot",)], ids=["pivot", "no-pivot"])
def test_a_nested_user_namespace_cannot_mount_proc(both, flags):
    # the kernel lets a user namespace mount procfs only where a full one is already
    # visible; with --no-pivot the host's stayed below the moved root until runc's
    # msMoveRoot detached it (and a nested `unshare --mount-proc` got a fresh procfs)
    script = "unshare -Umpf --mount-proc true 2>/dev/null && echo mounted || echo refused"
    seen = {}
    for name, rt, bundle in both:
        bundle.sh(script)
        result = rt.run_container(bundle, *flags)
        seen[name] = (result.returncode, result.stdout)
    assert same(seen) == (0, "refused\n")


# --- cgroups ---------------------------------------------------------------------------------


def test_delete_force_removes_the_sub_cgroups_the_container_made(both):
    # without a pid namespace of its own, so that the process in the sub-cgroup outlives
    # the init and must be found there
    for _name, rt, bundle in both:
        for mount in bundle.config["mounts"]:
            if mount["type"] == "cgroup":
                mount["options"] = ["nosuid", "noexec", "nodev", "rw"]
        bundle.linux["namespaces"] = [ns for ns in bundle.linux["namespaces"]
                                      if ns["type"] != "pid"]
        bundle.sh("for c in pids memory; do mkdir -p /sys/fs/cgroup/$c/sub/deeper; done; "
                  "sh -c 'echo $$ > /sys/fs/cgroup/pids/sub/deeper/cgroup.procs; "
                  "exec sleep 1000' & echo ready; exec sleep 1000")
        cid = rt.create(bundle).cid
        rt.start(cid)
        rt.wait_output(cid, "ready")
        subs = [d for d in lib.container_cgroup_dirs(cid)
                if os.path.isdir(os.path.join(d, "sub", "deeper"))]
        assert len(subs) >= 2, subs
        rt.delete(cid, "--force")
        lib.assert_nothing_left(rt, bundle, cid)


# --- seccomp ---------------------------------------------------------------------------------

SYSCALL_C = r"""
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        long r = syscall(atol(argv[i]), 0, 0, 0, 0, 0, 0);
        printf("%s %d\n", argv[i], r < 0 ? errno : 0);
    }
    return 0;
}
"""


@pytest.fixture(scope="session")
def syscall_bin(session_dir):
    """A static program that makes the syscalls numbered on its command line and prints
    each one's errno (0: it succeeded)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    src = os.path.join(session_dir, "syscall.c")
    with open(src, "w") as f:
        f.write(SYSCALL_C)
    out = os.path.join(session_dir, "syscall")
    result = subprocess.run([cc, "-static", "-O2", "-o", out, src], capture_output=True,
                            text=True, timeout=120)
    if result.returncode != 0:
        pytest.skip(f"cannot build a static program: {result.stderr}")
    return out


def x86_64_names(upto):
    """libseccomp's names of the x86_64 syscalls numbered 0..upto."""
    libseccomp = ctypes.CDLL("libseccomp.so.2")
    libseccomp.seccomp_arch_resolve_name.restype = ctypes.c_uint32
    libseccomp.seccomp_syscall_resolve_num_arch.restype = ctypes.c_char_p
    arch = ctypes.c_uint32(libseccomp.seccomp_arch_resolve_name(b"x86_64"))
    names = (libseccomp.seccomp_syscall_resolve_num_arch(arch, nr) for nr in range(upto + 1))
    return [name.decode() for name in names if name]


def test_syscalls_newer_than_the_profile_get_enosys(both, syscall_bin):
    if os.uname().machine != "x86_64":
        pytest.skip("the profile is written for x86_64")
    allowed = [name for name in x86_64_names(434) if name != "sync"]  # 434: pidfd_open

    def edit(bundle):
        shutil.copy(syscall_bin, os.path.join(bundle.rootfs, "bin", "syscall"))
        bundle.linux["seccomp"] = {
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": allowed, "action": "SCMP_ACT_ALLOW"}]}

    # sync (162): known, not allowed: the default action (EPERM); 440 and 450, above the
    # highest the profile names: ENOSYS (38); getpid (39): allowed
    assert same(outputs(both, edit, "/bin/syscall 162 440 450 39")) == (
        0, "162 1\n440 38\n450 38\n39 0\n")


def test_notify_on_write_is_refused(both, scratch):
    for _name, rt, bundle in both:
        bundle.linux["seccomp"] = {
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": os.path.join(scratch.path, "agent.sock"),
            "syscalls": [{"names": ["write"], "action": "SCMP_ACT_NOTIFY"}]}
        result = rt.create(bundle, check=False)
        assert result.returncode != 0 and "write" in result.stderr, result.stderr
        lib.assert_nothing_left(rt, bundle, result.cid)


def test_the_default_cgroup_is_named_by_the_id_under_the_runtimes_own(both):
    # no cgroupsPath: runc's cgroupfs driver uses the id, relative to its own cgroup (v1;
    # on v2 to its parent)
    seen = {}
    for name, rt, bundle in both:
        bundle.linux.pop("cgroupsPath", None)
        bundle.set_args("sleep", "1000")
        cid = rt.create(bundle).cid
        with open(f"/proc/{rt.state(cid)['pid']}/cgroup") as f:
            seen[name] = f.read().replace(cid, "ID")
        rt.delete(cid, "--force")
    assert seen["pyrunc"] == seen["runc"]
    assert "/ID\n" in seen["runc"]


def test_a_frozen_cgroup_is_refused_and_a_busy_one_warned_about(both, scratch):
    freezer = os.path.join(lib.CGROUP_ROOT, "freezer")
    pids_root = os.path.join(lib.CGROUP_ROOT, "pids")
    if not (os.path.isdir(freezer) and os.path.isdir(pids_root)):
        pytest.skip("needs the v1 freezer and pids hierarchies")
    for _name, rt, bundle in both:
        # frozen: create would hang in the cgroup, runc refuses
        cid = rt.new_id()
        os.mkdir(os.path.join(freezer, cid))
        with open(os.path.join(freezer, cid, "freezer.state"), "w") as f:
            f.write("FROZEN")
        bundle.linux["cgroupsPath"] = "/" + cid
        result = rt.create(bundle, cid=cid, check=False)
        assert result.returncode != 0 and "frozen" in result.stderr, result.stderr
        with open(os.path.join(freezer, cid, "freezer.state"), "w") as f:
            f.write("THAWED")
        # not empty: a warning, and the container runs
        # (runc looks in the devices hierarchy, pyrunc in pids: the sleeper is in both)
        cid = rt.new_id()
        sleeper = subprocess.Popen(["sleep", "1000"])
        scratch.add_finalizer(sleeper.wait)
        scratch.add_finalizer(sleeper.kill)
        for hierarchy in (pids_root, os.path.join(lib.CGROUP_ROOT, "devices")):
            os.mkdir(os.path.join(hierarchy, cid))
            with open(os.path.join(hierarchy, cid, "cgroup.procs"), "w") as f:
                f.write(str(sleeper.pid))
        bundle.linux["cgroupsPath"] = "/" + cid
        result = rt.create(bundle, cid=cid)
        assert "cgroup is not empty: 1 process(es) found" in result.stderr, result.stderr
        rt.delete(cid, "--force")


def userns(bundle):
    """A user namespace mapping the container's root to host uid/gid 100000."""
    bundle.linux["namespaces"].append({"type": "user"})
    bundle.linux["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    bundle.linux["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]


def test_bind_source_the_mapped_root_cannot_reach_is_opened_before_the_userns(both, scratch):
    # runc opens bind sources as host root, before the init enters the user namespace:
    # a source below a 0700 directory of host root's is bound all the same
    private = os.path.join(scratch.path, "private")
    os.makedirs(os.path.join(private, "dir"))
    os.chmod(private, 0o700)
    with open(os.path.join(private, "dir", "file"), "w") as f:
        f.write("reached\n")
    with open(os.path.join(private, "single"), "w") as f:
        f.write("one file\n")

    def edit(bundle):
        userns(bundle)
        # the mount points exist: the mapped root cannot write the host root's rootfs
        os.mkdir(os.path.join(bundle.rootfs, "mnt", "dir"))
        open(os.path.join(bundle.rootfs, "mnt", "single"), "w").close()
        bundle.mount("/mnt/dir", "bind", os.path.join(private, "dir"), ["rbind", "ro"])
        bundle.mount("/mnt/single", "bind", os.path.join(private, "single"), ["bind"])

    script = "cat /mnt/dir/file /mnt/single; grep -c ' /mnt/' /proc/mounts"
    assert same(outputs(both, edit, script)) == (0, "reached\none file\n2\n")
