"""The test CA every HTTPS server shares, and the OCI registry (pytest plugin)."""

import pytest

from support.netlab import TestCA
from support.registry import Registry


@pytest.fixture(scope="session")
def ca() -> TestCA:
    """One test CA for every HTTPS server the tests start."""
    return TestCA()


@pytest.fixture
def registry(ca):
    """A fresh, empty registry for each test (it starts in well under a second): the real
    docker-registry behind GHCR's token challenge and blob redirect (support/registry.py)."""
    with Registry(ca) as started:
        yield started
