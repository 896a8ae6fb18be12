"""Schemathesis (issue 19 item 9) over schemas/openapi.yaml against the real web service on
waitress: every operation, with the schema's examples, its coverage cases (boundaries and
values just outside them) and generated data, with and without the token. Whatever it
sends, the answer is below 500 and is what the schema documents: status, content type,
headers and body.

Schemathesis needs a newer jsonschema than the distro's 4.10 the appliance code runs on, so
it lives in its own virtualenv (.venv-tools, made by ci/setup.sh --test) and runs as its CLI.
"""

import os
import subprocess
from pathlib import Path

import pytest
from support.base import make_host_root, serve_wsgi

from host.core import paths, token
from host.web import FailedAuthLimiter, make_app

ROOT = Path(__file__).resolve().parents[2]
SCHEMATHESIS = ROOT / ".venv-tools" / "bin" / "st"
SCHEMA_DIR = ROOT / "schemas"
STATE_SCHEMA_BASE = "https://alga-appliance.invalid/schemas/"  # the state schemas' $id base
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_headers_conformance,response_schema_conformance,ignored_auth")


def local_openapi(directory: Path) -> Path:
    """openapi.yaml with its references to the state schemas (by their $id, which nothing
    serves) pointing at the files, so schemathesis checks the bodies against them too."""
    local = directory / "openapi.yaml"
    local.write_text((SCHEMA_DIR / "openapi.yaml").read_text().replace(
        STATE_SCHEMA_BASE, SCHEMA_DIR.as_uri() + "/"))
    return local


def answered_log(query, root) -> dict:
    """The log oneshot's answer (no systemd here to start it)."""
    return {"request_id": "20261207T110000Z-0a1b2c3d", "fetched_at": "2026-12-07T11:00:00Z",
            "source": query.source.name, "label": query.source.label,
            "previous": query.previous, "lines": ["a line"] * query.lines, "live": True,
            "note": None, "error": None}


@pytest.fixture
def served(tmp_path):
    root = make_host_root(tmp_path / "root", paths.SPOOL_DIR)
    secret = token.ensure_token(root, owner=os.environ.get("USER", "root"))
    # Schemathesis sends a wrong token to every operation, more than the limiter allows a
    # minute from one address (now 20 operations): the 429 that then answers would stand in
    # for what each operation answers a wrong token. The limiter's own tests
    # (test_web_auth.py) hold it to FAILED_AUTH_LIMIT.
    app = make_app(root, node_ip=lambda: "10.0.0.5",
                   journal=lambda count: [f"journal line {i}" for i in range(count)],
                   fetch_log=answered_log, limiter=FailedAuthLimiter(limit=1_000_000))
    with serve_wsgi(app) as url:
        yield url, secret


@pytest.mark.skipif(not SCHEMATHESIS.exists(), reason="schemathesis is installed by "
                    "ci/setup.sh --test into .venv-tools")
def test_every_documented_operation_answers_as_documented_whatever_it_is_sent(served,
                                                                               tmp_path):
    url, secret = served
    run = subprocess.run(
        [str(SCHEMATHESIS), "run", str(local_openapi(tmp_path)), "--url", url, "--checks", CHECKS,
         "--header", f"Authorization: Bearer {secret}", "--workers", "1",
         "--phases", "examples,coverage,fuzzing", "--max-examples", "60",
         "--seed", "19", "--generation-database", "none", "--no-color"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
