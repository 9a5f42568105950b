"""The shim's protobuf messages without the protobuf package: the task API's requests and
responses, the task events and their envelope, on shim.protowire.

Importing google.protobuf and the generated modules cost every shim server ~20 ms CPU
on its start-up (on the first Create's path) and ~5 MiB RSS, for a few dozen flat
messages; shim/proto keeps the .proto files (containerd's package names and field
numbers, which these tables follow) and the generated modules for the tests and for
Stats' metrics.  proto3 semantics: a field at its zero value is not sent, unknown fields
are skipped, an absent message field decodes as an empty message.
"""

from shim import protowire as pw

STRING, BYTES, UINT, BOOL, MESSAGE, STRINGS, MESSAGES = range(7)
_ZERO = {STRING: "", BYTES: b"", UINT: 0, BOOL: False}


class Message:
    """A message of FIELDS: (number, name, kind, message type or None), by number."""

    FULL_NAME = ""
    FIELDS = ()

    def __init__(self, **values):
        for _, name, kind, _ in self.FIELDS:
            if kind in (STRINGS, MESSAGES):
                setattr(self, name, list(values.pop(name, ())))
            else:
                setattr(self, name, values.pop(name, _ZERO.get(kind)))
        if values:
            raise TypeError(f"{type(self).__name__}: no field {', '.join(values)}")

    @classmethod
    def FromString(cls, data):  # noqa: N802  (protobuf's name)
        message = cls()
        message.ParseFromString(data)
        return message

    def ParseFromString(self, data):  # noqa: N802
        by_number = {f[0]: f for f in self.FIELDS}
        for field, _, value in pw.iter_fields(data):
            spec = by_number.get(field)
            if spec is None:
                continue
            _, name, kind, sub = spec
            if kind == STRING:
                setattr(self, name, pw.as_str(value, name))
            elif kind == BYTES:
                setattr(self, name, pw.as_bytes(value, name))
            elif kind in (UINT, BOOL):
                number = pw.as_int(value, name)
                setattr(self, name, bool(number) if kind == BOOL else number)
            elif kind == MESSAGE:
                setattr(self, name, sub.FromString(pw.as_bytes(value, name)))
            elif kind == STRINGS:
                getattr(self, name).append(pw.as_str(value, name))
            else:
                getattr(self, name).append(sub.FromString(pw.as_bytes(value, name)))
        for _, name, kind, sub in self.FIELDS:
            if kind == MESSAGE and getattr(self, name) is None:
                setattr(self, name, sub())
        return self

    def SerializeToString(self):  # noqa: N802
        out = []
        for number, name, kind, _ in self.FIELDS:
            value = getattr(self, name)
            if kind in (STRING, BYTES):
                if value:
                    out.append(pw.field_bytes(number, value))
            elif kind in (UINT, BOOL):
                if value:
                    out.append(pw.field_varint(number, int(value)))
            elif kind == MESSAGE:
                if value is not None:
                    out.append(pw.field_bytes(number, value.SerializeToString()))
            elif kind == STRINGS:
                out.extend(pw.field_bytes(number, v) for v in value)
            else:
                out.extend(pw.field_bytes(number, v.SerializeToString()) for v in value)
        return b"".join(out)

    def __eq__(self, other):
        return type(self) is type(other) and vars(self) == vars(other)

    def __repr__(self):
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if v not in ("", 0, [],
                                                                                    None))
        return f"{type(self).__name__}({fields})"


def _message(name, full_name, *fields):
    return type(name, (Message,), {"FULL_NAME": full_name, "FIELDS": fields})


def _ids(package, name, *fields):
    """A message whose first two fields are id and exec_id, as most requests'."""
    return _message(name, f"{package}.{name}", (1, "id", STRING, None),
                    (2, "exec_id", STRING, None), *fields)


# google.protobuf
Any = _message("Any", "google.protobuf.Any", (1, "type_url", STRING, None),
               (2, "value", BYTES, None))
Timestamp = _message("Timestamp", "google.protobuf.Timestamp", (1, "seconds", UINT, None),
                     (2, "nanos", UINT, None))
Empty = _message("Empty", "google.protobuf.Empty")

# containerd.types, containerd.v1.types (task.proto's Status), containerd.runc.v1
Mount = _message("Mount", "containerd.types.Mount", (1, "type", STRING, None),
                 (2, "source", STRING, None), (3, "target", STRING, None),
                 (4, "options", STRINGS, None))
UNKNOWN, CREATED, RUNNING, STOPPED, PAUSED, PAUSING = range(6)
ProcessInfo = _message("ProcessInfo", "containerd.v1.types.ProcessInfo",
                       (1, "pid", UINT, None), (2, "info", MESSAGE, Any))
RuncOptions = _message("Options", "containerd.runc.v1.Options",
                       (1, "no_pivot_root", BOOL, None), (2, "no_new_keyring", BOOL, None))
ProcessDetails = _message("ProcessDetails", "containerd.runc.v1.ProcessDetails",
                          (1, "exec_id", STRING, None))

# containerd.task.v2 (shim.proto)
_T = "containerd.task.v2"
CreateTaskRequest = _message(
    "CreateTaskRequest", f"{_T}.CreateTaskRequest", (1, "id", STRING, None),
    (2, "bundle", STRING, None), (3, "rootfs", MESSAGES, Mount), (4, "terminal", BOOL, None),
    (5, "stdin", STRING, None), (6, "stdout", STRING, None), (7, "stderr", STRING, None),
    (8, "checkpoint", STRING, None), (9, "parent_checkpoint", STRING, None),
    (10, "options", MESSAGE, Any))
CreateTaskResponse = _message("CreateTaskResponse", f"{_T}.CreateTaskResponse",
                              (1, "pid", UINT, None))
DeleteRequest = _ids(_T, "DeleteRequest")
DeleteResponse = _message("DeleteResponse", f"{_T}.DeleteResponse", (1, "pid", UINT, None),
                          (2, "exit_status", UINT, None), (3, "exited_at", MESSAGE, Timestamp))
ExecProcessRequest = _ids(_T, "ExecProcessRequest", (3, "terminal", BOOL, None),
                          (4, "stdin", STRING, None), (5, "stdout", STRING, None),
                          (6, "stderr", STRING, None), (7, "spec", MESSAGE, Any))
ResizePtyRequest = _ids(_T, "ResizePtyRequest", (3, "width", UINT, None),
                        (4, "height", UINT, None))
StateRequest = _ids(_T, "StateRequest")
StateResponse = _message(
    "StateResponse", f"{_T}.StateResponse", (1, "id", STRING, None),
    (2, "bundle", STRING, None), (3, "pid", UINT, None), (4, "status", UINT, None),
    (5, "stdin", STRING, None), (6, "stdout", STRING, None), (7, "stderr", STRING, None),
    (8, "terminal", BOOL, None), (9, "exit_status", UINT, None),
    (10, "exited_at", MESSAGE, Timestamp), (11, "exec_id", STRING, None))
KillRequest = _ids(_T, "KillRequest", (3, "signal", UINT, None), (4, "all", BOOL, None))
CloseIORequest = _ids(_T, "CloseIORequest", (3, "stdin", BOOL, None))
PidsRequest = _message("PidsRequest", f"{_T}.PidsRequest", (1, "id", STRING, None))
PidsResponse = _message("PidsResponse", f"{_T}.PidsResponse",
                        (1, "processes", MESSAGES, ProcessInfo))
CheckpointTaskRequest = _message("CheckpointTaskRequest", f"{_T}.CheckpointTaskRequest",
                                 (1, "id", STRING, None), (2, "path", STRING, None),
                                 (3, "options", MESSAGE, Any))
UpdateTaskRequest = _message("UpdateTaskRequest", f"{_T}.UpdateTaskRequest",
                             (1, "id", STRING, None), (2, "resources", MESSAGE, Any))
StartRequest = _ids(_T, "StartRequest")
StartResponse = _message("StartResponse", f"{_T}.StartResponse", (1, "pid", UINT, None))
WaitRequest = _ids(_T, "WaitRequest")
WaitResponse = _message("WaitResponse", f"{_T}.WaitResponse", (1, "exit_status", UINT, None),
                        (2, "exited_at", MESSAGE, Timestamp))
StatsRequest = _message("StatsRequest", f"{_T}.StatsRequest", (1, "id", STRING, None))
StatsResponse = _message("StatsResponse", f"{_T}.StatsResponse", (1, "stats", MESSAGE, Any))
ConnectRequest = _message("ConnectRequest", f"{_T}.ConnectRequest", (1, "id", STRING, None))
ConnectResponse = _message("ConnectResponse", f"{_T}.ConnectResponse",
                           (1, "shim_pid", UINT, None), (2, "task_pid", UINT, None),
                           (3, "version", STRING, None))
ShutdownRequest = _message("ShutdownRequest", f"{_T}.ShutdownRequest",
                           (1, "id", STRING, None), (2, "now", BOOL, None))
PauseRequest = _message("PauseRequest", f"{_T}.PauseRequest", (1, "id", STRING, None))
ResumeRequest = _message("ResumeRequest", f"{_T}.ResumeRequest", (1, "id", STRING, None))

# containerd.events (events.proto)
_E = "containerd.events"
_CID = (1, "container_id", STRING, None)
TaskIO = _message("TaskIO", f"{_E}.TaskIO", (1, "stdin", STRING, None),
                  (2, "stdout", STRING, None), (3, "stderr", STRING, None),
                  (4, "terminal", BOOL, None))
TaskCreate = _message("TaskCreate", f"{_E}.TaskCreate", _CID, (2, "bundle", STRING, None),
                      (3, "rootfs", MESSAGES, Mount), (4, "io", MESSAGE, TaskIO),
                      (5, "checkpoint", STRING, None), (6, "pid", UINT, None))
TaskStart = _message("TaskStart", f"{_E}.TaskStart", _CID, (2, "pid", UINT, None))
TaskDelete = _message("TaskDelete", f"{_E}.TaskDelete", _CID, (2, "pid", UINT, None),
                      (3, "exit_status", UINT, None), (4, "exited_at", MESSAGE, Timestamp),
                      (5, "id", STRING, None))
TaskExit = _message("TaskExit", f"{_E}.TaskExit", _CID, (2, "id", STRING, None),
                    (3, "pid", UINT, None), (4, "exit_status", UINT, None),
                    (5, "exited_at", MESSAGE, Timestamp))
TaskOOM = _message("TaskOOM", f"{_E}.TaskOOM", _CID)
TaskExecAdded = _message("TaskExecAdded", f"{_E}.TaskExecAdded", _CID,
                         (2, "exec_id", STRING, None))
TaskExecStarted = _message("TaskExecStarted", f"{_E}.TaskExecStarted", _CID,
                           (2, "exec_id", STRING, None), (3, "pid", UINT, None))
TaskPaused = _message("TaskPaused", f"{_E}.TaskPaused", _CID)
TaskResumed = _message("TaskResumed", f"{_E}.TaskResumed", _CID)

# containerd.services.events.ttrpc.v1 (events_service.proto)
_S = "containerd.services.events.ttrpc.v1"
Envelope = _message("Envelope", f"{_S}.Envelope", (1, "timestamp", MESSAGE, Timestamp),
                    (2, "namespace", STRING, None), (3, "topic", STRING, None),
                    (4, "event", MESSAGE, Any))
ForwardRequest = _message("ForwardRequest", f"{_S}.ForwardRequest",
                          (1, "envelope", MESSAGE, Envelope))


def pack(message):
    """message as an Any, as containerd's typeurl packs it: the full name as type_url."""
    full_name = getattr(message, "FULL_NAME", "") or message.DESCRIPTOR.full_name
    return Any(type_url=full_name, value=message.SerializeToString())


def timestamp(ns):
    return Timestamp(seconds=ns // 1_000_000_000, nanos=ns % 1_000_000_000)
