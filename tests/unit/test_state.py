"""state.py's record checks: which records a pyrunc reads, which it refuses, and why."""

import pytest

from ociruntime import __version__
from ociruntime.state import (
    PHASE_CREATING,
    STATE_VERSION,
    STATE_VERSION_KEY,
    WRITER_KEY,
    ContainerState,
    StateDamaged,
    StateMissing,
    check_record,
)

RECORD = {"ociVersion": "1.3.0", "id": "c1", "pid": 42, "pid_start": 7, "bundle": "/b",
          "rootfs": "/b/rootfs", "created": "2026-01-01T00:00:00Z", "cgroup": {"version": 1}}


def test_a_record_without_version_is_version_0_and_read():
    assert check_record(dict(RECORD), "c1") == RECORD


def test_a_record_of_this_version_is_read():
    assert check_record(dict(RECORD, **{STATE_VERSION_KEY: STATE_VERSION}), "c1")


def test_a_future_version_is_refused_naming_the_writer():
    rec = dict(RECORD, **{STATE_VERSION_KEY: STATE_VERSION + 1, WRITER_KEY: "7.0"})
    with pytest.raises(StateDamaged, match=r"newer pyrunc \(pyrunc 7.0\).*reads layouts up to"):
        check_record(rec, "c1")


@pytest.mark.parametrize("bad", [[], "x", 3, None])
def test_a_record_that_is_no_object_is_damaged(bad):
    with pytest.raises(StateDamaged, match="not a JSON object"):
        check_record(bad, "c1")


@pytest.mark.parametrize("field,value", [("pid", "42"), ("pid", True), ("bundle", None),
                                         ("cgroup", []), (STATE_VERSION_KEY, "1")])
def test_a_field_of_the_wrong_type_is_damaged(field, value):
    with pytest.raises(StateDamaged, match=field):
        check_record(dict(RECORD, **{field: value}), "c1")


def test_a_creating_record_may_lack_the_pid_only():
    rec = {k: v for k, v in RECORD.items() if k not in ("pid", "pid_start")}
    assert check_record(dict(rec, phase=PHASE_CREATING), "c1")
    with pytest.raises(StateDamaged, match="pid"):
        check_record(rec, "c1")


def test_save_stamps_version_and_writer_and_load_reads_it_back(tmp_path):
    st = ContainerState(str(tmp_path), "c1")
    st.claim()
    st.save(dict(RECORD))
    loaded = ContainerState(str(tmp_path), "c1").load()
    assert loaded[STATE_VERSION_KEY] == STATE_VERSION and loaded[WRITER_KEY] == __version__
    assert (tmp_path / "c1").stat().st_mode & 0o777 == 0o700


def test_load_tells_missing_from_damaged(tmp_path):
    st = ContainerState(str(tmp_path), "c1")
    st.claim()
    with pytest.raises(StateMissing):
        st.load()
    (tmp_path / "c1" / "state.json").mkdir()
    with pytest.raises(StateDamaged, match="cannot read"):
        st.load()


def test_load_keeps_its_record_only_while_state_json_is_the_file_it_came_from(tmp_path):
    """run's start and delete skip re-reading the record create wrote; a record another
    process writes since (of the very same size), or a removed one, is never missed."""
    st = ContainerState(str(tmp_path), "c1")
    st.claim()
    st.save(dict(RECORD))
    assert st.load() is st.record  # nothing changed: the record it wrote
    other = ContainerState(str(tmp_path), "c1")
    other.save(dict(RECORD, pid=43))  # same size, a new file
    assert st.load()["pid"] == 43
    (tmp_path / "c1" / "state.json").unlink()
    with pytest.raises(StateMissing):
        st.load()
    (tmp_path / "c1" / "state.json").write_text("{")
    with pytest.raises(StateDamaged):
        st.load()
