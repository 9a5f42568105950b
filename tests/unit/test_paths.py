"""ociruntime.paths means what os.path means, for the paths the small calls meet."""

import os

import pytest

from ociruntime import paths

PARTS = [("/run/pyrunc", "id"), ("/run/pyrunc/", "id"), ("", "id"), ("rel", "a", "b"),
         ("/a", "/b", "c"), ("/a", ""), ("/a", "b/"), ("//a", "b"), ("a", "", "b")]
DIRS = ["/usr/bin/python3", "/usr/bin/", "/usr//bin//python3", "/", "//", "///x", "python3",
        "", "a/b", "/a/b/", "/.venv/bin/python"]


@pytest.mark.parametrize("parts", PARTS)
def test_join(parts):
    assert paths.join(*parts) == os.path.join(*parts)


@pytest.mark.parametrize("path", DIRS)
def test_dirname(path):
    assert paths.dirname(path) == os.path.dirname(path)


def test_isdir_exists_lexists(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dangling").symlink_to(tmp_path / "nothing")
    (tmp_path / "to-dir").symlink_to(tmp_path / "dir")
    for name in ("file", "dir", "dangling", "to-dir", "nothing", "file/below", "a\0b"):
        path = str(tmp_path / name) if "\0" not in name else str(tmp_path) + "/a\0b"
        assert paths.isdir(path) == os.path.isdir(path), name
        assert paths.exists(path) == os.path.exists(path), name
        assert paths.lexists(path) == os.path.lexists(path), name


def test_getenv(monkeypatch):
    monkeypatch.setenv("PYRUNC_TEST_PATHS", "/run/user/1000")
    monkeypatch.setenv("PYRUNC_TEST_PATHS_UNDECODABLE", os.fsdecode(b"/run/\xff"))
    monkeypatch.delenv("PYRUNC_TEST_PATHS_UNSET", raising=False)
    for name in ("PYRUNC_TEST_PATHS", "PYRUNC_TEST_PATHS_UNDECODABLE",
                 "PYRUNC_TEST_PATHS_UNSET"):
        assert paths.getenv(name) == os.environ.get(name)


def test_abspath_and_realpath_mean_what_os_path_means(tmp_path, monkeypatch):
    (tmp_path / "dir" / "rootfs").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "dir")
    (tmp_path / "dir" / "loop").symlink_to("loop")
    monkeypatch.chdir(tmp_path)
    for path in [str(tmp_path / "dir" / "rootfs"), str(tmp_path / "link" / "rootfs"),
                 str(tmp_path / "dir" / "missing" / "rootfs"), str(tmp_path / "dir" / "loop"),
                 str(tmp_path) + "//dir/./rootfs", str(tmp_path / "link" / ".." / "dir"),
                 "dir/rootfs", "link/rootfs", ".", "/", "//", "/proc/self/cwd/dir"]:
        assert paths.abspath(path) == os.path.abspath(path), path
        assert paths.realpath(path) == os.path.realpath(path), path


NORM = ["", ".", "..", "/", "//", "///", "////a", "//a/../b", "/a/./b//c/", "a/../..",
        "../a", "/../a", "/a/b/../../..", "a/b/c/../../d", "./a/.", "/proc", "proc//",
        "/dev/../proc/./", "a/..", "..//..", "/a/.../b"]


@pytest.mark.parametrize("path", NORM)
def test_normpath(path):
    assert paths.normpath(path) == os.path.normpath(path)


def test_fsencode():
    for text in ("/run/pyrunc", "caf\u00e9", os.fsdecode(b"/run/\xff"), ""):
        assert paths.fsencode(text) == os.fsencode(text)


def test_read_bytes_reads_what_open_reads(tmp_path):
    for name, data in (("empty", b""), ("small", b"THAWED\n"), ("large", bytes(range(256)) * 700)):
        f = tmp_path / name
        f.write_bytes(data)
        assert paths.read_bytes(str(f)) == data
        got, st = paths.read_bytes(str(f), fstat=True)
        assert got == data and (st.st_ino, st.st_size) == (f.stat().st_ino, len(data))
    with open("/proc/self/stat", "rb") as f:  # a /proc file: its size says 0
        assert paths.read_bytes("/proc/self/stat").split()[:3] == f.read().split()[:3]
    for path, error in ((tmp_path / "nothing", FileNotFoundError), (tmp_path, IsADirectoryError)):
        with pytest.raises(error):
            open(path, "rb").read()
        with pytest.raises(error):
            paths.read_bytes(str(path))
    before = set(os.listdir("/proc/self/fd"))
    paths.read_bytes(str(tmp_path / "small"))
    assert set(os.listdir("/proc/self/fd")) == before  # the descriptor is closed
