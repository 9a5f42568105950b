"""ttrpc over a unix socket, as github.com/containerd/ttrpc defines it.

Wire format (channel.go): every message is a 10-byte header -- uint32
big-endian payload length, uint32 big-endian stream id, uint8 type
(1 request, 2 response, 3 data), uint8 flags -- followed by the payload,
at most 4 MiB. A request payload is a protobuf ``Request``, a response
payload a protobuf ``Response`` carrying a ``google.rpc.Status``
(request.proto). Client-initiated streams have odd ids, increasing by 2.

Only unary calls are implemented (no streaming): the server ignores data
frames and frames of unknown types, as ttrpc's server does for the latter.
"""

from __future__ import annotations

import _thread
import os
import selectors
import socket
import struct
import threading
import time
from collections import namedtuple
from collections.abc import Callable, Iterable

from shim import protowire as pw

HEADER_LENGTH = 10
MESSAGE_LENGTH_MAX = 4 << 20

TYPE_REQUEST = 1
TYPE_RESPONSE = 2
TYPE_DATA = 3

FLAG_REMOTE_CLOSED = 0x1
FLAG_REMOTE_OPEN = 0x2
FLAG_NO_DATA = 0x4

# gRPC status codes (google.golang.org/grpc/codes)
OK = 0
CANCELLED = 1
UNKNOWN = 2
INVALID_ARGUMENT = 3
DEADLINE_EXCEEDED = 4
NOT_FOUND = 5
ALREADY_EXISTS = 6
PERMISSION_DENIED = 7
RESOURCE_EXHAUSTED = 8
FAILED_PRECONDITION = 9
ABORTED = 10
OUT_OF_RANGE = 11
UNIMPLEMENTED = 12
INTERNAL = 13
UNAVAILABLE = 14
DATA_LOSS = 15
UNAUTHENTICATED = 16

_HEADER = struct.Struct(">IIBB")


class TTRPCError(Exception):
    """A call failed with a gRPC status (code != OK)."""

    def __init__(self, code: int, message: str, details: tuple[bytes, ...] = ()):
        super().__init__(f"ttrpc: code {code}: {message}")
        self.code = code
        self.message = message
        self.details = tuple(details)


class OversizedMessageError(TTRPCError):
    """A message longer than MESSAGE_LENGTH_MAX (channel.go's error text)."""

    def __init__(self, length: int):
        super().__init__(
            RESOURCE_EXHAUSTED,
            f"message length {length} exceed maximum message size of {MESSAGE_LENGTH_MAX}",
        )
        self.length = length


# --- framing -----------------------------------------------------------------


# (typing.NamedTuple and dataclasses would cost the long-lived shim ~4 MB of imports)
Frame = namedtuple("Frame", "stream_id type flags payload")
# a frame whose announced length exceeded the maximum; its bytes were discarded
OversizedFrame = namedtuple("OversizedFrame", "stream_id type flags length")


class _Record:
    """A small immutable record: fields with defaults, positional or keyword, compared by
    value (what these envelopes used dataclasses(frozen=True) for)."""

    __slots__ = ()
    _defaults: tuple = ()

    def __init__(self, *args, **kwargs):
        names = self.__slots__
        if len(args) > len(names):
            raise TypeError(f"{type(self).__name__}: too many arguments")
        values = dict(zip(names, self._defaults, strict=True))
        values.update(zip(names, args, strict=False))
        for key, value in kwargs.items():
            if key not in values:
                raise TypeError(f"{type(self).__name__}: unexpected argument {key!r}")
            values[key] = value
        for key, value in values.items():
            object.__setattr__(self, key, value)

    def __setattr__(self, key, value):
        raise AttributeError(f"{type(self).__name__} is immutable")

    def _values(self):
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other):
        return type(other) is type(self) and other._values() == self._values()

    def __hash__(self):
        return hash(self._values())

    def __repr__(self):
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__)
        return f"{type(self).__name__}({inner})"


def encode_header(length: int, stream_id: int, msg_type: int, flags: int) -> bytes:
    return _HEADER.pack(length, stream_id, msg_type, flags)


def decode_header(data: bytes) -> tuple[int, int, int, int]:
    """Return (length, stream id, type, flags) of a 10-byte header."""
    return _HEADER.unpack(bytes(data[:HEADER_LENGTH]))


def encode_frame(stream_id: int, msg_type: int, flags: int, payload: bytes) -> bytes:
    if len(payload) > MESSAGE_LENGTH_MAX:
        raise OversizedMessageError(len(payload))
    return encode_header(len(payload), stream_id, msg_type, flags) + bytes(payload)


class FrameDecoder:
    """Incremental decoder: feed it bytes as they arrive, get whole frames.

    A header announcing more than MESSAGE_LENGTH_MAX bytes yields an
    OversizedFrame, and that many following bytes are discarded, so the
    stream stays in sync (as channel.go's recv does).
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._discard = 0

    def feed(self, data: bytes) -> list[Frame | OversizedFrame]:
        self._buf += data
        out: list[Frame | OversizedFrame] = []
        while True:
            if self._discard:
                n = min(self._discard, len(self._buf))
                del self._buf[:n]
                self._discard -= n
                if self._discard:
                    return out
            if len(self._buf) < HEADER_LENGTH:
                return out
            length, stream_id, msg_type, flags = _HEADER.unpack_from(self._buf)
            if length > MESSAGE_LENGTH_MAX:
                del self._buf[:HEADER_LENGTH]
                self._discard = length
                out.append(OversizedFrame(stream_id, msg_type, flags, length))
                continue
            end = HEADER_LENGTH + length
            if len(self._buf) < end:
                return out
            payload = bytes(self._buf[HEADER_LENGTH:end])
            del self._buf[:end]
            out.append(Frame(stream_id, msg_type, flags, payload))

    @property
    def pending(self) -> int:
        """Bytes buffered that do not yet form a whole frame."""
        return len(self._buf)


# --- envelopes (request.proto) -------------------------------------------------


class Request(_Record):
    __slots__ = ("service", "method", "payload", "timeout_nano", "metadata")
    _defaults = ("", "", b"", 0, ())

    def encode(self) -> bytes:
        out = bytearray()
        if self.service:
            out += pw.field_bytes(1, self.service)
        if self.method:
            out += pw.field_bytes(2, self.method)
        if self.payload:
            out += pw.field_bytes(3, self.payload)
        if self.timeout_nano:
            out += pw.field_varint(4, self.timeout_nano)
        for key, value in self.metadata:
            kv = bytearray()
            if key:
                kv += pw.field_bytes(1, key)
            if value:
                kv += pw.field_bytes(2, value)
            out += pw.field_bytes(5, bytes(kv))
        return bytes(out)

    @classmethod
    def decode(cls, data: bytes) -> Request:
        service = method = ""
        payload = b""
        timeout = 0
        metadata = []
        for num, _wt, value in pw.iter_fields(data):
            if num == 1:
                service = pw.as_str(value, "service")
            elif num == 2:
                method = pw.as_str(value, "method")
            elif num == 3:
                payload = pw.as_bytes(value, "payload")
            elif num == 4:
                timeout = pw.to_int64(pw.as_int(value, "timeout_nano"))
            elif num == 5:
                key = val = ""
                for knum, _kwt, kvalue in pw.iter_fields(pw.as_bytes(value, "metadata")):
                    if knum == 1:
                        key = pw.as_str(kvalue, "key")
                    elif knum == 2:
                        val = pw.as_str(kvalue, "value")
                metadata.append((key, val))
        return cls(service, method, payload, timeout, tuple(metadata))


class Status(_Record):
    """google.rpc.Status; details are the encoded google.protobuf.Any messages."""

    __slots__ = ("code", "message", "details")
    _defaults = (OK, "", ())

    def encode(self) -> bytes:
        out = bytearray()
        if self.code:
            out += pw.field_varint(1, self.code)
        if self.message:
            out += pw.field_bytes(2, self.message)
        for d in self.details:
            out += pw.field_bytes(3, d)
        return bytes(out)

    @classmethod
    def decode(cls, data: bytes) -> Status:
        code = 0
        message = ""
        details = []
        for num, _wt, value in pw.iter_fields(data):
            if num == 1:
                code = pw.to_int64(pw.as_int(value, "code")) & 0xFFFFFFFF
                code = code - (1 << 32) if code >= 1 << 31 else code
            elif num == 2:
                message = pw.as_str(value, "message")
            elif num == 3:
                details.append(pw.as_bytes(value, "details"))
        return cls(code, message, tuple(details))


class Response(_Record):
    __slots__ = ("status", "payload")
    _defaults = (None, b"")

    def encode(self) -> bytes:
        out = bytearray()
        if self.status is not None:
            out += pw.field_bytes(1, self.status.encode())
        if self.payload:
            out += pw.field_bytes(2, self.payload)
        return bytes(out)

    @classmethod
    def decode(cls, data: bytes) -> Response:
        status = None
        payload = b""
        for num, _wt, value in pw.iter_fields(data):
            if num == 1:
                status = Status.decode(pw.as_bytes(value, "status"))
            elif num == 2:
                payload = pw.as_bytes(value, "payload")
        return cls(status, payload)


# --- server ----------------------------------------------------------------------

# a handler: payload bytes in, response payload bytes out (or raises TTRPCError)
Handler = "Callable[[bytes], bytes]"


class _Connection:
    def __init__(self, server: Server, sock: socket.socket):
        self.server = server
        self.sock = sock
        self.send_lock = threading.Lock()
        self.last_stream_id = 0
        self.active = 0
        self.cond = threading.Condition()
        self.closed = False
        self.done = threading.Event()  # its reader thread has ended

    def send(self, stream_id: int, msg_type: int, payload: bytes) -> None:
        self._send_frame(encode_frame(stream_id, msg_type, 0, payload))

    def send_now(self, frame: bytes) -> None:
        """Send a frame without blocking this thread (a deferred answer, sent from whatever
        thread completes it: the reaper's, which must never wait on a peer): at once when
        the socket takes it, else the rest by a thread of its own, still in order."""
        if not self.send_lock.acquire(blocking=False):
            threading.Thread(target=self._send_frame, args=(frame,), daemon=True).start()
            return
        sent = len(frame)
        try:
            if not self.closed:
                sent = self.sock.send(frame, socket.MSG_DONTWAIT)
        except BlockingIOError:
            sent = 0
        except OSError:
            pass  # peer went away
        if sent >= len(frame):
            self.send_lock.release()
            return
        # the lock stays held (frames must not interleave) until that thread sent the rest
        threading.Thread(target=self._send_rest, args=(memoryview(frame)[sent:],),
                         daemon=True).start()

    def _send_frame(self, frame: bytes) -> None:
        with self.send_lock:
            if self.closed:
                return
            try:
                self.sock.sendall(frame)
            except OSError:
                pass  # peer went away; the reader loop notices and ends

    def _send_rest(self, rest: memoryview) -> None:
        try:
            self.sock.sendall(rest)
        except OSError:
            pass
        finally:
            self.send_lock.release()

    def send_status(self, stream_id: int, code: int, message: str) -> None:
        self.send(stream_id, TYPE_RESPONSE, Response(Status(code, message)).encode())

    def serve(self) -> None:
        decoder = FrameDecoder()
        try:
            while True:
                try:
                    data = self.sock.recv(65536)
                except OSError:
                    break
                if not data:
                    break
                for item in decoder.feed(data):
                    self._dispatch_frame(item)
        finally:
            with self.cond:
                while self.active:
                    self.cond.wait()
            with self.send_lock:
                self.closed = True
                self.sock.close()
            self.server._forget(self)
            self.done.set()

    def _dispatch_frame(self, item: Frame | OversizedFrame) -> None:
        if isinstance(item, OversizedFrame):
            err = OversizedMessageError(item.length)
            self.send_status(item.stream_id, err.code, err.message)
            return
        if item.type != TYPE_REQUEST:
            return  # data frames (streaming) and unknown types are ignored
        if item.stream_id % 2 != 1:
            self.send_status(
                item.stream_id,
                INVALID_ARGUMENT,
                "StreamID must be odd for client initiated streams",
            )
            return
        if item.stream_id <= self.last_stream_id:
            self.send_status(
                item.stream_id,
                INVALID_ARGUMENT,
                "StreamID cannot be re-used and must increment",
            )
            return
        self.last_stream_id = item.stream_id
        try:
            request = Request.decode(item.payload)
        except pw.DecodeError as e:
            self.send_status(item.stream_id, INVALID_ARGUMENT, f"unmarshal request error: {e}")
            return
        if (request.service, request.method) in self.server._inline:
            self._answer(item.stream_id, request)  # cannot block: here, no hand-off
            return
        with self.cond:
            self.active += 1
        self.server._calls.run(self._handle, item.stream_id, request)

    def _handle(self, stream_id: int, request: Request) -> None:
        try:
            self._answer(stream_id, request)
        finally:
            with self.cond:
                self.active -= 1
                self.cond.notify_all()

    def _answer(self, stream_id: int, request: Request) -> None:
        _after.calls = after = []
        try:
            response = self.server._call(request)
            if isinstance(response, Deferred):
                with self.cond:
                    self.active += 1  # as a call still running: a close waits for it
                response._bind(lambda r: self._deferred_done(stream_id, r))
                return
            self.send(stream_id, TYPE_RESPONSE, _encode_response(response))
        finally:
            _after.calls = None
            for fn in after:
                _run_logged(fn)

    def _deferred_done(self, stream_id: int, response: Response) -> None:
        try:
            data = _encode_response(response)
            self.send_now(encode_frame(stream_id, TYPE_RESPONSE, 0, data))
        finally:
            with self.cond:
                self.active -= 1
                self.cond.notify_all()


def _encode_response(response: Response) -> bytes:
    data = response.encode()
    if len(data) > MESSAGE_LENGTH_MAX:
        err = OversizedMessageError(len(data))
        data = Response(Status(err.code, err.message)).encode()
    return data


class Deferred:
    """An answer that comes later: a handler returns one instead of blocking its thread
    until it knows the answer (a Wait until the process exits), and whoever learns it
    calls answer() or fail(), once, from any thread; it is sent from that thread at once
    (_Connection.send_now).  Until then the call counts as running, as one in a thread
    would."""

    __slots__ = ("_lock", "_send", "_response")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._send: Callable[[Response], None] | None = None
        self._response: Response | None = None

    def answer(self, payload: bytes = b"") -> None:
        self._complete(Response(Status(OK), bytes(payload)))

    def fail(self, error: TTRPCError) -> None:
        self._complete(Response(Status(error.code, error.message, error.details)))

    def _complete(self, response: Response) -> None:
        with self._lock:
            if self._response is not None:
                raise RuntimeError("ttrpc: a deferred call answered twice")
            self._response = response
            send, self._send = self._send, None
        if send is not None:
            send(response)

    def _bind(self, send: Callable[[Response], None]) -> None:
        """The server's side: how to send the answer (now if it is known already)."""
        with self._lock:
            if self._response is None:
                self._send = send
                return
        send(self._response)


# what a call's handler left to do once its answer is sent (after_reply), per thread
_after = threading.local()


def after_reply(fn: Callable[[], object]) -> None:
    """Run fn once the answer of the call this thread is handling has been sent (its
    caller no longer waits for it); at once outside a call.  An exception fn raises is
    logged, never the call's."""
    after = getattr(_after, "calls", None)
    if after is None:
        _run_logged(fn)
    else:
        after.append(fn)


def _run_logged(fn: Callable, *args) -> None:
    try:
        fn(*args)
    except Exception as e:
        try:
            os.write(2, f"ttrpc: after a call: {type(e).__name__}: {e}\n".encode())
        except OSError:
            pass


def start_thread(fn: Callable, *args) -> None:
    """A thread of the server's running fn(*args), started without threading.Thread's
    handshake (start() waits until the new thread runs: two more hand-offs of the GIL on
    the path of what needed it, a connection's first request, a call, the server's
    start-up before its first accept).  Like a daemon thread, nobody joins it: who needs
    its end waits for an Event of its own."""
    _thread.start_new_thread(fn, args)


class _Calls:
    """The threads blocking calls run in, kept for the next call: handing a call to a
    waiting thread is one wake-up, where a new thread costs a clone and its start-up
    (with threading.Thread's handshake ~0.1 ms idle, up to 2 ms on a loaded host).  A
    thread stays while fewer than KEEP wait; each call still has a thread of its own, so
    a call that blocks (on a worker, a hook) never holds up another."""

    KEEP = 4

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[_CallThread] = []
        self._closed = False

    def run(self, fn: Callable, *args) -> None:
        with self._lock:
            worker = self._idle.pop() if self._idle else None
        if worker is None:
            worker = _CallThread(self)
            worker.job = (fn, args)
            start_thread(worker.loop)
        else:
            worker.job = (fn, args)
            worker.wake.release()

    def _park(self, worker: _CallThread) -> bool:
        with self._lock:
            if self._closed or len(self._idle) >= self.KEEP:
                return False
            self._idle.append(worker)
            return True

    def close(self) -> None:
        """The waiting threads end (running calls finish and end then)."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.job = None
            worker.wake.release()


class _CallThread:
    __slots__ = ("calls", "job", "wake")

    def __init__(self, calls: _Calls) -> None:
        self.calls = calls
        self.job: tuple | None = None
        self.wake = threading.Lock()  # held while it waits for a job: released to wake it
        self.wake.acquire()

    def loop(self) -> None:
        job = self.job
        while True:
            if job is not None:
                fn, args = job
                self.job = job = None
                _run_logged(fn, *args)
            if not self.calls._park(self):
                return
            self.wake.acquire()
            job = self.job
            if job is None:
                return


class Server:
    """A ttrpc server: register handlers, then serve() on a unix socket path.

    Each connection has a reader thread.  A method registered inline (one that cannot
    block: it reads a little state and answers) runs there, in turn with the connection's
    other frames; every other request runs in a thread of its own (_Calls), so a slow or
    blocked call never holds up others on the same connection.
    """

    def __init__(self) -> None:
        self._handlers: dict[tuple[str, str], Handler] = {}
        self._inline: set[tuple[str, str]] = set()
        self._calls = _Calls()
        self._lock = threading.Lock()
        self._conns: set[_Connection] = set()
        self._listener: socket.socket | None = None
        self._path: str | None = None
        self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._shutting_down = False
        self._serving = False
        self._stopped = threading.Event()
        self.last_accept = 0.0

    def register(self, service: str, method: str, handler: Handler, inline: bool = False) -> None:
        """inline: the handler never blocks (no wait for a process, a hook, a lock another
        call may hold long): it runs on the connection's reader thread."""
        self._handlers[(service, method)] = handler
        if inline:
            self._inline.add((service, method))
        else:
            self._inline.discard((service, method))

    def register_service(
        self, service: str, methods: dict[str, Handler], inline: Iterable[str] = ()
    ) -> None:
        inline = set(inline)
        for method, handler in methods.items():
            self.register(service, method, handler, method in inline)

    def _call(self, request: Request) -> Response | Deferred:
        handler = self._handlers.get((request.service, request.method))
        if handler is None:
            return Response(
                Status(UNIMPLEMENTED, f"method {request.service}/{request.method} not implemented")
            )
        try:
            payload = handler(request.payload)
        except TTRPCError as e:
            return Response(Status(e.code, e.message, e.details))
        except Exception as e:  # any other handler failure is INTERNAL
            return Response(Status(INTERNAL, f"{type(e).__name__}: {e}"))
        if isinstance(payload, Deferred):
            return payload
        return Response(Status(OK), bytes(payload or b""))

    def listen(self, path: str) -> socket.socket:
        """Bind and listen on a unix socket path; shutdown() removes it again."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.bind(path)
            sock.listen(64)
        except BaseException:
            sock.close()
            raise
        self._listener = sock
        self._path = path
        return sock

    def serve(self, listener: socket.socket | None = None) -> None:
        """Accept and serve connections until shutdown() is called."""
        if listener is not None:
            self._listener = listener
        if self._listener is None:
            raise ValueError("serve: no listener (call listen(path) first)")
        lsock = self._listener
        with self._lock:
            if self._shutting_down:
                return
            self._serving = True
        lsock.setblocking(False)
        sel = selectors.DefaultSelector()
        try:
            sel.register(lsock, selectors.EVENT_READ)
            sel.register(self._wake_r, selectors.EVENT_READ)
            while not self._shutting_down:
                for key, _ in sel.select():
                    if key.fileobj == self._wake_r:
                        continue
                    try:
                        conn, _addr = lsock.accept()
                    except (BlockingIOError, InterruptedError):
                        continue
                    conn.setblocking(True)
                    self._start_conn(conn)
        finally:
            sel.close()
            self._stopped.set()

    def connection_count(self) -> int:
        """Connections open now (containerd keeps one per task it talks to)."""
        with self._lock:
            return len(self._conns)

    def _start_conn(self, sock: socket.socket) -> None:
        self.last_accept = time.monotonic()
        c = _Connection(self, sock)
        with self._lock:
            if self._shutting_down:
                sock.close()
                return
            self._conns.add(c)
        start_thread(c.serve)

    def _forget(self, conn: _Connection) -> None:
        with self._lock:
            self._conns.discard(conn)

    def shutdown(self, timeout: float | None = None) -> None:
        """Stop accepting, let running calls answer, close every connection.

        Idempotent. The socket path bound by listen() is removed.
        """
        with self._lock:
            if self._shutting_down:
                return
            self._shutting_down = True
            conns = set(self._conns)
            serving = self._serving
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass
        if serving:
            self._stopped.wait(timeout)
        if self._listener is not None:
            self._listener.close()
        if self._path is not None:
            try:
                os.unlink(self._path)
            except FileNotFoundError:
                pass
        for c in conns:
            try:
                c.sock.shutdown(socket.SHUT_RD)
            except OSError:
                pass
        for c in conns:
            c.done.wait(timeout)
        self._calls.close()
        os.close(self._wake_r)
        os.close(self._wake_w)


# --- client ----------------------------------------------------------------------


class _Waiter:
    __slots__ = ("event", "response", "error")

    def __init__(self):
        self.event = threading.Event()
        self.response: Response | None = None
        self.error: TTRPCError | None = None


class Client:
    """A ttrpc client on one unix socket connection; call() is thread-safe."""

    def __init__(self, path: str | None = None, sock: socket.socket | None = None):
        if sock is None:
            if path is None:
                raise ValueError("Client: a path or a connected socket is needed")
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
            try:
                sock.connect(path)
            except BaseException:
                sock.close()
                raise
        self._sock = sock
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._next_id = 1
        self._waiters: dict[int, _Waiter] = {}
        self._closed: TTRPCError | None = None
        self._reader = threading.Thread(target=self._read_loop, name="ttrpc-client", daemon=True)
        self._reader.start()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _read_loop(self) -> None:
        decoder = FrameDecoder()
        reason = TTRPCError(UNAVAILABLE, "ttrpc: closed")
        try:
            while True:
                try:
                    data = self._sock.recv(65536)
                except OSError as e:
                    reason = TTRPCError(UNAVAILABLE, f"ttrpc: connection error: {e}")
                    break
                if not data:
                    break
                for item in decoder.feed(data):
                    self._deliver(item)
        finally:
            with self._lock:
                if self._closed is None:
                    self._closed = reason
                waiters = list(self._waiters.values())
                self._waiters.clear()
            for w in waiters:
                w.error = self._closed
                w.event.set()

    def _deliver(self, item: Frame | OversizedFrame) -> None:
        if item.type != TYPE_RESPONSE:
            return
        with self._lock:
            w = self._waiters.pop(item.stream_id, None)
        if w is None:
            return  # a late answer to a call that timed out
        if isinstance(item, OversizedFrame):
            w.error = OversizedMessageError(item.length)
        else:
            try:
                w.response = Response.decode(item.payload)
            except pw.DecodeError as e:
                w.error = TTRPCError(INTERNAL, f"ttrpc: bad response: {e}")
        w.event.set()

    def call(
        self,
        service: str,
        method: str,
        payload: bytes = b"",
        timeout: float | None = None,
        metadata: tuple[tuple[str, str], ...] = (),
    ) -> bytes:
        """Make a unary call; return the response payload or raise TTRPCError."""
        timeout_nano = int(timeout * 1e9) if timeout else 0
        data = Request(service, method, bytes(payload), timeout_nano, tuple(metadata)).encode()
        w = _Waiter()
        with self._send_lock:
            with self._lock:
                if self._closed is not None:
                    raise self._closed
                stream_id = self._next_id
                self._next_id += 2
                self._waiters[stream_id] = w
            try:
                frame = encode_frame(stream_id, TYPE_REQUEST, 0, data)
                self._sock.sendall(frame)
            except (OSError, TTRPCError) as e:
                with self._lock:
                    self._waiters.pop(stream_id, None)
                if isinstance(e, TTRPCError):
                    raise
                raise TTRPCError(UNAVAILABLE, f"ttrpc: send failed: {e}") from e
        if not w.event.wait(timeout):
            with self._lock:
                self._waiters.pop(stream_id, None)
            raise TTRPCError(DEADLINE_EXCEEDED, "context deadline exceeded")
        if w.error is not None:
            raise w.error
        resp = w.response
        assert resp is not None
        if resp.status is not None and resp.status.code != OK:
            raise TTRPCError(resp.status.code, resp.status.message, resp.status.details)
        return resp.payload

    def close(self) -> None:
        with self._lock:
            if self._closed is None:
                self._closed = TTRPCError(UNAVAILABLE, "ttrpc: closed")
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._reader.join()
        self._sock.close()
