import pytest
from support.base import make_host_root

from host.core import paths


@pytest.fixture
def root(tmp_path, monkeypatch):
    """A host root with the request spool and the token's directory, which the web
    service's paths point at."""
    make_host_root(tmp_path, paths.SPOOL_DIR, paths.TOKEN_DIR)
    monkeypatch.setenv(paths.ROOT_ENV, str(tmp_path))
    return tmp_path
