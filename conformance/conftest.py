"""The spec tests in conformance/ reuse the fixtures of tests/conftest.py (runtime, bundle,
scratch, ...) and the helpers of tests/pyrunc_testlib.py, without editing either: the file is
loaded under its own module name and its fixtures are re-exported here."""

import importlib.util
import pathlib
import sys

TESTS_DIR = pathlib.Path(__file__).resolve().parent.parent / "tests"
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

_spec = importlib.util.spec_from_file_location("pyrunc_tests_conftest", TESTS_DIR / "conftest.py")
_shared = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_shared)

host_can_run_containers = _shared.host_can_run_containers
pyrunc_bin = _shared.pyrunc_bin
session_dir = _shared.session_dir
busybox_rootfs = _shared.busybox_rootfs
default_config = _shared.default_config
scratch = _shared.scratch
runtime = _shared.runtime
make_bundle = _shared.make_bundle
bundle = _shared.bundle
state_validator = _shared.state_validator
