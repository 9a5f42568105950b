"""Host tests that must also pass on the kernel most users run (Debian's, 6.1 for Debian
12), not only on this host's: run in the same VM boot as the v2 checks (see vmguest).
A container joining another's pid namespace takes a different way to its /proc there."""

import pytest
import vmguest

CASES = [(path, name) for path in vmguest.OLD_KERNEL_FILES for name in vmguest.functions_of(path)]


@pytest.mark.parametrize("path,name", CASES,
                         ids=[f"{path.rsplit('/', 1)[-1][:-3]}::{name}" for path, name in CASES])
def test_on_debian_kernel(guest_results, path, name):
    vmguest.assert_passed(guest_results, path, name)
