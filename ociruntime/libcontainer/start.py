"""start: release a created container's process from the exec stage (exec.fifo), then run
the poststart hooks; a failed startContainer or poststart hook deletes the container.

Its own module, which Container.start calls: `pyrunc start` reads none of the other
operations' code (container.py and its two classes, as kill.py and delete.py), nor os
(posix and ociruntime.paths: see there).
"""

import posix

from ociruntime import log
from ociruntime.errors import HookError, PyruncError, WrongState
from ociruntime.state import CREATED, RUNNING


def start(st):
    """st: the container's ContainerState."""
    with st.locked():
        st.load()
        status = st.status()
        if status != CREATED:
            raise WrongState(f"cannot start a container in the {status} state "
                             "(it must be created)")
        if not st.record.get("has_process"):
            raise WrongState("cannot start: config.json has no process")
        failure = _release_fifo(st.fifo_path, st.record)
        if failure is None:
            try:
                if st.record.get("hooks", {}).get("poststart"):
                    from ociruntime.libcontainer.hooks import run_recorded

                    run_recorded(st.record, st.id, "poststart", RUNNING,
                                 warn=_poststart_warn(st.record))
            except PyruncError as e:
                failure = str(e)
    if failure is not None:
        # a failed startContainer or poststart hook: stop and destroy (spec steps 12-13)
        from ociruntime.libcontainer.delete import delete

        delete(st, force=True)
        raise HookError(failure)


def _poststart_warn(record):
    """Before runtime-spec 1.3.0 a failing poststart hook was only a warning."""
    version = record.get("config_oci_version", "1.3.0")
    major_minor = tuple(int(x) for x in version.split("-")[0].split(".")[:2])
    return log.warn if major_minor < (1, 3) else None


STAGE_EXE = "/memfd:pyrunc-stage"  # /proc/PID/exe of a process still in the exec stage
HOOK_FAILURE = b"hooks.startContainer["  # how the stage's failure answer begins, after "1"


def _release_fifo(fifo_path, record):
    """Open exec.fifo for reading: the parked stage's open completes, it runs the
    startContainer hooks and answers "0" (going to exec the program) or "1<why>".  Returns
    None, or the failure text.  Reads to EOF: the stage keeps the fifo open until execve
    closes it, so poststart hooks run after the program is executed.

    What was read only explains; the process decides.  Nobody but root can reach the
    fifo, but a start must neither hang nor destroy a container over it: it stops waiting
    once the process has left the stage (exec'd the program) or died; garbage written into
    the fifo makes no failure while the program runs; a stage that someone else released
    (the program runs, nothing came to us) is reported, and the container left alone."""
    import select
    import time

    from ociruntime.state import process_alive

    pid, start_time = record["pid"], record["pid_start"]
    fd = posix.open(fifo_path, posix.O_RDONLY | posix.O_NONBLOCK | posix.O_CLOEXEC)
    answer = b""
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while True:
            if poller.poll(100):
                data = posix.read(fd, 4096)
                if data:
                    answer += data
                    if answer == b"0":
                        continue  # the usual answer: EOF follows at execve
                elif answer:
                    break  # EOF after the answer: the stage exec'd the program, or died
                else:
                    time.sleep(0.01)  # a writer came and went without a word
            if not process_alive(pid, start_time) or _left_stage(pid):
                break
    finally:
        posix.close(fd)
    posix.unlink(fifo_path)
    if answer == b"0":
        return None
    hook_failed = answer.find(b"1" + HOOK_FAILURE)
    if process_alive(pid, start_time) and _left_stage(pid):
        if not answer:
            raise WrongState("cannot start an already running container (another process "
                              "opened its exec.fifo)")
        log.warn(f"exec.fifo: unexpected data {answer[:64]!r}; the program runs")
        return None
    if hook_failed >= 0:
        return answer[hook_failed + 1:].decode(errors="replace")
    if b"0" in answer:  # the stage's "0" among someone else's bytes; the program ran
        log.warn(f"exec.fifo: unexpected data {answer[:64]!r}")
        return None
    raise WrongState("container process exited before it could start")


def _left_stage(pid):
    """The process has exec'd something else than the stage (the container's program)."""
    try:
        return not posix.readlink(f"/proc/{pid}/exe").startswith(STAGE_EXE)
    except OSError:
        return False  # gone (the caller checks that), or not ours to look at
