"""ttrpc framing, protobuf envelopes and a real server/client pair on a unix socket."""

import os
import socket
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shim import protowire as pw
from shim import ttrpc
from shim.ttrpc import (
    HEADER_LENGTH,
    MESSAGE_LENGTH_MAX,
    Client,
    Frame,
    FrameDecoder,
    OversizedFrame,
    OversizedMessageError,
    Request,
    Response,
    Server,
    Status,
    TTRPCError,
)

PROPS = settings(max_examples=150, deadline=None)

u32 = st.integers(0, 2**32 - 1)
u8 = st.integers(0, 255)
payloads = st.binary(max_size=300)
frames = st.builds(Frame, u32, u8, u8, payloads)
text = st.text(max_size=40)
int32 = st.integers(-(2**31), 2**31 - 1)
int64 = st.integers(-(2**63), 2**63 - 1)


# --- framing -------------------------------------------------------------------


def test_header_layout_is_big_endian_length_stream_type_flags():
    assert ttrpc.encode_header(0x01020304, 0x0A0B0C0D, 2, 0x05) == bytes.fromhex(
        "01020304" "0a0b0c0d" "02" "05"
    )
    assert HEADER_LENGTH == 10 and MESSAGE_LENGTH_MAX == 4 * 1024 * 1024


@PROPS
@given(frames)
def test_frame_round_trip(frame):
    wire = ttrpc.encode_frame(*frame)
    assert len(wire) == HEADER_LENGTH + len(frame.payload)
    assert ttrpc.decode_header(wire) == (len(frame.payload), *frame[:3])
    decoder = FrameDecoder()
    assert decoder.feed(wire) == [frame]
    assert decoder.pending == 0


@PROPS
@given(st.lists(frames, max_size=8), st.data())
def test_stream_split_anywhere_reassembles_the_same_frames(frame_list, data):
    wire = b"".join(ttrpc.encode_frame(*f) for f in frame_list)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=12)))
    decoder = FrameDecoder()
    got = []
    start = 0
    for cut in [*cuts, len(wire)]:
        got += decoder.feed(wire[start:cut])
        start = cut
    assert got == frame_list
    assert decoder.pending == 0


@PROPS
@given(u32, st.integers(MESSAGE_LENGTH_MAX + 1, 2**32 - 1), st.data())
def test_oversized_length_is_rejected_and_its_bytes_discarded(stream_id, length, data):
    # Announce an oversized message but send only a few bytes of it (as if the stream
    # was cut there): the decoder reports it once and discards what it got.
    header = ttrpc.encode_header(length, stream_id, ttrpc.TYPE_REQUEST, 0)
    body = data.draw(st.binary(max_size=64))
    decoder = FrameDecoder()
    assert decoder.feed(header + body) == [
        OversizedFrame(stream_id, ttrpc.TYPE_REQUEST, 0, length)
    ]
    assert decoder.pending == 0
    assert decoder.feed(b"") == []


def test_oversized_message_fully_discarded_then_next_frame_decodes():
    length = MESSAGE_LENGTH_MAX + 3
    wire = ttrpc.encode_header(length, 7, ttrpc.TYPE_REQUEST, 0) + bytes(length)
    nxt = Frame(9, ttrpc.TYPE_REQUEST, 0, b"next")
    decoder = FrameDecoder()
    got = []
    for i in range(0, len(wire), 1 << 20):
        got += decoder.feed(wire[i : i + (1 << 20)])
    got += decoder.feed(ttrpc.encode_frame(*nxt))
    assert got == [OversizedFrame(7, ttrpc.TYPE_REQUEST, 0, length), nxt]


def test_encoding_an_oversized_payload_raises():
    with pytest.raises(OversizedMessageError) as e:
        ttrpc.encode_frame(1, ttrpc.TYPE_REQUEST, 0, bytes(MESSAGE_LENGTH_MAX + 1))
    assert e.value.code == ttrpc.RESOURCE_EXHAUSTED
    assert e.value.message == (
        f"message length {MESSAGE_LENGTH_MAX + 1} exceed maximum message size of "
        f"{MESSAGE_LENGTH_MAX}"
    )
    # exactly the maximum is fine
    assert len(ttrpc.encode_frame(1, 1, 0, bytes(MESSAGE_LENGTH_MAX))) == MESSAGE_LENGTH_MAX + 10


# --- protowire -------------------------------------------------------------------


@PROPS
@given(st.integers(0, 2**64 - 1))
def test_varint_round_trip(value):
    enc = pw.encode_varint(value)
    assert pw.decode_varint(enc, 0) == (value, len(enc))


def test_varint_known_encodings():
    assert pw.encode_varint(0) == b"\x00"
    assert pw.encode_varint(300) == b"\xac\x02"
    assert pw.encode_varint(-1) == b"\xff" * 9 + b"\x01"
    assert pw.to_int64(pw.decode_varint(pw.encode_varint(-5), 0)[0]) == -5


requests = st.builds(
    Request,
    text,
    text,
    st.binary(max_size=200),
    int64,
    st.lists(st.tuples(text, text), max_size=4).map(tuple),
)
statuses = st.builds(Status, int32, text, st.lists(st.binary(max_size=30), max_size=3).map(tuple))
responses = st.builds(Response, st.none() | statuses, st.binary(max_size=200))

unknown_fields = st.lists(
    st.one_of(
        st.builds(pw.field_varint, st.integers(20, 1000), st.integers(0, 2**64 - 1)),
        st.builds(pw.field_bytes, st.integers(20, 1000), st.binary(max_size=20)),
        st.builds(
            lambda n, b: pw.tag(n, pw.WIRE_FIXED32) + b,
            st.integers(20, 1000),
            st.binary(min_size=4, max_size=4),
        ),
        st.builds(
            lambda n, b: pw.tag(n, pw.WIRE_FIXED64) + b,
            st.integers(20, 1000),
            st.binary(min_size=8, max_size=8),
        ),
    ),
    max_size=4,
)


@PROPS
@given(requests)
def test_request_round_trip(req):
    assert Request.decode(req.encode()) == req


@PROPS
@given(responses)
def test_response_round_trip(resp):
    decoded = Response.decode(resp.encode())
    # proto3: an all-default Status still encodes as a present (empty) message
    assert decoded == resp


@PROPS
@given(requests, unknown_fields, unknown_fields)
def test_request_unknown_fields_are_skipped(req, before, after):
    assert Request.decode(b"".join(before) + req.encode() + b"".join(after)) == req


@PROPS
@given(responses, unknown_fields)
def test_response_unknown_fields_are_skipped(resp, extra):
    wire = resp.encode()
    if resp.status is not None:
        # unknown fields inside the nested Status are skipped too
        status = resp.status.encode() + b"".join(extra)
        wire = pw.field_bytes(1, status) + pw.field_bytes(2, resp.payload)
    assert Response.decode(b"".join(extra) + wire) == resp


def test_request_wire_bytes_match_the_proto_field_numbers():
    req = Request("svc", "M", b"\x01", 5, (("k", "v"),))
    assert req.encode() == (
        b"\x0a\x03svc" b"\x12\x01M" b"\x1a\x01\x01" b"\x20\x05" b"\x2a\x06\x0a\x01k\x12\x01v"
    )
    resp = Response(Status(12, "no"), b"p")
    assert resp.encode() == b"\x0a\x06\x08\x0c\x12\x02no" b"\x12\x01p"


@pytest.mark.parametrize(
    "wire",
    [b"\x0a\x05ab", b"\x08", b"\x0b", b"\x00\x01", b"\x0d\x01\x02", b"\x08" + b"\xff" * 11],
)
def test_malformed_messages_raise_decode_error(wire):
    with pytest.raises(pw.DecodeError):
        Request.decode(wire)


# --- a real server and client on a unix socket ----------------------------------------

SVC = "pyrunc.test.v1.Test"


@pytest.fixture
def server(tmp_path):
    gate = threading.Event()
    srv = Server()

    def fail(payload):
        raise TTRPCError(ttrpc.NOT_FOUND, f"container {payload.decode()} not found")

    def crash(payload):
        raise RuntimeError("boom")

    def wait_gate(payload):
        assert gate.wait(30)
        return b"released:" + payload

    srv.register_service(
        SVC,
        {
            "Echo": lambda p: p,
            "Fail": fail,
            "Crash": crash,
            "Empty": lambda p: None,
            "Wait": wait_gate,
        },
    )
    path = str(tmp_path / "ttrpc.sock")
    srv.listen(path)
    thread = threading.Thread(target=srv.serve, daemon=True)
    thread.start()
    srv.path = path
    srv.gate = gate
    srv.thread = thread
    yield srv
    gate.set()
    srv.shutdown(timeout=30)
    thread.join(30)
    assert not thread.is_alive()


def test_echo(server):
    with Client(server.path) as c:
        assert c.call(SVC, "Echo", b"hello", timeout=30) == b"hello"
        assert c.call(SVC, "Echo", b"", timeout=30) == b""
        assert c.call(SVC, "Empty", b"x", timeout=30) == b""
        big = bytes(range(256)) * 4096  # 1 MiB, several socket reads
        assert c.call(SVC, "Echo", big, timeout=30) == big


def test_unknown_method_is_unimplemented(server):
    with Client(server.path) as c:
        with pytest.raises(TTRPCError) as e:
            c.call(SVC, "Nope", b"", timeout=30)
        assert e.value.code == ttrpc.UNIMPLEMENTED
        assert e.value.message == f"method {SVC}/Nope not implemented"
        with pytest.raises(TTRPCError) as e:
            c.call("other.Service", "Echo", b"", timeout=30)
        assert e.value.code == ttrpc.UNIMPLEMENTED
        # the connection is still usable after an error
        assert c.call(SVC, "Echo", b"ok", timeout=30) == b"ok"


def test_handler_error_code_and_message(server):
    with Client(server.path) as c:
        with pytest.raises(TTRPCError) as e:
            c.call(SVC, "Fail", b"abc", timeout=30)
        assert (e.value.code, e.value.message) == (ttrpc.NOT_FOUND, "container abc not found")
        with pytest.raises(TTRPCError) as e:
            c.call(SVC, "Crash", b"", timeout=30)
        assert e.value.code == ttrpc.INTERNAL
        assert "boom" in e.value.message


def test_concurrent_calls_on_one_connection_get_their_own_answers(server):
    n = 16
    results = {}
    errors = []
    with Client(server.path) as c:
        # one call parks in the handler until released: the others must not wait for it
        parked = {}

        def park():
            parked["r"] = c.call(SVC, "Wait", b"first", timeout=60)

        pt = threading.Thread(target=park)
        pt.start()

        def worker(i):
            try:
                for j in range(10):
                    msg = f"{i}-{j}".encode() * (i + 1)
                    results[(i, j)] = c.call(SVC, "Echo", msg, timeout=60)
            except Exception as e:  # surfaced by the assertion below
                errors.append(e)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        expected = {(i, j): f"{i}-{j}".encode() * (i + 1) for i in range(n) for j in range(10)}
        assert results == expected
        assert "r" not in parked
        server.gate.set()
        pt.join(60)
        assert parked["r"] == b"released:first"
        # stream ids were odd and increased by 2 per call: 1 + 2 * (1 + n * 10) is next
        assert c._next_id == 1 + 2 * (1 + n * 10)


def _raw_call(path, frame_bytes):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(path)
    try:
        s.sendall(frame_bytes)
        decoder = FrameDecoder()
        while True:
            data = s.recv(65536)
            assert data, "server closed without answering"
            got = decoder.feed(data)
            if got:
                return got
    finally:
        s.close()


def test_raw_wire_request_and_response(server):
    req = Request(SVC, "Echo", b"raw").encode()
    (frame,) = _raw_call(server.path, ttrpc.encode_frame(3, ttrpc.TYPE_REQUEST, 0, req))
    assert (frame.stream_id, frame.type) == (3, ttrpc.TYPE_RESPONSE)
    assert Response.decode(frame.payload) == Response(Status(0), b"raw")


def test_even_stream_id_is_rejected(server):
    req = Request(SVC, "Echo", b"x").encode()
    (frame,) = _raw_call(server.path, ttrpc.encode_frame(2, ttrpc.TYPE_REQUEST, 0, req))
    status = Response.decode(frame.payload).status
    assert frame.stream_id == 2 and status.code == ttrpc.INVALID_ARGUMENT


def test_server_answers_an_oversized_request_with_resource_exhausted(server):
    length = MESSAGE_LENGTH_MAX + 1
    header = ttrpc.encode_header(length, 5, ttrpc.TYPE_REQUEST, 0)
    follow = ttrpc.encode_frame(7, ttrpc.TYPE_REQUEST, 0, Request(SVC, "Echo", b"after").encode())
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(server.path)
    try:
        s.sendall(header)
        s.sendall(bytes(length))
        s.sendall(follow)
        decoder = FrameDecoder()
        got = []
        while len(got) < 2:
            data = s.recv(65536)
            assert data
            got += decoder.feed(data)
    finally:
        s.close()
    by_id = {f.stream_id: Response.decode(f.payload) for f in got}
    assert by_id[5].status == Status(
        ttrpc.RESOURCE_EXHAUSTED, OversizedMessageError(length).message
    )
    assert by_id[7] == Response(Status(0), b"after")


def test_shutdown_is_clean(tmp_path):
    srv = Server()
    path, thread = _serve(srv, tmp_path, {"Echo": lambda p: p})
    c = Client(path)
    assert c.call(SVC, "Echo", b"before", timeout=30) == b"before"
    srv.shutdown(timeout=30)
    thread.join(30)
    assert not thread.is_alive()
    # the open connection was closed by the server: the client reports UNAVAILABLE
    with pytest.raises(TTRPCError) as e:
        c.call(SVC, "Echo", b"after", timeout=30)
    assert e.value.code == ttrpc.UNAVAILABLE
    c.close()
    # nothing listens any more, and the socket file is gone
    assert not os.path.exists(path)
    with pytest.raises(OSError):
        Client(path)
    srv.shutdown(timeout=30)  # idempotent


def _serve(srv, tmp_path, methods):
    """srv serving methods of SVC on a socket in tmp_path, in a thread: (path, thread)."""
    srv.register_service(SVC, methods)
    path = str(tmp_path / "s.sock")
    srv.listen(path)
    thread = threading.Thread(target=srv.serve, daemon=True)
    thread.start()
    return path, thread


def test_shutdown_waits_for_a_running_call(tmp_path):
    srv = Server()
    entered = threading.Event()
    release = threading.Event()

    def slow(p):
        entered.set()
        assert release.wait(30)
        return b"done"

    path, thread = _serve(srv, tmp_path, {"Slow": slow})
    out = {}
    with Client(path) as c:
        caller = threading.Thread(target=lambda: out.setdefault("r", c.call(SVC, "Slow")))
        caller.start()
        assert entered.wait(30)
        stopper = threading.Thread(target=srv.shutdown, kwargs={"timeout": 30})
        stopper.start()
        release.set()
        caller.join(30)
        stopper.join(30)
    assert out["r"] == b"done"
    assert not stopper.is_alive()


# --- inline calls, reused threads, deferred answers ------------------------------------


def _wait_for(predicate, what):
    for _ in range(3000):
        if predicate():
            return
        threading.Event().wait(0.01)
    raise AssertionError(f"timed out waiting for: {what}")


@pytest.fixture
def calls_server(tmp_path):
    """A server with inline methods (on the reader thread), threaded ones, and one that
    answers later (a Deferred kept in srv.deferred)."""
    srv = Server()
    gate = threading.Event()
    srv.gate = gate
    srv.deferred = []
    srv.threads = []

    def inline_crash(payload):
        raise RuntimeError("inline boom")

    def blocking(payload):
        srv.threads.append(threading.get_native_id())
        assert gate.wait(30)
        return b"unblocked"

    def later(payload):
        d = ttrpc.Deferred()
        if payload == b"now":
            d.answer(b"answered before the handler returned")
        srv.deferred.append(d)
        return d

    def thread_of(payload):
        srv.threads.append(threading.get_native_id())
        return str(threading.get_native_id()).encode()

    srv.register(SVC, "InlineEcho", lambda p: p, inline=True)
    srv.register(SVC, "InlineThread", lambda p: str(threading.get_ident()).encode(),
                 inline=True)
    srv.register(SVC, "InlineCrash", inline_crash, inline=True)
    srv.register(SVC, "Later", later, inline=True)
    srv.register_service(SVC, {"Echo": lambda p: p, "Blocking": blocking,
                               "ThreadOf": thread_of})
    path = str(tmp_path / "calls.sock")
    srv.listen(path)
    thread = threading.Thread(target=srv.serve, daemon=True)
    thread.start()
    srv.path = path
    yield srv
    gate.set()
    for d in srv.deferred:
        if d._response is None:
            d.answer(b"")
    srv.shutdown(timeout=30)
    thread.join(30)
    assert not thread.is_alive()


def test_an_inline_call_answers_on_its_stream_and_a_crash_is_internal(calls_server):
    req = Request(SVC, "InlineEcho", b"inline").encode()
    (frame,) = _raw_call(calls_server.path, ttrpc.encode_frame(5, ttrpc.TYPE_REQUEST, 0, req))
    assert (frame.stream_id, frame.type) == (5, ttrpc.TYPE_RESPONSE)
    assert Response.decode(frame.payload) == Response(Status(0), b"inline")
    with Client(calls_server.path) as c:
        with pytest.raises(TTRPCError) as e:
            c.call(SVC, "InlineCrash", b"", timeout=30)
        assert e.value.code == ttrpc.INTERNAL and "inline boom" in e.value.message
        # the reader thread survived its handler's exception: the connection still works
        assert c.call(SVC, "InlineEcho", b"after", timeout=30) == b"after"
        assert c.call(SVC, "Echo", b"threaded", timeout=30) == b"threaded"
        # inline: every such call runs on the connection's one reader thread
        first = c.call(SVC, "InlineThread", b"", timeout=30)
        assert c.call(SVC, "InlineThread", b"", timeout=30) == first


def _pending(c, method, out, arrived):
    """A call of method in a thread (its answer into out["r"]), once arrived() says the
    server has it: inline and threaded calls on the same connection still answer."""
    caller = threading.Thread(
        target=lambda: out.setdefault("r", c.call(SVC, method, b"", timeout=60)))
    caller.start()
    _wait_for(arrived, f"the {method} call to arrive")
    assert c.call(SVC, "InlineEcho", b"i", timeout=30) == b"i"
    assert c.call(SVC, "Echo", b"t", timeout=30) == b"t"
    assert "r" not in out
    return caller


def test_a_blocked_call_holds_up_neither_inline_nor_threaded_calls(calls_server):
    out = {}
    with Client(calls_server.path) as c:
        blocked = _pending(c, "Blocking", out, lambda: calls_server.threads)
        calls_server.gate.set()
        blocked.join(30)
        assert out["r"] == b"unblocked"


def test_a_call_thread_is_reused_and_the_idle_ones_are_bounded(calls_server):
    pool = calls_server._calls
    with Client(calls_server.path) as c:
        first = c.call(SVC, "ThreadOf", b"", timeout=30)
        _wait_for(lambda: len(pool._idle) == 1, "the call's thread to wait for the next")
        assert c.call(SVC, "ThreadOf", b"", timeout=30) == first
        # more calls at once than threads kept: each its own thread, KEEP stay afterwards
        n = ttrpc._Calls.KEEP + 3
        callers = [threading.Thread(target=c.call, args=(SVC, "Blocking", b"", 60))
                   for _ in range(n)]
        for t in callers:
            t.start()
        _wait_for(lambda: len(calls_server.threads) == 2 + n, "every call to run")
        assert len(set(calls_server.threads[2:])) == n
        calls_server.gate.set()
        for t in callers:
            t.join(30)
        _wait_for(lambda: len(pool._idle) == ttrpc._Calls.KEEP, "the threads to settle")
        ran = set(calls_server.threads[2:])
        _wait_for(lambda: len(ran & _live_threads()) == ttrpc._Calls.KEEP,
                  "the threads beyond those kept to end")
    calls_server.shutdown(timeout=30)
    _wait_for(lambda: not pool._idle and not set(calls_server.threads) & _live_threads(),
              "the waiting threads to end with the server")


def _live_threads():
    """The native ids of this process's threads (the server's are no threading.Thread)."""
    return {int(tid) for tid in os.listdir("/proc/self/task")}


def test_a_deferred_answer_is_sent_by_whoever_completes_it(calls_server):
    out = {}
    with Client(calls_server.path) as c:
        # pending, it holds up nothing on the same connection
        waiter = _pending(c, "Later", out, lambda: calls_server.deferred)
        completer = threading.Thread(target=calls_server.deferred[0].answer, args=(b"done",))
        completer.start()
        completer.join(30)
        waiter.join(30)
        assert out["r"] == b"done"
        with pytest.raises(RuntimeError):
            calls_server.deferred[0].answer(b"again")
        # answered before its handler returned: sent at once
        assert c.call(SVC, "Later", b"now", timeout=30) == b"answered before the handler returned"
        # a failure: the error's code and message
        failed = threading.Thread(target=lambda: out.setdefault("e", _call_error(c)))
        failed.start()
        _wait_for(lambda: len(calls_server.deferred) == 3, "the third deferred call")
        calls_server.deferred[2].fail(TTRPCError(ttrpc.NOT_FOUND, "gone"))
        failed.join(30)
        assert (out["e"].code, out["e"].message) == (ttrpc.NOT_FOUND, "gone")


def _call_error(c):
    try:
        c.call(SVC, "Later", b"", timeout=60)
    except TTRPCError as e:
        return e
    raise AssertionError("the call succeeded")


def test_a_deferred_answer_after_the_connection_closed_is_dropped(calls_server):
    c = Client(calls_server.path)
    caller = threading.Thread(target=_call_error, args=(c,))
    caller.start()
    _wait_for(lambda: calls_server.deferred, "the deferred call")
    c.close()
    caller.join(30)
    calls_server.deferred[0].answer(b"nobody listens")  # no error, nothing sent
    with Client(calls_server.path) as c2:
        assert c2.call(SVC, "Echo", b"still serving", timeout=30) == b"still serving"


def test_after_reply_runs_once_the_answer_is_sent(tmp_path):
    srv = Server()
    answered = threading.Event()
    seen = {}

    def handler(payload):
        ttrpc.after_reply(lambda: seen.setdefault("answered first", answered.wait(30)))
        ttrpc.after_reply(lambda: 1 / 0)  # logged; it fails neither the call nor the next
        ttrpc.after_reply(lambda: seen.setdefault("ran", True))
        return b"ok"

    path, thread = _serve(srv, tmp_path, {"Call": handler})
    try:
        with Client(path) as c:
            assert c.call(SVC, "Call", b"", timeout=30) == b"ok"
            answered.set()
            _wait_for(lambda: "ran" in seen, "the after-reply work")
            assert seen["answered first"] is True
        outside = []
        ttrpc.after_reply(lambda: outside.append(1))  # outside a call: at once
        assert outside == [1]
    finally:
        srv.shutdown(timeout=30)
        thread.join(30)
