"""delete's unmounting of what a container without a mount namespace of its own mounted
under its rootfs, when the container swaps a directory on the way for a symlink to a host
path between delete's read of mountinfo and the umount (rootfs.detach_mount is that step).

Run in a private mount namespace (unshare -m) so that nothing can reach the host's."""

import os
import subprocess
import sys

from pyrunc_testlib import TIMEOUT

SWAP = r'''
import os, subprocess, sys
from ociruntime.libcontainer import rootfs, syscalls as sc
base, by_path = sys.argv[1], sys.argv[2] == "by-path"
def mount_tmpfs(at):
    os.makedirs(at)
    subprocess.run(["mount", "-t", "tmpfs", "t", at], check=True)
def ids(path):
    return [mnt_id for mnt_id, _ in rootfs.mounts_under(path)]
mount_tmpfs(f"{base}/rootfs/a/m")  # the container's
[(mnt_id, point)] = rootfs.mounts_under(f"{base}/rootfs")
mount_tmpfs(f"{base}/host/m")  # the host's, out of the container's reach
host_ids = ids(f"{base}/host")
# the container swaps a directory on the way for a symlink to the host's path
os.rename(f"{base}/rootfs/a", f"{base}/rootfs/b")
os.symlink(f"{base}/host", f"{base}/rootfs/a")
if by_path:  # what delete did: umount the path mountinfo showed
    sc.umount2(point, sc.MNT_DETACH)
else:
    print("detached", rootfs.detach_mount(mnt_id, point))
print("host", ids(f"{base}/host") == host_ids)
print("left", rootfs.detach_mounts_under(f"{base}/rootfs"), ids(f"{base}/rootfs"))
'''


def swap(scratch, how):
    base = os.path.join(scratch.path, how)
    os.makedirs(base)
    result = subprocess.run(
        ["unshare", "-m", "--propagation", "private", sys.executable, "-c", SWAP, base, how],
        capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_a_mount_whose_path_was_swapped_is_not_reached_through_the_path(scratch):
    # the container's mount is not where mountinfo said: refused, the host's stays; the
    # next read of mountinfo finds it where it went, and it goes
    assert swap(scratch, "by-fd") == ["detached False", "host True", "left [] []"]


def test_the_swap_does_reach_the_host_through_the_path(scratch):
    # the scenario holds: unmounting the path mountinfo showed detaches the host's mount
    assert swap(scratch, "by-path")[0] == "host False"
