"""`containerd-shim-pyrunc-v2 delete`: containerd's cleanup after the server died.

The server is gone (killed, crashed), so nobody supervises the task any more: kill what is
left of the container, delete its runtime state and cgroup, unmount the rootfs containerd
gave it, and answer with the DeleteResponse containerd reads from stdout (exit status 137,
the SIGKILL the container got, as runc's shim reports).
"""

import os
import time

from ociruntime.errors import PyruncError
from ociruntime.libcontainer.container import Container
from shim import messages
from shim.rootfs import unmount_all

KILLED = 128 + 9


def delete_after_crash(bundle, task_id, root):
    pid = 0
    container = Container(root, task_id)
    try:
        if container.state.exists():
            try:
                pid = container.load().state.record.get("pid", 0)
            except PyruncError:
                pass
            container.delete(force=True)
    except PyruncError as e:
        os.write(2, f"shim delete {task_id}: {e}\n".encode())
    unmount_all(os.path.join(bundle, "rootfs"))
    return messages.DeleteResponse(pid=pid, exit_status=KILLED,
                                   exited_at=messages.timestamp(time.time_ns())
                                   ).SerializeToString()
