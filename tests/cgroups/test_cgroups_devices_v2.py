"""Device rules on cgroup v2 (an eBPF program), checked by the real kernel on this host.

The hybrid layout's /sys/fs/cgroup/unified is a real cgroup2 hierarchy: a program
attached to a cgroup there governs the processes in that cgroup, whatever v1 says. Each
test makes its own child cgroup, puts a forked child of its own in it, and sees which
device opens the kernel allows; the cgroup is removed at teardown.
"""

import errno
import os
import uuid

import pytest

from ociruntime.config import DeviceRule
from ociruntime.libcontainer.cgroups import devices_bpf

UNIFIED = "/sys/fs/cgroup/unified"


def _rule(allow, kind=None, major=None, minor=None, access=None):
    return DeviceRule(allow=allow, type=kind, major=major, minor=minor, access=access)


@pytest.fixture
def v2_cgroup():
    if not os.path.exists(os.path.join(UNIFIED, "cgroup.procs")):
        pytest.skip("no cgroup2 hierarchy at /sys/fs/cgroup/unified")
    path = os.path.join(UNIFIED, f"pyrunc-test-bpf-{uuid.uuid4().hex[:12]}")
    os.mkdir(path)
    yield path
    os.rmdir(path)


def _opens_in(cgroup, paths):
    """Fork a child into cgroup; return {path: errno or 0} for opening each read-write."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))
            codes = []
            for path in paths:
                try:
                    os.close(os.open(path, os.O_RDWR))
                    codes.append(0)
                except OSError as e:
                    codes.append(e.errno)
            os.write(w, ",".join(map(str, codes)).encode())
        finally:
            os._exit(0)
    os.close(w)
    data = os.read(r, 4096).decode()
    os.close(r)
    os.waitpid(pid, 0)
    return dict(zip(paths, (int(x) for x in data.split(",")), strict=True))


def test_default_deny_with_allowed_devices(v2_cgroup):
    rules = [_rule(False, "a"), _rule(True, "c", 1, 3, "rwm")]
    devices_bpf.attach(v2_cgroup, rules)
    seen = _opens_in(v2_cgroup, ["/dev/null", "/dev/zero"])
    assert seen == {"/dev/null": 0, "/dev/zero": errno.EPERM}


def test_the_last_matching_rule_wins_and_access_is_checked(v2_cgroup):
    rules = [_rule(True, "a"),                        # everything ...
             _rule(False, "c", 1, None, "w"),         # ... but no writes to major 1 ...
             _rule(True, "c", 1, 3, "rw")]            # ... except /dev/null again
    devices_bpf.attach(v2_cgroup, rules)
    seen = _opens_in(v2_cgroup, ["/dev/null", "/dev/zero", "/dev/tty"])
    assert seen["/dev/null"] == 0
    assert seen["/dev/zero"] == errno.EPERM   # c 1:5, opened for writing
    assert seen["/dev/tty"] != errno.EPERM    # c 5:0 (ENXIO without a terminal is fine)


def test_runc_defaults_follow_the_config_rules(v2_cgroup):
    devices_bpf.attach(v2_cgroup, [_rule(False, "a")] + devices_bpf.default_rules())
    seen = _opens_in(v2_cgroup, ["/dev/null", "/dev/zero", "/dev/urandom", "/dev/kvm"])
    assert seen["/dev/null"] == seen["/dev/zero"] == seen["/dev/urandom"] == 0
    if os.path.exists("/dev/kvm"):
        assert seen["/dev/kvm"] == errno.EPERM


def test_a_type_the_program_cannot_express_is_a_clear_error():
    from ociruntime.errors import PyruncError

    with pytest.raises(PyruncError, match="type 'u'"):
        devices_bpf.program([_rule(True, "u", 1, 1, "r")])


def test_attaching_again_replaces_the_previous_program(v2_cgroup):
    devices_bpf.attach(v2_cgroup, [_rule(False, "a"), _rule(True, "c", 1, 3, "rwm")])
    first = devices_bpf.attached(v2_cgroup)
    assert len(first) == 1
    assert _opens_in(v2_cgroup, ["/dev/zero"]) == {"/dev/zero": errno.EPERM}
    devices_bpf.attach(v2_cgroup, [_rule(False, "a"), _rule(True, "c", 1, None, "rw")])
    second = devices_bpf.attached(v2_cgroup)
    assert len(second) == 1 and second != first  # replaced, not added
    assert _opens_in(v2_cgroup, ["/dev/null", "/dev/zero"]) == {"/dev/null": 0,
                                                                "/dev/zero": 0}


# rules -> what the kernel lets an O_RDWR open of /dev/null (c 1:3) and /dev/zero (c 1:5) do
TABLE = [
    ([], {"/dev/null": errno.EPERM, "/dev/zero": errno.EPERM}),                  # default deny
    ([_rule(True, "a")], {"/dev/null": 0, "/dev/zero": 0}),
    ([_rule(True, "c", None, None, "rw")], {"/dev/null": 0, "/dev/zero": 0}),   # wildcards
    ([_rule(True, "b", None, None, "rwm")], {"/dev/null": errno.EPERM,
                                             "/dev/zero": errno.EPERM}),         # type b only
    ([_rule(True, "c", 1, 3, "r")], {"/dev/null": errno.EPERM,                   # r < rw asked
                                     "/dev/zero": errno.EPERM}),
    ([_rule(True, "c", 1, 3, "m")], {"/dev/null": errno.EPERM, "/dev/zero": errno.EPERM}),
    ([_rule(True, "c", 1, None, "rw"), _rule(False, "c", None, 5, "r")],          # last wins
     {"/dev/null": 0, "/dev/zero": errno.EPERM}),
    ([_rule(False, "c", None, 5, "r"), _rule(True, "c", 1, None, "rw")],
     {"/dev/null": 0, "/dev/zero": 0}),
    ([_rule(True, "a"), _rule(False, "a")], {"/dev/null": errno.EPERM,
                                             "/dev/zero": errno.EPERM}),
]


@pytest.mark.parametrize(("rules", "expected"), TABLE)
def test_rule_semantics_through_the_kernel(v2_cgroup, rules, expected):
    devices_bpf.attach(v2_cgroup, rules)
    assert _opens_in(v2_cgroup, list(expected)) == expected


def test_a_program_pyrunc_did_not_attach_is_left_alone(v2_cgroup, monkeypatch):
    with monkeypatch.context() as m:  # a real program under another name: someone else's
        m.setattr(devices_bpf, "PROG_NAME", b"someone_else")
        devices_bpf.attach(v2_cgroup, [_rule(True, "a"), _rule(False, "c", 1, 5, "rwm")])
    foreign = devices_bpf.attached(v2_cgroup)
    devices_bpf.attach(v2_cgroup, [_rule(True, "a")])
    devices_bpf.attach(v2_cgroup, [_rule(True, "a")])
    now = devices_bpf.attached(v2_cgroup)
    assert len(now) == 2 and foreign[0] in now  # the other one kept, ours replaced
    # both apply: the other program still denies /dev/zero
    assert _opens_in(v2_cgroup, ["/dev/null", "/dev/zero"]) == {"/dev/null": 0,
                                                                "/dev/zero": errno.EPERM}


def test_a_kernel_refusal_says_what_was_refused(tmp_path):
    from ociruntime.errors import PyruncError

    with pytest.raises(PyruncError, match=r"attaching the device program to .*: "):
        devices_bpf.attach(str(tmp_path), [_rule(True, "a")])  # not a cgroup
