"""The group a spec's annotations name, as shim.cli finds it without a parse where no
string can be a group's key: also when a key is written with escapes (the skipped parse
must never miss one).  (The bundle's path without os: ociruntime.paths, tests/unit/
test_paths.py.)"""

import json

import pytest

from shim import cli


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
