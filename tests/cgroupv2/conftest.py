"""The one VM boot every test here shares (vmguest.run_batch)."""

import pytest
import vmguest


@pytest.fixture(scope="session")
def guest_results():
    yield from vmguest.run_batch()
