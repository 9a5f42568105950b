"""The cgroup path resolver and the managers' guard: no config or state record can make
pyrunc touch a hierarchy's root cgroup or anything above or beside the hierarchy.

Pure functions and constructors only (nothing is created or written), so these run first
and a wrong resolver is caught before any test hands such a path to a real container."""

import pytest

from ociruntime.errors import PyruncError
from ociruntime.libcontainer.cgroups import (
    below_root,
    check_below,
    destroy_recorded,
    resolve_path,
)
from ociruntime.libcontainer.cgroups.v1 import V1Manager
from ociruntime.libcontainer.cgroups.v2 import V2Manager

ESCAPES = ["/", "//", "///", "/.", "/./", "/..", "/../", "//..", "..", "../../..", "a/../..",
           "///x/..", "/x/../..", "/a/b/../../..", ".", "./", "a/..", "/\0", "/a\0b", "a\0",
           "/x/\0/..", "/a/./../.."]


@pytest.mark.parametrize("path", ESCAPES)
@pytest.mark.parametrize("own", ["/", "/user.slice/session-1.scope"])
def test_paths_at_or_above_the_root_are_refused(path, own):
    base = "/" if path.startswith("/") else own
    resolved = below_root(base, path)
    if resolved is not None:  # a relative path may stay below a deep own cgroup
        assert base != "/" and "\0" not in path
        assert resolved in ("/user.slice", "/user.slice/session-1.scope")
        assert resolve_path(path, "c1", own) == resolved
        return
    with pytest.raises(PyruncError, match="cgroupsPath"):
        resolve_path(path, "c1", own)


@pytest.mark.parametrize("path, own, expected", [
    ("/pyrunc/box", "/", "/pyrunc/box"),
    ("//pyrunc//box/", "/", "/pyrunc/box"),
    ("/a/./b/../c", "/", "/a/c"),
    ("box", "/user.slice", "/user.slice/box"),
    ("../box", "/user.slice/s.scope", "/user.slice/box"),
    (None, "/", "/c1"),  # unset: the id under the runtime's own cgroup, as runc names it
    ("", "/x", "/x/c1"),
])
def test_paths_below_the_root_resolve(path, own, expected):
    assert resolve_path(path, "c1", own) == expected


@pytest.mark.parametrize("directory", [
    "/sys/fs/cgroup", "/sys/fs/cgroup/", "/sys/fs/cgroup//", "/sys/fs/cgroup/.",
    "/sys/fs/cgroup/x/..", "/sys/fs/cgroup/../cgroup/x", "/sys/fs/cgroupx/y", "/tmp/x",
    "sys/fs/cgroup/x", "/sys/fs/cgroup/x\0", "/sys/fs/cgroup/x/", None,
])
def test_v2_manager_refuses_directories_not_below_the_root(directory):
    with pytest.raises(PyruncError, match="refusing cgroup directory"):
        V2Manager({"unified": directory}, [])
    with pytest.raises(PyruncError, match="refusing cgroup directory"):
        V2Manager({"unified": "/sys/fs/cgroup/ok"}, [directory])
    # delete's way without the Manager checks the same, before it removes anything
    with pytest.raises(PyruncError, match="refusing cgroup directory"):
        destroy_recorded({"version": 2, "dirs": {"unified": "/sys/fs/cgroup/ok"},
                          "created": [directory]})


@pytest.mark.parametrize("directory", [
    "/sys/fs/cgroup/devices", "/sys/fs/cgroup/devices/", "/sys/fs/cgroup//devices",
    "/sys/fs/cgroup/devices/x/..", "/sys/fs/cgroup/devices/../memory", "/sys/fs/cgroup",
    "/sys/fs/cgroup/devices/./x", "/sys/fs/cgroup/..", "/sys/fs/devices/x",
])
def test_v1_manager_refuses_hierarchy_roots(directory):
    with pytest.raises(PyruncError, match="refusing cgroup directory"):
        V1Manager({"devices": directory}, [])
    with pytest.raises(PyruncError, match="refusing cgroup directory"):
        V1Manager({"devices": "/sys/fs/cgroup/devices/ok"}, [directory])
    for version in (1, None):  # a record without a version is v1's, as from_record reads it
        with pytest.raises(PyruncError, match="refusing cgroup directory"):
            destroy_recorded({"version": version, "dirs": {"devices": directory},
                              "created": [directory]})


def test_managers_take_directories_below_the_root():
    assert check_below("/sys/fs/cgroup/x", "/sys/fs/cgroup") == "/sys/fs/cgroup/x"
    V1Manager({"devices": "/sys/fs/cgroup/devices/a/b", "memory": "/sys/fs/cgroup/memory/a"},
              ["/sys/fs/cgroup/devices/a", "/sys/fs/cgroup/devices/a/b"])
    V2Manager({"unified": "/sys/fs/cgroup/a/b"}, ["/sys/fs/cgroup/a"])


@pytest.mark.parametrize("dirs, created", [(["/sys/fs/cgroup/x"], []), ({}, None),
                                           ("/sys/fs/cgroup/x", [])])
def test_a_damaged_record_is_one_error(dirs, created):
    for manager in (V1Manager, V2Manager):
        with pytest.raises(PyruncError, match="damaged cgroup record"):
            manager(dirs, created)
    for version in (1, 2):
        with pytest.raises(PyruncError, match="damaged cgroup record"):
            destroy_recorded({"version": version, "dirs": dirs, "created": created})
