"""`isobuild host-release` and `isobuild build --host-release-key` (issue 23, publishing):
a release built from a copy of the working tree with a bumped version, signed with a
throwaway key, pushed to the real test registry (support.registry) with the pusher's
credentials from the environment, then listed and staged by the appliance's own code
exactly as built. No ISO is built here: the build flags are checked where they fail before
any download, and the payload they make through payload.collect()."""

import json
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.host_releases import REPOSITORY, host_root, run_host_release, tree, tree_with_version

from host.core import host_release_format as release_format
from host.core import state
from host.core.version import __version__
from host.releases import host_release as hr
from isobuild import gpg, payload, publish
from isobuild.cli import main
from isobuild.options import resolve_options

BUMPED = "0.99.0"
NOTES = "Fixes the console banner.\nFaster status page.\n"


@pytest.fixture(scope="module")
def bumped_tree(tmp_path_factory) -> Path:
    return tree_with_version(tmp_path_factory.mktemp("bumped"), BUMPED)


def test_a_bumped_release_is_pushed_listed_and_staged_byte_for_byte(
        bumped_tree, ca, registry, signing_key, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text(NOTES)
    repository = f"{registry.host}/{REPOSITORY}"
    out = tmp_path / "out"
    run = run_host_release(bumped_tree, ca, "--output", str(out), "--sign-key",
                       str(signing_key.secret), "--repository", repository, "--notes-file",
                       str(notes), "--host-release-key", str(signing_key.public),
                       "--host-release-repository", repository)
    assert run.returncode == 0, run.stderr
    assert f"host release {BUMPED}" in run.stdout
    assert f"pushed   {repository}:{BUMPED} (sha256:" in run.stdout

    root = host_root(tmp_path / "root", ca, registry, signing_key)
    offered = hr.available(root)
    staged = hr.stage(root, BUMPED, tmp_path / "versions" / BUMPED)
    assert offered == [hr.Available(BUMPED, NOTES, staged.manifest["created"])]
    assert staged.signer == signing_key.fingerprint
    assert staged.manifest["version"] == BUMPED and staged.manifest["notes"] == NOTES
    assert staged.manifest["schemas"] == {f.filename: f.schema_version
                                          for f in state.STATE_FILES}
    unpacked = tree(staged.directory)
    # Exactly the signed manifest's files, and these are the working tree's bytes.
    assert unpacked == {e["path"]: (_bytes_in(out, e["path"]), e["mode"])
                        for e in staged.manifest["files"]}
    for name in payload.SOURCE_DIRS:
        sources = {p.relative_to(bumped_tree).as_posix(): p.read_bytes()
                   for p in (bumped_tree / name).rglob("*") if p.is_file()}
        assert {path: data for path, (data, _) in unpacked.items()
                if path.startswith(f"{name}/")} == sources
    assert unpacked["VERSION"][0] == f"{BUMPED}\n".encode()
    assert unpacked["bin/alga-appliance"] == (payload.CLI_WRAPPER, 0o755)
    # The release pins the keys it was built with: the next version trusts them too.
    pinned = json.loads(unpacked["host-release-trust.json"][0])
    assert pinned == {"repository": repository, "keys": [
        {"fingerprint": signing_key.fingerprint, "armored": signing_key.public.read_text()}]}
    # The files on disk are the ones pushed: signature and manifest check out with gpgv.
    manifest = out / f"alga-appliance-host-{BUMPED}.manifest.json"
    assert hr.verify_signature(manifest.read_bytes(), manifest.with_suffix(".json.sig")
                               .read_bytes(), pinned["keys"]) == signing_key.fingerprint

    again = run_host_release(bumped_tree, ca, "--output", str(tmp_path / "again"), "--sign-key",
                         str(signing_key.secret), "--repository", repository)
    assert again.returncode == 1
    assert f"{repository}:{BUMPED} already exists: a published host release never " \
           "changes" in again.stderr
    assert "bump __version__ in host/core/version.py" in again.stderr


def _bytes_in(out: Path, path: str) -> bytes:
    with tarfile.open(out / f"alga-appliance-host-{BUMPED}.tar.gz") as tar:
        return tar.extractfile(f"./{path}").read()


def test_wrong_registry_credentials_are_named(bumped_tree, ca, registry, signing_key,
                                               tmp_path):
    run = run_host_release(bumped_tree, ca, "--output", str(tmp_path / "out"), "--sign-key",
                       str(signing_key.secret), "--repository",
                       f"{registry.host}/{REPOSITORY}", **{publish.TOKEN_ENV: "wrong"})
    assert run.returncode == 1
    assert "the registry refused getting a push token (401)" in run.stderr
    assert f"check {publish.USER_ENV} and {publish.TOKEN_ENV}" in run.stderr
    assert "Traceback" not in run.stderr


def test_missing_registry_credentials_are_named(bumped_tree, ca, registry, signing_key,
                                                 tmp_path):
    run = run_host_release(bumped_tree, ca, "--output", str(tmp_path / "out"), "--sign-key",
                       str(signing_key.secret), "--repository",
                       f"{registry.host}/{REPOSITORY}", **{publish.USER_ENV: ""})
    assert run.returncode == 1
    assert f"{publish.USER_ENV} and {publish.TOKEN_ENV} are not both set" in run.stderr


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def test_without_repository_the_release_is_only_written(signing_key, tmp_path):
    result = invoke("host-release", "--output", str(tmp_path), "--sign-key",
                    str(signing_key.secret))
    assert result.exit_code == 0, result.output
    assert "not pushed: give --repository to publish it" in result.output
    names = sorted(p.name for p in tmp_path.iterdir())
    stem = f"alga-appliance-host-{__version__}"
    assert names == [f"{stem}.manifest.json", f"{stem}.manifest.json.sig", f"{stem}.tar.gz"]
    signature = (tmp_path / f"{stem}.manifest.json.sig").read_bytes()
    assert signature[:1] != b"-" and not signature.startswith(b"-----BEGIN")  # binary
    manifest = hr.parse_manifest((tmp_path / f"{stem}.manifest.json").read_bytes(), "out")
    release_format.check_payload((tmp_path / f"{stem}.tar.gz").read_bytes(), manifest)
    # Without --host-release-key the release carries no trust: as an ISO built without one.
    assert state.HOST_RELEASE_TRUST.filename not in {e["path"] for e in manifest["files"]}


def test_min_upgrade_from_newer_than_the_release_is_refused(signing_key, tmp_path):
    result = invoke("host-release", "--output", str(tmp_path), "--sign-key",
                    str(signing_key.secret), "--min-upgrade-from", "99.0.0")
    assert result.exit_code == 1
    assert f"--min-upgrade-from 99.0.0 is newer than the release itself ({__version__})" in \
        result.output


def test_a_failed_signature_leaves_no_release_behind(tmp_path):
    stem = tmp_path / f"alga-appliance-host-{__version__}"
    stem.with_name(stem.name + ".manifest.json.sig").write_bytes(b"an old signature")
    broken = tmp_path / "broken-secret.asc"
    broken.write_text("-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nAAAA\n-----END PGP PRIVATE KEY "
                      "BLOCK-----\n")
    result = invoke("host-release", "--output", str(tmp_path), "--sign-key", str(broken))
    assert result.exit_code == 1 and f"importing the signing key {broken}" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken-secret.asc"]


def test_an_unknown_sign_key_fails_before_anything_is_written(tmp_path):
    result = invoke("host-release", "--output", str(tmp_path / "out"), "--sign-key",
                    "nobody@nowhere.test")
    assert result.exit_code == 1 and "looking up secret key nobody@nowhere.test" in \
        result.output
    assert not (tmp_path / "out").exists()


# --- isobuild build --host-release-key: refused before any download ----------------------

@pytest.mark.parametrize("command", ["build", "host-release"])
def test_three_host_release_keys_are_refused(command, signing_key, other_key, tmp_path):
    keys = [arg for key in (signing_key, other_key, signing_key)
            for arg in ("--host-release-key", str(key.public))]
    result = invoke(command, "--output", str(tmp_path / "out"), "--sign-key",
                    str(signing_key.secret), *keys)
    assert result.exit_code == 1
    assert "/host_release_keys" in result.output and "at most two key files" in result.output


@pytest.mark.parametrize("problem, words", [
    ("secret", "holds a secret key: it would be on every appliance"),
    ("not-a-key", "is not an ASCII-armored OpenPGP public key"),
    ("twice", "names the key"),
])
def test_a_bad_host_release_key_fails_the_build_before_the_download(problem, words,
                                                                    signing_key, tmp_path):
    files = {"secret": [signing_key.secret], "twice": [signing_key.public] * 2}
    if problem == "not-a-key":
        (tmp_path / "key.asc").write_text("hello\n")
        files["not-a-key"] = [tmp_path / "key.asc"]
    keys = [arg for key in files[problem] for arg in ("--host-release-key", str(key))]
    result = invoke("build", "--output", str(tmp_path / "a.iso"), *keys)
    assert result.exit_code == 1 and words in result.output, result.output
    assert not (tmp_path / "a.iso").exists()


def test_a_bad_host_release_repository_is_refused(signing_key, tmp_path):
    result = invoke("build", "--output", str(tmp_path / "a.iso"), "--host-release-key",
                    str(signing_key.public), "--host-release-repository", "oci://Ghcr.io/x")
    assert result.exit_code == 1 and "ghcr.io/nine-minds/alga-appliance-host" in result.output


def test_the_build_pins_the_keys_and_repository_in_the_payload(signing_key, other_key):
    options = resolve_options(None, {
        "host_release_keys": [str(signing_key.public), str(other_key.public)],
        "host_release_repository": "ghcr.io/example/host"})
    trust = gpg.host_release_trust(options.host_release_keys, options.host_release_repository)
    files = {f.path: f for f in payload.collect({}, options.release_source, options.admin_user,
                                                 trust)}
    pinned = files["host-release-trust.json"]
    assert pinned.mode == 0o644
    document = json.loads(pinned.data)
    assert document["repository"] == "ghcr.io/example/host"
    assert [k["fingerprint"] for k in document["keys"]] == [signing_key.fingerprint,
                                                            other_key.fingerprint]
    assert document["keys"][1]["armored"] == other_key.public.read_text()
    # What the appliance reads back through its state registry, validated.
    assert options.as_document()["host_release_keys"] == [str(signing_key.public),
                                                          str(other_key.public)]


def test_a_build_without_host_release_keys_pins_nothing():
    options = resolve_options(None, {})
    assert gpg.host_release_trust(options.host_release_keys,
                                  options.host_release_repository) is None
    paths = {f.path for f in payload.collect({}, options.release_source)}
    assert "host-release-trust.json" not in paths
