"""Hostile config.json inputs (issue 12): `pyrunc spec`'s config with one field mutated.

Every input runs through create, start, exec, update, state and delete --force on a real
busybox bundle (campaign.run_config) and must end in a working container or one clean
refusal, leaving nothing behind and the host unchanged.

Two parts:
- a hand-written list, for every field of specs/config-schema.json: a value of the wrong
  type, NUL; every path field with "..", "//" and the rootfs' symlinks that point out;
  every id field with -1 and 2**32-1; every cgroupsPath trick; and, on a set of fields,
  unicode, lone surrogates, long strings, deep nesting, huge numbers and broken JSON text.
  The long run (PYRUNC_FUZZ_EXAMPLES above 80) adds every number field's range edges
  (max+1, min-1, a float) and the general values on more fields;
- hypothesis: random fields with random hostile values, PYRUNC_FUZZ_EXAMPLES of them (80
  by default, the CI batch; PYRUNC_FUZZ_EXAMPLES=5000 for a long run, PYRUNC_FUZZ_SEED to
  replay one).

Inputs in the scope of a fix another branch is making are strict xfails (KNOWN): once
fixed they fail as XPASS and the mark goes.
"""

import os

import campaign
import pytest
from campaign import Raw
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

EXAMPLES = int(os.environ.get("PYRUNC_FUZZ_EXAMPLES", "80"))
SEED = os.environ.get("PYRUNC_FUZZ_SEED")
LONG = EXAMPLES > 80
FIELDS = campaign.schema_fields()
FIELD_KINDS = dict(FIELDS)
INT_KINDS = {"int32": (-2**31, 2**31 - 1), "int64": (-2**63, 2**63 - 1),
             "uint16": (0, 2**16 - 1), "uint32": (0, 2**32 - 1), "uint64": (0, 2**64 - 1),
             "integer": (-2**63, 2**64 - 1)}
ID_NAMES = {"uid", "gid", "additionalGids", "containerID", "hostID", "size"}
# path fields resolved in the container's rootfs, and host paths (bundle-relative)
ROOTFS_PATHS = {("mounts", 0, "destination"), ("process", "cwd"),
                ("linux", "devices", 0, "path"), ("linux", "maskedPaths"),
                ("linux", "readonlyPaths")}
HOST_PATHS = {("mounts", 0, "source"), ("linux", "namespaces", 0, "path"),
              ("linux", "seccomp", "listenerPath")} | {
    ("hooks", h, 0, "path") for h in ("prestart", "createRuntime", "createContainer",
                                      "startContainer", "poststart", "poststop")}
# in the rootfs: up and out, "//", and the symlinks campaign.Env plants (fz-out: absolute
# path of the decoy, fz-rel: ../decoy, fz-loop: itself); an escape shows in the decoy
ROOTFS_TRICKS = ["..", "//", "/..", "/../decoy/fzesc", "/../../../../../../fzesc-root",
                 "/fz-out/fzesc", "/fz-rel/fzesc", "//fz-rel//fzesc", "/./fz-out/./fzesc",
                 "/fz-out", "/fz-rel", "/fz-loop/fzesc", "fz-rel/fzesc"]
HOST_TRICKS = ["..", "//", "/..", "../../../..", "rootfs/fz-out", "rootfs/fz-rel/fzesc",
               "rootfs/fz-loop", "", "/dev/null"]
# root.path is the bundle author's: it may be any directory (not "/", which the guard
# refuses to run), so these are the broken ones
ROOT_TRICKS = ["rootfs/fz-loop", "rootfs//", "rootfs/../rootfs/", "missing", "/dev/null",
               "rootfs/bin/busybox", "rootfs/fz-loop/x"]
# cgroupsPath values that could land outside a cgroup of the container's own: the guard
# runs them with a tmpfs over /sys/fs/cgroup and they must be refused, naming cgroupsPath
CGROUP_TRICKS = ["//", "/", "/..", "..", "/../..", "a/../..", "./..", "//..//..", "/./",
                 "a/../../b", "//{id}/../..", "{id}/../../.."]
# and odd spellings of a cgroup of its own, which must work
CGROUP_OWN = ["///{id}", "//{id}//sub//", "{id}", "/{id}/./x", "{id}/"]


def _id_field(path):
    return path[-1] in ID_NAMES or (len(path) > 1 and path[-2] in ID_NAMES)


def _wrong_type(kind):
    if kind in INT_KINDS or kind in ("number", "boolean"):
        return "7"
    if kind in ("ArrayOfStrings", "ArrayOfAbsolutePaths", "array"):
        return "x"
    if kind in ("MapStringString", "object"):
        return ["x"]
    return 7  # strings, paths, enums


def _listify(kind, value):
    return [value] if kind in ("ArrayOfStrings", "ArrayOfAbsolutePaths") else value


def _name(path):
    return ".".join(map(str, path))


# the fields that get the general hostile values (one of each kind of field; the CI batch
# takes the first three)
SAMPLES = [("process", "args"), ("process", "env"), ("hostname",), ("annotations",),
           ("process", "user", "uid"), ("linux", "resources", "memory", "limit"),
           ("mounts", 0, "options"), ("linux", "sysctl"), ("process", "cwd")]


def hand_cases():
    """(test id, field path, value, words a refusal must name one of, or None) for the hand-written
    list; the values of a field's range edges are in the long run only."""
    cases = [case + (None,) for case in _hand_cases()]
    for path, _kind in FIELDS:
        if _id_field(path):
            words = [p for p in path if isinstance(p, str) and p not in ("linux", "process")]
            # -1 is no uid_t, and (uid_t)-1 means "leave unchanged" to set*id(2): both must
            # be refused, not run as root
            cases.append((f"{_name(path)}--1", path, -1, words))
            cases.append((f"{_name(path)}-u32max", path, 2**32 - 1, words))
    return cases


def _hand_cases():
    cases = []
    for path, kind in FIELDS:
        name = _name(path)
        cases.append((f"{name}-wrongtype", path, _wrong_type(kind)))
        if kind in INT_KINDS and LONG:
            lo, hi = INT_KINDS[kind]
            cases.append((f"{name}-max+1", path, hi + 1))
            cases.append((f"{name}-min-1", path, lo - 1))
            cases.append((f"{name}-float", path, 1.5))
        if kind in ("string", "AbsolutePath", "ArrayOfStrings", "ArrayOfAbsolutePaths"):
            cases.append((f"{name}-nul", path, _listify(kind, "/a\0b")))
        if path in ROOTFS_PATHS:
            for i, trick in enumerate(ROOTFS_TRICKS):
                cases.append((f"{name}-trick{i}", path, _listify(kind, trick)))
        if path in HOST_PATHS:
            for i, trick in enumerate(HOST_TRICKS):
                cases.append((f"{name}-host{i}", path, _listify(kind, trick)))
    # a hook timeout past poll(2)'s int of milliseconds (regression: OverflowError)
    for h in ("prestart", "createRuntime", "poststop"):
        for label, value in (("poll-max", 2147484), ("int64-max", 2**63 - 1)):
            cases.append((f"hooks.{h}.0.timeout-{label}", ("hooks", h, 0, "timeout"), value))
    # a hook whose args[0] is "" (regression: posix_spawn's ValueError was a traceback)
    for h in ("prestart", "poststart", "poststop"):
        cases.append((f"hooks.{h}.0.args-empty-argv0", ("hooks", h, 0, "args"), [""]))
    for i, trick in enumerate(ROOT_TRICKS):
        cases.append((f"root.path-host{i}", ("root", "path"), trick))
    for i, trick in enumerate(CGROUP_TRICKS):
        cases.append((f"linux.cgroupsPath-escape{i}", ("linux", "cgroupsPath"), trick))
    for i, own in enumerate(CGROUP_OWN):
        cases.append((f"linux.cgroupsPath-own{i}", ("linux", "cgroupsPath"), own))
    # the general hostile values on fields of every kind
    deep = 100_000
    for path in SAMPLES if LONG else SAMPLES[:3]:
        name = _name(path)
        kind = FIELD_KINDS[path]
        for label, value in (
                ("surrogate", _listify(kind, "\ud800x")),
                ("unicode", _listify(kind, "/é✓\U0001d11e\u202e")),
                ("long", _listify(kind, "/" + "a" * (1 << 20))),
                ("deep", Raw("[" * deep + "]" * deep)),
                ("deepobj", Raw('{"a":' * deep + "1" + "}" * deep)),
                ("hugeint", Raw("1" + "0" * 5000)),
                ("hugefloat", Raw("1e400")),
                ("negzero", Raw("-0")),
                ("badescape", Raw('"\\ud800\\u00"')),
                ("null", None)):
            cases.append((f"{name}-{label}", path, value))
    return cases


def raw_cases():
    """(test id, config text) for inputs that are not a mutation of one field."""
    return [
        ("empty", b""),
        ("not-json", b"{ociVersion: 1}"),
        ("truncated", b'{"ociVersion": "1.0.2", "process": {'),
        ("nul-byte", b'{"ociVersion": "1.0.2"\0}'),
        ("invalid-utf8", b'{"ociVersion": "\xff\xfe"}'),
        ("bom", b'\xef\xbb\xbf{"ociVersion": "1.0.2"}'),
        ("utf16", '{"ociVersion": "1.0.2"}'.encode("utf-16")),
        ("top-array", b"[]"),
        ("top-null", b"null"),
        ("deep-top", b"[" * 200_000 + b"]" * 200_000),
        ("duplicate-keys", b'{"ociVersion": "1.0.2", "ociVersion": 3}'),
        ("nan", b'{"ociVersion": NaN}'),
    ]


# Inputs that fail on main today, in the scope of a branch fixing them now: test id ->
# reason.  Remove an entry when its XPASS shows the fix landed.
KNOWN = {}


def _marks(case_id):
    if case_id in KNOWN:
        return [pytest.mark.xfail(strict=True, reason=KNOWN[case_id])]
    return []


def _check(fuzz_env, text, **kw):
    try:
        problems = campaign.run_config(fuzz_env, text, **kw)
    except campaign.Unsafe as e:
        pytest.fail(f"a hand-written input the guard refuses: {e}")
    assert not problems, campaign.describe(problems)


@pytest.mark.parametrize("path,value,refusal", [
    pytest.param(path, value, refusal, id=case_id, marks=_marks(case_id))
    for case_id, path, value, refusal in hand_cases()])
def test_field(fuzz_env, path, value, refusal):
    _check(fuzz_env, campaign.config_with(fuzz_env, path, value), expect_refusal=refusal)


@pytest.mark.parametrize("text", [
    pytest.param(text, id=case_id, marks=_marks(f"raw-{case_id}"))
    for case_id, text in raw_cases()])
def test_raw_text(fuzz_env, text):
    _check(fuzz_env, text)


def test_base_config_runs(fuzz_env):
    """The unmutated base config is a working container (else every mutation would only
    test the refusal of something broken)."""
    config = fuzz_env.base_config()
    _check(fuzz_env, campaign.json.dumps(config))


# --------------------------------------------------------------------------------------------
# hypothesis: random fields, random hostile values

hostile_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(ROOTFS_TRICKS + HOST_TRICKS + ["\0", "\ud800", "\udfff", "\U0010ffff",
                                                   "%s%n", "a\nb", " ", "-1", "0x10"]),
    st.text(alphabet=st.characters(codec=None), min_size=1, max_size=8).map(lambda s: s * 500),
)
hostile_int = st.one_of(
    st.integers(min_value=-2**65, max_value=2**65),
    st.sampled_from([-1, 0, 1, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**63 - 1, 2**63,
                     2**64 - 1, 2**64, -2**63, -2**63 - 1]),
)
hostile_scalar = st.one_of(hostile_int, hostile_text, st.booleans(), st.none(),
                           st.floats(allow_nan=False, allow_infinity=False))
hostile_value = st.recursive(
    hostile_scalar,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(hostile_text, inner, max_size=4)),
    max_leaves=12)
hostile_raw = st.one_of(
    st.integers(min_value=10, max_value=100_000).map(lambda n: Raw("[" * n + "]" * n)),
    st.integers(min_value=400, max_value=20_000).map(lambda n: Raw("9" * n)),
    st.sampled_from([Raw("1e999"), Raw("-1e999"), Raw("1E-400"), Raw('"\\ud800"'),
                     Raw('"\\u0000"'), Raw("-0.0"), Raw("[1,]"), Raw("tru")]),
)


def _typed(kind):
    """Values shaped like the field (so they get past the type check and reach the
    runtime's deeper checks) mixed with anything hostile."""
    if kind in INT_KINDS:
        shaped = hostile_int
    elif kind in ("ArrayOfStrings", "ArrayOfAbsolutePaths"):
        shaped = st.lists(hostile_text, min_size=1, max_size=4)
    elif kind == "MapStringString":
        shaped = st.dictionaries(hostile_text, hostile_text, min_size=1, max_size=3)
    elif kind == "boolean":
        shaped = st.booleans()
    else:
        shaped = hostile_text
    return st.one_of(shaped, shaped, hostile_value, hostile_raw)


field_and_value = st.sampled_from(FIELDS).flatmap(
    lambda field: st.tuples(st.just(field[0]), _typed(field[1])))


def _known_hole(path, value):
    """Whether (path, value) falls in a KNOWN hole that a hand-written strict xfail tracks
    (hypothesis must not fail again on it).  None open now."""
    return False


@settings(max_examples=EXAMPLES, deadline=None, derandomize=SEED is None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large, HealthCheck.filter_too_much],
          database=None)
@given(field_and_value)
def test_random_field(fuzz_env, fv):
    path, value = fv
    if _known_hole(path, value):
        return
    text = campaign.config_with(fuzz_env, path, value)
    try:
        problems = campaign.run_config(fuzz_env, text)
    except campaign.Unsafe:
        return  # the guard would not run it on this host
    assert not problems, f"{_name(path)} = {value!r}:\n  " + campaign.describe(problems)


if SEED is not None:
    test_random_field = seed(int(SEED))(test_random_field)
