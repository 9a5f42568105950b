"""What `start` and `delete` do without os (shim.cli) means what os would: the bundle's
path as os.path.abspath and realpath make it, and the group a spec's annotations name,
also when a key is written with escapes (the skipped parse must never miss one)."""

import json
import os

import pytest

from shim import cli


def test_abspath_and_realpath_mean_what_os_path_means(tmp_path, monkeypatch):
    (tmp_path / "dir" / "rootfs").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "dir")
    (tmp_path / "dir" / "loop").symlink_to("loop")
    monkeypatch.chdir(tmp_path)
    for path in [str(tmp_path / "dir" / "rootfs"), str(tmp_path / "link" / "rootfs"),
                 str(tmp_path / "dir" / "missing" / "rootfs"), str(tmp_path / "dir" / "loop"),
                 str(tmp_path) + "//dir/./rootfs", str(tmp_path / "link" / ".." / "dir"),
                 "dir/rootfs", "link/rootfs", ".", "/", "//", "/proc/self/cwd/dir"]:
        assert cli._abspath(path) == os.path.abspath(path), path
        assert cli._realpath(path) == os.path.realpath(path), path


@pytest.mark.parametrize("text, group", [
    ('{"annotations": {"io.kubernetes.cri.sandbox-id": "p1"}}', "group:p1"),
    ('{"annotations": {"io.kubernetes.cri.sandbox\\u002did": "p2"}}', "group:p2"),
    ('{"annotations": {"io.containerd.runc.v2.group": "g", '
     '"io.kubernetes.cri.sandbox-id": "p"}}', "group:g"),
    ('{"process": {"env": ["io.kubernetes.cri.sandbox-id"]}}', "task:t"),
    ('{"annotations": {"other": "\\"io.kubernetes.cri.sandbox-id\\""}}', "task:t"),
    ('{"annotations": {"io.kubernetes.cri.sandbox-id": ""}}', "task:t"),
    ('{"ociVersion": "1.0.2", "annotations": {"a": "b"}}', "task:t"),
    ('{"annotations": ["io.kubernetes.cri.sandbox-id"]}', "task:t"),
    ('not json "io.kubernetes.cri.sandbox-id"', "task:t"),
    ("not json", "task:t"),
])
def test_the_group_a_spec_names(tmp_path, monkeypatch, text, group):
    monkeypatch.delenv(cli.GROUP_ENV, raising=False)
    (tmp_path / "config.json").write_text(text)
    if text.startswith("{"):
        json.loads(text)  # the cases are JSON as meant
    assert cli.group_of(str(tmp_path), "t") == group


def test_a_bundle_without_a_spec_is_a_group_of_its_own(tmp_path, monkeypatch):
    monkeypatch.delenv(cli.GROUP_ENV, raising=False)
    assert cli.group_of(str(tmp_path), "t") == "task:t"
