"""Capability names -> bit masks for the exec stage, with the spec's warning rules.

Unknown names, and names this runtime cannot grant because it lacks them itself (here:
CAP_SYS_RESOURCE), are warnings, not errors (runtime-spec: "MUST log a warning; SHOULD NOT
fail").  The stage receives plain 64-bit masks.
"""

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


def last_cap():
    """The highest capability number this kernel knows."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return len(NAMES) - 1


def own_permitted(field="CapPrm:"):
    """The runtime's own permitted set: what it can possibly hand on."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1], 16)
    return 0


def masks(caps, warn, new_userns=False):
    """{set name: mask} for a Capabilities record; warn(msg) once for the names that are
    skipped, all of them on one line (runc 1.1: "ignoring unknown or unavailable
    capabilities: [...]", sorted, each name once whatever sets it is in).
    new_userns: the container gets a user namespace of its own, where it has every
    capability of the runtime's bounding set (an unprivileged caller has none permitted)."""
    limit = last_cap()
    have = own_permitted("CapBnd:" if new_userns else "CapPrm:")
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
