"""Process attributes the kernel keeps across execve, set by Python before the exec stage:
process.scheduler (sched_setattr), process.ioPriority (ioprio_set), linux.personality
(personality), the session keyring (keyctl), and for `exec` process.execCPUAffinity.

check() validates before anything exists; the apply functions run in the container init
(create) or in the forked child of `exec` just before it becomes the exec stage.
"""

import posix

from ociruntime.errors import PyruncError
from ociruntime.libcontainer import syscalls as sc

SCHED_POLICIES = {"SCHED_OTHER": 0, "SCHED_FIFO": 1, "SCHED_RR": 2, "SCHED_BATCH": 3,
                  "SCHED_ISO": 4, "SCHED_IDLE": 5, "SCHED_DEADLINE": 6}
SCHED_FLAGS = {"SCHED_FLAG_RESET_ON_FORK": 0x01, "SCHED_FLAG_RECLAIM": 0x02,
               "SCHED_FLAG_DL_OVERRUN": 0x04, "SCHED_FLAG_KEEP_POLICY": 0x08,
               "SCHED_FLAG_KEEP_PARAMS": 0x10, "SCHED_FLAG_UTIL_CLAMP_MIN": 0x20,
               "SCHED_FLAG_UTIL_CLAMP_MAX": 0x40}
IOPRIO_CLASSES = {"IOPRIO_CLASS_RT": 1, "IOPRIO_CLASS_BE": 2, "IOPRIO_CLASS_IDLE": 3}
_IOPRIO_CLASS_SHIFT = 13
PERSONALITIES = {"LINUX": 0x0000, "LINUX32": 0x0008}
MEMPOLICY_MODES = {"MPOL_DEFAULT": 0, "MPOL_PREFERRED": 1, "MPOL_BIND": 2,
                   "MPOL_INTERLEAVE": 3, "MPOL_LOCAL": 4, "MPOL_PREFERRED_MANY": 5,
                   "MPOL_WEIGHTED_INTERLEAVE": 6}
MEMPOLICY_FLAGS = {"MPOL_F_STATIC_NODES": 1 << 15, "MPOL_F_RELATIVE_NODES": 1 << 14,
                   "MPOL_F_NUMA_BALANCING": 1 << 13}
# KEY_POS_ALL | KEY_USR_VIEW | KEY_USR_READ | KEY_USR_SEARCH | KEY_USR_LINK
_KEYRING_PERM = 0x3F1B0000


def check(proc):
    if proc is None:
        return
    s = proc.scheduler
    if s is not None:
        if not -20 <= s.nice <= 19:
            raise PyruncError(f"process.scheduler.nice: {s.nice} is not in -20..19")
        realtime = s.policy in ("SCHED_FIFO", "SCHED_RR")
        if s.priority and not realtime:
            raise PyruncError("process.scheduler.priority: only SCHED_FIFO and SCHED_RR take "
                              f"a priority, the policy is {s.policy}")
        if realtime and not 1 <= s.priority <= 99:
            raise PyruncError(f"process.scheduler.priority: {s.policy} needs a priority in "
                              f"1..99, got {s.priority}")
        if s.policy != "SCHED_DEADLINE" and (s.runtime or s.deadline or s.period):
            raise PyruncError("process.scheduler: runtime, deadline and period are only for "
                              "SCHED_DEADLINE")
    if proc.exec_cpu_affinity is not None:
        for field in ("initial", "final"):
            value = getattr(proc.exec_cpu_affinity, field)
            if value is not None:
                cpus(value, f"process.execCPUAffinity.{field}")


def cpus(text, where="execCPUAffinity"):
    """The set of numbers (CPUs, NUMA nodes) in a list such as "0-3,7"."""
    result = set()
    try:
        for part in text.split(","):
            part = part.strip()
            if not part:
                continue
            low, _, high = part.partition("-")
            low = int(low)
            high = int(high) if high else low
            if low < 0 or high < low:
                raise ValueError
            result.update(range(low, high + 1))
    except ValueError:
        raise PyruncError(f"{where}: {text!r} is not a list such as \"0-3,7\"") from None
    if not result:
        raise PyruncError(f"{where}: the list is empty")
    return result


def set_scheduler(s):
    flags = 0
    for name in s.flags:
        flags |= SCHED_FLAGS[name]
    try:
        sc.sched_setattr(SCHED_POLICIES[s.policy], flags, s.nice, s.priority, s.runtime,
                         s.deadline, s.period)
    except OSError as e:
        raise PyruncError(f"process.scheduler: sched_setattr({s.policy}): {e.strerror}") from None


def set_io_priority(io, which, who=0):
    value = IOPRIO_CLASSES[io.class_] << _IOPRIO_CLASS_SHIFT | io.priority
    try:
        sc.ioprio_set(which, who, value)
    except OSError as e:
        raise PyruncError(f"process.ioPriority: ioprio_set: {e.strerror}") from None


def join_keyring(container_id):
    """A session keyring of the container's own, so that no key of the caller's session
    is reachable from it (runc's name: _ses.<id>)."""
    try:
        serial = sc.join_session_keyring(f"_ses.{container_id}")
        # the new keyring's default permissions plus "search" for its user, so that an
        # exec'd process finds it by name and joins it rather than making another
        sc.keyctl_setperm(serial, _KEYRING_PERM)
    except OSError as e:
        if e.errno != 38:  # ENOSYS: a kernel without keys, nothing to isolate
            raise PyruncError(f"creating the session keyring: {e.strerror}") from None


def set_personality(domain):
    """The execution domain (linux.personality), kept across execve; exec'd processes of
    the container get the same one."""
    try:
        sc.personality(PERSONALITIES[domain])
    except OSError as e:
        raise PyruncError(f"linux.personality: {e.strerror}") from None


def memory_policy(policy):
    """(mode with flag bits, node set) for linux.memoryPolicy, checked as the spec says:
    DEFAULT and LOCAL take no nodes; BIND, INTERLEAVE (and the weighted and "many"
    variants) need at least one."""
    where = "linux.memoryPolicy"
    nodes = cpus(policy.nodes, f"{where}.nodes") if policy.nodes else set()
    if policy.mode in ("MPOL_DEFAULT", "MPOL_LOCAL") and nodes:
        raise PyruncError(f"{where}.nodes: {policy.mode} takes no nodes")
    if policy.mode in ("MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_WEIGHTED_INTERLEAVE",
                       "MPOL_PREFERRED_MANY") and not nodes:
        raise PyruncError(f"{where}.nodes: {policy.mode} needs at least one node")
    mode = MEMPOLICY_MODES[policy.mode]
    for flag in policy.flags:
        mode |= MEMPOLICY_FLAGS[flag]
    return mode, nodes


def set_memory_policy(policy):
    """The process memory policy, kept across fork and execve (set_mempolicy(2))."""
    mode, nodes = memory_policy(policy)
    try:
        sc.set_mempolicy(mode, nodes)
    except OSError as e:
        raise PyruncError(f"linux.memoryPolicy: {policy.mode} {policy.nodes or ''}: "
                          f"{e.strerror}") from None


def apply_in_init(cfg, container_id, new_keyring=True):
    """In the container init, after setsid (it leads its own process group), before the
    exec stage: what the kernel keeps for the program across execve."""
    if new_keyring:
        join_keyring(container_id)
    if cfg.linux.personality is not None:
        set_personality(cfg.linux.personality.domain)
    if cfg.linux.memory_policy is not None:
        set_memory_policy(cfg.linux.memory_policy)
    proc = cfg.process
    if proc is None:
        return
    if proc.io_priority is not None:
        # the spec: for the process group, which the init leads (and the program inherits)
        set_io_priority(proc.io_priority, sc.IOPRIO_WHO_PGRP)
    if proc.scheduler is not None:
        set_scheduler(proc.scheduler)


def apply_for_exec(proc):
    """In the forked child of `exec`, before the stage joins the container's cgroup: the
    scheduler, the I/O priority, and the initial CPU affinity."""
    if proc.exec_cpu_affinity is not None and proc.exec_cpu_affinity.initial:
        try:
            posix.sched_setaffinity(0, cpus(proc.exec_cpu_affinity.initial,
                                         "process.execCPUAffinity.initial"))
        except OSError as e:
            raise PyruncError(f"process.execCPUAffinity.initial: {e.strerror}") from None
    if proc.io_priority is not None:
        set_io_priority(proc.io_priority, sc.IOPRIO_WHO_PROCESS)
    if proc.scheduler is not None:
        set_scheduler(proc.scheduler)


def final_cpus(proc):
    """The CPUs for the stage to move to once in the cgroup (plan key cpu=N), or ()."""
    if proc.exec_cpu_affinity is None or not proc.exec_cpu_affinity.final:
        return ()
    return sorted(cpus(proc.exec_cpu_affinity.final, "process.execCPUAffinity.final"))
