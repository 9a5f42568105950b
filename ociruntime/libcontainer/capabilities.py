"""Capability names -> bit masks for the exec stage, with the spec's warning rules.

Unknown names, and names this runtime cannot grant because it lacks them itself (here:
CAP_SYS_RESOURCE), are warnings, not errors (runtime-spec: "MUST log a warning; SHOULD NOT
fail").  The stage receives plain 64-bit masks.
"""

from ociruntime import paths

NAMES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)
BITS = {name: bit for bit, name in enumerate(NAMES)}
SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")


_last_cap = []  # the kernel's, read once: it never changes while the kernel runs


def last_cap():
    """The highest capability number this kernel knows."""
    if not _last_cap:
        try:
            _last_cap.append(int(paths.read_bytes("/proc/sys/kernel/cap_last_cap")))
        except (OSError, ValueError):
            return len(NAMES) - 1
    return _last_cap[0]


def own_permitted(field="CapPrm:", status=None):
    """The runtime's own permitted set: what it can possibly hand on."""
    value = status_field(field, status)
    return 0 if value is None else int(value, 16)


def read_status():
    """/proc/self/status (bytes) for a caller that wants several of its fields (create: the
    umask and a capability set), or None when it cannot be read (each field's reader then
    tries itself, and reports)."""
    try:
        return paths.read_bytes("/proc/self/status")
    except OSError:
        return None


def status_field(field, status=None):
    """The value (bytes) of a /proc/self/status line ("CapPrm:", "Umask:"), or None.
    status: read_status(), when the caller has it already."""
    data = b"\n" + (paths.read_bytes("/proc/self/status") if status is None else status)
    at = data.find(b"\n" + field.encode())
    if at < 0:
        return None
    end = data.find(b"\n", at + 1)
    return data[at + 1 + len(field):end if end > 0 else len(data)].strip()


def masks(caps, warn, new_userns=False, status=None):
    """{set name: mask} for a Capabilities record; warn(msg) once for the names that are
    skipped, all of them on one line (runc 1.1: "ignoring unknown or unavailable
    capabilities: [...]", sorted, each name once whatever sets it is in).
    new_userns: the container gets a user namespace of its own, where it has every
    capability of the runtime's bounding set (an unprivileged caller has none permitted).
    status: read_status(), when the caller has it already."""
    limit = last_cap()
    have = own_permitted("CapBnd:" if new_userns else "CapPrm:", status)
    result = {}
    unknown, lacking = set(), set()
    for set_name in SETS:
        mask = 0
        for name in getattr(caps, set_name) or ():
            bit = BITS.get(name)
            if bit is None or bit > limit:
                unknown.add(name)
            elif not have >> bit & 1:
                lacking.add(name)
            else:
                mask |= 1 << bit
        result[set_name] = mask
    if unknown:
        warn("process.capabilities: ignoring unknown or unavailable capabilities: "
             f"[{' '.join(sorted(unknown))}]")
    if lacking:
        warn("process.capabilities: ignoring capabilities the runtime itself does not "
             f"have: [{' '.join(sorted(lacking))}]")
    return result
