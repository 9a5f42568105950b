"""_sys.sha256_hex, the digest behind the seccomp cache's keys and the shim's socket names
(hashlib would load libcrypto, ~4 ms, on those per-container paths): hashlib is the oracle,
for every length around the block and padding boundaries and for drawn data."""

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ociruntime._native._sys import sha256_hex


@pytest.mark.parametrize("length", [*range(0, 130), 1000, 4096, 65537])
def test_every_length_around_the_padding_boundaries(length):
    data = bytes((i * 131 + length) & 0xFF for i in range(length))
    assert sha256_hex(data) == hashlib.sha256(data).hexdigest()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000))
def test_same_digest_as_hashlib(data):
    assert sha256_hex(data) == hashlib.sha256(data).hexdigest()


def test_only_bytes():
    with pytest.raises(TypeError):
        sha256_hex("text")
