"""A server asked to stop (SIGTERM, SIGINT) removes its socket on the way out, as
containerd's Go shims do: nothing is left in /run/containerd/s for the next start or
delete to find dead.  The server is made as containerd makes it, by the shim's `start`
(here with a private containerd address, so its socket name is this test's own), which
has the namespace's starter fork it."""

import os
import signal
import subprocess

import pytest
import shimlib

import pyrunc_testlib as lib


@pytest.fixture
def task(tmp_path):
    """A bundle where containerd keeps them (<state>/io.containerd.runtime.v2.task/NS/ID,
    so the server's state root is under tmp_path too), a task group of its own."""
    bundle = tmp_path / "io.containerd.runtime.v2.task" / "ns" / "t1"
    bundle.mkdir(parents=True)
    (bundle / "config.json").write_text('{"ociVersion": "1.0.2"}')
    address = str(tmp_path / "containerd.sock")
    with shimlib.AnsweringSocket(address, "ns"):
        yield bundle, address
    pids = shimlib.enginelib.processes_with_cmdline(str(tmp_path))
    shimlib.enginelib.kill_pids(pids)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_server_removes_its_socket(task, sig):
    bundle, address = task
    started = subprocess.run([shimlib.SHIM, "-namespace", "ns", "-address", address, "-id",
                              "t1", "start"], cwd=bundle, input=b"", capture_output=True,
                             timeout=lib.TIMEOUT)
    assert started.returncode == 0, started.stderr
    socket = started.stdout.decode().removeprefix("unix://")
    assert os.path.exists(socket)
    try:
        def servers():
            return shimlib.listening_on(socket)

        shimlib.wait_until(servers, "the server")
        servers = servers()
        assert len(servers) == 1, servers
        log = bundle.parents[2] / "pyrunc" / "ns" / "shim.log"
        serving = f"shim: serving ns on {socket} (pid {servers[0]})"
        shimlib.wait_until(lambda: log.exists() and serving in log.read_text(),
                           "the server's signal handlers (it logs that it serves)")
        os.kill(servers[0], sig)
        shimlib.wait_until(lambda: not os.path.exists(f"/proc/{servers[0]}"),
                           "the server's exit")
        assert not os.path.exists(socket), "the stopped server left its socket"
    finally:
        if os.path.exists(socket):
            os.unlink(socket)
