"""CVE-2021-30465: a mount destination swapped for a symlink while the runtime mounts onto it.

runc checked a destination inside the rootfs, then passed its path to mount(2), which
walked it again: a container sharing the volume swapped a directory for a symlink to / in
between, and runc mounted onto the host.  pyrunc's defence (rootfs.py): every destination
is opened with openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS), and the mount goes onto
that fd through /proc/self/fd/N, so the kernel never walks the path again; a symlink met
during the walk resolves inside the rootfs, whatever it says.

Here a host process swaps directories of a bind-mounted volume for symlinks (to /, to a
host marker directory, and to ../../.. climbing out) with renameat2(RENAME_EXCHANGE) in a
tight loop, while containers are created that mount a tmpfs and a bind onto those
directories.  A createContainer hook records every mount of the container's namespace
before pivot_root, with host paths: the racing mounts must all be inside the rootfs.
(On the development VM about a third of the attempts fail cleanly and the others put the
mounts on the rootfs itself, on the swapped directories or on their renamed copies: all
inside the rootfs.)
"""

import os
import subprocess
import sys
import time
import uuid

from secutil import add_mountinfo_hook

import pyrunc_testlib as lib

ATTEMPTS = 100
TIME_BUDGET = 25.0

RACER = r"""
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
vol, seconds = sys.argv[1], float(sys.argv[2])
names = sys.argv[3:]
RENAME_EXCHANGE = 2
end = time.monotonic() + seconds
swaps = 0
while time.monotonic() < end:
    for name in names:
        for link in (name + ".l0", name + ".l1", name + ".l2"):
            a = os.path.join(vol, name).encode()
            b = os.path.join(vol, link).encode()
            libc.renameat2(-100, a, -100, b, RENAME_EXCHANGE)
            libc.renameat2(-100, a, -100, b, RENAME_EXCHANGE)
            swaps += 2
print(swaps)
"""


def test_symlink_swapped_under_mount_destinations(runtime, make_bundle, scratch):
    """Defence: Rootfs.make/open (openat2 RESOLVE_IN_ROOT) + mount onto /proc/self/fd/N:
    no mount ever lands outside the rootfs, whatever the racer swaps in."""
    vol = os.path.join(scratch.path, "volume")
    marker = os.path.join(scratch.path, "host-marker-dir")
    bind_src = os.path.join(scratch.path, f"bindsrc-{uuid.uuid4().hex[:8]}")
    for path in (vol, marker, bind_src):
        os.mkdir(path, 0o755)
    with open(os.path.join(bind_src, "from-bind-source"), "w") as f:
        f.write("x\n")
    targets = ("/", marker, "../../../../../../../../../.." + marker)
    for name in ("d", "e"):
        os.mkdir(os.path.join(vol, name))
        for i, target in enumerate(targets):
            os.symlink(target, os.path.join(vol, f"{name}.l{i}"))
    host_mounts_before = {m["mountpoint"] for m in lib.read_mountinfo()}
    tmpfs_source = f"race-{uuid.uuid4().hex[:8]}"

    racer = subprocess.Popen([sys.executable, "-c", RACER, vol, str(TIME_BUDGET + 30), "d",
                              "e"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    scratch.add_finalizer(lambda: (racer.kill(), racer.wait()))
    outcomes = {"created": 0, "failed": 0}
    landed = []
    deadline = time.monotonic() + TIME_BUDGET
    bundle = make_bundle()
    rootfs = os.path.realpath(bundle.rootfs)
    bundle.mount("/vol", None, vol, ["rbind", "rw"])
    bundle.mount("/vol/d", "tmpfs", tmpfs_source, ["size=64k"])
    bundle.mount("/vol/e", None, bind_src, ["bind", "ro"])
    attempt = 0
    try:
        while attempt < ATTEMPTS and time.monotonic() < deadline:
            out = os.path.join(scratch.out, f"mountinfo-{attempt}")
            bundle.config.pop("hooks", None)
            add_mountinfo_hook(bundle, out)
            result = runtime.create(bundle, check=False)
            attempt += 1
            if result.returncode != 0:
                outcomes["failed"] += 1
                assert "Traceback" not in result.stderr, result.stderr
                assert len(result.stderr.splitlines()) == 1, result.stderr
            else:
                outcomes["created"] += 1
                runtime.delete(result.cid, "--force")
            if not os.path.exists(out):
                continue
            with open(out) as f:
                entries = lib.parse_mountinfo(f.read())
            for m in entries:
                racing = m["source"] == tmpfs_source or (
                    m["root"].endswith(os.path.basename(bind_src)))
                if racing:
                    landed.append(m["mountpoint"])
                    assert m["mountpoint"] == rootfs or m["mountpoint"].startswith(
                        rootfs + "/"), f"attempt {attempt}: a mount landed outside the " \
                                       f"rootfs: {m['line']}"
            assert os.listdir(marker) == [], f"attempt {attempt}: the marker dir changed"
    finally:
        racer.kill()
        racer.wait()
    assert attempt >= 10, f"only {attempt} attempts in {TIME_BUDGET}s"
    assert landed, f"no attempt got as far as the racing mounts: {outcomes}"
    assert os.listdir(marker) == []
    host_mounts_after = {m["mountpoint"] for m in lib.read_mountinfo()}
    new = {p for p in host_mounts_after - host_mounts_before
           if p.startswith(scratch.path) or p == "/" or p.startswith(marker)}
    assert not new, f"mounts appeared on the host: {new}"
    assert sorted(os.listdir(vol)) == sorted(
        ["d", "e"] + [f"{n}.l{i}" for n in "de" for i in range(3)])
