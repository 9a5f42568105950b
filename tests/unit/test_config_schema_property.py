"""Property tests: the typed parser (ociruntime.config) and specs/config-schema.json agree.

(a) documents drawn from a strategy of valid configs pass both, and every property lands on
    the model; (b) one mutation of a valid document that breaks a rule of the spec (wrong type,
    value outside an enum or a range, relative path where the spec wants an absolute one, a
    required field missing, ...) fails both; (c) on arbitrary or damaged JSON the parser never
    accepts what the schema rejects, and it rejects what the schema accepts only for the rules
    the schema's $comment lists as the parser's own.
"""

import copy
import errno
import json
import os
import pathlib
import shutil
import string
import subprocess

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ociruntime import config as cfg
from ociruntime.config import ConfigError, parse_config

UNKNOWN_PREFIX = "zz-unknown-"  # unknown properties; conftest's assert_model_matches skips them
DELETE = object()
EXAMPLES = settings(
    max_examples=200, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --------------------------------------------------------------------------------------------
# Valid documents, built from the spec's structure

U16, U32, U64 = (0, 2**16 - 1), (0, 2**32 - 1), (0, 2**64 - 1)
I32, I64 = (-(2**31), 2**31 - 1), (-(2**63), 2**63 - 1)
ID, MAJOR, MINOR = (0, 2**32 - 2), (0, 2**12 - 1), (0, 2**20 - 1)  # uid/gid, device numbers
u16, u32, u64, i32, i64 = (st.integers(*bounds) for bounds in (U16, U32, U64, I32, I64))
ids, majors, minors = (st.integers(*bounds) for bounds in (ID, MAJOR, MINOR))
booleans = st.booleans()
# no NUL and no lone surrogate: parser-only rules (see is_parser_only_rule)
characters = st.characters(exclude_characters="\0", exclude_categories=("Cs",))
text = st.text(characters, max_size=8)
absolute_paths = text.map(lambda tail: "/" + tail)
map_keys = st.text(characters, min_size=1, max_size=8).filter(
    lambda key: not key.startswith(UNKNOWN_PREFIX))
# mount destinations the /proc rule lets through whatever the mount's type
# (a bind or not: "proc", /proc itself, takes only a procfs or a bind of one)
mount_destinations = text.filter(lambda dest: all(
    cfg.proc_mount_problem(dest, None, is_bind) is None for is_bind in (True, False)))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=6,
)
SEMVER_CHARS = string.ascii_letters + string.digits + "-"
semver_numbers = st.integers(0, 10**6).map(str)
prerelease_ids = semver_numbers | st.text(SEMVER_CHARS, min_size=1, max_size=5).filter(
    lambda part: not part.isdigit())
build_ids = st.text(SEMVER_CHARS, min_size=1, max_size=5)
cpu_lists = st.text("0123456789, -", max_size=8)
no_newline = st.text(characters, max_size=8).filter(lambda value: "\n" not in value)
page_sizes = st.builds("{}{}".format, st.integers(1, 10**6), st.sampled_from(["KB", "MB", "GB"]))
HOOK_NAMES = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart",
              "poststop"]
THROTTLE_NAMES = ["throttleReadBpsDevice", "throttleWriteBpsDevice", "throttleReadIOPSDevice",
                  "throttleWriteIOPSDevice"]


def one_of_values(values):
    return st.sampled_from(values)


def merged(*objects):
    return st.tuples(*objects).map(lambda parts: {k: v for part in parts for k, v in part.items()})


def config_documents(complete):
    """Valid config.json documents. With complete=False each object has a random subset of its
    optional properties; with complete=True it has all of them and arrays are never empty, so
    that every rule of the spec has something to act on."""

    def obj(required=None, optional=None):
        """A JSON object with its required properties, (some of) its optional ones, and
        maybe an unknown property (which the spec says must be ignored)."""
        optional = dict(optional or {}, **{UNKNOWN_PREFIX + "x": json_values})
        if complete:
            return st.fixed_dictionaries({**(required or {}), **optional})
        return st.fixed_dictionaries(required or {}, optional=optional)

    # A complete document has one entry in each array and map, which is enough to reach
    # every rule and keeps the checks of all its mutations fast.
    def arrays(items, **kwargs):
        return st.lists(items, min_size=int(complete), max_size=1 if complete else 3, **kwargs)

    def maps(values):
        return st.dictionaries(map_keys, values, min_size=int(complete),
                               max_size=1 if complete else 2)

    def maybe(optional_group):
        """Properties that come together, or not at all."""
        return optional_group if complete else st.just({}) | optional_group

    def at_least_one(required, first, second, value):
        """An object with `first`, `second` or both (weightDevice, rdma entries)."""
        return (obj({**required, first: value}, {second: value})
                | obj({**required, second: value}, {first: value}))

    def with_errno(action_key, errno_key, required, optional):
        """errnoRet-like properties only go with the actions that can return an errno."""
        any_action = {**required, action_key: one_of_values(cfg.SECCOMP_ACTIONS)}
        errno_action = {**required, action_key: one_of_values(cfg.SECCOMP_ERRNO_ACTIONS),
                        errno_key: u32}
        return obj(errno_action, optional) | obj(any_action, optional)

    def device(kind):
        numbers = {"major": majors, "minor": minors}
        required = {"type": st.just(kind), "path": text, **({} if kind == "p" else numbers)}
        optional = {**(numbers if kind == "p" else {}), "fileMode": st.integers(0, 511),
                    "uid": ids, "gid": ids}
        return obj(required, optional)

    versions = st.builds(
        lambda minor, patch, pre, build: f"1.{minor}.{patch}"
        + (f"-{'.'.join(pre)}" if pre else "") + (f"+{'.'.join(build)}" if build else ""),
        semver_numbers, semver_numbers, arrays(prerelease_ids), arrays(build_ids),
    )
    @st.composite
    def id_mappings(draw):
        """Lines the kernel takes: container ranges cut from the id space apart from each
        other, their host ranges the same ones shifted (so also apart), none reaching
        4294967295."""
        count = draw(st.integers(int(complete), 1 if complete else 3))
        cuts = sorted(draw(st.lists(st.integers(0, ID[1] + 1), min_size=2 * count,
                                    max_size=2 * count, unique=True)))
        ranges = [(cuts[2 * i], cuts[2 * i + 1] - cuts[2 * i]) for i in range(count)]
        low = -ranges[0][0] if ranges else 0
        high = ID[1] + 1 - (ranges[-1][0] + ranges[-1][1]) if ranges else 0
        shift = draw(st.integers(low, high))
        return [draw(obj({"containerID": st.just(first), "hostID": st.just(first + shift),
                          "size": st.just(size)})) for first, size in ranges]

    id_mappings = id_mappings()
    string_maps = maps(text)
    mounts = merged(
        obj({"destination": mount_destinations},
            {"source": text, "type": text, "options": arrays(text)}),
        maybe(st.fixed_dictionaries({"uidMappings": id_mappings, "gidMappings": id_mappings})),
    )
    process = obj({"cwd": absolute_paths, "args": st.lists(text, min_size=1, max_size=3)}, {
        "terminal": booleans,
        "consoleSize": obj({"height": u64, "width": u64}),
        "user": obj({"uid": ids, "gid": ids}, {"umask": u32, "additionalGids": arrays(ids)}),
        "commandLine": text,
        "env": arrays(text),
        "capabilities": obj({}, dict.fromkeys(
            ["bounding", "effective", "inheritable", "permitted", "ambient"], arrays(text))),
        "rlimits": arrays(
            obj({"type": one_of_values(sorted(cfg.RLIMITS)), "soft": u64, "hard": u64}),
            unique_by=lambda rlimit: rlimit["type"]),
        "noNewPrivileges": booleans,
        "apparmorProfile": text,
        "oomScoreAdj": i64,
        "selinuxLabel": text,
        "scheduler": obj({"policy": one_of_values(cfg.SCHEDULER_POLICIES)}, {
            "nice": i32, "priority": i32, "flags": arrays(one_of_values(cfg.SCHEDULER_FLAGS)),
            "runtime": u64, "deadline": u64, "period": u64}),
        "ioPriority": obj({"class": one_of_values(cfg.IO_PRIORITY_CLASSES),
                           "priority": st.integers(0, 7)}),
        "execCPUAffinity": obj({}, {"initial": cpu_lists, "final": cpu_lists}),
    })
    hooks = obj({}, dict.fromkeys(HOOK_NAMES, arrays(obj(
        {"path": absolute_paths},
        {"args": arrays(text), "env": arrays(text), "timeout": st.integers(1, I64[1])}))))
    device_numbers = {"major": i64, "minor": i64}
    resources = obj({}, {
        "devices": arrays(obj({"allow": booleans}, {
            "type": one_of_values(cfg.DEVICE_RULE_TYPES), "major": majors, "minor": minors,
            "access": st.text("rwm", min_size=1, max_size=3)})),
        "memory": obj({}, {
            **dict.fromkeys(["limit", "reservation", "swap", "kernel", "kernelTCP"], i64),
            "swappiness": u64,
            **dict.fromkeys(["disableOOMKiller", "useHierarchy", "checkBeforeUpdate"], booleans),
        }),
        "cpu": obj({}, {
            **dict.fromkeys(["shares", "burst", "period", "realtimePeriod"], u64),
            **dict.fromkeys(["quota", "realtimeRuntime", "idle"], i64),
            "cpus": text, "mems": text}),
        "pids": obj({"limit": i64}),
        "blockIO": obj({}, {
            "weight": u16, "leafWeight": u16,
            "weightDevice": arrays(at_least_one(device_numbers, "weight", "leafWeight", u16)),
            **dict.fromkeys(THROTTLE_NAMES, arrays(obj({**device_numbers, "rate": u64})))}),
        "hugepageLimits": arrays(obj({"pageSize": page_sizes, "limit": u64})),
        "network": obj({}, {"classID": u32,
                            "priorities": arrays(obj({"name": text, "priority": u32}))}),
        "rdma": maps(at_least_one({}, "hcaHandles", "hcaObjects", u32)),
        "unified": string_maps,
    })
    seccomp = merged(
        with_errno("defaultAction", "defaultErrnoRet", {}, {
            "architectures": arrays(one_of_values(cfg.SECCOMP_ARCHES)),
            "flags": arrays(one_of_values(cfg.SECCOMP_FLAGS)),
            "syscalls": arrays(with_errno(
                "action", "errnoRet", {"names": st.lists(text, min_size=1, max_size=3)},
                {"args": arrays(obj({"index": u32, "value": u64,
                                     "op": one_of_values(cfg.SECCOMP_OPERATORS)},
                                    {"valueTwo": u64}))})),
        }),
        maybe(obj({"listenerPath": text}, {"listenerMetadata": text})),
    )
    linux = obj({}, {
        "namespaces": arrays(obj({"type": one_of_values(cfg.NAMESPACE_TYPES)},
                                 {"path": absolute_paths}),
                             unique_by=lambda namespace: namespace["type"]),
        "uidMappings": id_mappings,
        "gidMappings": id_mappings,
        "timeOffsets": obj({}, dict.fromkeys(cfg.TIME_NAMESPACE_CLOCKS,
                                             obj({}, {"secs": i64, "nanosecs": u32}))),
        "devices": arrays(one_of_values(cfg.DEVICE_TYPES).flatmap(device)),
        "netDevices": maps(obj({}, {"name": text})),
        "cgroupsPath": text,
        "resources": resources,
        "intelRdt": obj({}, {
            "closID": text, "l3CacheSchema": text, "memBwSchema": no_newline.map("MB:{}".format),
            "schemata": arrays(no_newline), "enableMonitoring": booleans}),
        "rootfsPropagation": one_of_values(cfg.ROOTFS_PROPAGATIONS),
        "seccomp": seccomp,
        "sysctl": string_maps,
        "maskedPaths": arrays(absolute_paths),
        "readonlyPaths": arrays(absolute_paths),
        "mountLabel": text,
        "personality": obj({"domain": one_of_values(cfg.PERSONALITY_DOMAINS)},
                           {"flags": st.just([])}),
        "memoryPolicy": obj({"mode": one_of_values(cfg.MEMORY_POLICY_MODES)}, {
            "nodes": text, "flags": arrays(one_of_values(cfg.MEMORY_POLICY_FLAGS))}),
    })
    return obj({"ociVersion": versions}, {
        "root": obj({"path": text}, {"readonly": booleans}),
        "mounts": arrays(mounts),
        "process": process,
        "hostname": text,
        "domainname": text,
        "hooks": hooks,
        "annotations": string_maps,
        "linux": linux,
    })


configs = config_documents(complete=False)
complete_configs = config_documents(complete=True)


def parser_accepts(doc):
    try:
        parse_config(doc)
    except ConfigError as error:
        return error
    return None


@EXAMPLES
@given(doc=configs)
def test_valid_documents_pass_both_and_fill_the_model(doc, config_schema, model_matches):
    errors = [error.message for error in config_schema.iter_errors(doc)]
    assert not errors
    model_matches(parse_config(doc), doc)


# --------------------------------------------------------------------------------------------
# One mutation of a valid document: which changes break which rule of the spec

# Objects whose keys are names, not properties: JSON paths show their keys as ["key"].
MAPS = {("annotations",), ("linux", "sysctl"), ("linux", "netDevices"),
        ("linux", "resources", "rdma"), ("linux", "resources", "unified")}
# Objects whose keys all share one shape (the six hook lists, the two clocks).
SAME_SHAPE_KEYS = MAPS | {("hooks",), ("linux", "timeOffsets")}


def shape(path):
    """The place in the spec: array indexes and map keys become "*"."""
    out = []
    for part in path:
        out.append("*" if isinstance(part, int) or tuple(out) in SAME_SHAPE_KEYS else part)
    return tuple(out)


def json_path(path):
    """How the parser names a path in its errors: linux.sysctl["a.b"], mounts[0].type."""
    out = ""
    for index, part in enumerate(path):
        if isinstance(part, int):
            out += f"[{part}]"
        elif shape(path[:index]) in MAPS:
            out += f"[{json.dumps(part, ensure_ascii=False)}]"
        else:
            out += f".{part}" if out else part
    return out


def fields(prefix, bounds, *names):
    return {prefix + (name,): bounds for name in names}


SYSCALLS = ("linux", "seccomp", "syscalls", "*")
BLOCK_IO = ("linux", "resources", "blockIO")
THROTTLES = [BLOCK_IO + (name, "*") for name in THROTTLE_NAMES]
ID_MAPPINGS = [("mounts", "*", "uidMappings", "*"), ("mounts", "*", "gidMappings", "*"),
               ("linux", "uidMappings", "*"), ("linux", "gidMappings", "*")]
INTEGER_RANGES = {
    **{key: ID for where in ID_MAPPINGS for key in fields(where, ID, "containerID", "hostID")},
    **{where + ("size",): (1, U32[1]) for where in ID_MAPPINGS},
    **fields(("process", "consoleSize"), U64, "height", "width"),
    **fields(("process", "user"), ID, "uid", "gid"),
    ("process", "user", "umask"): U32,
    ("process", "user", "additionalGids", "*"): ID,
    **fields(("process", "rlimits", "*"), U64, "soft", "hard"),
    ("process", "oomScoreAdj"): I64,
    **fields(("process", "scheduler"), I32, "nice", "priority"),
    **fields(("process", "scheduler"), U64, "runtime", "deadline", "period"),
    ("process", "ioPriority", "priority"): (0, 7),
    ("hooks", "*", "*", "timeout"): (1, I64[1]),
    ("linux", "timeOffsets", "*", "secs"): I64,
    ("linux", "timeOffsets", "*", "nanosecs"): U32,
    ("linux", "devices", "*", "major"): MAJOR,
    ("linux", "devices", "*", "minor"): MINOR,
    **fields(("linux", "devices", "*"), ID, "uid", "gid"),
    ("linux", "devices", "*", "fileMode"): (0, 511),
    ("linux", "resources", "devices", "*", "major"): MAJOR,
    ("linux", "resources", "devices", "*", "minor"): MINOR,
    **fields(("linux", "resources", "memory"), I64, "limit", "reservation", "swap", "kernel",
             "kernelTCP"),
    ("linux", "resources", "memory", "swappiness"): U64,
    **fields(("linux", "resources", "cpu"), U64, "shares", "burst", "period", "realtimePeriod"),
    **fields(("linux", "resources", "cpu"), I64, "quota", "realtimeRuntime", "idle"),
    ("linux", "resources", "pids", "limit"): I64,
    **fields(BLOCK_IO, U16, "weight", "leafWeight"),
    **fields(BLOCK_IO + ("weightDevice", "*"), I64, "major", "minor"),
    **fields(BLOCK_IO + ("weightDevice", "*"), U16, "weight", "leafWeight"),
    **{key: bounds for where in THROTTLES
       for key, bounds in {**fields(where, I64, "major", "minor"), **fields(where, U64, "rate")}
       .items()},
    ("linux", "resources", "hugepageLimits", "*", "limit"): U64,
    ("linux", "resources", "network", "classID"): U32,
    ("linux", "resources", "network", "priorities", "*", "priority"): U32,
    **fields(("linux", "resources", "rdma", "*"), U32, "hcaHandles", "hcaObjects"),
    ("linux", "seccomp", "defaultErrnoRet"): U32,
    SYSCALLS + ("errnoRet",): U32,
    SYSCALLS + ("args", "*", "index"): U32,
    **fields(SYSCALLS + ("args", "*"), U64, "value", "valueTwo"),
}
ENUMS = {
    ("process", "rlimits", "*", "type"), ("process", "scheduler", "policy"),
    ("process", "scheduler", "flags", "*"), ("process", "ioPriority", "class"),
    ("linux", "namespaces", "*", "type"), ("linux", "devices", "*", "type"),
    ("linux", "resources", "devices", "*", "type"), ("linux", "rootfsPropagation"),
    ("linux", "seccomp", "defaultAction"), ("linux", "seccomp", "architectures", "*"),
    ("linux", "seccomp", "flags", "*"), SYSCALLS + ("action",), SYSCALLS + ("args", "*", "op"),
    ("linux", "personality", "domain"), ("linux", "memoryPolicy", "mode"),
    ("linux", "memoryPolicy", "flags", "*"),
}
BAD_FORMATS = {
    ("ociVersion",): ["1.0", "2.0.0", "0.5.0-dev", "01.0.0", "1.0.0-01", "1.0.0+", "1.0.0-a..b"],
    ("process", "execCPUAffinity", "initial"): ["cpu0", "0;1"],
    ("process", "execCPUAffinity", "final"): ["all"],
    ("linux", "resources", "hugepageLimits", "*", "pageSize"): ["2mb", "0MB", "02MB", "2 MB"],
    ("linux", "resources", "devices", "*", "access"): ["rwx", "R", ""],
    ("linux", "intelRdt", "memBwSchema"): ["L3:0=7f0", "mb:0=20", "MB:0=20\nMB:1=70"],
    ("linux", "intelRdt", "schemata", "*"): ["L3:0=7f0\nMB:0=20"],
    ("linux", "personality", "flags"): [["ADDR_NO_RANDOMIZE"]],
}
ABSOLUTE_PATHS = {
    ("process", "cwd"), ("hooks", "*", "*", "path"), ("linux", "namespaces", "*", "path"),
    ("linux", "maskedPaths", "*"), ("linux", "readonlyPaths", "*"),
}
NON_EMPTY = {("process", "args"), SYSCALLS + ("names",)}
REQUIRED = {
    (): ["ociVersion"],
    ("root",): ["path"],
    ("mounts", "*"): ["destination"],
    **{where: ["containerID", "hostID", "size"] for where in ID_MAPPINGS},
    ("process",): ["cwd", "args"],
    ("process", "consoleSize"): ["height", "width"],
    ("process", "user"): ["uid", "gid"],
    ("process", "rlimits", "*"): ["type", "soft", "hard"],
    ("process", "scheduler"): ["policy"],
    ("process", "ioPriority"): ["class"],
    ("hooks", "*", "*"): ["path"],
    ("linux", "namespaces", "*"): ["type"],
    ("linux", "devices", "*"): ["type", "path"],
    ("linux", "resources", "devices", "*"): ["allow"],
    ("linux", "resources", "pids"): ["limit"],
    BLOCK_IO + ("weightDevice", "*"): ["major", "minor"],
    **{where: ["major", "minor", "rate"] for where in THROTTLES},
    ("linux", "resources", "hugepageLimits", "*"): ["pageSize", "limit"],
    ("linux", "resources", "network", "priorities", "*"): ["name", "priority"],
    ("linux", "seccomp"): ["defaultAction"],
    SYSCALLS: ["names", "action"],
    SYSCALLS + ("args", "*"): ["index", "value", "op"],
    ("linux", "personality"): ["domain"],
    ("linux", "memoryPolicy"): ["mode"],
}
# Properties one of which is needed: deleting the only one present breaks the rule.
ONE_NEEDED = {
    BLOCK_IO + ("weightDevice", "*"): ("weight", "leafWeight"),
    ("linux", "resources", "rdma", "*"): ("hcaHandles", "hcaObjects"),
}
# The seccomp properties that need an action able to return an errno.
ERRNO_PAIRS = {("linux", "seccomp"): ("defaultAction", "defaultErrnoRet"),
               SYSCALLS: ("action", "errnoRet")}


def required_keys(where, node):
    """The keys of this object that a valid document must keep."""
    keys = list(REQUIRED.get(where, []))
    if where == ("linux", "devices", "*") and node.get("type") != "p":
        keys += ["major", "minor"]
    if where == ("mounts", "*") and "uidMappings" in node:
        keys += ["uidMappings", "gidMappings"]  # each needs the other
    if where == ("linux", "seccomp") and "listenerMetadata" in node:
        keys.append("listenerPath")
    present = [key for key in ONE_NEEDED.get(where, ()) if key in node]
    return keys + (present if len(present) == 1 else [])


def errno_mutations(where, node):
    """Give an errno to an action that cannot return one, or the other way round."""
    if where not in ERRNO_PAIRS:
        return []
    action_key, errno_key = ERRNO_PAIRS[where]
    if errno_key in node:
        return [((action_key,), "SCMP_ACT_ALLOW")]
    if node[action_key] not in cfg.SECCOMP_ERRNO_ACTIONS:
        return [((errno_key,), 1)]
    return []


def is_unknown(path):
    return any(isinstance(part, str) and part.startswith(UNKNOWN_PREFIX) for part in path)


def nodes(doc, path=()):
    """Every (path, value) of a document."""
    yield path, doc
    children = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(
        doc, list) else ()
    for key, value in children:
        yield from nodes(value, path + (key,))


WRONG_TYPE = object()


def mutations(doc):
    """Every single change of a valid document that the spec says makes it invalid,
    as (what, path, new value or DELETE or WRONG_TYPE)."""
    found = []
    for path, node in nodes(doc):
        if is_unknown(path):
            continue
        where = shape(path)
        if path:
            found.append(("wrong type", path, WRONG_TYPE))
        if where in ENUMS:
            found.append(("not in the enum", path, "NOT-A-VALID-VALUE"))
        found += [("bad format", path, bad) for bad in BAD_FORMATS.get(where, [])]
        if where in ABSOLUTE_PATHS:
            found.append(("relative path", path, "relative/path"))
        if where in NON_EMPTY:
            found.append(("empty array", path, []))
        if where in INTEGER_RANGES:
            low, high = INTEGER_RANGES[where]
            found += [("below the range", path, low - 1), ("above the range", path, high + 1)]
        if where in MAPS and node:
            found.append(("empty map key", path + ("",), next(iter(node.values()))))
        if isinstance(node, dict):
            found += [("required missing", path + (key,), DELETE)
                      for key in required_keys(where, node)]
            if where in ONE_NEEDED:
                rest = {key: value for key, value in node.items() if key not in ONE_NEEDED[where]}
                found.append(("none of " + " and ".join(ONE_NEEDED[where]), path, rest))
            found += [("errno with the wrong action", path + tail, value)
                      for tail, value in errno_mutations(where, node)]
            if where == ("linux", "seccomp") and "listenerPath" not in node:
                found.append(("metadata without a listener", path + ("listenerMetadata",), ""))
    return found


def json_type(value):
    return "bool" if isinstance(value, bool) else type(value).__name__


def mutated(doc, path, value):
    doc = copy.deepcopy(doc)
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    if value is DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return doc


def get(doc, path):
    for part in path:
        doc = doc[part]
    return doc


REPLACEMENTS = (None, True, "text", 7, [], {})


def assert_both_reject(config_schema, doc, what, path, value):
    bad = mutated(doc, path, value)
    assert not config_schema.is_valid(bad), f"the schema accepts {what} at {json_path(path)}"
    error = parser_accepts(bad)
    assert error is not None, f"the parser accepts {what} at {json_path(path)}"
    # The first problem the parser reports is the one the mutation made.
    assert error.path.startswith(json_path(path[:-1])), (error, what, json_path(path))


@EXAMPLES
@given(data=st.data())
def test_one_mutation_breaks_both(data, config_schema):
    doc = data.draw(configs, label="valid document")
    found = mutations(doc)
    # The kind of mutation first, then a place: otherwise the many places where a value can
    # have the wrong type would crowd out the few rarer rules.
    what = data.draw(st.sampled_from(sorted({what for what, _, _ in found})), label="kind")
    _, path, value = data.draw(st.sampled_from([m for m in found if m[0] == what]), label="at")
    if value is WRONG_TYPE:
        current = json_type(get(doc, path))
        value = data.draw(st.sampled_from(
            [other for other in REPLACEMENTS if json_type(other) != current]), label="value")
    assert_both_reject(config_schema, doc, what, path, value)


@settings(max_examples=2, deadline=None, suppress_health_check=list(HealthCheck))
@given(doc=complete_configs)
def test_every_mutation_of_a_complete_document_breaks_both(doc, config_schema):
    """Every mutation of documents in which every property is present."""
    for index, (what, path, value) in enumerate(mutations(doc)):
        if value is WRONG_TYPE:
            current = json_type(get(doc, path))
            others = [other for other in REPLACEMENTS if json_type(other) != current]
            value = others[index % len(others)]  # so that each wrong type is tried somewhere
        assert_both_reject(config_schema, doc, what, path, value)


# --------------------------------------------------------------------------------------------
# Arbitrary or damaged JSON: the parser is never looser than the schema

CONFIG_SCHEMA = json.loads(
    (pathlib.Path(__file__).resolve().parents[2] / "specs" / "config-schema.json").read_text())


def schema_properties(schema):
    """For each place (shape) in a config, the property names the schema describes there."""
    table = {}

    def walk(node, path):
        while "$ref" in node:
            siblings = {key: value for key, value in node.items() if key != "$ref"}
            node = {**schema["$defs"][node["$ref"].rpartition("/")[2]], **siblings}
        for name, sub in node.get("properties", {}).items():
            table.setdefault(shape(path), set()).add(name)
            walk(sub, path + (name,))
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                walk(node[key], path + ("*",))
        for sub in node.get("allOf", []) + node.get("anyOf", []):
            walk(sub, path)

    walk(schema, ())
    return {where: sorted(names) for where, names in table.items()}


KNOWN_PROPERTIES = schema_properties(CONFIG_SCHEMA)


@st.composite
def damaged_configs(draw):
    """A valid config with one known property replaced by, or set to, arbitrary JSON, or
    removed."""
    doc = draw(configs)
    places = [path for path, _ in nodes(doc) if path and not is_unknown(path)]
    kind = draw(st.sampled_from(["replace", "add", "remove"]))
    if kind == "add":
        objects = [path for path in [()] + places
                   if isinstance(get(doc, path), dict) and shape(path) in KNOWN_PROPERTIES]
        where = draw(st.sampled_from(objects))
        name = draw(st.sampled_from(KNOWN_PROPERTIES[shape(where)]))
        return mutated(doc, where + (name,), draw(json_values))
    path = draw(st.sampled_from(places))
    return mutated(doc, path, DELETE if kind == "remove" else draw(json_values))


def value_at(doc, error_path):
    """The value an error path (such as a.b[0]["k"]) names."""
    node, index = doc, 0
    while index < len(error_path):
        if error_path[index] == ".":
            index += 1
        if error_path.startswith('["', index):
            key, index = json.JSONDecoder().raw_decode(error_path, index + 1)
            node, index = node[key], index + 1
        elif error_path[index] == "[":
            end = error_path.index("]", index)
            node, index = node[int(error_path[index + 1:end])], end + 1
        else:
            end = min([i for i in (error_path.find(".", index), error_path.find("[", index))
                       if i != -1] or [len(error_path)])
            node, index = node[error_path[index:end]], end
    return node


def is_parser_only_rule(error, doc):
    """The rules the schema's $comment lists as the parser's own (a validator misses them)."""
    if error.problem.endswith("appears twice") or "inside /proc" in error.problem or (
            "only a procfs may be mounted on /proc" in error.problem):
        return True  # rules (1), (2), (3) and (7)
    if ("runs past 4294967294" in error.problem and error.path.endswith(".size")) or (
            " overlaps that of " in error.problem):
        return True  # rules (8) and (9)
    try:
        value = value_at(doc, error.path)
    except (KeyError, IndexError, TypeError):
        return False
    if "NUL character" in error.problem or "lone surrogate" in error.problem:
        return True  # rule (6): in a value, or in a key (then the path names the key's value)
    return (isinstance(value, float) and value.is_integer()) or (
        isinstance(value, str) and value.endswith("\n"))


@EXAMPLES
@given(doc=damaged_configs() | json_values)
def test_parser_is_never_looser_than_the_schema(doc, config_schema):
    error = parser_accepts(doc)
    if error is None:
        assert config_schema.is_valid(doc), "the parser accepts what the schema rejects"
    elif config_schema.is_valid(doc):
        assert is_parser_only_rule(error, doc), f"only the parser rejects it: {error}"


# ids near the ends of the id space and of small ranges, where the kernel's rules bite
map_numbers = (st.integers(0, 40) | st.integers(2**32 - 40, 2**32 + 1) | st.integers(-1, 2**32)
               | st.sampled_from([0, 1, 2**31, 2**32 - 2, 2**32 - 1]))
mapping_lists = st.lists(st.fixed_dictionaries(
    {"containerID": map_numbers, "hostID": map_numbers, "size": map_numbers}), max_size=4)
KERNEL_ORACLE = os.geteuid() == 0 and shutil.which("unshare") is not None


def kernel_takes(lines):
    """Whether the kernel takes these lines as a new user namespace's uid_map (one write,
    as the runtime does)."""
    text = "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in lines)
    child = subprocess.Popen(["unshare", "--user", "sh", "-c", "echo ready; read x"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert child.stdout.readline() == b"ready\n"
        fd = os.open(f"/proc/{child.pid}/uid_map", os.O_WRONLY)
        try:
            os.write(fd, text.encode())
        except OSError as e:
            assert e.errno == errno.EINVAL, e
            return False
        finally:
            os.close(fd)
        return True
    finally:
        child.stdin.close()
        child.stdout.close()
        child.wait()


@settings(max_examples=150, deadline=None)
@given(lines=mapping_lists)
def test_id_mappings_parser_schema_and_kernel_agree(lines, config_schema):
    """Generated uid mappings: the parser is never looser than the schema, refuses beyond
    it only for overflowing or overlapping ranges (rules 8 and 9 of its $comment), and
    takes exactly what the kernel's map_write takes (so a map is refused with one line
    before anything is made, never by the kernel half-way through create)."""
    doc = {"ociVersion": "1.2.0", "linux": {"uidMappings": lines}}
    error = parser_accepts(doc)
    if error is None:
        assert config_schema.is_valid(doc), "the parser accepts what the schema rejects"
    elif config_schema.is_valid(doc):
        assert is_parser_only_rule(error, doc), f"only the parser rejects it: {error}"
    numbers = [value for line in lines for value in line.values()]
    if KERNEL_ORACLE and lines and all(0 <= value < 2**32 for value in numbers):
        assert (error is None) == kernel_takes(lines), error


def test_a_map_of_the_kernel_s_340_lines_and_no_more(config_schema):
    lines = [{"containerID": i, "hostID": 1000 + i, "size": 1} for i in range(341)]
    for count, accepted in ((340, True), (341, False)):
        doc = {"ociVersion": "1.2.0", "linux": {"gidMappings": lines[:count]}}
        assert (parser_accepts(doc) is None) == accepted == config_schema.is_valid(doc)
        if KERNEL_ORACLE:
            assert kernel_takes(lines[:count]) == accepted


def test_repeated_types_are_the_parser_s_own_rules(config_schema):
    doc = {"ociVersion": "1.0.0",
           "process": {"cwd": "/", "args": ["sh"],
                       "rlimits": [{"type": "RLIMIT_CORE", "soft": 0, "hard": 0}] * 2},
           "linux": {"namespaces": [{"type": "pid"}, {"type": "pid"}]}}
    assert config_schema.is_valid(doc)
    assert parser_accepts(doc).path == "process.rlimits[1].type"
    del doc["process"]
    assert parser_accepts(doc).path == "linux.namespaces[1].type"
    comment = CONFIG_SCHEMA["$comment"]
    assert "namespace type" in comment and "rlimit type" in comment
    assert "repeated" in comment


def test_schema_enums_are_the_parser_s_values():
    defs = CONFIG_SCHEMA["$defs"]
    linux = defs["Linux"]["properties"]
    pairs = [
        (defs["Rlimit"]["properties"]["type"]["enum"], cfg.RLIMITS),
        (defs["Namespace"]["properties"]["type"]["enum"], cfg.NAMESPACE_TYPES),
        (defs["Device"]["properties"]["type"]["enum"], cfg.DEVICE_TYPES),
        (defs["DeviceRule"]["properties"]["type"]["enum"], cfg.DEVICE_RULE_TYPES),
        (linux["rootfsPropagation"]["enum"], cfg.ROOTFS_PROPAGATIONS),
        (defs["Scheduler"]["properties"]["policy"]["enum"], cfg.SCHEDULER_POLICIES),
        (defs["Scheduler"]["properties"]["flags"]["items"]["enum"], cfg.SCHEDULER_FLAGS),
        (defs["Process"]["properties"]["ioPriority"]["properties"]["class"]["enum"],
         cfg.IO_PRIORITY_CLASSES),
        (linux["personality"]["properties"]["domain"]["enum"], cfg.PERSONALITY_DOMAINS),
        (linux["memoryPolicy"]["properties"]["mode"]["enum"], cfg.MEMORY_POLICY_MODES),
        (linux["memoryPolicy"]["properties"]["flags"]["items"]["enum"], cfg.MEMORY_POLICY_FLAGS),
        (defs["SeccompAction"]["enum"], cfg.SECCOMP_ACTIONS),
        (defs["SeccompErrnoAction"]["enum"], cfg.SECCOMP_ERRNO_ACTIONS),
        (defs["Seccomp"]["properties"]["architectures"]["items"]["enum"], cfg.SECCOMP_ARCHES),
        (defs["Seccomp"]["properties"]["flags"]["items"]["enum"], cfg.SECCOMP_FLAGS),
        (defs["SeccompSyscall"]["properties"]["args"]["items"]["properties"]["op"]["enum"],
         cfg.SECCOMP_OPERATORS),
        (list(linux["timeOffsets"]["properties"]), cfg.TIME_NAMESPACE_CLOCKS),
    ]
    for schema_values, parser_values in pairs:
        assert sorted(schema_values) == sorted(parser_values)


# String formats: near misses of each pattern, checked one at a time in small documents

BASE = {"ociVersion": "1.0.0"}
# (where the string goes, the schema's pattern, the characters of near misses)
FORMATS = [
    (("ociVersion",), CONFIG_SCHEMA["$defs"]["OciVersion"]["pattern"], "0123456789.-+aZ"),
    (("process", "cwd"), "^/", "/a."),
    (("process", "execCPUAffinity", "final"), "^[0-9, -]*$", "0179,- ;x"),
    (("linux", "resources", "hugepageLimits", 0, "pageSize"), "^[1-9][0-9]*[KMG]B$", "0129KMGBb "),
    (("linux", "resources", "devices", 0, "access"), "^[rwm]*$", "rwmx"),
    (("linux", "intelRdt", "memBwSchema"), "^MB:[^\n]*$", "MB:L3=0\n"),
]
SKELETONS = {
    "process": {"cwd": "/", "args": ["sh"], "execCPUAffinity": {}},
    "linux": {"resources": {"hugepageLimits": [{"limit": 1}], "devices": [{"allow": True}]},
              "intelRdt": {}},
}


@st.composite
def near_misses(draw):
    """A document whose one string is a valid value of its format, edited or not."""
    where, pattern, chars = draw(st.sampled_from(FORMATS))
    value = draw(st.from_regex(pattern, fullmatch=True, alphabet=chars + "0123456789")
                 | st.text(chars, max_size=10))
    for _ in range(draw(st.integers(0, 2))):
        index = draw(st.integers(0, len(value)))
        edit = draw(st.sampled_from(["insert", "delete", "replace"]))
        char = draw(st.sampled_from(chars))
        tail = value[index + (edit != "insert"):]
        value = value[:index] + ("" if edit == "delete" else char) + tail
    doc = copy.deepcopy({**BASE, **{key: SKELETONS[key] for key in where[:1] if key in SKELETONS}})
    return mutated(doc, where, value), value


@settings(max_examples=300, deadline=None)
@given(case=near_misses())
def test_string_formats_agree(case, config_schema):
    doc, value = case
    error = parser_accepts(doc)
    if config_schema.is_valid(doc):
        # Python's re lets $ match before a final newline; ECMA-262 and the parser do not.
        assert error is None or value.endswith("\n"), error
    else:
        assert error is not None, f"the parser accepts {value!r}"


# --------------------------------------------------------------------------------------------
# The state document

STATE = {"ociVersion": "1.3.0", "id": "box", "status": "running", "pid": 4422,
         "bundle": "/containers/box", "annotations": {"com.example": "x"}, "created": "now"}


def test_state_schema_accepts_a_state_document(state_schema):
    assert not [error.message for error in state_schema.iter_errors(STATE)]
    stopped = {key: value for key, value in STATE.items() if key not in ("pid", "annotations")}
    assert state_schema.is_valid(dict(stopped, status="stopped"))


def test_state_schema_rejects_broken_state_documents(state_schema):
    for broken in [
        dict(STATE, status="paused"), dict(STATE, pid=-1), dict(STATE, pid="1"),
        dict(STATE, bundle="containers/box"), dict(STATE, annotations={"": "x"}),
        dict(STATE, annotations={"k": 1}),
        {key: value for key, value in STATE.items() if key != "pid"},  # running needs a pid
        *({key: value for key, value in STATE.items() if key != required}
          for required in ("ociVersion", "id", "status", "bundle")),
    ]:
        assert not state_schema.is_valid(broken), broken
