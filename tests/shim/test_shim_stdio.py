"""The stdio of containers run through containerd-shim-pyrunc-v2, as runc's shim serves it:
stdin stays open after a detached client is gone, output written after it went does not
kill the writer, and the log URIs (file://, binary://) clients such as nerdctl use.
"""

import os

from shimlib import wait_until

import pyrunc_testlib as lib


def _exec(c, name, *cmd):
    return c("tasks", "exec", "--exec-id", "x" + os.urandom(4).hex(), name, *cmd,
             check=False)


def _status_after_detach(c, script):
    """Run `script` detached (ctr -d has exited, its fifo ends closed) once told to go on
    (/go, made by an exec after ctr returned); the number it wrote to /status, the task
    still RUNNING, or None when the task stopped without writing it."""
    name = c.new_name()
    c.run(name, "sh", "-c", "until [ -e /go ]; do sleep 0.05; done; " + script
          + "; echo $? > /status; exec sleep 1000", flags=("-d",))
    _exec(c, name, "touch", "/go")
    found = {}

    def done():
        out = _exec(c, name, "cat", "/status")
        if out.returncode == 0 and out.stdout.strip():
            found["status"] = out.stdout.strip()
            return True
        return c.tasks().get(name, (0, "STOPPED"))[1] == "STOPPED"
    wait_until(done, "the container to write /status or stop")
    if found:
        assert c.tasks()[name][1] == "RUNNING"
    return found.get("status")


def test_stdin_stays_open_after_a_detached_client_exits(containerd):
    # a read of stdin must block (the shim holds a writer), not see EOF; `timeout` ends it
    assert _status_after_detach(containerd, "timeout 1 cat") == "143", \
        "stdin saw EOF when ctr detached"


def test_output_after_the_client_went_does_not_kill_the_writer(containerd):
    # nobody reads the stdout fifo once ctr -d exited: without a reader held by the shim
    # the echo would die of SIGPIPE (and the shell with it)
    assert _status_after_detach(containerd, "echo after-detach; echo oops >&2") == "0", \
        "the write after detach failed"


def test_a_detached_shell_keeps_running(containerd):
    c = containerd
    name = c.new_name()
    c.run(name, "sh", flags=("-d",))  # an interactive-style shell reading its stdin
    out = _exec(c, name, "echo", "alive")
    assert (out.returncode, out.stdout) == (0, "alive\n"), out
    assert c.tasks()[name][1] == "RUNNING"


def test_log_uri_file(containerd, tmp_path):
    c = containerd
    log = tmp_path / "logs" / "out.log"  # its directory is made as runc's shim does
    out = c.run(c.new_name(), "sh", "-c", "echo to-stdout; echo to-stderr >&2",
                flags=("--rm", "--log-uri", f"file://{log}"))
    assert out.returncode == 0, out
    wait_until(lambda: log.exists() and log.read_text().count("\n") == 2, "the log file")
    assert sorted(log.read_text().splitlines()) == ["to-stderr", "to-stdout"]
    assert oct(log.stat().st_mode & 0o777) == oct(0o644)


LOGGER = """#!/bin/sh
# a logging binary as containerd's protocol has it: stdout on fd 3, stderr on fd 4, and fd
# 5 closed once ready; CONTAINER_ID and CONTAINER_NAMESPACE are its whole environment
env > {d}/env
printf '%s\\n' "$@" > {d}/args
exec 5>&-
/bin/cat <&3 > {d}/stdout &
/bin/cat <&4 > {d}/stderr &
wait
"""


def test_log_uri_binary(containerd, tmp_path):
    c = containerd
    logger = tmp_path / "logger"
    logger.write_text(LOGGER.format(d=tmp_path))
    logger.chmod(0o755)
    name = c.new_name()
    out = c.run(name, "sh", "-c", "echo to-stdout; echo to-stderr >&2",
                flags=("--rm", "--log-uri", f"binary://{logger}?--flag=value&bare"))
    assert out.returncode == 0, out
    for stream in ("stdout", "stderr"):
        path = tmp_path / stream
        wait_until(lambda path=path: path.exists() and path.read_text(), f"the logger's {stream}")
        assert path.read_text() == f"to-{stream}\n"
    env = dict(line.split("=", 1) for line in (tmp_path / "env").read_text().splitlines())
    assert env.get("CONTAINER_ID") == name and env.get("CONTAINER_NAMESPACE") == c.namespace
    assert (tmp_path / "args").read_text().splitlines() == ["--flag", "value", "bare", ""]


def test_log_uri_unknown_scheme_is_one_clear_error(containerd):
    c = containerd
    name = c.new_name()
    out = c.run(name, "true", flags=("--rm", "--log-uri", "gopher://x"), check=False)
    assert out.returncode != 0
    assert "unknown STDIO scheme gopher" in out.stderr, out


def test_stdin_ends_with_closeio(containerd):
    c = containerd
    name = c.new_name()
    c.run(name, "sleep", "1000", flags=("-d",))
    # ctr exec copies its stdin to the fifo, then sends CloseIO: that is the EOF
    out = c("tasks", "exec", "--exec-id", "cat1", name, "cat", input="from stdin\n")
    assert out.stdout == "from stdin\n", out


def test_a_missing_logging_binary_is_one_clear_error(containerd, tmp_path):
    c = containerd
    name = c.new_name()
    missing = tmp_path / "no-such-logger"
    out = c.run(name, "true", flags=("--rm", "--log-uri", f"binary://{missing}"), check=False)
    assert out.returncode != 0
    assert f"cannot start the logging binary {missing}: No such file or directory" in \
        out.stderr, out
    assert name not in c.tasks()
    # the task's own server (and the Create's worker start forked with the task's id in
    # its command line, never given the request) go once containerd shuts the server down
    wait_until(lambda: not lib.processes_of(name), f"the processes of {name} to go")
    assert not lib.container_cgroup_dirs(name)
