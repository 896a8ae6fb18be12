"""Without --base-iso, isobuild fetches the pinned ISO, SHA256SUMS and SHA256SUMS.gpg into a
cache, checks the signature against the pinned key and the ISO against SHA256SUMS: tested
against a real HTTPS server on loopback with its own CA (support/mirror.py), signed with a
throwaway key that only the pin's override variables make isobuild trust."""

import hashlib
import io
import os
import subprocess
import sys

import pytest
from support.base import sha256
from support.mirror import UbuntuMirror
from support.netlab import ConnectProxy, HttpsServer, Route

from isobuild import gpg
from isobuild.download import ATTEMPTS, ISO_NAME, SIGNATURE, SUMS, UBUNTU_RELEASE
from isobuild.progress import Progress, transfer_line

ISOBUILD = [sys.executable, "-m", "isobuild"]
PRIMARY, FALLBACK = UbuntuMirror.PRIMARY, UbuntuMirror.FALLBACK


def run_build(env: dict, output, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*ISOBUILD, "build", "--output", str(output), *args], env=env,
                          capture_output=True, text=True)


@pytest.fixture
def env(ubuntu_mirror, signing_key, tmp_path):
    return ubuntu_mirror.environment(tmp_path / "cache", signing_key)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def altered(data: bytes) -> bytes:
    """The ISO with one byte of its middle changed: same size, different hash."""
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:]


def test_downloads_checks_the_signature_caches_and_builds(ubuntu_mirror, env, replica_iso,
                                                          signing_key, tmp_path):
    ubuntu_mirror.publish(replica_iso, signing_key)
    first = run_build(env, tmp_path / "a.iso")
    assert first.returncode == 0, first.stderr
    cached = tmp_path / "cache" / ISO_NAME
    assert cached.read_bytes() == replica_iso.read_bytes()
    assert ubuntu_mirror.gets() == [PRIMARY + SUMS, PRIMARY + SIGNATURE, PRIMARY + ISO_NAME]
    assert f"base     {ISO_NAME} {sha256(replica_iso)}" in first.stdout
    assert f"from     {ubuntu_mirror.url}{PRIMARY}{ISO_NAME}" in first.stdout
    assert (f"verified SHA256SUMS signed by the key in {signing_key.public} "
            f"({gpg.KEY_ENV}), NOT Canonical's, {signing_key.fingerprint}") in first.stdout
    assert sorted(p.name for p in cached.parent.iterdir()) == sorted([ISO_NAME, SUMS,
                                                                      SIGNATURE])

    second = run_build(env, tmp_path / "b.iso")
    assert second.returncode == 0, second.stderr
    assert ubuntu_mirror.gets()[3:] == [PRIMARY + SUMS, PRIMARY + SIGNATURE]  # ISO reused
    assert f"from     the cache ({cached})" in second.stdout
    assert (tmp_path / "a.iso").read_bytes() == (tmp_path / "b.iso").read_bytes()

    cached.write_bytes(altered(cached.read_bytes()))  # a cached copy is trusted only verified
    third = run_build(env, tmp_path / "c.iso")
    assert third.returncode == 0, third.stderr
    assert ubuntu_mirror.gets()[5:] == [PRIMARY + SUMS, PRIMARY + SIGNATURE, PRIMARY + ISO_NAME]
    assert cached.read_bytes() == replica_iso.read_bytes()


def test_the_output_has_a_sha256sums_line_a_customer_can_check(ubuntu_mirror, env, replica_iso,
                                                                signing_key, tmp_path):
    ubuntu_mirror.publish(replica_iso, signing_key)
    run = run_build(env, tmp_path / "alga.iso")
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "alga.iso.SHA256SUMS").read_text() == \
        f"{sha256(tmp_path / 'alga.iso')} *alga.iso\n"
    check = subprocess.run(["sha256sum", "-c", "alga.iso.SHA256SUMS"], cwd=tmp_path,
                           capture_output=True, text=True)
    assert check.returncode == 0 and "alga.iso: OK" in check.stdout
    assert not (tmp_path / "alga.iso.SHA256SUMS.gpg").exists()


def test_a_rebuild_without_sign_key_drops_the_old_signature(local_release, signing_key,
                                                            tmp_path):
    iso, _, _ = local_release
    environment = {**os.environ, "GNUPGHOME": str(signing_key.home)}
    signed = run_build(environment, tmp_path / "out.iso", "--base-iso", str(iso),
                       "--sign-key", signing_key.fingerprint)
    assert signed.returncode == 0 and (tmp_path / "out.iso.SHA256SUMS.gpg").is_file()
    unsigned = run_build(environment, tmp_path / "out.iso", "--base-iso", str(iso),
                         "--serial-console")
    assert unsigned.returncode == 0, unsigned.stderr
    assert not (tmp_path / "out.iso.SHA256SUMS.gpg").exists()


def test_missing_signature_is_refused(ubuntu_mirror, env, replica_iso, tmp_path):
    ubuntu_mirror.publish(replica_iso, key=None)
    run = run_build(env, tmp_path / "out.iso")
    assert run.returncode != 0
    assert "has SHA256SUMS but no SHA256SUMS.gpg: nothing proves SHA256SUMS" in run.stderr
    assert "fix: " in run.stderr and "Traceback" not in run.stderr
    assert PRIMARY + ISO_NAME not in ubuntu_mirror.gets()  # nothing big fetched for nothing
    assert not (tmp_path / "out.iso").exists()


def test_signature_by_another_key_is_refused(ubuntu_mirror, env, replica_iso, other_key,
                                             signing_key, tmp_path):
    ubuntu_mirror.publish(replica_iso, other_key)
    run = run_build(env, tmp_path / "out.iso")
    assert run.returncode != 0
    assert f"SHA256SUMS.gpg is signed by {other_key.fingerprint[-16:]}" in run.stderr
    assert f"not by the pinned key {signing_key.fingerprint}" in run.stderr
    assert PRIMARY + ISO_NAME not in ubuntu_mirror.gets()


def test_the_test_key_is_not_trusted_without_the_override(ubuntu_mirror, env, replica_iso,
                                                          signing_key, tmp_path):
    ubuntu_mirror.publish(replica_iso, signing_key)
    for name in signing_key.trust_env():
        del env[name]
    run = run_build(env, tmp_path / "out.iso")
    assert run.returncode != 0
    assert f"not by the pinned key {gpg.UBUNTU_FINGERPRINT} ({gpg.UBUNTU_KEY})" in run.stderr


def test_half_an_override_is_refused(ubuntu_mirror, env, replica_iso, signing_key, tmp_path):
    ubuntu_mirror.publish(replica_iso, signing_key)
    del env[gpg.FINGERPRINT_ENV]
    run = run_build(env, tmp_path / "out.iso")
    assert run.returncode != 0
    assert f"only one of {gpg.KEY_ENV} and {gpg.FINGERPRINT_ENV} is set" in run.stderr
    assert ubuntu_mirror.gets() == []


def test_the_pinned_ubuntu_key_file_is_the_pinned_fingerprint(tmp_path):
    listing = subprocess.run(["gpg", "--homedir", str(tmp_path), "--with-colons", "--show-keys",
                              str(gpg.UBUNTU_KEY)], capture_output=True, text=True, check=True)
    fingerprints = [line.split(":")[9] for line in listing.stdout.splitlines()
                    if line.startswith("fpr:")]
    assert fingerprints[0] == gpg.UBUNTU_FINGERPRINT == "843938DF228D22F7B3742BC0D94AA3F0EFE21092"


def test_sha256sums_altered_after_signing_is_refused(ubuntu_mirror, env, replica_iso,
                                                     signing_key, tmp_path):
    ubuntu_mirror.publish(replica_iso, signing_key)
    tampered = altered(replica_iso.read_bytes())
    ubuntu_mirror.routes[PRIMARY + ISO_NAME].body = tampered
    sums = ubuntu_mirror.routes[PRIMARY + SUMS]
    sums.body = sums.body.replace(sha256(replica_iso).encode(),
                                  sha256_bytes(tampered).encode())
    run = run_build(env, tmp_path / "out.iso")
    assert run.returncode != 0
    assert "SHA256SUMS.gpg does not match SHA256SUMS: SHA256SUMS was altered after it was " \
           "signed" in run.stderr
    assert PRIMARY + ISO_NAME not in ubuntu_mirror.gets()


def test_altered_iso_is_refused_and_not_cached(ubuntu_mirror, env, replica_iso, signing_key,
                                               tmp_path):
    ubuntu_mirror.publish(replica_iso, signing_key)
    tampered = altered(replica_iso.read_bytes())
    ubuntu_mirror.routes[PRIMARY + ISO_NAME].body = tampered
    run = run_build(env, tmp_path / "out.iso")
    assert run.returncode != 0
    assert f"downloaded {ISO_NAME} has sha256 {sha256_bytes(tampered)}, SHA256SUMS says " \
           f"{sha256(replica_iso)}" in run.stderr
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [SUMS, SIGNATURE]
    assert not (tmp_path / "out.iso").exists()


def test_a_superseded_release_comes_from_the_fallback(ubuntu_mirror, env, replica_iso,
                                                      signing_key, tmp_path):
    ubuntu_mirror.publish(replica_iso, signing_key, at=FALLBACK)
    run = run_build(env, tmp_path / "out.iso")
    assert run.returncode == 0, run.stderr
    assert ubuntu_mirror.gets() == [PRIMARY + SUMS, FALLBACK + SUMS, FALLBACK + SIGNATURE,
                                    FALLBACK + ISO_NAME]
    assert f"from     {ubuntu_mirror.url}{FALLBACK}{ISO_NAME}" in run.stdout


def test_a_release_in_neither_place_is_explained(ubuntu_mirror, env, tmp_path):
    run = run_build(env, tmp_path / "out.iso")
    assert run.returncode != 0
    assert (f"Ubuntu {UBUNTU_RELEASE} is not at {ubuntu_mirror.url}{PRIMARY} nor at "
            f"{ubuntu_mirror.url}{FALLBACK} (404 for SHA256SUMS)") in run.stderr
    assert "isobuild check-base" in run.stderr


def test_an_iso_missing_beside_its_signed_sums_is_explained(ubuntu_mirror, env, replica_iso,
                                                            signing_key, tmp_path):
    ubuntu_mirror.publish(replica_iso, signing_key)
    del ubuntu_mirror.routes[PRIMARY + ISO_NAME]
    run = run_build(env, tmp_path / "out.iso")
    assert run.returncode != 0
    assert f"download of {ubuntu_mirror.url}{PRIMARY}{ISO_NAME} failed: HTTP 404" in run.stderr
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [SUMS, SIGNATURE]


def test_a_download_cut_at_half_resumes_to_a_verified_file(ubuntu_mirror, env, replica_iso,
                                                           signing_key, tmp_path):
    size = replica_iso.stat().st_size
    route = ubuntu_mirror.publish(replica_iso, signing_key)
    route.cut_after, route.cuts = size // 2, 1
    run = run_build(env, tmp_path / "out.iso")
    assert run.returncode == 0, run.stderr
    ranges = [headers.get("Range") for _, path, headers in ubuntu_mirror.requests
              if path == PRIMARY + ISO_NAME]
    assert ranges == [None, f"bytes={size // 2}-"]
    assert (tmp_path / "cache" / ISO_NAME).read_bytes() == replica_iso.read_bytes()


def test_a_download_interrupted_every_time_resumes_in_the_next_run(ubuntu_mirror, env,
                                                                   replica_iso, signing_key,
                                                                   tmp_path):
    size = replica_iso.stat().st_size
    route = ubuntu_mirror.publish(replica_iso, signing_key)
    route.ranges, route.cut_after, route.cuts = False, size // 2, ATTEMPTS
    first = run_build(env, tmp_path / "out.iso")
    assert first.returncode != 0
    assert f"was interrupted {ATTEMPTS} times" in first.stderr
    assert "run the build again: it resumes from there" in first.stderr
    partial = tmp_path / "cache" / f"{ISO_NAME}.part"
    assert partial.stat().st_size == size // 2

    route.ranges = True
    second = run_build(env, tmp_path / "out.iso")
    assert second.returncode == 0, second.stderr
    last = [headers for _, path, headers in ubuntu_mirror.requests if path == PRIMARY + ISO_NAME]
    assert last[-1]["Range"] == f"bytes={size // 2}-" and last[-1]["If-Range"] == \
        route.headers["ETag"]
    assert (tmp_path / "cache" / ISO_NAME).read_bytes() == replica_iso.read_bytes()
    assert not partial.exists()


def test_a_server_that_ignores_range_gets_a_fresh_download(ubuntu_mirror, env, replica_iso,
                                                           signing_key, tmp_path):
    size = replica_iso.stat().st_size
    route = ubuntu_mirror.publish(replica_iso, signing_key)
    route.ranges, route.cut_after, route.cuts = False, size // 2, 1
    run = run_build(env, tmp_path / "out.iso")
    assert run.returncode == 0, run.stderr
    ranges = [headers.get("Range") for _, path, headers in ubuntu_mirror.requests
              if path == PRIMARY + ISO_NAME]
    assert ranges == [None, f"bytes={size // 2}-"]  # asked, got the whole file, started over
    assert (tmp_path / "cache" / ISO_NAME).read_bytes() == replica_iso.read_bytes()


def test_a_partial_of_another_release_is_not_resumed(ubuntu_mirror, env, replica_iso,
                                                     signing_key, tmp_path):
    """A respin (new SHA256SUMS) between two runs: the old partial file is discarded."""
    size = replica_iso.stat().st_size
    route = ubuntu_mirror.publish(b"an older respin " * (size // 16), signing_key)
    route.cut_after, route.cuts = size // 2, ATTEMPTS
    assert run_build(env, tmp_path / "out.iso").returncode != 0
    ubuntu_mirror.publish(replica_iso, signing_key)
    run = run_build(env, tmp_path / "out.iso")
    assert run.returncode == 0, run.stderr
    assert "Range" not in ubuntu_mirror.requests[-1][2]
    assert (tmp_path / "cache" / ISO_NAME).read_bytes() == replica_iso.read_bytes()


def test_downloads_through_a_proxy(ubuntu_mirror, env, replica_iso, signing_key, tmp_path):
    ubuntu_mirror.publish(replica_iso, signing_key)
    with ConnectProxy() as proxy:
        run = run_build({**env, "HTTPS_PROXY": proxy.url}, tmp_path / "out.iso")
        assert run.returncode == 0, run.stderr
        assert set(proxy.tunnels) == {("127.0.0.1", ubuntu_mirror.port)}
        assert len(proxy.tunnels) == 3  # SHA256SUMS, its signature, the ISO
    assert (tmp_path / "cache" / ISO_NAME).read_bytes() == replica_iso.read_bytes()


def test_untrusted_mirror_certificate_is_refused(ubuntu_mirror, env, replica_iso, signing_key,
                                                 tmp_path):
    ubuntu_mirror.publish(replica_iso, signing_key)
    del env["ISOBUILD_CA_BUNDLE"]
    run = run_build(env, tmp_path / "out.iso")
    assert run.returncode != 0
    assert "CERTIFICATE_VERIFY_FAILED" in run.stderr and "ISOBUILD_UBUNTU_MIRROR" in run.stderr
    assert ubuntu_mirror.requests == []


# --base-iso: a local file, verified when SHA256SUMS and its signature come with it.

@pytest.fixture
def local_release(replica_iso, signing_key, tmp_path):
    """The replica under the pinned name, its SHA256SUMS and the signature of that."""
    iso = tmp_path / ISO_NAME
    iso.write_bytes(replica_iso.read_bytes())
    sums = tmp_path / SUMS
    sums.write_text(f"{sha256(replica_iso)} *{ISO_NAME}\n")
    (tmp_path / SIGNATURE).write_bytes(signing_key.sign(sums.read_bytes()))
    return iso, sums, tmp_path / SIGNATURE


def local_env(signing_key) -> dict:
    return {**os.environ, **signing_key.trust_env()}


def test_local_base_with_signed_sums_is_verified(local_release, signing_key, tmp_path):
    iso, sums, signature = local_release
    run = run_build(local_env(signing_key), tmp_path / "out.iso", "--base-iso", str(iso),
                    "--sha256sums", str(sums), "--sha256sums-gpg", str(signature))
    assert run.returncode == 0, run.stderr
    assert f"verified SHA256SUMS signed by the key in {signing_key.public}" in run.stdout
    assert "NOT verified" not in run.stdout and "NOT authenticated" not in run.stdout


def test_local_base_with_sums_signed_by_another_key_is_refused(local_release, signing_key,
                                                               other_key, tmp_path):
    iso, sums, signature = local_release
    signature.write_bytes(other_key.sign(sums.read_bytes()))
    run = run_build(local_env(signing_key), tmp_path / "out.iso", "--base-iso", str(iso),
                    "--sha256sums", str(sums), "--sha256sums-gpg", str(signature))
    assert run.returncode != 0
    assert f"is signed by {other_key.fingerprint[-16:]}" in run.stderr
    assert not (tmp_path / "out.iso").exists()


def test_local_base_with_a_garbage_signature_is_refused(local_release, signing_key, tmp_path):
    iso, sums, signature = local_release
    signature.write_bytes(b"-----BEGIN PGP SIGNATURE-----\n\nnonsense\n")
    run = run_build(local_env(signing_key), tmp_path / "out.iso", "--base-iso", str(iso),
                    "--sha256sums", str(sums), "--sha256sums-gpg", str(signature))
    assert run.returncode != 0
    assert f"{SIGNATURE} is not an OpenPGP signature of {SUMS}" in run.stderr


def test_local_base_without_signature_says_it_is_not_authenticated(local_release, signing_key,
                                                                   tmp_path):
    iso, sums, _ = local_release
    with_sums = run_build(local_env(signing_key), tmp_path / "a.iso", "--base-iso", str(iso),
                          "--sha256sums", str(sums))
    assert with_sums.returncode == 0, with_sums.stderr
    assert "but SHA256SUMS is NOT authenticated: pass --sha256sums-gpg" in with_sums.stdout
    bare = run_build(local_env(signing_key), tmp_path / "b.iso", "--base-iso", str(iso))
    assert bare.returncode == 0, bare.stderr
    assert "base ISO NOT verified: pass --sha256sums and --sha256sums-gpg" in bare.stdout


def test_signature_flags_without_a_local_base_are_refused(signing_key, tmp_path):
    run = run_build(local_env(signing_key), tmp_path / "out.iso", "--sha256sums-gpg", "x.gpg")
    assert run.returncode == 2 and "describe a --base-iso" in run.stderr


@pytest.mark.parametrize("by", ["key file", "key id"])
def test_sign_key_signs_the_outputs_sha256sums(local_release, signing_key, tmp_path, by):
    iso, _, _ = local_release
    environment = {**os.environ, "GNUPGHOME": str(signing_key.home)}
    key = str(signing_key.secret) if by == "key file" else signing_key.fingerprint
    run = run_build(environment, tmp_path / "out.iso", "--base-iso", str(iso), "--sign-key", key)
    assert run.returncode == 0, run.stderr
    signature = tmp_path / "out.iso.SHA256SUMS.gpg"
    assert f"signed   {signature}" in run.stdout
    check = signing_key.gpg("--status-fd", "1", "--verify", str(signature),
                            str(tmp_path / "out.iso.SHA256SUMS"))
    assert f"VALIDSIG {signing_key.fingerprint}" in check.stdout.decode()


def test_an_unknown_sign_key_fails_before_the_build(local_release, signing_key, tmp_path):
    iso, _, _ = local_release
    environment = {**os.environ, "GNUPGHOME": str(signing_key.home)}
    run = run_build(environment, tmp_path / "out.iso", "--base-iso", str(iso),
                    "--sign-key", "nobody@nowhere.test")
    assert run.returncode != 0
    assert "gpg failed looking up secret key nobody@nowhere.test" in run.stderr
    assert not (tmp_path / "out.iso").exists()


# isobuild check-base

@pytest.mark.parametrize(("listed", "says"), [
    (["24.04.4", "24.04.5", "24.04.10"], 'set UBUNTU_RELEASE = "24.04.10"'),
    ([UBUNTU_RELEASE], "the pin is the current point release"),
])
def test_check_base_tells_whether_a_newer_point_release_exists(ca, listed, says):
    page = "".join(f'<a href="ubuntu-{r}-live-server-amd64.iso">x</a>\n' for r in listed)
    with HttpsServer(ca, {"/noble/": Route(body=page)}) as server:
        run = subprocess.run([*ISOBUILD, "check-base"], capture_output=True, text=True,
                             env={**os.environ, "ISOBUILD_UBUNTU_SERIES_URL":
                                  f"{server.url}/noble/",
                                  "ISOBUILD_CA_BUNDLE": str(ca.ca_pem_path)})
    assert run.returncode == 0, run.stderr
    assert f"pinned   {UBUNTU_RELEASE} (UBUNTU_RELEASE in isobuild/download.py)" in run.stdout
    assert f"current  {max(listed, key=lambda r: [int(p) for p in r.split('.')])}" in run.stdout
    assert says in run.stdout


def test_check_base_explains_a_page_without_isos(ca):
    with HttpsServer(ca, {"/noble/": Route(body="<html>moved</html>")}) as server:
        run = subprocess.run([*ISOBUILD, "check-base"], capture_output=True, text=True,
                             env={**os.environ, "ISOBUILD_UBUNTU_SERIES_URL":
                                  f"{server.url}/noble/",
                                  "ISOBUILD_CA_BUNDLE": str(ca.ca_pem_path)})
    assert run.returncode == 1
    assert "names no ubuntu-24.04.x-live-server-amd64.iso" in run.stderr
    assert "ISOBUILD_UBUNTU_SERIES_URL" in run.stderr and "Traceback" not in run.stderr


def test_download_progress_shows_bytes_rate_and_time_left():
    mib = 1 << 20
    assert transfer_line(512 * mib, 2048 * mib, 16 * mib) == \
        "512/2048 MiB (25%), 16.0 MiB/s, 1m36s left"
    assert transfer_line(3 * mib, 0, 1.5 * mib) == "3 MiB, 1.5 MiB/s"  # no Content-Length
    assert transfer_line(0, 2048 * mib, 0) == "0/2048 MiB (0%), 0.0 MiB/s"


def test_download_progress_on_a_terminal_counts_only_this_runs_bytes():
    stream = io.StringIO()
    progress = Progress(stream, interactive=True)
    progress.step("Downloading x")
    progress.transfer(1000 << 20, 2000 << 20)  # resumed at 1000 MiB: not this run's speed
    assert "1000/2000 MiB (50%), 0.0 MiB/s" in stream.getvalue()


def test_only_the_pinned_fingerprint_counts_in_a_key_file_with_more_keys(
        ubuntu_mirror, env, replica_iso, signing_key, other_key, tmp_path):
    """The pin is the fingerprint, not whatever the key file holds."""
    home = tmp_path / "both"
    home.mkdir(mode=0o700)
    both = tmp_path / "both.asc"
    for key in (signing_key, other_key):
        subprocess.run(["gpg", "--homedir", str(home), "--batch", "--import", str(key.public)],
                       capture_output=True, check=True)
    both.write_bytes(subprocess.run(["gpg", "--homedir", str(home), "--armor", "--export"],
                                    capture_output=True, check=True).stdout)
    ubuntu_mirror.publish(replica_iso, other_key)
    run = run_build({**env, gpg.KEY_ENV: str(both)}, tmp_path / "out.iso")
    assert run.returncode != 0
    assert (f"SHA256SUMS.gpg is signed by {other_key.fingerprint}, not by the pinned key "
            f"{signing_key.fingerprint}") in run.stderr


def test_check_base_refuses_a_page_older_than_the_pin(ca):
    """A stale copy (a proxy's cache, a wrong override) must not read as "the pin is current"."""
    page = '<a href="ubuntu-24.04.1-live-server-amd64.iso">x</a>\n'
    with HttpsServer(ca, {"/noble/": Route(body=page)}) as server:
        run = subprocess.run([*ISOBUILD, "check-base"], capture_output=True, text=True,
                             env={**os.environ, "ISOBUILD_UBUNTU_SERIES_URL":
                                  f"{server.url}/noble/",
                                  "ISOBUILD_CA_BUNDLE": str(ca.ca_pem_path)})
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert f"the page names 24.04.1, older than the pinned {UBUNTU_RELEASE}" in run.stderr
    assert "current point release" not in run.stdout
