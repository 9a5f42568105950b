"""runc's `run`: create + start, then wait for the program, forward signals, and delete.

The caller becomes a child subreaper first, so the container's init (whose direct parent,
the intermediate process, exits during create) is reparented to it and can be waited for.
"""

import posix

from ociruntime.errors import PyruncError
from ociruntime.libcontainer import syscalls as sc

# runc's rule: the pty master goes to --console-socket only when the runtime does not stay
# to relay it itself (detached), and only when there is a terminal
CONSOLE_SOCKET_IN_FOREGROUND = ("--console-socket is only for a detached process with a "
                                "terminal (-d and terminal true)")

FORWARDED = ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGWINCH",
             "SIGCONT")


def run(container, opts, detach=False, keep=False):
    """Returns the program's exit status (128+N when killed by signal N)."""
    # start's module now, not after the create: imported once the init is cloned, its
    # writes land on pages shared copy-on-write with the init (or left write-protected
    # by its fork), ~0.35 ms of CPU against ~0.1 here (importtime)
    from ociruntime.libcontainer import start  # noqa: F401

    if detach:
        container.create(opts)
        container.start()
        return 0
    if opts.console_socket:
        raise PyruncError(CONSOLE_SOCKET_IN_FOREGROUND)
    sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
    masters = []
    if not opts.console_socket:
        opts.keep_console = masters.append  # a terminal config: we relay the pty
    # without a terminal the program gets pipes we copy (with one, the pty replaces them)
    from ociruntime.libcontainer.stdio import foreground_pipes

    pipes = foreground_pipes(False, False, opts.stdio)
    if pipes:
        opts.stdio = pipes.child
    try:
        pid = container.create(opts)
        try:
            if pipes:
                pipes.started(pid)
            collect_cycles_again()
            forward_signals(pid)
            container.start()
            if masters:
                from ociruntime.libcontainer.console import relay

                relay(masters[0], pid)
            elif pipes:
                pipes.relay(pid)
            status = wait_for(pid)
        except BaseException:
            try:
                container.delete(force=True)
            except Exception:
                pass
            raise
    finally:
        if pipes:
            pipes.close()
    if not keep:
        container.delete(force=True)
    return status


def collect_cycles_again():
    """The launcher turns the cyclic garbage collector off (a one-shot call frees its
    memory at exit); a call that waits for a program (run or exec in the foreground,
    events) may live for days, so it collects again from here on, with everything made so
    far frozen (never scanned: its imports and the create are not garbage)."""
    import gc

    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def forward_signals(pid):
    """Pass the signals a user sends us (Ctrl-C, kill) on to the container process (our
    child until wait_for reaps it), for the rest of this process's life: a C handler sends
    each through a pidfd, so none reaches another process that got the pid after it.
    Nothing is blocked: the hooks run after this inherit no signal mask, and execve
    resets the handled signals to their defaults."""
    from ociruntime._native._sys import SIGNALS
    from ociruntime._native._sys import forward_signals as forward

    try:
        pidfd = posix.pidfd_open(pid)
    except ProcessLookupError:
        return  # reaped already: nothing left to signal
    forward(pidfd, [SIGNALS[name] for name in FORWARDED])


def wait_for(pid):
    """Reap children (orphans are reparented to us) until pid exits; its exit status."""
    while True:
        try:
            reaped, status = posix.waitpid(-1, 0)
        except ChildProcessError:
            return 255
        if reaped == pid:
            if posix.WIFSIGNALED(status):
                return 128 + posix.WTERMSIG(status)
            return posix.WEXITSTATUS(status)
