"""The test CA every HTTPS server shares (pytest plugin)."""

import pytest

from support.netlab import TestCA


@pytest.fixture(scope="session")
def ca() -> TestCA:
    """One test CA for every HTTPS server the tests start."""
    return TestCA()
