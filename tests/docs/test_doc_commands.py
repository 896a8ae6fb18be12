"""Every shell command the docs show is run, as written, somewhere:

- the release engineer's (README.md, docs/release-engineering.md) here, in doc order in one
  working directory: download and build, build from a local ISO, build with an SSH key and
  an options file, verify, inspect, and the two qemu test boots;
- the benchmarks' (docs/performance.md) here, with small sizes and durations;
- an admin's or support engineer's (docs/admin-guide.md, docs/support/, docs/maintenance.md)
  at the appliance's shell in the VM tier (tests/system/test_vm_e2e.py, test_7);
- the setup and test commands by CI itself: .ci/run runs ci/test.sh, which runs
  ci/setup.sh --test (everything ci/setup.sh does, and more).

Each change a runner makes to a command is listed below with the reason for it, and every
such change must still apply: a doc edit that makes one stale fails here.
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from support.base import ROOT, sha256
from support.docs import DOCS, SHELL_DOCS, shell_blocks
from support.images import SSH_KEY
from support.mirror import SigningKey
from support.netlab import Route

from isobuild.download import ISO_NAME, UBUNTU_RELEASE

RUN_HERE = ("README.md", "docs/release-engineering.md", "docs/performance.md")
RUN_BY_CI = re.compile(r"\bci/(setup|test)\.sh( --test)?")  # .ci/run runs them itself

# (pattern, replacement, why): what a runner changes in a documented command.
RELEASE_CHANGES = [
    (RUN_BY_CI.pattern, ":", "CI runs the setup and test scripts themselves"),
    (r"-accel kvm", "-accel tcg -display none -serial stdio -no-reboot",
     "no KVM here; the replica's initrd reports on the serial port and powers off"),
    (r"(?<![\w./])/tmp/", "tmp/", "scratch files stay in the test's directory"),
    (r"\[(--[^\]]+)\]", r"\1", "optional flags are all passed"),
]
BENCH_CHANGES = [
    (RUN_BY_CI.pattern, ":", "CI runs the setup script itself"),
    (r"^sudo ", "", "the tests run as root"),
    (r"RUNS=5 ", "RUNS=1 ", "one run shows the script works; the figures come from five"),
    (r"bundle\.py \d", "bundle.py 1", "the same"),
    (r"DURATION=20 ", "DURATION=2 ", "the same"),
    (r"oci_resolve\.py \d+", "oci_resolve.py 3", "the same"),
    (r"^GOMODCACHE=.*\\\n\s*", "",
     "a cold build takes minutes: the warm run (the cache setup filled) shows the script works"),
]
# Sizes and durations the benchmark scripts read from the environment, made small.
BENCH_ENVIRONMENT = {"FILLER_MIB": "64", "DURATION": "3", "IDLE": "1"}


def as_run_here(block: str, changes: list[tuple[str, str, str]], applied: set[str]) -> str:
    for pattern, replacement, _ in changes:
        block, count = re.subn(pattern, replacement, block, flags=re.M)
        if count:
            applied.add(pattern)
    return block


def run_blocks(docs: list[str], changes, cwd: Path, env: dict, timeout: float) -> str:
    """Run every shell block of `docs` with bash -e in `cwd`; return what they printed."""
    printed, applied = "", set()
    for doc in docs:
        for block in shell_blocks(ROOT / doc):
            script = as_run_here(block, changes, applied)
            result = subprocess.run(["bash", "-ec", script], cwd=cwd, env=env, timeout=timeout,
                                    capture_output=True, text=True, errors="replace",
                                    stdin=subprocess.DEVNULL)
            assert result.returncode == 0, (doc, script, result.stdout[-3000:],
                                            result.stderr[-3000:])
            printed += result.stdout
    assert applied == {pattern for pattern, _, _ in changes}, "a listed change is stale"
    return printed


def test_every_doc_with_commands_is_run_somewhere():
    with_commands = {str(doc.relative_to(ROOT)) for doc in DOCS
                     if shell_blocks(doc)}
    assert with_commands == set(RUN_HERE) | set(SHELL_DOCS)


@pytest.fixture
def release_workdir(tmp_path, replica_iso, ubuntu_mirror, signing_key):
    """A release engineer's directory: the checkout's .venv, an SSH key, a gpg key to sign
    with, the options file the guide shows, the Ubuntu ISO with its signed SHA256SUMS, and a
    mirror for the download and for `check-base` (trusting the test key through the pin's
    override, as the guide documents)."""
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    (tmp_path / "tmp").mkdir()
    (tmp_path / "home/.ssh").mkdir(parents=True)
    (tmp_path / "home/.ssh/id_ed25519.pub").write_text(SSH_KEY + "\n")
    release_key = SigningKey(tmp_path / "home", "release", email="release@msp.example")
    guide = (ROOT / "docs/release-engineering.md").read_text()
    (tmp_path / "build.yaml").write_text(re.search(r"```yaml\n(.*?)```", guide, re.S)[1])
    shutil.copyfile(replica_iso, tmp_path / ISO_NAME)
    (tmp_path / "SHA256SUMS").write_text(f"{sha256(replica_iso)} *{ISO_NAME}\n")
    (tmp_path / "SHA256SUMS.gpg").write_bytes(
        signing_key.sign((tmp_path / "SHA256SUMS").read_bytes()))
    ubuntu_mirror.publish(replica_iso, signing_key)
    ubuntu_mirror.routes["/noble/"] = Route(
        body=f'<a href="ubuntu-{UBUNTU_RELEASE}-live-server-amd64.iso">{ISO_NAME}</a>')
    yield tmp_path, {**ubuntu_mirror.environment(tmp_path / "cache", signing_key),
                     "HOME": str(tmp_path / "home"), "GNUPGHOME": str(release_key.home),
                     "ISOBUILD_UBUNTU_SERIES_URL": f"{ubuntu_mirror.url}/noble/"}
    release_key.close()


@pytest.mark.boot
def test_the_release_engineers_commands_run_as_documented(release_workdir):
    workdir, env = release_workdir
    printed = run_blocks(["README.md", "docs/release-engineering.md"], RELEASE_CHANGES,
                         workdir, env, timeout=600)
    assert (workdir / "cache" / ISO_NAME).is_file()  # the README's build downloaded it
    assert printed.count("REPLICA-DONE") == 2  # both test boots reached the installer
    # The last build passed --serial-console and the options file.
    assert "console=ttyS0,115200" in printed
    assert "psa-appliance" in (workdir / "alga-appliance.iso.manifest.json").read_text()
    assert "pinned   " in printed and "the pin is the current point release" in printed
    assert "alga-appliance.iso: OK" in printed  # the customer's check of the signed build


@pytest.mark.skipif(os.geteuid() != 0, reason="the support-bundle benchmark runs as root")
def test_the_benchmarks_run_as_documented(tmp_path):
    env = {**os.environ, **BENCH_ENVIRONMENT, "BENCH_DIR": str(tmp_path / "bench"),
           "TMPDIR": str(tmp_path)}
    printed = run_blocks(["docs/performance.md"], BENCH_CHANGES, ROOT, env, timeout=600)
    for report in ("ratios   isobuild/xorriso", "verification adds", "latency: p50",
                   "bundle: wall median",
                   "resolve stable: median", "HTTP requests per resolution: 8",
                   "admin: ", "uploads: 20 concurrent"):
        assert report in printed
    assert printed.count("latency: p50") == 2 and printed.count("bundle: wall median") == 2
