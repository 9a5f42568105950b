"""Shared helpers for the config tests: the JSON schemas and a model-vs-document comparison."""

import json
import pathlib
from types import MappingProxyType

import pytest

from ociruntime.frozen import Frozen

SPECS = pathlib.Path(__file__).resolve().parents[2] / "specs"

# Test documents mark their unknown properties with this prefix, so that comparisons can skip
# them (the parser must ignore them, so the model has nothing to compare them with).
UNKNOWN_PREFIX = "zz-unknown-"


def load_schema(name):
    """A validator for specs/<name>-schema.json; jsonschema is a test-only dependency."""
    from jsonschema import Draft202012Validator

    schema = json.loads((SPECS / f"{name}-schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


@pytest.fixture(scope="session")
def config_schema():
    return load_schema("config")


@pytest.fixture(scope="session")
def state_schema():
    return load_schema("state")


def snake_case(json_name):
    """The attribute name the model uses for a JSON property name (ociVersion -> oci_version,
    throttleReadIOPSDevice -> throttle_read_iops_device, class -> class_)."""
    if json_name == "class":
        return "class_"
    out = []
    for index, char in enumerate(json_name):
        if char.isupper() and index > 0:
            before = json_name[index - 1]
            after = json_name[index + 1] if index + 1 < len(json_name) else ""
            if before.islower() or before.isdigit() or after.islower():
                out.append("_")
        out.append(char.lower())
    return "".join(out)


def assert_model_matches(model, doc, where="config"):
    """Every known property of the JSON document is on the model, under its snake_case name,
    with the same value: objects are records (or read-only maps), arrays are tuples."""
    if isinstance(doc, dict):
        known = {key: value for key, value in doc.items() if not key.startswith(UNKNOWN_PREFIX)}
        if isinstance(model, MappingProxyType):
            assert set(model) == set(known), where
            for key, value in known.items():
                assert_model_matches(model[key], value, f"{where}[{key!r}]")
            return
        assert isinstance(model, Frozen), f"{where}: {model!r} is not a record"
        for key, value in known.items():
            name = snake_case(key)
            assert name in type(model).__slots__, f"{where}: no attribute {name} for {key}"
            assert_model_matches(getattr(model, name), value, f"{where}.{name}")
    elif isinstance(doc, list):
        assert isinstance(model, tuple), f"{where}: {model!r} is not a tuple"
        assert len(model) == len(doc), where
        for index, (item, value) in enumerate(zip(model, doc, strict=True)):
            assert_model_matches(item, value, f"{where}[{index}]")
    else:
        assert type(model) is type(doc) and model == doc, f"{where}: {model!r} != {doc!r}"


@pytest.fixture(scope="session")
def model_matches():
    """assert_model_matches(model, doc), as a fixture: test modules should not import conftest."""
    return assert_model_matches
