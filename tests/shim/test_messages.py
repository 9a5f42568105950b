"""shim.messages, the server's protobuf-free messages, against the modules protoc made from
the same .proto files (shim/proto): the same names and field numbers, and bytes that each
side decodes to what the other encoded."""

import pytest
from google.protobuf import any_pb2, descriptor, empty_pb2, timestamp_pb2

from shim import messages as m
from shim.proto import (
    events_pb2,
    events_service_pb2,
    mount_pb2,
    runc_options_pb2,
    shim_pb2,
    task_pb2,
)

MODULES = (any_pb2, empty_pb2, timestamp_pb2, events_pb2, events_service_pb2, mount_pb2,
           runc_options_pb2, shim_pb2, task_pb2)
D = descriptor.FieldDescriptor
KINDS = {m.STRING: (D.TYPE_STRING,), m.BYTES: (D.TYPE_BYTES,), m.BOOL: (D.TYPE_BOOL,),
         m.UINT: (D.TYPE_UINT32, D.TYPE_UINT64, D.TYPE_INT64, D.TYPE_INT32, D.TYPE_ENUM),
         m.MESSAGE: (D.TYPE_MESSAGE,), m.STRINGS: (D.TYPE_STRING,),
         m.MESSAGES: (D.TYPE_MESSAGE,)}
CLASSES = [v for v in vars(m).values()
           if isinstance(v, type) and issubclass(v, m.Message) and v is not m.Message]


def _generated(full_name):
    for module in MODULES:
        for message in module.DESCRIPTOR.message_types_by_name.values():
            if message.full_name == full_name:
                return message
    raise AssertionError(f"{full_name}: no such message in shim/proto")


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.FULL_NAME)
def test_each_message_has_the_protos_names_numbers_and_types(cls):
    generated = _generated(cls.FULL_NAME)
    for number, name, kind, sub in cls.FIELDS:
        field = generated.fields_by_number[number]
        assert field.name == name
        assert field.type in KINDS[kind], (name, field.type)
        repeated = (field.is_repeated if hasattr(field, "is_repeated")  # protobuf >= 6
                    else field.label == D.LABEL_REPEATED)
        assert repeated == (kind in (m.STRINGS, m.MESSAGES)), name
        if sub is not None:
            assert field.message_type.full_name == sub.FULL_NAME


def test_bytes_decode_the_same_on_both_sides():
    request = shim_pb2.CreateTaskRequest(
        id="c1", bundle="/b", terminal=True, stdout="/fifo",
        rootfs=[mount_pb2.Mount(type="bind", source="/s", options=["rbind", "ro"])],
        options=any_pb2.Any(type_url="containerd.runc.v1.Options",
                            value=runc_options_pb2.Options(no_pivot_root=True)
                            .SerializeToString()))
    ours = m.CreateTaskRequest.FromString(request.SerializeToString())
    assert ours.rootfs == [m.Mount(type="bind", source="/s", options=["rbind", "ro"])]
    assert m.RuncOptions.FromString(ours.options.value).no_pivot_root
    assert shim_pb2.CreateTaskRequest.FromString(ours.SerializeToString()) == request
    # absent message fields decode empty, as protobuf's; unknown fields are skipped
    bare = m.ExecProcessRequest.FromString(b"\x0a\x01x" + b"\xf8\x01\x05")
    assert bare.id == "x" and bare.spec.value == b"" and bare.stdin == ""

    exit_event = m.TaskExit(container_id="c1", id="c1", pid=7, exit_status=137,
                            exited_at=m.timestamp(1_700_000_000_123_456_789))
    envelope = events_service_pb2.ForwardRequest.FromString(m.ForwardRequest(
        envelope=m.Envelope(timestamp=m.timestamp(5), namespace="ns", topic="/tasks/exit",
                            event=m.pack(exit_event))).SerializeToString()).envelope
    assert envelope.event.type_url == "containerd.events.TaskExit"
    decoded = events_pb2.TaskExit.FromString(envelope.event.value)
    assert (decoded.pid, decoded.exit_status, decoded.exited_at.nanos) == (7, 137, 123456789)

    state = shim_pb2.StateResponse.FromString(
        m.StateResponse(id="c1", pid=3, status=m.STOPPED, exited_at=None).SerializeToString())
    assert state.status == task_pb2.STOPPED and not state.HasField("exited_at")
