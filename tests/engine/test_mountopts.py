"""Parsing of the mount options this engine work added (no container needed)."""

import pytest

from ociruntime.libcontainer import syscalls as sc
from ociruntime.libcontainer.mountopts import MountOptions


@pytest.mark.parametrize("options, attr_set, attr_clr", [
    (["rro"], sc.MOUNT_ATTR_RDONLY, 0),
    (["rro", "rrw"], 0, sc.MOUNT_ATTR_RDONLY),
    (["rrw", "rro"], sc.MOUNT_ATTR_RDONLY, 0),
    (["rnosuid", "rnodev", "rnoexec"],
     sc.MOUNT_ATTR_NOSUID | sc.MOUNT_ATTR_NODEV | sc.MOUNT_ATTR_NOEXEC, 0),
    (["rsuid", "rdev", "rexec", "rsymfollow"],
     0, sc.MOUNT_ATTR_NOSUID | sc.MOUNT_ATTR_NODEV | sc.MOUNT_ATTR_NOEXEC
     | sc.MOUNT_ATTR_NOSYMFOLLOW),
    (["rnosymfollow", "rnodiratime"], sc.MOUNT_ATTR_NOSYMFOLLOW | sc.MOUNT_ATTR_NODIRATIME, 0),
    # the access time is one setting: the last one wins, and the old one is cleared
    (["rnoatime"], sc.MOUNT_ATTR_NOATIME, sc.MOUNT_ATTR__ATIME),
    (["rnoatime", "rstrictatime"], sc.MOUNT_ATTR_STRICTATIME, sc.MOUNT_ATTR__ATIME),
    (["rstrictatime", "rrelatime"], sc.MOUNT_ATTR_RELATIME, sc.MOUNT_ATTR__ATIME),
    (["rnorelatime"], sc.MOUNT_ATTR_STRICTATIME, sc.MOUNT_ATTR__ATIME),
    (["ratime"], sc.MOUNT_ATTR_RELATIME, sc.MOUNT_ATTR__ATIME),
])
def test_recursive_attributes(options, attr_set, attr_clr):
    opts = MountOptions(["rbind", *options])
    assert (opts.attr_set, opts.attr_clr) == (attr_set, attr_clr)
    assert opts.flags == sc.MS_BIND | sc.MS_REC and opts.data == ""


def test_extensions_are_not_filesystem_data():
    opts = MountOptions(["bind", "ridmap", "tmpcopyup", "size=64k", "nosymfollow"])
    assert opts.idmap == "ridmap" and opts.tmpcopyup
    assert opts.data == "size=64k"
    assert opts.flags & sc.MS_NOSYMFOLLOW
    plain = MountOptions(["bind", "ro"])
    assert plain.idmap is None and not plain.tmpcopyup and plain.attr_set == plain.attr_clr == 0
