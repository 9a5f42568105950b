"""ociruntime.exit_process: the CLI ends without the interpreter's teardown, and nothing that
teardown would have done is lost: buffered stdout and stderr, the status as sys.exit
gives it, threads still running and atexit handlers (then Python's own exit runs)."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

import ociruntime

REPO = str(pathlib.Path(ociruntime.__file__).resolve().parents[1])


def run_isolated(body, tmp_path):
    """body in a fresh `python -I -S` (as the launcher runs), ended by exit_process."""
    code = (f"import sys\nsys.path.insert(0, {REPO!r})\n"
            "from ociruntime import exit_process\n")
    return subprocess.run([sys.executable, "-I", "-S", "-c", code + body], cwd=tmp_path,
                          capture_output=True, timeout=60, check=False)


def test_buffered_output_is_flushed_and_the_status_kept(tmp_path):
    result = run_isolated("sys.stdout.write('x' * 100000)\nsys.stderr.write('e' * 5000)\n"
                          "exit_process(3)", tmp_path)
    assert result.returncode == 3
    assert result.stdout == b"x" * 100000
    assert result.stderr == b"e" * 5000


@pytest.mark.parametrize(("status", "code"), [(0, 0), (1, 1), (255, 255), (256, 0), (-1, 255)])
def test_status_as_sys_exit_gives_it(tmp_path, status, code):
    assert run_isolated(f"exit_process({status})", tmp_path).returncode == code


def test_a_running_thread_is_still_joined(tmp_path):
    """With threading imported, Python's exit joins the non-daemon thread: its file is there."""
    body = ("import threading, time\n"
            "def late():\n    time.sleep(0.2)\n    open('joined', 'w').close()\n"
            "threading.Thread(target=late).start()\nexit_process(4)")
    result = run_isolated(body, tmp_path)
    assert result.returncode == 4, result.stderr
    assert (tmp_path / "joined").exists()


def test_atexit_handlers_still_run(tmp_path):
    body = ("import atexit\natexit.register(lambda: open('ran', 'w').close())\n"
            "exit_process(0)")
    result = run_isolated(body, tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "ran").exists()


def test_a_closed_stdout_is_reported_as_python_reports_it(tmp_path):
    """A reader gone before the flush: Python's exit reports the broken pipe, status 120."""
    code = (f"import sys, os\nsys.path.insert(0, {REPO!r})\n"
            "from ociruntime import exit_process\n"
            "sys.stdout.write('x' * 100)\nexit_process(0)")
    read, write = os.pipe()
    os.close(read)
    try:
        result = subprocess.run([sys.executable, "-I", "-S", "-c", code], stdout=write,
                                stderr=subprocess.PIPE, timeout=60, check=False)
    finally:
        os.close(write)
    assert result.returncode == 120
    assert b"BrokenPipeError" in result.stderr


def test_the_launcher_output_is_whole(pyrunc_bin):
    """pyrunc's own output through a pipe, as an engine reads it: features' whole document."""
    result = subprocess.run([pyrunc_bin, "features"], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["ociVersionMax"]
