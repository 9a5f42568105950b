"""kill: signal a container's init, through a pidfd checked against its start time, or
with --all every process left in its cgroup.

Its own module, which Container.kill calls: `pyrunc kill` reads none of the other
operations' code (container.py and its two classes: ~0.45 ms of a fresh process's CPU).
"""

import posix

from ociruntime.errors import WrongState
from ociruntime.state import proc_stat


def kill(st, signum, all_processes=False):
    """st: the container's ContainerState (loaded here).  A created, running or paused
    container's init is signalled alike: all kill needs to know is that the init is
    alive and still ours, which signal_init checks through its pidfd (the status would
    also read the freezer and look for exec.fifo, for nothing)."""
    st.load()
    if all_processes:
        # as runc: every process left in the cgroup, even of a stopped container
        from ociruntime.libcontainer import cgroups

        pids = cgroups.from_record(st.record["cgroup"]).pids()
        for pid in pids:
            try:
                posix.kill(pid, signum)
            except ProcessLookupError:
                pass
        if pids or st.record["cgroup"].get("version") != 0:
            return
    if st.creating or not st.record.get("pid"):
        raise WrongState("container not running")
    signal_init(st.record, signum)


def signal_init(record, signum):
    """Signal the container's init through a pidfd, after checking that the pid is still
    the process we started (never a bare, possibly reused, pid) and has not exited (a
    zombie's container is stopped)."""
    from ociruntime._native._sys import pidfd_send_signal

    try:
        pidfd = posix.pidfd_open(record["pid"])
    except ProcessLookupError:
        raise WrongState("container not running") from None
    try:
        stat = proc_stat(record["pid"])
        if stat is None or stat[1] != record["pid_start"] or stat[0] in ("Z", "X"):
            raise WrongState("container not running")
        pidfd_send_signal(pidfd, signum)
    finally:
        posix.close(pidfd)
