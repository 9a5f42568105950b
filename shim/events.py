"""Task events to containerd, in order, off the request path.

Two ways to deliver an envelope, as containerd offers them:
- the publish binary: `containerd --address ADDR publish --topic T --namespace NS`, the
  event as an encoded google.protobuf.Any on stdin (containerd's cmd/containerd publish);
- containerd's ttrpc events service (containerd.services.events.ttrpc.v1.Events/Forward on
  TTRPC_ADDRESS), which is what containerd 1.6's own shims use.
The socket is used when containerd gives one (it always does from 1.6 on): a publish
binary is a ~50 MB Go process per event, four per container, which on a small machine
costs more CPU than the whole container start.  Without TTRPC_ADDRESS, or with
PYRUNC_SHIM_EVENTS=binary, events go through the binary.  A failed delivery is retried a
few times, as containerd's own publisher does, then dropped with a log line.
"""

import os
import queue
import sys
import threading
import time

from shim import messages

TOPICS = {
    "TaskCreate": "/tasks/create", "TaskStart": "/tasks/start", "TaskExit": "/tasks/exit",
    "TaskDelete": "/tasks/delete", "TaskOOM": "/tasks/oom", "TaskExecAdded": "/tasks/exec-added",
    "TaskExecStarted": "/tasks/exec-started", "TaskPaused": "/tasks/paused",
    "TaskResumed": "/tasks/resumed", "TaskCheckpointed": "/tasks/checkpointed",
}
RETRIES = 5
PUBLISH_TIMEOUT = 10.0


pack = messages.pack


class Publisher:
    def __init__(self, namespace, containerd_address, publish_binary, ttrpc_address,
                 transport=None):
        self.namespace = namespace
        self.address = containerd_address
        self.binary = publish_binary or "containerd"
        self.ttrpc_address = ttrpc_address.removeprefix("unix://")
        self.transport = transport or os.environ.get(
            "PYRUNC_SHIM_EVENTS", "ttrpc" if self.ttrpc_address else "binary")
        self._queue = queue.Queue()
        self._client = None
        self._done = threading.Event()
        from shim.ttrpc import start_thread

        start_thread(self._run)  # no handshake: the server's start-up goes on at once

    def publish(self, message):
        topic = TOPICS[type(message).__name__]
        self._queue.put((topic, pack(message), time.time_ns()))

    def close(self, timeout=5.0):
        """Deliver what is queued (bounded), then stop."""
        self._queue.put(None)
        self._done.wait(timeout)

    def _run(self):
        try:
            self._deliver_all()
        finally:
            self._done.set()

    def _deliver_all(self):
        while True:
            item = self._queue.get()
            if item is None:
                return
            topic, event, when = item
            for attempt in range(RETRIES):
                try:
                    self._deliver(topic, event, when)
                    break
                except Exception as e:
                    sys.stderr.write(f"shim: publish {topic} (attempt {attempt + 1}): {e}\n")
                    self._drop_client()
                    time.sleep(0.2 * (attempt + 1))

    def _deliver(self, topic, event, when):
        if self.transport == "ttrpc" and self.ttrpc_address:
            self._forward(topic, event, when)
            return
        import shutil

        from ociruntime.libcontainer import monitor

        # spawned and waited for through the monitor, the server's reaper: a wait of our
        # own would race it (and read a failure as success, or ECHILD)
        argv = [self.binary, "--address", self.address, "publish", "--topic", topic,
                "--namespace", self.namespace]
        spawn = monitor.posix_spawner(shutil.which(self.binary) or self.binary, argv,
                                      os.environ)
        status, output = monitor.run(spawn, event.SerializeToString(), PUBLISH_TIMEOUT)
        if status is None:
            raise RuntimeError(f"{self.binary} publish: timed out after {PUBLISH_TIMEOUT}s")
        if status:
            raise RuntimeError(output.strip() or monitor.describe(status))

    def _forward(self, topic, event, when):
        from shim.ttrpc import Client

        if self._client is None:
            self._client = Client(self.ttrpc_address)
        request = messages.ForwardRequest(envelope=messages.Envelope(
            timestamp=messages.timestamp(when), namespace=self.namespace, topic=topic,
            event=event))
        self._client.call("containerd.services.events.ttrpc.v1.Events", "Forward",
                          request.SerializeToString(), timeout=5.0,
                          metadata=(("containerd-namespace-ttrpc", self.namespace),))

    def _drop_client(self):
        if self._client is not None:
            try:
                self._client.close()
            except Exception:
                pass
            self._client = None
