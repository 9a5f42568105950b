"""What the shim's processes import: each is an interpreter started per container (start,
the server, delete), so a heavy module pulled in by the way costs every container."""

import json
import os
import subprocess
import sys

import shimlib

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


def _importtime(argv, cwd, site=False):
    """The modules a shim call imports (-X importtime's list), and its stdout: with -S as
    the launcher runs them, or with site (what finds the package for a -c)."""
    flags = ["-I"] if site else ["-I", "-S"]
    done = subprocess.run([sys.executable, *flags, "-X", "importtime", *argv], cwd=cwd,
                          input=b"", capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return ({line.rsplit("|", 1)[-1].strip()
             for line in done.stderr.decode().splitlines() if "|" in line}, done.stdout)


def test_start_and_delete_import_no_os_on_the_common_path(tmp_path):
    """`start` and `delete` with nothing to clean, each once per container, relayed to the
    namespace's starter: neither imports os (~1.1 ms: ociruntime/paths.py), hashlib nor
    jsonlite (the starter reads the spec); and group_of, where it runs (the starter, or
    a call that does the work itself), does not even parse the spec of a task outside a
    group."""
    root = tmp_path / "io.containerd.runtime.v2.task" / "ns"
    pod, alone = root / "c1", root / "c2"
    pod.mkdir(parents=True)
    alone.mkdir()
    (pod / "config.json").write_text(
        json.dumps({"ociVersion": "1.0.2", "process": {"args": ["/bin/true"]},
                    "annotations": {"io.kubernetes.cri.sandbox-id": "pod-" + tmp_path.name}}))
    (alone / "config.json").write_text('{"ociVersion": "1.0.2"}')
    address = str(tmp_path / "containerd.sock")
    shim = [shimlib.PYTHON_SHIM, "-namespace", "ns", "-address", address]
    containerd = shimlib.AnsweringSocket(address, "ns")
    first = subprocess.run([*shim, "-id", "c1", "start"], cwd=pod, input=b"",
                           capture_output=True, timeout=60)
    socket = first.stdout.decode().removeprefix("unix://")
    try:
        assert first.returncode == 0, first.stderr
        assert shimlib.listening_on(shimlib.starter_socket(address, "ns")), "a starter"
        imported, printed = _importtime([*shim, "-id", "c1", "start"], pod)
        assert printed == first.stdout, "the pod's server is found again"
        assert "shim.cli" in imported
        assert not {"os", "hashlib", "ociruntime.jsonlite"} & imported, imported
        imported, printed = _importtime([*shim, "-id", "c1", "delete"], pod)
        assert printed.startswith(b"\x10\x89\x01"), "a DeleteResponse, exit status 137"
        assert not {"os", "hashlib", "ociruntime.jsonlite", "shim.protowire"} & imported, \
            imported
        assert os.path.exists(socket), "delete leaves a live server's socket"
        for bundle, group, parsed in ((alone, "task:c2", False),
                                      (pod, "group:pod-" + tmp_path.name, True)):
            imported, printed = _importtime(
                ["-c", "import sys; from shim.cli import group_of; "
                 f"sys.stdout.write(group_of({str(bundle)!r}, {bundle.name!r}))"], bundle,
                site=True)
            assert printed.decode() == group
            assert ("ociruntime.jsonlite" in imported) == parsed
    finally:
        containerd.__exit__()
        shimlib.enginelib.kill_pids(shimlib.enginelib.processes_with_cmdline(str(tmp_path)))
        if os.path.exists(socket):  # SIGKILL: the server could not remove it
            os.unlink(socket)
