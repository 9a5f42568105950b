"""containerd.task.v2.Task: the task service, over the runtime library in this process.

Every call that may block (on a process, a hook, a worker) runs in a ttrpc thread of its
own; the few that only read a little state (INLINE) run on the connection's reader
thread, with no hand-off to another thread on their path.  The runtime
(ociruntime.libcontainer) is called in-process (no pyrunc process per operation), except
what forks: Create and Exec run in a worker process (shim.forkserver, shim/__init__.py).
Each container init and exec'd process ends up this process's child (it is a
subreaper), so the reaper (shim.reaper) sees every exit and completes the matching Proc.
"""

import os
import sys
import threading
import time

from ociruntime import errors
from ociruntime.errors import PyruncError, WrongState
from shim import messages as pb
from shim import ttrpc
from shim.stdio import ProcessIO, StdioError

ev = pb  # the events' messages (containerd.events) are there too

SERVICE = "containerd.task.v2.Task"
RUNC_OPTIONS = "containerd.runc.v1.Options"
STATUS_NAMES = {"created": pb.CREATED, "running": pb.RUNNING, "stopped": pb.STOPPED,
                "paused": pb.PAUSED}
_timestamp = pb.timestamp
# the calls that never block long (a read of state.json, /proc, a cgroup file, an ioctl;
# Wait only registers its deferred answer): ttrpc runs them on the connection's own thread
# (shim.ttrpc.Server.register).  Stats is not one: its first call imports protobuf's
# runtime, and it reads many files.
INLINE = ("Connect", "State", "Pids", "CloseIO", "ResizePty", "Shutdown", "Wait")


def _error(code, message):
    return ttrpc.TTRPCError(code, message)


# the runtime's error types as containerd's errdefs codes
ERROR_CODES = ((errors.NotFound, ttrpc.NOT_FOUND), (errors.AlreadyExists, ttrpc.ALREADY_EXISTS),
               (errors.WrongState, ttrpc.FAILED_PRECONDITION),
               (errors.InvalidConfig, ttrpc.INVALID_ARGUMENT),
               (errors.HostLimit, ttrpc.UNAVAILABLE))


def error_code(error):
    """The ttrpc code for a runtime error (UNKNOWN for an untyped or internal one)."""
    for error_type, code in ERROR_CODES:
        if isinstance(error, error_type):
            return code
    return ttrpc.UNKNOWN


class Proc:
    """One supervised process: a task's init (exec_id "") or one of its execs."""

    def __init__(self, task_id, exec_id, io, spec=None):
        self.task_id = task_id
        self.exec_id = exec_id
        self.io = io
        self.spec = spec  # an exec's Process (JSON, checked by Exec)
        self.pid = 0
        self.started = False
        self.exit_status = 0
        self.exited_at = 0
        self.exited = threading.Event()
        self._exit_lock = threading.Lock()
        self._on_exit = []  # what waits for the exit (a Wait's deferred answer)
        self._start_lock = threading.Lock()
        self._starting = False
        self._deferred_exit = None

    # containerd must see /tasks/start (or exec-started) before /tasks/exit: an exit that
    # the reaper delivers while Start has not yet published waits for Start to finish
    def begin_start(self):
        with self._start_lock:
            self._starting = True

    def end_start(self):
        with self._start_lock:
            self._starting = False
            deferred, self._deferred_exit = self._deferred_exit, None
        if deferred is not None:
            deferred()

    def exit_after_start(self, finish):
        with self._start_lock:
            if self._starting:
                self._deferred_exit = finish
                return
        finish()

    def on_exit(self, fn):
        """Call fn() once the process has exited: at once if it has."""
        with self._exit_lock:
            if not self.exited.is_set():
                self._on_exit.append(fn)
                return
        fn()

    def set_exited(self, code, when, then=None):
        """The exit is known (State reports it), then(), then what waited is done."""
        self.exit_status = code
        self.exited_at = when
        with self._exit_lock:
            self.exited.set()
            waiting, self._on_exit = self._on_exit, []
        if then is not None:
            then()
        for fn in waiting:
            try:
                fn()
            except Exception as e:  # one failed answer must not stop the exit's event
                sys.stderr.write(f"shim: after the exit of {self.pid}: {e}\n")

    def status(self):
        if self.exited.is_set():
            return pb.STOPPED
        return pb.RUNNING if self.started else pb.CREATED


class Task:
    def __init__(self, task_id, bundle, container, init, rootfs_mounts):
        self.id = task_id
        self.bundle = bundle
        self.container = container
        self.init = init
        self.rootfs_mounts = rootfs_mounts  # how many mounts we stacked on bundle/rootfs
        self.execs = {}
        self.lock = threading.Lock()
        self.oom_kills = 0
        self.manager = None  # its cgroup manager, once needed


class TaskService:
    def __init__(self, root, reaper, publisher, cgroup_v2, workers, debug=False):
        self.root = root
        self.reaper = reaper
        self.publisher = publisher
        self.cgroup_v2 = cgroup_v2
        self.debug = debug
        self.workers = workers  # shim.forkserver's: where containers are forked
        self.tasks = {}
        self.lock = threading.Lock()
        self.creating = set()
        self.last_activity = time.monotonic()

    def handlers(self):
        """Method name -> handler(bytes) -> bytes, for the ttrpc server."""
        methods = {}
        for name, request_type in (
                ("State", pb.StateRequest), ("Create", pb.CreateTaskRequest),
                ("Start", pb.StartRequest), ("Delete", pb.DeleteRequest),
                ("Pids", pb.PidsRequest), ("Pause", pb.PauseRequest),
                ("Resume", pb.ResumeRequest), ("Checkpoint", pb.CheckpointTaskRequest),
                ("Kill", pb.KillRequest), ("Exec", pb.ExecProcessRequest),
                ("ResizePty", pb.ResizePtyRequest), ("CloseIO", pb.CloseIORequest),
                ("Update", pb.UpdateTaskRequest), ("Wait", pb.WaitRequest),
                ("Stats", pb.StatsRequest), ("Connect", pb.ConnectRequest),
                ("Shutdown", pb.ShutdownRequest)):
            methods[name] = self._wrap(name, getattr(self, name.lower()), request_type)
        return methods

    def _wrap(self, name, method, request_type):
        def handler(payload):
            self.last_activity = time.monotonic()
            request = request_type()
            try:
                request.ParseFromString(payload)
            except Exception as e:
                raise _error(ttrpc.INVALID_ARGUMENT, f"{name}: bad request: {e}") from None
            if self.debug:
                sys.stderr.write(f"shim: {name} {str(request).strip()}\n")
            started = time.monotonic()
            try:
                response = method(request)
                if self.debug:
                    sys.stderr.write(f"shim: {name} took "
                                     f"{(time.monotonic() - started) * 1000:.1f} ms\n")
            except PyruncError as e:
                raise _error(error_code(e), str(e)) from None
            except StdioError as e:
                raise _error(ttrpc.INVALID_ARGUMENT, f"{name}: {e}") from None
            except OSError as e:
                raise _error(error_code(errors.from_os_error(e, "")), f"{name}: {e}") from None
            if isinstance(response, ttrpc.Deferred):
                return response
            return (response or pb.Empty()).SerializeToString()
        return handler

    def _process_io(self, req):
        """A Create's or Exec's stdio (a logging binary learns the task and namespace)."""
        return ProcessIO(req.stdin, req.stdout, req.stderr, req.terminal, task_id=req.id,
                         namespace=self.publisher.namespace)

    # --- lookups --------------------------------------------------------------------------
    def _task(self, task_id):
        task = self.tasks.get(task_id)
        if task is None:
            raise _error(ttrpc.NOT_FOUND, f"task {task_id}: not found")
        return task

    def _proc(self, task_id, exec_id):
        task = self._task(task_id)
        if not exec_id:
            return task, task.init
        proc = task.execs.get(exec_id)
        if proc is None:
            raise _error(ttrpc.NOT_FOUND, f"process {exec_id} of task {task_id}: not found")
        return task, proc

    # --- create / start -------------------------------------------------------------------
    def create(self, req):
        if req.checkpoint:
            raise _error(ttrpc.UNIMPLEMENTED, "checkpoint/restore is not supported")
        with self.lock:
            if req.id in self.tasks or req.id in self.creating:
                raise _error(ttrpc.ALREADY_EXISTS, f"task {req.id}: already exists")
            self.creating.add(req.id)
        try:
            return self._create(req)
        finally:
            with self.lock:
                self.creating.discard(req.id)

    def _create(self, req):
        from ociruntime.libcontainer.container import Container

        request = {"op": "create", "root": self.root, "id": req.id, "bundle": req.bundle,
                   "no_pivot": False, "no_new_keyring": False, "terminal": req.terminal}
        if req.options.type_url.endswith(RUNC_OPTIONS):
            options = pb.RuncOptions.FromString(req.options.value)
            request["no_pivot"] = options.no_pivot_root
            request["no_new_keyring"] = options.no_new_keyring
        mounted = 0
        rootfs = os.path.join(req.bundle, "rootfs")
        if req.rootfs:
            from shim.rootfs import mount_all

            os.makedirs(rootfs, 0o711, exist_ok=True)
            mounted = mount_all(req.rootfs, rootfs)
        io = self._process_io(req)
        masters = []
        try:
            # made by a worker (shim.forkserver): nothing is forked here (shim/__init__.py)
            reply, masters = self.workers.call(request, io.child_fds())
            pid = reply["pid"]
        except BaseException:
            io.close()
            for fd in masters:
                os.close(fd)
            if mounted:
                from shim.rootfs import unmount_all

                unmount_all(rootfs, mounted)
            raise
        io.after_spawn()
        if masters:
            io.attach_console(masters[0])
        init = Proc(req.id, "", io)
        init.pid = pid
        task = Task(req.id, req.bundle, Container(self.root, req.id), init, mounted)
        with self.lock:
            self.tasks[req.id] = task
        self.reaper.register(pid, lambda code, when: self._exited(task, init, code, when))
        # the record and the cgroup manager, read once the answer is out (containerd is
        # busy with it then): Start then finds the record read (a stat, not a parse), and
        # the init's exit checks its OOM kills without reading anything but the count
        ttrpc.after_reply(lambda: self._read_record(task))
        self.publisher.publish(ev.TaskCreate(
            container_id=req.id, bundle=req.bundle, rootfs=req.rootfs, pid=pid,
            io=ev.TaskIO(stdin=req.stdin, stdout=req.stdout, stderr=req.stderr,
                         terminal=req.terminal)))
        return pb.CreateTaskResponse(pid=pid)

    def start(self, req):
        task, proc = self._proc(req.id, req.exec_id)
        with task.lock:
            if proc.started or proc.exited.is_set():
                raise _error(ttrpc.FAILED_PRECONDITION,
                             f"process {req.exec_id or req.id} was already started")
            proc.begin_start()
            try:
                return self._start_and_publish(task, proc)
            finally:
                proc.end_start()

    def _start_and_publish(self, task, proc):
        if not proc.exec_id:
            # a failing startContainer or poststart hook: the runtime kills and deletes the
            # container; its exit reaches our reaper (the runtime never reaps a container
            # process) and is published once this Start is done (Proc.exit_after_start)
            task.container.start()
            proc.started = True
            self.publisher.publish(ev.TaskStart(container_id=task.id, pid=proc.pid))
            return pb.StartResponse(pid=proc.pid)
        if task.init.exited.is_set():
            raise _error(ttrpc.FAILED_PRECONDITION, f"task {task.id} is not running")
        pid = self._start_exec(task, proc)
        self.publisher.publish(ev.TaskExecStarted(container_id=task.id,
                                                  exec_id=proc.exec_id, pid=pid))
        return pb.StartResponse(pid=pid)

    def _start_exec(self, task, proc):
        try:
            # started by a worker (shim.forkserver): nothing is forked here
            reply, masters = self.workers.call(
                {"op": "exec", "root": self.root, "id": task.id, "spec": proc.spec.decode()},
                proc.io.child_fds())
        except BaseException:
            proc.io.close()
            raise
        proc.io.after_spawn()
        if masters:
            proc.io.attach_console(masters[0])
        proc.pid = reply["pid"]
        proc.started = True
        self.reaper.register(proc.pid, lambda code, when: self._exited(task, proc, code, when))
        return proc.pid

    def exec(self, req):
        from ociruntime import config

        task = self._task(req.id)
        if task.init.exited.is_set():
            raise _error(ttrpc.FAILED_PRECONDITION, f"task {req.id} is not running")
        try:
            config.decode_process(req.spec.value)  # a bad spec fails Exec, not its Start
        except config.ConfigError as e:
            raise _error(ttrpc.INVALID_ARGUMENT, f"exec {req.exec_id}: {e}") from None
        with task.lock:
            if req.exec_id in task.execs:
                raise _error(ttrpc.ALREADY_EXISTS, f"process {req.exec_id}: already exists")
            io = self._process_io(req)
            task.execs[req.exec_id] = Proc(task.id, req.exec_id, io, bytes(req.spec.value))
        self.publisher.publish(ev.TaskExecAdded(container_id=task.id, exec_id=req.exec_id))

    # --- exits ----------------------------------------------------------------------------
    def _exited(self, task, proc, code, when):
        """The reaper's callback (main thread).  A terminal's last output is flushed to its
        fifo before the exit is known, off the reaper's thread.  An exit during its Start
        is finished by that Start once it has published (Proc.exit_after_start), still
        under the task's lock: so finish() never takes that lock (nor blocks the reaper,
        which the Start's poststart hooks wait on)."""
        def finish():
            if not proc.exec_id:
                self._check_oom(task)  # an OOM kill of the init: before its exit event
            proc.io.wait_output()
            # TaskExit queued first (containerd handles it beside ctr's reaction to the
            # Wait), then a Wait's answer sent here, in this thread
            proc.set_exited(code, when, lambda: self.publisher.publish(ev.TaskExit(
                container_id=task.id, id=proc.exec_id or task.id, pid=proc.pid,
                exit_status=code, exited_at=_timestamp(when))))
        if proc.io.terminal:
            proc.exit_after_start(
                threading.Thread(target=finish, name="exit", daemon=True).start)
        else:
            proc.exit_after_start(finish)

    def wait(self, req):
        """Answered when the process exits, by the exit's own thread (Proc.set_exited): no
        thread waits meanwhile, and none has to wake to answer."""
        _, proc = self._proc(req.id, req.exec_id)
        answer = ttrpc.Deferred()

        def answer_it():
            answer.answer(pb.WaitResponse(
                exit_status=proc.exit_status,
                exited_at=_timestamp(proc.exited_at)).SerializeToString())

        proc.on_exit(answer_it)
        return answer

    # --- state ----------------------------------------------------------------------------
    def state(self, req):
        task, proc = self._proc(req.id, req.exec_id)
        status = proc.status()
        if not req.exec_id and status != pb.STOPPED:
            try:
                status = STATUS_NAMES.get(task.container.load().status(), status)
            except PyruncError:
                pass
        stdin, stdout, stderr = proc.io.paths
        return pb.StateResponse(
            id=task.id, exec_id=req.exec_id, bundle=task.bundle, pid=proc.pid, status=status,
            stdin=stdin, stdout=stdout, stderr=stderr, terminal=proc.io.terminal,
            exit_status=proc.exit_status,
            exited_at=_timestamp(proc.exited_at) if proc.exited_at else None)

    def pids(self, req):
        task = self._task(req.id)
        by_pid = {p.pid: p.exec_id for p in task.execs.values() if p.pid}
        out = pb.PidsResponse()
        for pid in task.container.load().pids():
            info = pb.ProcessInfo(pid=pid)
            if pid in by_pid:
                info.info = pb.pack(pb.ProcessDetails(exec_id=by_pid[pid]))
            out.processes.append(info)
        return out

    def stats(self, req):
        from shim.metrics import metrics_any

        task = self._task(req.id)
        manager = task.container.load().cgroup_manager()
        return pb.StatsResponse(stats=metrics_any(manager, self.cgroup_v2))

    def connect(self, req):
        task = self.tasks.get(req.id)
        return pb.ConnectResponse(shim_pid=os.getpid(), task_pid=task.init.pid if task else 0,
                                  version="pyrunc")

    # --- signals, pause, update -----------------------------------------------------------
    def kill(self, req):
        task, proc = self._proc(req.id, req.exec_id)
        if not req.exec_id:
            if proc.exited.is_set() and not req.all:
                raise _error(ttrpc.NOT_FOUND, "process already finished")
            try:
                task.container.kill(req.signal, all_processes=req.all)
            except WrongState:
                raise _error(ttrpc.NOT_FOUND, "process already finished") from None
            return None
        if not proc.started or proc.exited.is_set():
            raise _error(ttrpc.NOT_FOUND, "process already finished")
        import signal  # the server's own (shim.server): no import cost here

        pidfd = os.pidfd_open(proc.pid)  # our unreaped child: the pid is still ours
        try:
            signal.pidfd_send_signal(pidfd, req.signal)
        finally:
            os.close(pidfd)
        return None

    def pause(self, req):
        task = self._task(req.id)
        task.container.pause()
        self.publisher.publish(ev.TaskPaused(container_id=task.id))

    def resume(self, req):
        task = self._task(req.id)
        task.container.resume()
        self.publisher.publish(ev.TaskResumed(container_id=task.id))

    def update(self, req):
        from ociruntime import config

        task = self._task(req.id)
        try:
            resources = config.load_resources(req.resources.value)
        except config.ConfigError as e:
            raise _error(ttrpc.INVALID_ARGUMENT, f"update: {e}") from None
        from ociruntime import jsonlite

        # the JSON too: the container's recorded resources take the new values
        task.container.update(resources, jsonlite.loads(req.resources.value.decode()))

    def checkpoint(self, req):
        raise _error(ttrpc.UNIMPLEMENTED, "checkpoint is not supported by pyrunc")

    # --- io -------------------------------------------------------------------------------
    def resizepty(self, req):
        _, proc = self._proc(req.id, req.exec_id)
        proc.io.resize(req.width, req.height)

    def closeio(self, req):
        _, proc = self._proc(req.id, req.exec_id)
        if req.stdin:
            proc.io.close_stdin()

    # --- delete / shutdown ----------------------------------------------------------------
    def delete(self, req):
        task, proc = self._proc(req.id, req.exec_id)
        if req.exec_id:
            if proc.started and not proc.exited.is_set():
                raise _error(ttrpc.FAILED_PRECONDITION,
                             f"cannot delete running process {req.exec_id}")
            with task.lock:
                task.execs.pop(req.exec_id, None)
            proc.io.close()
            return pb.DeleteResponse(pid=proc.pid, exit_status=proc.exit_status,
                                     exited_at=_timestamp(proc.exited_at or time.time_ns()))
        if not proc.exited.is_set():
            if proc.started:
                raise _error(ttrpc.FAILED_PRECONDITION,
                             f"cannot delete running task {task.id}")
            # created, never started: containerd deletes it without a kill
            try:
                task.container.kill(9)
            except PyruncError:
                pass
            proc.exited.wait(10)
        if not task.rootfs_mounts:
            task.container.delete(force=True)
        else:
            self._delete_unmounting(task)
        proc.io.close()
        for exec_proc in list(task.execs.values()):
            exec_proc.io.close()
        with self.lock:
            self.tasks.pop(task.id, None)
        exited_at = _timestamp(proc.exited_at or time.time_ns())
        self.publisher.publish(ev.TaskDelete(
            container_id=task.id, id=task.id, pid=proc.pid, exit_status=proc.exit_status,
            exited_at=exited_at))
        return pb.DeleteResponse(pid=proc.pid, exit_status=proc.exit_status,
                                 exited_at=exited_at)

    def _delete_unmounting(self, task):
        """The runtime's delete, then the rootfs's unmount (after it: poststop hooks see
        the rootfs mounted, as with runc's shim, which unmounts after `runc delete`).  The
        unmount is tried when the delete failed too, as runc's shim does; the first error
        is the Delete's."""
        from shim.rootfs import unmount

        rootfs = os.path.join(task.bundle, "rootfs")
        try:
            task.container.delete(force=True)
        except BaseException:
            try:
                unmount(rootfs, task.rootfs_mounts)
            except OSError as e:
                sys.stderr.write(f"shim: delete {task.id}: unmounting the rootfs: {e}\n")
            raise
        try:
            unmount(rootfs, task.rootfs_mounts)
        except OSError as e:
            raise PyruncError(f"unmounting the rootfs of {task.id}: {e}") from None

    def shutdown(self, req):
        """containerd asks after each task's delete.  The server outlives its last task a
        little (shim.server's idle timeout), so the next container finds it warm."""
        return None

    def idle(self):
        with self.lock:
            return not self.tasks and not self.creating

    # --- oom ------------------------------------------------------------------------------
    def poll_oom(self):
        """Publish TaskOOM for each running task whose cgroup counted a new OOM kill."""
        for task in list(self.tasks.values()):
            if not task.init.exited.is_set():
                self._check_oom(task)

    def _read_record(self, task):
        try:
            self._cgroup_manager(task)
        except (PyruncError, OSError):
            pass  # gone already (a Delete): whoever needs it reports it

    def _cgroup_manager(self, task):
        """The task's cgroup manager; its record read once (the cgroup never changes)."""
        if task.manager is None:
            task.manager = task.container.load().cgroup_manager()
        return task.manager

    def _check_oom(self, task):
        try:
            count = self._cgroup_manager(task).oom_kills()
        except (PyruncError, OSError):
            return
        if count and count > task.oom_kills:
            task.oom_kills = count
            self.publisher.publish(ev.TaskOOM(container_id=task.id))
