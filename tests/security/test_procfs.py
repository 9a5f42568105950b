"""procfs in the rootfs: CVE-2019-16884, CVE-2019-19921, CVE-2023-27561 and CVE-2025-52881.

- 2019-16884 / 2019-19921 / 2023-27561: an image (or a volume) made /proc a symlink, so
  the runtime mounted procfs elsewhere and then wrote its LSM labels into a fake file.
  Defence: rootfs.Rootfs._fs mounts proc and sysfs only onto a real directory, opened with
  RESOLVE_NO_SYMLINKS inside the root (STRICT_TYPES).
- 2025-52881: the runtime's own writes to procfs (oom_score_adj, sysctls, LSM attributes)
  redirected through a /proc the container controls.  Defence: init.container_init writes
  oom_score_adj, sysctl.apply writes sysctls, and the intermediate writes timens_offsets
  through the runtime's /proc before any container mount exists, never through the
  container's /proc after pivot_root.
"""

import os
import shutil
import subprocess

import pytest

import pyrunc_testlib as lib


def _replace_proc(bundle, make):
    proc = os.path.join(bundle.rootfs, "proc")
    os.rmdir(proc)
    make(proc)


@pytest.mark.parametrize("target", ["/tmp", "tmp", "/../../../../../../../tmp",
                                    "/proc-elsewhere"])
def test_proc_symlink_in_rootfs_is_refused(runtime, bundle, target):
    """Defence: Rootfs._fs (STRICT_TYPES): procfs may only be mounted on a real directory;
    the RESOLVE_NO_SYMLINKS walk fails with ELOOP and create stops with one line."""
    os.mkdir(os.path.join(bundle.rootfs, "proc-elsewhere"))
    _replace_proc(bundle, lambda p: os.symlink(target, p))
    result = runtime.create(bundle, check=False)
    lib.assert_error(result, "proc", "symlink")
    assert os.listdir(os.path.join(bundle.rootfs, "tmp")) == []
    lib.assert_nothing_left(runtime, bundle, result.cid)


def test_proc_regular_file_is_refused(runtime, bundle):
    """Defence: Rootfs._fs checks the opened target is a directory before mounting proc."""
    _replace_proc(bundle, lambda p: open(p, "w").close())
    result = runtime.create(bundle, check=False)
    lib.assert_error(result, "proc")
    lib.assert_nothing_left(runtime, bundle, result.cid)


def test_sysfs_symlink_is_refused(runtime, bundle):
    """Defence: the same rule for sysfs (CVE-2019-19921's sibling)."""
    sys_dir = os.path.join(bundle.rootfs, "sys")
    os.rmdir(sys_dir)
    os.symlink("/tmp", sys_dir)
    result = runtime.create(bundle, check=False)
    lib.assert_error(result, "sysfs", "symlink")
    lib.assert_nothing_left(runtime, bundle, result.cid)


def test_proc_symlink_inside_a_volume_is_refused(runtime, bundle, scratch):
    """Defence: a volume bind-mounted over a directory of the rootfs that holds a symlink
    where procfs goes (the shared-volume variant): the walk into the volume meets the
    symlink and refuses, whichever mount put it there."""
    vol = os.path.join(scratch.path, "vol")
    os.makedirs(os.path.join(vol, "real"))
    os.symlink("/tmp", os.path.join(vol, "proc"))
    bundle.mount("/mnt", None, vol, ["rbind", "rw"])
    bundle.mount("/mnt/proc", "proc", "proc")
    result = runtime.create(bundle, check=False)
    lib.assert_error(result, "proc", "symlink")
    assert sorted(os.listdir(vol)) == ["proc", "real"]
    lib.assert_nothing_left(runtime, bundle, result.cid)


def test_proc_as_a_volume_is_refused(runtime, bundle, scratch):
    """Defence: config.proc_mount_problem (runc's checkProcMount): only a procfs may be
    mounted on /proc, so a host directory bound there is refused before anything is made,
    and nothing in it is touched."""
    vol = os.path.join(scratch.path, "procvol")
    os.makedirs(os.path.join(vol, "self"))
    victim = os.path.join(vol, "self", "oom_score_adj")
    with open(victim, "w") as f:
        f.write("untouched\n")
    mounts = bundle.config["mounts"]
    mounts.insert(0, {"destination": "/proc", "type": "bind", "source": vol,
                      "options": ["rbind", "rw"]})
    bundle.process["oomScoreAdj"] = 123
    result = runtime.create(bundle, check=False)
    lib.assert_error(result, "mounts[0]", "procfs")
    lib.assert_nothing_left(runtime, bundle, result.cid)
    with open(victim) as f:
        assert f.read() == "untouched\n"
    assert sorted(os.listdir(vol)) == ["self"]


def test_oom_score_adj_not_redirected_by_a_fake_proc(runtime, bundle, scratch):
    """CVE-2025-52881.  Defence: init.container_init writes oom_score_adj through the
    runtime's own /proc before any container mount exists.  Here the container's /proc is
    a tree whose self/oom_score_adj is a symlink to a file on a volume (a host file): the
    write must reach the real procfs and not the host file."""
    victim = _fake_proc(bundle, scratch, "oom_score_adj")
    bundle.process["oomScoreAdj"] = 321
    bundle.set_args("sleep", "30")
    result = runtime.create(bundle, check=False)
    with open(victim) as f:
        assert f.read() == "untouched\n", "the runtime wrote oom_score_adj into a host file"
    if result.returncode == 0:
        pid = runtime.state(result.cid)["pid"]
        with open(f"/proc/{pid}/oom_score_adj") as f:
            assert f.read().strip() == "321"
        runtime.delete(result.cid, "--force")
    else:
        lib.assert_error(result)
    assert os.listdir(os.path.join(bundle.rootfs, "proc", "self")) == ["oom_score_adj"]


def test_proc_symlink_without_a_proc_mount(runtime, bundle, scratch):
    """Defence: with no procfs mount at all and /proc a symlink into a volume, nothing of
    the runtime follows it: oom_score_adj goes through the runtime's /proc (before the
    container's mounts) and the stage only reads /proc/self/fd of the real procfs it does
    not need."""
    vol = os.path.join(scratch.path, "vol")
    os.makedirs(os.path.join(vol, "self"))
    victim = os.path.join(vol, "self", "oom_score_adj")
    with open(victim, "w") as f:
        f.write("untouched\n")
    bundle.config["mounts"] = [m for m in bundle.config["mounts"]
                               if m["destination"] not in ("/proc",)]
    bundle.linux["maskedPaths"] = []
    bundle.linux["readonlyPaths"] = []
    bundle.mount("/vol", None, vol, ["rbind", "rw"])
    _replace_proc(bundle, lambda p: os.symlink("/vol", p))
    bundle.process["oomScoreAdj"] = 77
    bundle.set_args("sleep", "30")
    result = runtime.create(bundle, check=False)
    with open(victim) as f:
        assert f.read() == "untouched\n", "the runtime followed the symlinked /proc"
    if result.returncode == 0:
        pid = runtime.state(result.cid)["pid"]
        with open(f"/proc/{pid}/oom_score_adj") as f:
            assert f.read().strip() == "77"
        runtime.delete(result.cid, "--force")


def _fake_proc(bundle, scratch, name, content="untouched\n"):
    """A fake /proc: the rootfs's own /proc directory (no procfs is mounted; a mount of
    anything else on /proc is refused) holds self/<name> and sys/... (for sysctls) as
    symlinks to a victim file on a host volume."""
    hostvol = os.path.join(scratch.path, "hostvol")
    os.mkdir(hostvol)
    victim = os.path.join(hostvol, "victim")
    with open(victim, "w") as f:
        f.write(content)
    fake = os.path.join(bundle.rootfs, "proc")
    os.makedirs(os.path.join(fake, "self"))
    os.makedirs(os.path.join(fake, "sys", "net", "ipv4"))
    os.symlink("/hostvol/victim", os.path.join(fake, "self", name))
    os.symlink("/hostvol/victim", os.path.join(fake, "sys", "net", "ipv4", "ip_forward"))
    bundle.config["mounts"] = [m for m in bundle.config["mounts"] if m["destination"] != "/proc"]
    bundle.linux["maskedPaths"] = []
    bundle.linux["readonlyPaths"] = []
    bundle.mount("/hostvol", None, hostvol, ["rbind", "rw"])
    bundle.set_args("sleep", "30")
    return victim


def test_timens_offsets_not_redirected_by_a_fake_proc(runtime, bundle, scratch):
    """CVE-2025-52881 for time namespaces.  Defence: init.intermediate writes
    /proc/self/timens_offsets right after unshare(CLONE_NEWTIME), in the runtime's mount
    namespace copy before any container mount exists; a fake /proc in the container
    cannot redirect it."""
    if not os.path.exists("/proc/self/ns/time"):
        pytest.skip("this kernel has no time namespaces")
    victim = _fake_proc(bundle, scratch, "timens_offsets")
    bundle.linux["namespaces"].append({"type": "time"})
    bundle.linux["timeOffsets"] = {"monotonic": {"secs": 86400, "nanosecs": 0}}
    result = runtime.create(bundle, check=False)
    with open(victim) as f:
        assert f.read() == "untouched\n", "the runtime wrote time offsets into a host file"
    assert result.returncode == 0, result.stderr
    pid = runtime.state(result.cid)["pid"]
    with open(f"/proc/{pid}/timens_offsets") as f:
        offsets = {line.split()[0]: line.split()[1:] for line in f}
    assert offsets["monotonic"][0] == "86400", offsets
    runtime.delete(result.cid, "--force")


def test_sysctl_not_redirected_by_a_fake_proc(runtime, bundle, scratch):
    """CVE-2025-52881 for linux.sysctl.  Defence: sysctl.apply writes through a procfs
    handle of the runtime's, before any container mount exists; the fake /proc tree's
    sys/net/ipv4/ip_forward symlink to a host file is never followed."""
    victim = _fake_proc(bundle, scratch, "oom_score_adj")
    bundle.linux["sysctl"] = {"net.ipv4.ip_forward": "1"}
    result = runtime.create(bundle, check=False)
    if result.returncode != 0 and "not supported" in result.stderr:
        pytest.skip("linux.sysctl is not supported by this build")
    with open(victim) as f:
        assert f.read() == "untouched\n", "the runtime wrote a sysctl into a host file"
    assert result.returncode == 0, result.stderr
    pid = runtime.state(result.cid)["pid"]
    # the container's network namespace got the value (/proc/sys/net shows the reader's)
    if shutil.which("nsenter"):
        out = subprocess.run(["nsenter", "-t", str(pid), "-n", "cat",
                              "/proc/sys/net/ipv4/ip_forward"], capture_output=True,
                             text=True, timeout=lib.TIMEOUT, check=True).stdout
        assert out.strip() == "1", out
    runtime.delete(result.cid, "--force")
