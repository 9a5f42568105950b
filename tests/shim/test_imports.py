"""What the shim's processes import: each is an interpreter started per container (start,
the server, delete), so a heavy module pulled in by the way costs every container."""

import subprocess
import sys

SERVER = ("from shim.server import serve; from shim.forkserver import Spawner; "
          "from shim.reaper import Reaper; from shim.events import Publisher; "
          "from shim.service import TaskService; from shim.stdio import ProcessIO; "
          "from ociruntime.libcontainer import cgroups, monitor; import shim.ttrpc; ")


def _imported(code):
    done = subprocess.run([sys.executable, "-I", "-c", code + "import sys; "
                           "print(' '.join(sys.modules))"],
                          capture_output=True, text=True, check=True, timeout=60)
    return set(done.stdout.split())


def test_the_server_imports_neither_protobuf_nor_urllib():
    """protobuf (~20 ms, ~5 MiB: shim.messages speaks the task API) and urllib.parse
    (~3.5 ms: only a logging or file URI needs it, never containerd's fifo paths)."""
    imported = _imported(SERVER)
    assert "shim.service" in imported and "shim.stdio" in imported
    assert not {m for m in imported if m.startswith("google")}
    assert "urllib.parse" not in imported
