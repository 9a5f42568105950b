"""_sys.getrlimit, create's check of the runtime's own hard limits (the `resource` extension
was a shared object more to load on create's path): `resource` is the oracle, with its
RLIM_INFINITY (-1) read as rlim_t's all ones, as a config's uint64 writes it."""

import resource

import pytest

from ociruntime._native._sys import getrlimit
from ociruntime.config import RLIMITS


def unsigned(value):
    return 2**64 - 1 if value == resource.RLIM_INFINITY else value


@pytest.mark.parametrize("name", sorted(RLIMITS))
def test_same_limits_as_resource(name):
    number = RLIMITS[name]
    assert getrlimit(number) == tuple(unsigned(v) for v in resource.getrlimit(number))


def test_an_unknown_resource_is_an_oserror():
    with pytest.raises(OSError):
        getrlimit(1000)
