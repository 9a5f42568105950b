"""config.json -> typed, immutable records, parsed once.

`create` reads the bundle's config.json once and every later step works on these records,
never on decoded dicts. The parser rejects what the OCI runtime-spec (v1.3.0, Linux) says
MUST be an error before the runtime touches the host, and each error names the JSON path of
the first problem (`mounts[3].destination: is required but missing`). Unknown properties are
ignored, as the spec requires.

specs/config-schema.json states the same rules as a JSON Schema, and the tests check that the
two agree. This module does not use the schema: a validator costs more to import than the
whole parse. For the same reason it imports nothing but `os` and `frozen` at import time.

Conventions of the model: attribute names are the snake_case of the JSON names (`class` is
`class_`); arrays are tuples; string-keyed maps are read-only `MappingProxyType`s; an absent
optional scalar or object is None unless the spec gives it a default (root.readonly,
process.terminal and process.noNewPrivileges are False, the scheduler numbers are 0); absent
arrays and maps are empty, except the capability sets, where "absent" and "empty" differ.
"""

import posix

from ociruntime import paths
from ociruntime.frozen import Frozen

# types.MappingProxyType, as the types module itself defines it: importing that module cost
# create ~0.2 ms for this one name
MappingProxyType = type(type.__dict__)

# ---------------------------------------------------------------------------------------------
# The values the spec allows. Public so other modules (features.json, the tests) use the same.

NAMESPACE_TYPES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")
TIME_NAMESPACE_CLOCKS = ("boottime", "monotonic")
DEVICE_TYPES = ("c", "b", "u", "p")
DEVICE_RULE_TYPES = ("a", "c", "b")
# runc also takes the recursive names; they mean the same for the rootfs mount.
ROOTFS_PROPAGATIONS = (
    "shared", "slave", "private", "unbindable",
    "rshared", "rslave", "rprivate", "runbindable",
)
SCHEDULER_POLICIES = (
    "SCHED_OTHER", "SCHED_FIFO", "SCHED_RR", "SCHED_BATCH", "SCHED_ISO", "SCHED_IDLE",
    "SCHED_DEADLINE",
)
SCHEDULER_FLAGS = (
    "SCHED_FLAG_RESET_ON_FORK", "SCHED_FLAG_RECLAIM", "SCHED_FLAG_DL_OVERRUN",
    "SCHED_FLAG_KEEP_POLICY", "SCHED_FLAG_KEEP_PARAMS", "SCHED_FLAG_UTIL_CLAMP_MIN",
    "SCHED_FLAG_UTIL_CLAMP_MAX",
)
IO_PRIORITY_CLASSES = ("IOPRIO_CLASS_RT", "IOPRIO_CLASS_BE", "IOPRIO_CLASS_IDLE")
PERSONALITY_DOMAINS = ("LINUX", "LINUX32")
MEMORY_POLICY_MODES = (
    "MPOL_DEFAULT", "MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_WEIGHTED_INTERLEAVE",
    "MPOL_PREFERRED", "MPOL_PREFERRED_MANY", "MPOL_LOCAL",
)
MEMORY_POLICY_FLAGS = ("MPOL_F_NUMA_BALANCING", "MPOL_F_RELATIVE_NODES", "MPOL_F_STATIC_NODES")
SECCOMP_ACTIONS = (
    "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY",
)
# Only these actions carry a return value, so only they may have errnoRet/defaultErrnoRet.
SECCOMP_ERRNO_ACTIONS = ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")
SECCOMP_OPERATORS = (
    "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
)
SECCOMP_FLAGS = (
    "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
)
SECCOMP_ARCHES = (
    "SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_LOONGARCH64", "SCMP_ARCH_M68K", "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390", "SCMP_ARCH_S390X",
    "SCMP_ARCH_SH", "SCMP_ARCH_SHEB", "SCMP_ARCH_PARISC", "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_RISCV64",
)
# The resource limits of getrlimit(2), mapped to their kernel numbers: asm-generic's,
# which every Linux architecture but alpha, mips and sparc uses; on those (whose numbers
# differ) Python's `resource` has them.  Not imported elsewhere: a shared object to load
# (~0.2 ms) on every create's path.  (`resource` lacks RLIMIT_LOCKS: 10 everywhere.)
_GENERIC_RLIMITS = (
    "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE", "RLIMIT_RSS",
    "RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_MEMLOCK", "RLIMIT_AS", "RLIMIT_LOCKS",
    "RLIMIT_SIGPENDING", "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_RTPRIO", "RLIMIT_RTTIME",
)


def _rlimit_numbers():
    if not posix.uname().machine.startswith(("alpha", "mips", "sparc")):
        return {name: number for number, name in enumerate(_GENERIC_RLIMITS)}
    import resource

    return {name: getattr(resource, name, 10) for name in _GENERIC_RLIMITS}


RLIMITS = MappingProxyType(_rlimit_numbers())

# The only places inside /proc a mount may cover (runc's checkProcMount list: the files
# lxcfs emulates, and ns_last_pid for CRIU).  Any other mount there could expose a host
# file under a name the container may write (a read-write bind of the host's /proc/sys
# sets host sysctls), or hide what masked and read-only paths protect.
PROC_MOUNT_ALLOWED = (
    "/proc/cpuinfo", "/proc/diskstats", "/proc/meminfo", "/proc/stat", "/proc/swaps",
    "/proc/uptime", "/proc/loadavg", "/proc/slabinfo", "/proc/net/dev",
    "/proc/sys/kernel/ns_last_pid",
)
# Types runc mounts anywhere, /proc included: each is a new filesystem instance, never a
# window onto a host file.
PROC_MOUNT_ANY_TYPES = ("proc", "sysfs", "tmpfs", "mqueue", "cgroup", "cgroup2")

_EMPTY_MAP = MappingProxyType({})


class ConfigError(ValueError):
    """config.json is unreadable or breaks a rule of the spec; `path` says where.

    `path` is a JSON path such as `process.rlimits[1].type` ("" for the whole document) and
    `problem` says what is wrong and what was expected.
    """

    def __init__(self, path: str, problem: str):
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path else problem)


# ---------------------------------------------------------------------------------------------
# The records. Field types are in each docstring; see the module docstring for conventions.


class Config(Frozen):
    """The whole config.json. process and root may be None: start and create check them."""

    __slots__ = (
        "oci_version", "root", "mounts", "process", "hostname", "domainname", "hooks",
        "annotations", "linux",
    )


class Root(Frozen):
    """path: str (absolute, or relative to the bundle); readonly: bool."""

    __slots__ = ("path", "readonly")


class IDMapping(Frozen):
    """One line of a uid_map/gid_map: container_id, host_id (ids), size (>= 1); neither
    range reaches 4294967295, and no two lines of a map overlap in either."""

    __slots__ = ("container_id", "host_id", "size")


class Mount(Frozen):
    """destination: str; source, type: str | None; options: tuple[str];
    uid_mappings, gid_mappings: tuple[IDMapping] (both or neither given)."""

    __slots__ = ("destination", "source", "type", "options", "uid_mappings", "gid_mappings")


class ConsoleSize(Frozen):
    """height, width: int (uint64); only meaningful when process.terminal is true."""

    __slots__ = ("height", "width")


class User(Frozen):
    """uid, gid: int; umask: int | None (None: keep the caller's); additional_gids: tuple."""

    __slots__ = ("uid", "gid", "umask", "additional_gids")


class Capabilities(Frozen):
    """Each set is a tuple of names as written (unknown names are kept) or None if absent."""

    __slots__ = ("bounding", "effective", "inheritable", "permitted", "ambient")


class Rlimit(Frozen):
    """type: the RLIMIT_* name; resource: its resource.RLIMIT_* number; soft, hard: uint64."""

    __slots__ = ("type", "resource", "soft", "hard")


class Scheduler(Frozen):
    """policy: a SCHED_* name; flags: tuple; nice, priority, runtime, deadline, period: int
    (0 when absent, as the spec says)."""

    __slots__ = ("policy", "nice", "priority", "flags", "runtime", "deadline", "period")


class IOPriority(Frozen):
    """class_: an IOPRIO_CLASS_* name (JSON `class`); priority: 0 (highest) to 7."""

    __slots__ = ("class_", "priority")


class ExecCPUAffinity(Frozen):
    """initial, final: CPU lists such as "0-3,7", or None."""

    __slots__ = ("initial", "final")


class Process(Frozen):
    """The container process. user is root (0:0) when absent, like runc; args is never empty."""

    __slots__ = (
        "terminal", "console_size", "user", "args", "command_line", "env", "cwd", "capabilities",
        "rlimits", "no_new_privileges", "apparmor_profile", "oom_score_adj", "selinux_label",
        "scheduler", "io_priority", "exec_cpu_affinity",
    )


class Hook(Frozen):
    """path: absolute str; args: tuple; env: tuple, or None when absent (the hook then
    inherits its runner's environment, as in runc); timeout: seconds (>= 1) or None."""

    __slots__ = ("path", "args", "env", "timeout")


class Hooks(Frozen):
    """One tuple of Hook per lifecycle point, empty when absent."""

    __slots__ = (
        "prestart", "create_runtime", "create_container", "start_container", "poststart",
        "poststop",
    )
    _defaults = dict.fromkeys(__slots__, ())


class Namespace(Frozen):
    """type: one of NAMESPACE_TYPES; path: absolute str to join, or None to create one."""

    __slots__ = ("type", "path")


class TimeOffset(Frozen):
    """secs: int64 | None; nanosecs: uint32 | None."""

    __slots__ = ("secs", "nanosecs")


class Device(Frozen):
    """type: c, b, u or p; path: str; major, minor: int64 (None only for p); file_mode (0..0o777),
    uid, gid: int | None."""

    __slots__ = ("type", "path", "major", "minor", "file_mode", "uid", "gid")


class NetDevice(Frozen):
    """name: the device's name inside the container, or None to keep the host's name."""

    __slots__ = ("name",)


class DeviceRule(Frozen):
    """A device-cgroup rule: allow: bool; type: a, c, b or None; major, minor: int | None
    (None: all); access: a mix of r, w, m, or None."""

    __slots__ = ("allow", "type", "major", "minor", "access")


class Memory(Frozen):
    """Memory cgroup settings; each is None when absent (the cgroup file is left alone)."""

    __slots__ = (
        "limit", "reservation", "swap", "kernel", "kernel_tcp", "swappiness",
        "disable_oom_killer", "use_hierarchy", "check_before_update",
    )


class CPU(Frozen):
    """CPU and cpuset cgroup settings; each is None when absent."""

    __slots__ = (
        "shares", "quota", "burst", "period", "realtime_runtime", "realtime_period", "cpus",
        "mems", "idle",
    )


class Pids(Frozen):
    """limit: int64 (-1 means no limit)."""

    __slots__ = ("limit",)


class WeightDevice(Frozen):
    """major, minor: int64; weight, leaf_weight: uint16 | None (at least one is set)."""

    __slots__ = ("major", "minor", "weight", "leaf_weight")


class ThrottleDevice(Frozen):
    """major, minor: int64; rate: uint64 (bytes or IOs per second)."""

    __slots__ = ("major", "minor", "rate")


class BlockIO(Frozen):
    """weight, leaf_weight: uint16 | None; the per-device lists are tuples."""

    __slots__ = (
        "weight", "leaf_weight", "weight_device", "throttle_read_bps_device",
        "throttle_write_bps_device", "throttle_read_iops_device", "throttle_write_iops_device",
    )


class HugepageLimit(Frozen):
    """page_size: such as "2MB"; limit: uint64 bytes."""

    __slots__ = ("page_size", "limit")


class InterfacePriority(Frozen):
    """name: interface in the runtime's network namespace; priority: uint32."""

    __slots__ = ("name", "priority")


class Network(Frozen):
    """class_id: uint32 | None; priorities: tuple[InterfacePriority]."""

    __slots__ = ("class_id", "priorities")


class Rdma(Frozen):
    """hca_handles, hca_objects: uint32 | None (at least one is set)."""

    __slots__ = ("hca_handles", "hca_objects")


class Resources(Frozen):
    """linux.resources: cgroup settings. rdma maps a device to Rdma; unified maps a cgroup v2
    file name to its content."""

    __slots__ = (
        "devices", "memory", "cpu", "pids", "block_io", "hugepage_limits", "network", "rdma",
        "unified",
    )


class IntelRdt(Frozen):
    """clos_id, l3_cache_schema, mem_bw_schema: str | None; schemata: tuple of lines;
    enable_monitoring: bool."""

    __slots__ = ("clos_id", "l3_cache_schema", "mem_bw_schema", "schemata", "enable_monitoring")


class SeccompArg(Frozen):
    """index: uint32; value: uint64; value_two: uint64 | None; op: an SCMP_CMP_* name."""

    __slots__ = ("index", "value", "value_two", "op")


class SeccompSyscall(Frozen):
    """names: non-empty tuple; action: an SCMP_ACT_* name; errno_ret: uint32 | None;
    args: tuple[SeccompArg]."""

    __slots__ = ("names", "action", "errno_ret", "args")


class Seccomp(Frozen):
    """default_errno_ret and errno_ret are None when absent (the runtime then uses EPERM)."""

    __slots__ = (
        "default_action", "default_errno_ret", "architectures", "flags", "listener_path",
        "listener_metadata", "syscalls",
    )


class Personality(Frozen):
    """domain: LINUX or LINUX32; flags: always empty (the spec defines no flag yet)."""

    __slots__ = ("domain", "flags")


class MemoryPolicy(Frozen):
    """mode: an MPOL_* name; nodes: str such as "0-3,7" or None; flags: tuple."""

    __slots__ = ("mode", "nodes", "flags")


class Linux(Frozen):
    """config.linux; every field is empty or None when absent. time_offsets maps a clock name
    (boottime, monotonic) to a TimeOffset; net_devices maps a host device name to NetDevice."""

    __slots__ = (
        "namespaces", "uid_mappings", "gid_mappings", "time_offsets", "devices", "net_devices",
        "cgroups_path", "resources", "intel_rdt", "rootfs_propagation", "seccomp", "sysctl",
        "masked_paths", "readonly_paths", "mount_label", "personality", "memory_policy",
    )
    _defaults = {
        **dict.fromkeys(__slots__),
        **dict.fromkeys(("namespaces", "uid_mappings", "gid_mappings", "devices"), ()),
        **dict.fromkeys(("masked_paths", "readonly_paths"), ()),
        **dict.fromkeys(("time_offsets", "net_devices", "sysctl"), _EMPTY_MAP),
    }


# ---------------------------------------------------------------------------------------------
# Reading typed values at a JSON path.

_MISSING = object()


def _bounds(kind: str, low: int, high: int):
    return (f"an integer in {low}..{high} ({kind})", low, high)


_INT32 = _bounds("int32", -(2**31), 2**31 - 1)
_INT64 = _bounds("int64", -(2**63), 2**63 - 1)
_UINT16 = _bounds("uint16", 0, 2**16 - 1)
_UINT32 = _bounds("uint32", 0, 2**32 - 1)
_UINT64 = _bounds("uint64", 0, 2**64 - 1)
# 2**32 - 1 is (uid_t)-1, which setuid/setgid/chown read as "no change", never a real id.
_ID = _bounds("a uid or gid; 4294967295 is -1, no id", 0, 2**32 - 2)
_ID_MAP_SIZE = _bounds("how many ids the line maps", 1, 2**32 - 1)
ID_MAP_MAX_LINES = 340  # the kernel's UID_GID_MAP_MAX_EXTENTS
# Linux device numbers: a 12-bit major and a 20-bit minor (MINORBITS in kdev_t.h).
_MAJOR = _bounds("a Linux device major number", 0, 2**12 - 1)
_MINOR = _bounds("a Linux device minor number", 0, 2**20 - 1)
_FILE_MODE = _bounds("permission bits, in decimal", 0, 0o777)
_IO_PRIORITY_LEVEL = _bounds("0 is the highest priority", 0, 7)
_HOOK_TIMEOUT = _bounds("seconds", 1, 2**63 - 1)

# JSON string escapes, so messages show values as they appear in config.json.
_ESCAPES = {
    **{code: f"\\u{code:04x}" for code in range(32)},
    ord("\n"): "\\n", ord("\t"): "\\t", ord("\r"): "\\r", ord("\b"): "\\b", ord("\f"): "\\f",
    ord('"'): '\\"', ord("\\"): "\\\\",
}


def _quoted(text: str) -> str:
    text = text.translate(_ESCAPES)
    if not text.isascii():  # a lone surrogate is shown as its escape, never printed raw
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return '"' + text + '"'


def _shown(value) -> str:
    """A short JSON rendering of a value for an error message."""
    if value is None or value is True or value is False:
        return {None: "null", True: "true", False: "false"}[value]
    if type(value) is dict:
        return "an object"
    if type(value) is list:
        return "an array"
    text = _quoted(value) if type(value) is str else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _text_problem(text: str):
    """No string of a config may hold what no system call can carry: a NUL byte (C strings
    end there) or a lone UTF-16 surrogate such as "\\ud800" (not encodable as UTF-8)."""
    if "\0" in text:
        return f"must not contain a NUL character (\\u0000), got {_shown(text)}"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return f"must not contain a lone surrogate (\\ud800-\\udfff), got {_shown(text)}"
    return None


def _string(value, path: str, choices=None, check=None) -> str:
    if type(value) is not str:
        raise ConfigError(path, f"must be a string, got {_shown(value)}")
    if "\0" in value or not value.isascii():  # the common case costs no call
        problem = _text_problem(value)
        if problem:
            raise ConfigError(path, problem)
    if choices is not None and value not in choices:
        raise ConfigError(path, f"must be one of {', '.join(choices)}; got {_shown(value)}")
    problem = check(value) if check is not None else None
    if problem:
        raise ConfigError(path, problem)
    return value


def _integer(value, path: str, bounds) -> int:
    expected, low, high = bounds
    # bool is an int subclass in Python, but true is not a number in JSON.
    if type(value) is not int or not low <= value <= high:
        raise ConfigError(path, f"must be {expected}, got {_shown(value)}")
    return value


def _array(value, path: str) -> list:
    if type(value) is not list:
        raise ConfigError(path, f"must be an array, got {_shown(value)}")
    return value


class _Fields:
    """One JSON object being parsed, plus the JSON path that names it in errors.

    Each getter checks the JSON type (and range or allowed values) of one property and
    returns the typed value, or the default when the property is absent.
    """

    __slots__ = ("_object", "path")

    def __init__(self, value, path: str):
        if type(value) is not dict:
            raise ConfigError(path, f"must be an object, got {_shown(value)}")
        self._object = value
        self.path = path

    def path_of(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        return key in self._object

    def require(self, key: str, why: str = "") -> None:
        if key not in self._object:
            raise ConfigError(self.path_of(key), "is required but missing" + why)

    def _get(self, key: str, required: bool):
        if required:
            self.require(key)
        return self._object.get(key, _MISSING)

    def string(self, key, *, required=False, choices=None, check=None):
        value = self._get(key, required)
        return None if value is _MISSING else _string(value, self.path_of(key), choices, check)

    def integer(self, key, bounds, *, required=False, default=None):
        value = self._get(key, required)
        return default if value is _MISSING else _integer(value, self.path_of(key), bounds)

    def boolean(self, key, *, required=False, default=None):
        value = self._get(key, required)
        if value is _MISSING:
            return default
        if type(value) is not bool:
            raise ConfigError(self.path_of(key), f"must be true or false, got {_shown(value)}")
        return value

    def strings(self, key, *, required=False, non_empty=False, choices=None, check=None,
                default=()):
        """An array of strings as a tuple."""
        return self._array(
            key, lambda item, path: _string(item, path, choices, check), required, non_empty,
            default,
        )

    def integers(self, key, bounds):
        """An array of integers as a tuple."""
        return self._array(key, lambda item, path: _integer(item, path, bounds))

    def records(self, key, parse):
        """An array of objects as a tuple of records made by parse(_Fields)."""
        return self._array(key, lambda item, path: parse(_Fields(item, path)))

    def record(self, key, parse, *, required=False, default=None):
        """An object, as the record made by parse(_Fields)."""
        value = self._get(key, required)
        return default if value is _MISSING else parse(_Fields(value, self.path_of(key)))

    def string_map(self, key):
        """An object of strings keyed by non-empty strings, as a read-only mapping."""
        return self._map(key, _string)

    def record_map(self, key, parse):
        """An object of objects keyed by non-empty strings, as a read-only mapping of records."""
        return self._map(key, lambda item, path: parse(_Fields(item, path)))

    def _array(self, key, convert, required=False, non_empty=False, default=()):
        value = self._get(key, required)
        if value is _MISSING:
            return default
        path = self.path_of(key)
        items = _array(value, path)
        if non_empty and not items:
            raise ConfigError(path, "must have at least one entry, got an empty array")
        return tuple(convert(item, f"{path}[{index}]") for index, item in enumerate(items))

    def _map(self, key, convert):
        value = self._get(key, False)
        if value is _MISSING:
            return _EMPTY_MAP
        path = self.path_of(key)
        entries = _Fields(value, path)._object
        result = {}
        for name, item in entries.items():
            item_path = f"{path}[{_quoted(name)}]"
            if not name:
                raise ConfigError(item_path, "keys must be non-empty strings")
            problem = _text_problem(name)
            if problem:
                raise ConfigError(item_path, "the key " + problem)
            result[name] = convert(item, item_path)
        return MappingProxyType(result)

    def require_together(self, first: str, second: str) -> None:
        if self.has(first) != self.has(second):
            given, missing = (first, second) if self.has(first) else (second, first)
            self.require(missing, f" (it must come with {given})")

    def require_any(self, *keys: str) -> None:
        if not any(self.has(key) for key in keys):
            raise ConfigError(self.path, f"needs at least one of {', '.join(keys)}")


def _reject_repeats(array_path: str, values, key: str) -> None:
    """The spec forbids some values (namespace and rlimit types) to appear twice."""
    seen = set()
    for index, value in enumerate(values):
        if value in seen:
            raise ConfigError(f"{array_path}[{index}].{key}", f"{_shown(value)} appears twice")
        seen.add(value)


# ---------------------------------------------------------------------------------------------
# String formats. Each check returns a problem, or None when the text is fine.

_DIGITS = frozenset("0123456789")
_SEMVER_IDENTIFIER = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-")
_CPU_LIST = frozenset("0123456789, -")


def _is_number(text: str) -> bool:
    """A SemVer numeric part: ASCII digits without a leading zero."""
    return bool(text) and set(text) <= _DIGITS and (text == "0" or text[0] != "0")


def _is_prerelease_identifier(text: str) -> bool:
    if not text or not set(text) <= _SEMVER_IDENTIFIER:
        return False
    return not set(text) <= _DIGITS or _is_number(text)


def _is_semver(text: str) -> bool:
    """SemVer 2.0.0: MAJOR.MINOR.PATCH, then optional -PRERELEASE and +BUILD."""
    rest, plus, build = text.partition("+")
    if plus and not all(part and set(part) <= _SEMVER_IDENTIFIER for part in build.split(".")):
        return False
    core, dash, prerelease = rest.partition("-")
    if dash and not all(_is_prerelease_identifier(part) for part in prerelease.split(".")):
        return False
    numbers = core.split(".")
    return len(numbers) == 3 and all(_is_number(number) for number in numbers)


def _oci_version_problem(text: str):
    if not _is_semver(text):
        return f"must be a SemVer 2.0.0 version such as 1.3.0, got {_shown(text)}"
    major = text.partition(".")[0]
    if major != "1":
        return f"major version {major} is not supported; this runtime implements 1.x"
    return None


def _absolute_path_problem(text: str):
    return None if text.startswith("/") else f"must be an absolute path, got {_shown(text)}"


def _cpu_list_problem(text: str):
    if set(text) <= _CPU_LIST:
        return None
    return f"must be a CPU list such as 0-3,7, got {_shown(text)}"


def _page_size_problem(text: str):
    number, unit = text[:-2], text[-2:]
    if unit in ("KB", "MB", "GB") and _is_number(number) and number != "0":
        return None
    return f"must be a size such as 64KB, 2MB or 1GB, got {_shown(text)}"


def _no_newline_problem(text: str):
    return f"must not contain a newline, got {_shown(text)}" if "\n" in text else None


def _mem_bw_schema_problem(text: str):
    if not text.startswith("MB:"):
        return f"must start with MB:, got {_shown(text)}"
    return _no_newline_problem(text)


def _device_access_problem(text: str):
    if text and set(text) <= {"r", "w", "m"}:
        return None
    return f"must be a combination of r, w and m, got {_shown(text)}"


# ---------------------------------------------------------------------------------------------
# The parser: one function per record, reading the fields in the spec's order.


def _root(f: _Fields) -> Root:
    return Root(path=f.string("path", required=True), readonly=f.boolean("readonly", default=False))


def _id_mapping(f: _Fields) -> IDMapping:
    """One line of a map, as the kernel takes it (map_write): neither range may reach
    4294967295, which is -1, no id."""
    mapping = IDMapping(
        container_id=f.integer("containerID", _ID, required=True),
        host_id=f.integer("hostID", _ID, required=True),
        size=f.integer("size", _ID_MAP_SIZE, required=True),
    )
    for key, first in (("containerID", mapping.container_id), ("hostID", mapping.host_id)):
        if first + mapping.size - 1 > _ID[2]:
            raise ConfigError(f.path_of("size"), f"the range from {key} {first} with size "
                              f"{mapping.size} runs past {_ID[2]}, the highest id "
                              f"({_ID[2] + 1} is -1, no id)")
    return mapping


def _id_mappings(f: _Fields, key: str):
    """uidMappings or gidMappings: at most the kernel's 340 lines, and no two lines whose
    container ranges, or whose host ranges, overlap (the kernel refuses the whole map)."""
    mappings = f.records(key, _id_mapping)
    path = f.path_of(key)
    if len(mappings) > ID_MAP_MAX_LINES:
        raise ConfigError(path, f"has {len(mappings)} entries; the kernel takes at most "
                          f"{ID_MAP_MAX_LINES}")
    for index, mapping in enumerate(mappings):
        for earlier in range(index):
            other = mappings[earlier]
            for name, attr in (("containerID", "container_id"), ("hostID", "host_id")):
                first, other_first = getattr(mapping, attr), getattr(other, attr)
                if first < other_first + other.size and other_first < first + mapping.size:
                    raise ConfigError(
                        f"{path}[{index}]", f"its {name} range {first}..{first + mapping.size - 1}"
                        f" overlaps that of {path}[{earlier}] "
                        f"({other_first}..{other_first + other.size - 1})")
    return mappings


def clean_path(text: str) -> str:
    """A container path as the kernel resolves it inside a root: '.' and empty components
    dropped, '..' going up but never above '/' (os.path.normpath keeps a leading '//')."""
    parts = []
    for part in text.split("/"):
        if part == "..":
            if parts:
                parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    return "/" + "/".join(parts)


def idmapped(mount: Mount) -> bool:
    """The mount is to be idmapped: it has uid/gid mappings or the idmap/ridmap option
    (idmap.py makes it)."""
    return bool(mount.uid_mappings or mount.gid_mappings
                or "idmap" in mount.options or "ridmap" in mount.options)


def proc_mount_problem(destination: str, fstype, is_bind: bool, source_is_procfs=None):
    """Why a mount at `destination` (a container path, resolved or not) may not be made,
    or None.  source_is_procfs: for a bind onto /proc itself, whether its source is a
    procfs (None: not known yet, decided when the mount is made)."""
    if "proc" not in destination:  # the common case, without cleaning the path
        return None
    dest = clean_path(destination)
    if dest != "/proc" and not dest.startswith("/proc/"):
        return None
    if fstype in PROC_MOUNT_ANY_TYPES and not is_bind:
        return None
    if dest == "/proc":
        if not is_bind or source_is_procfs is False:
            return f"only a procfs may be mounted on /proc, not {_shown(fstype or 'bind')}"
        return None
    if dest in PROC_MOUNT_ALLOWED:
        return None
    return (f"{_shown(destination)} is inside /proc: only {', '.join(PROC_MOUNT_ALLOWED)} "
            "may be mount destinations there")


def _mount(f: _Fields) -> Mount:
    mount = Mount(
        destination=f.string("destination", required=True),
        source=f.string("source"),
        type=f.string("type"),
        options=f.strings("options"),
        uid_mappings=_id_mappings(f, "uidMappings"),
        gid_mappings=_id_mappings(f, "gidMappings"),
    )
    f.require_together("uidMappings", "gidMappings")
    is_bind = "bind" in mount.options or "rbind" in mount.options
    problem = proc_mount_problem(mount.destination, mount.type, is_bind)
    if problem:
        raise ConfigError(f.path_of("destination"), problem)
    return mount


def _console_size(f: _Fields) -> ConsoleSize:
    return ConsoleSize(
        height=f.integer("height", _UINT64, required=True),
        width=f.integer("width", _UINT64, required=True),
    )


def _user(f: _Fields) -> User:
    return User(
        uid=f.integer("uid", _ID, required=True),
        gid=f.integer("gid", _ID, required=True),
        umask=f.integer("umask", _UINT32),
        additional_gids=f.integers("additionalGids", _ID),
    )


def _capabilities(f: _Fields) -> Capabilities:
    return Capabilities(
        bounding=f.strings("bounding", default=None),
        effective=f.strings("effective", default=None),
        inheritable=f.strings("inheritable", default=None),
        permitted=f.strings("permitted", default=None),
        ambient=f.strings("ambient", default=None),
    )


def _rlimit(f: _Fields) -> Rlimit:
    name = f.string("type", required=True, choices=RLIMITS)
    return Rlimit(
        type=name,
        resource=RLIMITS[name],
        soft=f.integer("soft", _UINT64, required=True),
        hard=f.integer("hard", _UINT64, required=True),
    )


def _scheduler(f: _Fields) -> Scheduler:
    return Scheduler(
        policy=f.string("policy", required=True, choices=SCHEDULER_POLICIES),
        nice=f.integer("nice", _INT32, default=0),
        priority=f.integer("priority", _INT32, default=0),
        flags=f.strings("flags", choices=SCHEDULER_FLAGS),
        runtime=f.integer("runtime", _UINT64, default=0),
        deadline=f.integer("deadline", _UINT64, default=0),
        period=f.integer("period", _UINT64, default=0),
    )


def _io_priority(f: _Fields) -> IOPriority:
    return IOPriority(
        class_=f.string("class", required=True, choices=IO_PRIORITY_CLASSES),
        # the prose says REQUIRED; runc and crun take a missing one as 0 (CHECKLIST.md)
        priority=f.integer("priority", _IO_PRIORITY_LEVEL, default=0),
    )


def _exec_cpu_affinity(f: _Fields) -> ExecCPUAffinity:
    return ExecCPUAffinity(
        initial=f.string("initial", check=_cpu_list_problem),
        final=f.string("final", check=_cpu_list_problem),
    )


_ROOT_USER = User(uid=0, gid=0, umask=None, additional_gids=())


def _process(f: _Fields) -> Process:
    process = Process(
        terminal=f.boolean("terminal", default=False),
        console_size=f.record("consoleSize", _console_size),
        user=f.record("user", _user, default=_ROOT_USER),
        args=f.strings("args", required=True, non_empty=True),
        command_line=f.string("commandLine"),
        env=f.strings("env"),
        cwd=f.string("cwd", required=True, check=_absolute_path_problem),
        capabilities=f.record("capabilities", _capabilities),
        rlimits=f.records("rlimits", _rlimit),
        no_new_privileges=f.boolean("noNewPrivileges", default=False),
        apparmor_profile=f.string("apparmorProfile"),
        oom_score_adj=f.integer("oomScoreAdj", _INT64),
        selinux_label=f.string("selinuxLabel"),
        scheduler=f.record("scheduler", _scheduler),
        io_priority=f.record("ioPriority", _io_priority),
        exec_cpu_affinity=f.record("execCPUAffinity", _exec_cpu_affinity),
    )
    _reject_repeats(f.path_of("rlimits"), [rlimit.type for rlimit in process.rlimits], "type")
    return process


def _hook(f: _Fields) -> Hook:
    return Hook(
        path=f.string("path", required=True, check=_absolute_path_problem),
        args=f.strings("args"),
        env=f.strings("env", default=None),
        timeout=f.integer("timeout", _HOOK_TIMEOUT),
    )


def _hooks(f: _Fields) -> Hooks:
    return Hooks(
        prestart=f.records("prestart", _hook),
        create_runtime=f.records("createRuntime", _hook),
        create_container=f.records("createContainer", _hook),
        start_container=f.records("startContainer", _hook),
        poststart=f.records("poststart", _hook),
        poststop=f.records("poststop", _hook),
    )


def _namespace(f: _Fields) -> Namespace:
    return Namespace(
        type=f.string("type", required=True, choices=NAMESPACE_TYPES),
        path=f.string("path", check=_absolute_path_problem),
    )


def _time_offset(f: _Fields) -> TimeOffset:
    return TimeOffset(secs=f.integer("secs", _INT64), nanosecs=f.integer("nanosecs", _UINT32))


def _time_offsets(f: _Fields) -> MappingProxyType:
    """Offsets of the clocks a time namespace can shift; other keys are unknown properties."""
    return MappingProxyType({
        clock: f.record(clock, _time_offset) for clock in TIME_NAMESPACE_CLOCKS if f.has(clock)
    })


def _device(f: _Fields) -> Device:
    kind = f.string("type", required=True, choices=DEVICE_TYPES)
    if kind != "p":
        f.require("major", f' (only type "p" may leave it out, got "{kind}")')
        f.require("minor", f' (only type "p" may leave it out, got "{kind}")')
    return Device(
        type=kind,
        path=f.string("path", required=True),
        major=f.integer("major", _MAJOR),
        minor=f.integer("minor", _MINOR),
        file_mode=f.integer("fileMode", _FILE_MODE),
        uid=f.integer("uid", _ID),
        gid=f.integer("gid", _ID),
    )


def _net_device(f: _Fields) -> NetDevice:
    return NetDevice(name=f.string("name"))


def _device_rule(f: _Fields) -> DeviceRule:
    return DeviceRule(
        allow=f.boolean("allow", required=True),
        type=f.string("type", choices=DEVICE_RULE_TYPES),
        # absent means every number; a negative one is no device (runc's -1 wildcard is not
        # in the spec, and any other negative number silently became one here)
        major=f.integer("major", _MAJOR),
        minor=f.integer("minor", _MINOR),
        access=f.string("access", check=_device_access_problem),
    )


def _memory(f: _Fields) -> Memory:
    return Memory(
        limit=f.integer("limit", _INT64),
        reservation=f.integer("reservation", _INT64),
        swap=f.integer("swap", _INT64),
        kernel=f.integer("kernel", _INT64),
        kernel_tcp=f.integer("kernelTCP", _INT64),
        swappiness=f.integer("swappiness", _UINT64),
        disable_oom_killer=f.boolean("disableOOMKiller"),
        use_hierarchy=f.boolean("useHierarchy"),
        check_before_update=f.boolean("checkBeforeUpdate"),
    )


def _cpu(f: _Fields) -> CPU:
    return CPU(
        shares=f.integer("shares", _UINT64),
        quota=f.integer("quota", _INT64),
        burst=f.integer("burst", _UINT64),
        period=f.integer("period", _UINT64),
        realtime_runtime=f.integer("realtimeRuntime", _INT64),
        realtime_period=f.integer("realtimePeriod", _UINT64),
        cpus=f.string("cpus"),
        mems=f.string("mems"),
        idle=f.integer("idle", _INT64),
    )


def _pids(f: _Fields) -> Pids:
    return Pids(limit=f.integer("limit", _INT64, required=True))


def _weight_device(f: _Fields) -> WeightDevice:
    device = WeightDevice(
        major=f.integer("major", _INT64, required=True),
        minor=f.integer("minor", _INT64, required=True),
        weight=f.integer("weight", _UINT16),
        leaf_weight=f.integer("leafWeight", _UINT16),
    )
    f.require_any("weight", "leafWeight")
    return device


def _throttle_device(f: _Fields) -> ThrottleDevice:
    return ThrottleDevice(
        major=f.integer("major", _INT64, required=True),
        minor=f.integer("minor", _INT64, required=True),
        rate=f.integer("rate", _UINT64, required=True),
    )


def _block_io(f: _Fields) -> BlockIO:
    return BlockIO(
        weight=f.integer("weight", _UINT16),
        leaf_weight=f.integer("leafWeight", _UINT16),
        weight_device=f.records("weightDevice", _weight_device),
        throttle_read_bps_device=f.records("throttleReadBpsDevice", _throttle_device),
        throttle_write_bps_device=f.records("throttleWriteBpsDevice", _throttle_device),
        throttle_read_iops_device=f.records("throttleReadIOPSDevice", _throttle_device),
        throttle_write_iops_device=f.records("throttleWriteIOPSDevice", _throttle_device),
    )


def _hugepage_limit(f: _Fields) -> HugepageLimit:
    return HugepageLimit(
        page_size=f.string("pageSize", required=True, check=_page_size_problem),
        limit=f.integer("limit", _UINT64, required=True),
    )


def _interface_priority(f: _Fields) -> InterfacePriority:
    return InterfacePriority(
        name=f.string("name", required=True),
        priority=f.integer("priority", _UINT32, required=True),
    )


def _network(f: _Fields) -> Network:
    return Network(
        class_id=f.integer("classID", _UINT32),
        priorities=f.records("priorities", _interface_priority),
    )


def _rdma(f: _Fields) -> Rdma:
    rdma = Rdma(
        hca_handles=f.integer("hcaHandles", _UINT32),
        hca_objects=f.integer("hcaObjects", _UINT32),
    )
    f.require_any("hcaHandles", "hcaObjects")
    return rdma


def _resources(f: _Fields) -> Resources:
    return Resources(
        devices=f.records("devices", _device_rule),
        memory=f.record("memory", _memory),
        cpu=f.record("cpu", _cpu),
        pids=f.record("pids", _pids),
        block_io=f.record("blockIO", _block_io),
        hugepage_limits=f.records("hugepageLimits", _hugepage_limit),
        network=f.record("network", _network),
        rdma=f.record_map("rdma", _rdma),
        unified=f.string_map("unified"),
    )


def _intel_rdt(f: _Fields) -> IntelRdt:
    return IntelRdt(
        clos_id=f.string("closID"),
        l3_cache_schema=f.string("l3CacheSchema"),
        mem_bw_schema=f.string("memBwSchema", check=_mem_bw_schema_problem),
        schemata=f.strings("schemata", check=_no_newline_problem),
        enable_monitoring=f.boolean("enableMonitoring", default=False),
    )


def _check_errno_action(f: _Fields, errno_key: str, action: str, action_key: str) -> None:
    if f.has(errno_key) and action not in SECCOMP_ERRNO_ACTIONS:
        raise ConfigError(
            f.path_of(errno_key),
            f"{action_key} {action} cannot return an errno"
            f" (only {' and '.join(SECCOMP_ERRNO_ACTIONS)} can)",
        )


def _seccomp_arg(f: _Fields) -> SeccompArg:
    return SeccompArg(
        index=f.integer("index", _UINT32, required=True),
        value=f.integer("value", _UINT64, required=True),
        value_two=f.integer("valueTwo", _UINT64),
        op=f.string("op", required=True, choices=SECCOMP_OPERATORS),
    )


def _seccomp_syscall(f: _Fields) -> SeccompSyscall:
    syscall = SeccompSyscall(
        names=f.strings("names", required=True, non_empty=True),
        action=f.string("action", required=True, choices=SECCOMP_ACTIONS),
        errno_ret=f.integer("errnoRet", _UINT32),
        args=f.records("args", _seccomp_arg),
    )
    _check_errno_action(f, "errnoRet", syscall.action, "action")
    return syscall


def _seccomp(f: _Fields) -> Seccomp:
    seccomp = Seccomp(
        default_action=f.string("defaultAction", required=True, choices=SECCOMP_ACTIONS),
        default_errno_ret=f.integer("defaultErrnoRet", _UINT32),
        architectures=f.strings("architectures", choices=SECCOMP_ARCHES),
        flags=f.strings("flags", choices=SECCOMP_FLAGS),
        listener_path=f.string("listenerPath"),
        listener_metadata=f.string("listenerMetadata"),
        syscalls=f.records("syscalls", _seccomp_syscall),
    )
    _check_errno_action(f, "defaultErrnoRet", seccomp.default_action, "defaultAction")
    if f.has("listenerMetadata") and not f.has("listenerPath"):
        raise ConfigError(f.path_of("listenerMetadata"), "must not be set without listenerPath")
    return seccomp


def _personality(f: _Fields) -> Personality:
    personality = Personality(
        domain=f.string("domain", required=True, choices=PERSONALITY_DOMAINS),
        flags=f.strings("flags"),
    )
    if personality.flags:
        raise ConfigError(f.path_of("flags"), "must be empty: the spec defines no flag yet")
    return personality


def _memory_policy(f: _Fields) -> MemoryPolicy:
    return MemoryPolicy(
        mode=f.string("mode", required=True, choices=MEMORY_POLICY_MODES),
        nodes=f.string("nodes"),
        flags=f.strings("flags", choices=MEMORY_POLICY_FLAGS),
    )


def _linux(f: _Fields) -> Linux:
    linux = Linux(
        namespaces=f.records("namespaces", _namespace),
        uid_mappings=_id_mappings(f, "uidMappings"),
        gid_mappings=_id_mappings(f, "gidMappings"),
        time_offsets=f.record("timeOffsets", _time_offsets, default=_EMPTY_MAP),
        devices=f.records("devices", _device),
        net_devices=f.record_map("netDevices", _net_device),
        cgroups_path=f.string("cgroupsPath"),
        resources=f.record("resources", _resources),
        intel_rdt=f.record("intelRdt", _intel_rdt),
        rootfs_propagation=f.string("rootfsPropagation", choices=ROOTFS_PROPAGATIONS),
        seccomp=f.record("seccomp", _seccomp),
        sysctl=f.string_map("sysctl"),
        masked_paths=f.strings("maskedPaths", check=_absolute_path_problem),
        readonly_paths=f.strings("readonlyPaths", check=_absolute_path_problem),
        mount_label=f.string("mountLabel"),
        personality=f.record("personality", _personality),
        memory_policy=f.record("memoryPolicy", _memory_policy),
    )
    _reject_repeats(f.path_of("namespaces"), [ns.type for ns in linux.namespaces], "type")
    return linux


_NO_HOOKS = Hooks()
_NO_LINUX = Linux()


def _config(f: _Fields) -> Config:
    return Config(
        oci_version=f.string("ociVersion", required=True, check=_oci_version_problem),
        root=f.record("root", _root),
        mounts=f.records("mounts", _mount),
        process=f.record("process", _process),
        hostname=f.string("hostname"),
        domainname=f.string("domainname"),
        hooks=f.record("hooks", _hooks, default=_NO_HOOKS),
        annotations=f.string_map("annotations"),
        linux=f.record("linux", _linux, default=_NO_LINUX),
    )


# ---------------------------------------------------------------------------------------------
# Public entry points.


def parse_config(doc: object) -> Config:
    """The typed config for a decoded config.json; ConfigError names the first problem."""
    if type(doc) is not dict:
        raise ConfigError("", f"config.json must hold a JSON object, got {_shown(doc)}")
    return _config(_Fields(doc, ""))


def load_config(bundle_dir: str) -> Config:
    """Read, decode and parse <bundle_dir>/config.json."""
    return parse_config(read_config(bundle_dir))


def read_config(bundle_dir: str):
    """<bundle_dir>/config.json read and decoded (not yet checked: parse_config does):
    create keeps linux.resources as written, so it decodes the file once for both."""
    path = paths.join(bundle_dir, "config.json")
    try:
        with open(path, "rb") as file:
            data = file.read()
    except FileNotFoundError:
        raise ConfigError("", f"config.json not found in bundle {bundle_dir}") from None
    except OSError as err:
        raise ConfigError("", f"cannot read {path}: {err.strerror}") from None
    return _decode(data)


def _decode(data: bytes, name: str = "config.json", root: str = ""):
    """Strict JSON: UTF-8, no NaN/Infinity, and no key repeated within an object (spec MUST).

    `name` names the document in messages; `root` is the JSON path of its top object.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - data.rfind(b"\n", 0, err.start)
        raise ConfigError("", f"{name} is not valid UTF-8 (line {line} column {column})") from None
    # jsonlite, not json: `import json` (re, enum) would cost more than this whole module.
    # Its errors are json.JSONDecodeError, json being imported on that path only.
    from ociruntime import jsonlite

    repeats = []

    def unique_keys(pairs):
        obj = dict(pairs)
        if len(obj) != len(pairs) and not repeats:
            repeats.append((obj, _first_repeat(key for key, _ in pairs)))
        return obj

    def no_constant(constant):
        raise ConfigError("", f"{name} is not valid JSON: {constant} is not a JSON value")

    try:
        doc = jsonlite.loads(text, object_pairs_hook=unique_keys, parse_constant=no_constant)
    except ValueError as err:
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(
            "", f"{name} is not valid JSON: {err.msg} (line {err.lineno} column {err.colno})"
        ) from None
    if repeats:
        obj, key = repeats[0]
        where = _path_to(doc, obj, root)
        raise ConfigError(
            f"{where}.{key}" if where else key, "appears twice in one object (keys must be unique)"
        )
    return doc


def _first_repeat(keys):
    seen = set()
    for key in keys:
        if key in seen:
            return key
        seen.add(key)
    return None


def _path_to(node, target, path: str):
    """The JSON path of the object `target` inside `node` (found by identity), or None.
    A walk with its own stack: a document may nest deeper than Python may recurse."""
    stack = [(path, node)]
    while stack:
        path, node = stack.pop()
        if node is target:
            return path
        if type(node) is dict:
            children = [(f"{path}.{key}" if path else key, value) for key, value in node.items()]
        elif type(node) is list:
            children = [(f"{path}[{index}]", value) for index, value in enumerate(node)]
        else:
            continue
        stack.extend(reversed(children))
    return None


def parse_id(text: str, what: str) -> int:
    """A uid or gid given as text (exec --user, --additional-gids): decimal digits only and
    a real id (0..4294967294), like process.user; ConfigError names `what`."""
    # no int() of thousands of digits (Python refuses those with its own error)
    if not (text.isascii() and text.isdigit() and len(text.lstrip("0")) <= 10):
        raise ConfigError(what, f"must be {_ID[0]}, got {_shown(text)}")
    return _integer(int(text), what, _ID)


def parse_resources(doc: object, path: str = "") -> Resources:
    """A `linux.resources` object on its own (runc update --resources FILE); errors name
    paths below `path`."""
    return _resources(_Fields(doc, path))


def load_resources(data: bytes) -> Resources:
    """Decode and parse the LinuxResources JSON of `update -r`."""
    return parse_resources(_decode(data, "the resources JSON"))


def decode_process(data: bytes, name: str = "the process JSON") -> Process:
    """Parse a `process` object given as bytes (the shim's Exec carries one)."""
    return _process(_Fields(_decode(data, name, "process"), "process"))


def load_process(path: str) -> Process:
    """Read a `process` object on its own (runc exec --process FILE)."""
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as err:
        raise ConfigError("", f"cannot read {path}: {err.strerror}") from None
    return _process(_Fields(_decode(data, path, "process"), "process"))
