"""Containers whose cgroupsPath share a parent that one of them made (/ns/a, /ns/b: what
containerd's shim asks for, /<namespace>/<id>), created and deleted at once on the real
cgroupfs: the last one out removes the parent, and none of them fails because another
removed it under its mkdir or filled it under its rmdir."""

import os
import uuid

import pytest

from ociruntime.libcontainer.cgroups import make_dirs, remove_dirs
from pyrunc_testlib import CGROUP_ROOT, ID_PREFIX

# a v1 hierarchy of this host, and cgroup2 (hybrid: the unified mount; pure v2: the root)
HIERARCHIES = [d for d in (f"{CGROUP_ROOT}/pids", f"{CGROUP_ROOT}/unified", CGROUP_ROOT)
               if os.path.isfile(f"{d}/cgroup.procs")]


@pytest.fixture(params=HIERARCHIES[:2])
def shared_parent(request):
    parent = f"{request.param}/{ID_PREFIX}shared-{uuid.uuid4().hex[:8]}"
    yield parent
    if os.path.isdir(parent):
        for entry in os.scandir(parent):
            if entry.is_dir():
                os.rmdir(entry.path)
        os.rmdir(parent)


def in_processes(target, n):
    """target(0..n-1), each in a forked process of its own (threads would take turns on
    the GIL between the syscalls, where the races are): the errors they reported."""
    children = []
    for k in range(n):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            code = 0
            try:
                target(k)
            except BaseException as e:  # noqa: BLE001 - the parent reports it
                os.write(w, f"process {k}: {type(e).__name__}: {e}".encode())
                code = 1
            os._exit(code)
        os.close(w)
        children.append((pid, r))
    errors = []
    for pid, r in children:
        with os.fdopen(r, "rb") as f:
            said = f.read().decode()
        _, status = os.waitpid(pid, 0)
        if status or said:
            errors.append(said or f"exit status {status}")
    return errors


def test_containers_under_one_parent_made_and_removed_at_once(shared_parent):
    """Four "containers" at a time (processes), each making its cgroup below the shared
    parent (and the parent when missing) and removing what it made, 300 times over: each removes its
    own cgroup and leaves the parent while another's is in it (whoever made it last
    removes it if it is empty then; one made by another may stay, as runc leaves them all).
    Before: a parent removed between a walk and its mkdir failed a create (ENOENT),
    and one filled between the check and the rmdir failed a delete (EBUSY, after half a
    second of retries)."""
    def container(n):
        for i in range(300):
            own = f"{shared_parent}/c{n}-{i}"
            created = []
            make_dirs(own, created)
            assert os.path.isdir(own)
            remove_dirs(created, own={own})
            assert not os.path.exists(own)

    errors = in_processes(container, 4)
    assert errors == []


def test_a_parent_another_container_lives_in_stays(shared_parent):
    """The parent this container made holds another's cgroup now: its delete removes its
    own cgroup and leaves the parent, at once and without an error."""
    mine, theirs = f"{shared_parent}/mine", f"{shared_parent}/theirs"
    created = []
    make_dirs(mine, created)
    assert created == [shared_parent, mine]
    os.mkdir(theirs)
    remove_dirs(created, own={mine})
    assert not os.path.exists(mine)
    assert os.path.isdir(theirs)
    os.rmdir(theirs)
    remove_dirs([shared_parent, mine])
    assert not os.path.exists(shared_parent)


def test_make_dirs_makes_every_missing_level_outermost_first(shared_parent):
    """The walk is mkdir itself (up until a directory is there, then down): two missing
    levels are made and recorded outermost first; what is there already is neither made
    nor recorded; a file in the way is an error, not a directory made elsewhere."""
    deep = f"{shared_parent}/a/b"
    created = []
    make_dirs(deep, created)
    assert created == [shared_parent, f"{shared_parent}/a", deep]
    again = []
    make_dirs(deep, again)
    make_dirs(f"{shared_parent}/a/c", again)
    assert again == [f"{shared_parent}/a/c"]
    remove_dirs(created + again, own={deep, f"{shared_parent}/a/c"})
    assert not os.path.exists(shared_parent)
    blocked = []
    with pytest.raises(OSError):
        make_dirs("/proc/self/status/x/y", blocked)
    assert blocked == []
