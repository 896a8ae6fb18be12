"""Host releases on the appliance's side (host/releases/host_release.py) against the real
registry (support.registry) and real gpg keys (support.mirror's throwaway keys): what the
pinned repository offers, and staging one, with every refusal issue 23 lists at this layer.
A refusal names its reason and leaves nothing staged: no `into`, no partial beside it."""

import dataclasses
import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st
from support.host_releases import (
    REPOSITORY,
    File,
    host_root,
    make_release,
    publish,
    signed,
    small_tree,
    tree,
)
from support.netlab import ConnectProxy, HttpsServer, Route
from support.oci import Blob
from support.preflight_lab import proxy_inputs

from host.core import host_release_format as release_format
from host.core import state
from host.net import https
from host.releases import host_release as hr
from host.releases import oci_source


@pytest.fixture
def root(tmp_path, ca, registry, signing_key):
    return host_root(tmp_path / "root", ca, registry, signing_key)


@pytest.fixture
def into(tmp_path) -> Path:
    """Where stage() is asked to put the tree; its parent must hold nothing else after a
    refusal."""
    (tmp_path / "versions").mkdir()
    return tmp_path / "versions" / "next"


def refused(root, version: str, into: Path) -> str:
    with pytest.raises(hr.Refused) as caught:
        hr.stage(root, version, into)
    assert list(into.parent.iterdir()) == [], "a refused release left something staged"
    assert "Traceback" not in caught.value.reason
    return caught.value.reason


def tar_gz(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return gzip.compress(archive.getvalue(), mtime=0)


def regular(name: str, data: bytes, mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    return info, data


def link(name: str, target: str, kind=tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, b""


def members_of(files) -> list[tuple[tarfile.TarInfo, bytes]]:
    return [regular(f"./{f.path}", f.data, f.mode) for f in files]


# --- the round trip on the appliance's side ----------------------------------------------

def test_stage_extracts_exactly_the_signed_files(root, registry, signing_key, into):
    files = small_tree("0.2.0")
    publish(registry, make_release(files, "0.2.0", signing_key, "Fixes the banner.\n"))
    staged = hr.stage(root, "0.2.0", into)
    assert staged.version == "0.2.0" and staged.directory == into
    assert staged.signer == signing_key.fingerprint
    assert staged.manifest["notes"] == "Fixes the banner.\n"
    assert tree(into) == {f.path: (f.data, f.mode) for f in files}
    assert [p.name for p in into.parent.iterdir()] == ["next"]


def test_stage_fills_an_empty_directory(root, registry, signing_key, into):
    into.mkdir()
    publish(registry, make_release(small_tree("0.2.0"), "0.2.0", signing_key))
    assert set(tree(hr.stage(root, "0.2.0", into).directory)) == {
        "VERSION", "bin/alga-appliance", "host/__init__.py", "host/core/version.py"}


def test_stage_refuses_a_directory_that_holds_something(root, registry, signing_key, into):
    into.mkdir()
    (into / "old").write_text("x")
    publish(registry, make_release(small_tree("0.2.0"), "0.2.0", signing_key))
    with pytest.raises(hr.Refused, match="already exists and is not empty"):
        hr.stage(root, "0.2.0", into)
    assert [p.name for p in into.iterdir()] == ["old"]


def test_available_lists_versions_newest_first_with_their_notes(root, registry, signing_key):
    for version, notes in (("0.2.0", "two"), ("0.10.0", "ten"), ("0.3.0-rc.1", "rc")):
        publish(registry, make_release(small_tree(version), version, signing_key, notes))
    registry.tag(REPOSITORY, "0.2.0", "latest")  # no version: not offered
    assert hr.available(root) == [hr.Available("0.10.0", "ten", "2026-12-01T10:00:00Z"),
                                  hr.Available("0.3.0-rc.1", "rc", "2026-12-01T10:00:00Z"),
                                  hr.Available("0.2.0", "two", "2026-12-01T10:00:00Z")]


def test_available_skips_a_tag_that_is_not_a_host_release(root, registry, signing_key):
    publish(registry, make_release(small_tree("0.2.0"), "0.2.0", signing_key))
    release = make_release(small_tree("0.3.0"), "0.3.0", signing_key)
    publish(registry, release, annotations={hr.VERSION_ANNOTATION: "0.4.0"})  # tag ≠ version
    assert [a.version for a in hr.available(root)] == ["0.2.0"]


def test_an_empty_repository_offers_nothing(root, registry):
    # The registry answers 404 NAME_UNKNOWN for a repository nobody pushed to.
    with pytest.raises(hr.Refused, match="answered 404"):
        hr.available(root)


def test_the_trust_file_is_read_validated(tmp_path, ca, registry, signing_key):
    root = host_root(tmp_path, ca, registry, signing_key)
    assert hr.trust(root)["keys"][0]["fingerprint"] == signing_key.fingerprint
    state.HOST_RELEASE_TRUST.path(root).write_text(json.dumps({"repository": "x", "keys": []}))
    with pytest.raises(hr.Refused, match=r"host release trust .* is invalid at /repository"):
        hr.trust(root)
    # A file that pins no key is an ISO built without one.
    state.write(state.HOST_RELEASE_TRUST, {"repository": "ghcr.io/a/b", "keys": []}, root)
    assert hr.trust(root) is None
    with pytest.raises(hr.Refused, match="built without a host-release key"):
        hr.available(root)


# --- refusals ----------------------------------------------------------------------------

def test_without_a_pinned_key_self_updates_are_refused(tmp_path, ca, registry, signing_key,
                                                       into):
    root = host_root(tmp_path / "root", ca, registry)  # built without --host-release-key
    assert hr.trust(root) is None
    for action in (lambda: hr.available(root), lambda: hr.stage(root, "0.2.0", into)):
        with pytest.raises(hr.Refused, match="built without a host-release key"):
            action()
    assert list(into.parent.iterdir()) == []


def test_an_unsigned_release_is_refused(root, registry, into):
    publish(registry, make_release(small_tree("0.2.0"), "0.2.0", None))
    assert "is unsigned" in refused(root, "0.2.0", into)


def test_a_signature_that_is_no_signature_is_refused(root, registry, signing_key, into):
    release = make_release(small_tree("0.2.0"), "0.2.0", signing_key)
    publish(registry, release, layers=(Blob(hr.PAYLOAD_TYPE, release.tarball),
                                       Blob(hr.SIGNATURE_TYPE, b"not a signature")))
    assert "not a valid OpenPGP signature" in refused(root, "0.2.0", into)


def test_a_release_signed_by_another_key_is_refused(root, registry, other_key, signing_key,
                                                    into):
    publish(registry, make_release(small_tree("0.2.0"), "0.2.0", other_key))
    reason = refused(root, "0.2.0", into)
    assert f"signed by {other_key.fingerprint}, not by a key this appliance pins " \
           f"({signing_key.fingerprint})" in reason
    assert "do not install it" in reason


def test_the_second_pinned_key_is_trusted_too(tmp_path, ca, registry, signing_key, other_key,
                                              into):
    root = host_root(tmp_path / "root", ca, registry, signing_key, other_key)
    publish(registry, make_release(small_tree("0.2.0"), "0.2.0", other_key))
    assert hr.stage(root, "0.2.0", into).signer == other_key.fingerprint


def test_a_manifest_altered_after_signing_is_refused(root, registry, signing_key, into):
    release = make_release(small_tree("0.2.0"), "0.2.0", signing_key)
    altered = release.manifest_bytes.replace(b'"notes": ""', b'"notes": "!"')
    publish(registry, type(release)(release.manifest, altered, release.tarball,
                                    release.signature))
    assert "altered after it was signed" in refused(root, "0.2.0", into)


def test_a_tarball_other_than_the_signed_one_is_refused(root, registry, signing_key, into):
    files = small_tree("0.2.0")
    genuine = make_release(files, "0.2.0", signing_key)
    swapped = release_format.pack([*files[:-1], File("host/core/version.py", b"evil = True\n")])
    publish(registry, type(genuine)(genuine.manifest, genuine.manifest_bytes, swapped,
                                    genuine.signature))
    assert "is not the one its signed manifest names" in refused(root, "0.2.0", into)


def test_a_file_whose_hash_differs_from_the_manifest_is_refused(root, registry, signing_key,
                                                                into):
    files = small_tree("0.2.0")
    listed = [*files[:-1], File("host/core/version.py", b'__version__ = "0.2.1"\n')]
    # The same size, other bytes: only the hash tells them apart.
    assert len(listed[-1].data) == len(files[-1].data)
    publish(registry, make_release(files, "0.2.0", signing_key, manifest_files=listed))
    reason = refused(root, "0.2.0", into)
    assert "host/core/version.py in the host release tarball hashes to " \
           f"{hashlib.sha256(files[-1].data).hexdigest()}" in reason


def test_a_file_whose_mode_differs_is_refused(root, registry, signing_key, into):
    files = small_tree("0.2.0")
    listed = [File(f.path, f.data, 0o644) for f in files]
    publish(registry, make_release(files, "0.2.0", signing_key, manifest_files=listed))
    assert "bin/alga-appliance in the host release tarball has size 22 and mode 755, its " \
           "signed manifest says 22 and 644" in refused(root, "0.2.0", into)


def test_an_unlisted_file_is_refused(root, registry, signing_key, into):
    files = small_tree("0.2.0")
    tarball = tar_gz([*members_of(files), regular("./host/extra.py", b"import os\n")])
    publish(registry, make_release(files, "0.2.0", signing_key, tarball=tarball))
    assert "holds './host/extra.py', which its signed manifest does not list" in refused(
        root, "0.2.0", into)


def test_a_listed_file_missing_from_the_tarball_is_refused(root, registry, signing_key, into):
    files = small_tree("0.2.0")
    tarball = tar_gz(members_of(files[:-1]))
    publish(registry, make_release(files, "0.2.0", signing_key, tarball=tarball))
    assert "lacks host/core/version.py (and 0 more files)" in refused(root, "0.2.0", into)


@pytest.mark.parametrize("name", ["./../escaped", "../escaped", "/tmp/escaped",
                                  "./host/../../escaped", "escaped"])
def test_a_path_outside_the_staging_directory_is_refused(root, registry, signing_key, into,
                                                         name):
    files = small_tree("0.2.0")
    tarball = tar_gz([*members_of(files), regular(name, b"owned\n")])
    publish(registry, make_release(files, "0.2.0", signing_key, tarball=tarball))
    assert "which its signed manifest does not list" in refused(root, "0.2.0", into)
    assert not (into.parent.parent / "escaped").exists() and not Path("/tmp/escaped").exists()


@pytest.mark.parametrize("kind, words", [(tarfile.SYMTYPE, "a symbolic link"),
                                         (tarfile.LNKTYPE, "a hard link")])
def test_a_link_is_refused_even_where_a_listed_file_belongs(root, registry, signing_key, into,
                                                            kind, words):
    files = small_tree("0.2.0")
    tarball = tar_gz([*members_of(files[:-1]), link("./host/core/version.py", "/etc/shadow",
                                                    kind)])
    publish(registry, make_release(files, "0.2.0", signing_key, tarball=tarball))
    assert f"holds host/core/version.py as {words}, not a regular file" in refused(
        root, "0.2.0", into)


def test_a_symlinked_directory_then_a_file_through_it_is_refused(root, registry, signing_key,
                                                                 into, tmp_path):
    files = small_tree("0.2.0")
    tarball = tar_gz([link("./host", str(tmp_path)), *members_of(files)])
    publish(registry, make_release(files, "0.2.0", signing_key, tarball=tarball))
    assert "holds './host', which its signed manifest does not list" in refused(
        root, "0.2.0", into)
    assert not (tmp_path / "core").exists()


def test_a_file_listed_twice_in_the_tarball_is_refused(root, registry, signing_key, into):
    files = small_tree("0.2.0")
    tarball = tar_gz([*members_of(files), *members_of(files[-1:])])
    publish(registry, make_release(files, "0.2.0", signing_key, tarball=tarball))
    assert "holds host/core/version.py twice" in refused(root, "0.2.0", into)


def test_a_truncated_download_is_refused(root, registry, signing_key, into):
    release = make_release(small_tree("0.2.0"), "0.2.0", signing_key)
    publish(registry, release)
    digest = Blob(hr.PAYLOAD_TYPE, release.tarball).digest
    registry.corrupt_blob(digest, release.tarball[:len(release.tarball) // 2])
    reason = refused(root, "0.2.0", into)
    assert f"the payload of host release {registry.host}/{REPOSITORY}:0.2.0" in reason
    assert f"not {digest}" in reason and "retry" in reason


def test_a_moved_tag_is_refused(root, registry, signing_key, into):
    publish(registry, make_release(small_tree("0.2.0"), "0.2.0", signing_key), tag="0.3.0")
    assert "is signed as version 0.2.0: the tag was moved" in refused(root, "0.3.0", into)


def test_a_version_that_is_not_published_is_refused(root, registry, signing_key, into):
    publish(registry, make_release(small_tree("0.2.0"), "0.2.0", signing_key))
    assert "0.9.0 answered 404" in refused(root, "0.9.0", into)
    assert "is not a host release version" in refused(root, "../0.2.0", into)


def test_a_manifest_that_lists_a_path_outside_is_refused_by_its_schema(root, registry,
                                                                        signing_key, into):
    files = small_tree("0.2.0")
    release = make_release(files, "0.2.0", signing_key)
    entries = [*release.manifest["files"], {**release.manifest["files"][0],
                                            "path": "host/../../escaped"}]
    hostile = make_release(files, "0.2.0", signing_key, files=entries)
    publish(registry, hostile)
    assert "host release manifest (" in refused(root, "0.2.0", into)


# --- hostile tarballs, directly -----------------------------------------------------------

NAMES = st.sampled_from(["./VERSION", "./host/__init__.py", "VERSION", "./../x", "/x", "./",
                         ".", "./host", "./host/../VERSION", "./bin/alga-appliance",
                         "./host/core/version.py/x", "./host/core"])
MEMBERS = st.lists(st.tuples(NAMES, st.sampled_from([tarfile.REGTYPE, tarfile.SYMTYPE,
                                                     tarfile.LNKTYPE, tarfile.DIRTYPE,
                                                     tarfile.FIFOTYPE]),
                             st.binary(max_size=8), st.sampled_from([0o644, 0o755, 0o4755])),
                   max_size=6)


@settings(max_examples=150)
@given(members=MEMBERS)
def test_a_hostile_tarball_extracts_exactly_the_listed_files_or_nothing(tmp_path_factory,
                                                                       members):
    """Whatever the tarball holds, extract() writes only what the manifest lists, with the
    listed bytes and modes, inside its directory, or refuses."""
    files = small_tree("0.2.0")
    built = []
    for name, kind, data, mode in members:
        info = tarfile.TarInfo(name)
        info.type, info.mode = kind, mode
        info.size = len(data) if kind == tarfile.REGTYPE else 0
        info.linkname = "" if kind == tarfile.REGTYPE else "../../x"
        built.append((info, data))
    tarball = tar_gz([*members_of(files), *built])
    manifest = release_format.build_manifest(files, tarball, "0.2.0", "0.1.0", "",
                                             "2026-12-01T10:00:00Z")
    work = tmp_path_factory.mktemp("extract")
    into = work / "into"
    into.mkdir()
    try:
        hr.extract(tarball, manifest, into)
    except hr.Refused:
        pass
    else:
        assert tree(into) == {f.path: (f.data, f.mode) for f in files}
    assert [p.name for p in work.iterdir()] == ["into"]
    assert all(not p.is_symlink() for p in into.rglob("*"))


@settings(max_examples=100)
@given(data=st.binary(max_size=4096), cut=st.integers(min_value=0))
def test_damaged_tarball_bytes_are_refused_never_raised(tmp_path_factory, data, cut):
    files = small_tree("0.2.0")
    tarball = release_format.pack(files)
    damaged = tarball[:cut % len(tarball)] + data or b"\0"
    manifest = release_format.build_manifest(files, damaged, "0.2.0", "0.1.0", "",
                                             "2026-12-01T10:00:00Z")
    into = tmp_path_factory.mktemp("damaged")
    try:
        hr.extract(damaged, manifest, into)
    except hr.Refused as exc:
        assert "Traceback" not in exc.reason
    else:
        assert tree(into) == {f.path: (f.data, f.mode) for f in files}


def test_the_signature_check_names_a_good_signature_by_a_pinned_key(signing_key, other_key):
    data = b"manifest bytes"
    keys = [{"fingerprint": key.fingerprint, "armored": key.public.read_text()}
            for key in (signing_key, other_key)]
    assert hr.verify_signature(data, signed(other_key, data), keys) == other_key.fingerprint
    # An armored signature is a valid one too; a wrong fingerprint pins nothing.
    assert hr.verify_signature(data, other_key.sign(data), keys) == other_key.fingerprint
    wrong = [{**keys[1], "fingerprint": "0" * 40}]
    with pytest.raises(hr.Refused, match=f"signed by {other_key.fingerprint}, not by"):
        hr.verify_signature(data, signed(other_key, data), wrong)


# --- the network, as the release source sees it --------------------------------------------

def test_staging_goes_through_the_proxy_setup_chose(root, registry, signing_key, into):
    publish(registry, make_release(small_tree("0.2.0"), "0.2.0", signing_key, "notes"))
    with ConnectProxy() as proxy:
        state.write(state.SETUP_INPUTS, {
            "channel": "stable", "app_url": "http://10.0.0.5:3000", "dns": {"mode": "system"},
            "proxy": proxy_inputs(proxy), "overrides": {}}, root)
        assert [a.version for a in hr.available(root)] == ["0.2.0"]
        hr.stage(root, "0.2.0", into)
    registry_port = int(registry.host.rsplit(":", 1)[1])
    blob_address, blob_port = registry.blob_host.rsplit(":", 1)
    assert ("127.0.0.1", registry_port) in proxy.tunnels
    assert (blob_address, int(blob_port)) in proxy.tunnels


def test_a_registry_certificate_outside_the_chosen_ca_is_refused_with_the_fix(
        root, registry, signing_key, into):
    publish(registry, make_release(small_tree("0.2.0"), "0.2.0", signing_key))
    state.write(state.ENDPOINTS, {}, root)  # the test CA is no longer trusted
    reason = refused(root, "0.2.0", into)
    assert "is not signed by a CA this appliance trusts" in reason
    assert "ca_bundle in /etc/alga-appliance/endpoints.json" in reason


def test_a_broken_setup_inputs_file_is_refused_by_name(root, registry, signing_key, into):
    state.SETUP_INPUTS.path(root).write_text("{")
    reason = refused(root, "0.2.0", into)
    assert "setup inputs" in reason and "the proxy and CA to reach" in reason


def test_a_link_in_place_of_the_staging_directory_is_refused(root, registry, signing_key,
                                                             tmp_path):
    publish(registry, make_release(small_tree("0.2.0"), "0.2.0", signing_key))
    (tmp_path / "elsewhere").mkdir()
    into = tmp_path / "versions" / "next"
    into.parent.mkdir()
    into.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(hr.Refused, match="cannot be put at"):
        hr.stage(root, "0.2.0", into)
    assert [p.name for p in into.parent.iterdir()] == ["next"] and into.is_symlink()
    assert list((tmp_path / "elsewhere").iterdir()) == []


@pytest.mark.parametrize("pages", [1, 3])
def test_a_tag_list_in_pages_is_read_to_the_end(ca, pages):
    """As GHCR pages a long list: each page links the next (the Debian registry does not
    page tag lists, so a plain server stands in)."""
    base = "/v2/alga/appliance-host/tags/"
    routes = {f"{base}{'list' if n == 0 else f'page{n}'}": Route(
        body={"name": "alga/appliance-host", "tags": [f"0.{n}.0", f"0.{n}.1"]},
        headers={"Link": f'<{base}page{n + 1}?n=2&last=0.{n}.1>; rel="next"'}
        if n + 1 < pages else {}) for n in range(pages)}
    with HttpsServer(ca, routes) as server, requests.Session() as session:
        session.trust_env, session.verify = False, str(ca.ca_pem_path)
        registry = oci_source.Registry(session, server.url.removeprefix("https://"))
        assert registry.tags("alga/appliance-host", 5) == [
            f"0.{n}.{patch}" for n in range(pages) for patch in (0, 1)]


# Literal, not oci_source's own constant: a changed next step must fail these tests.
SOURCE_NEXT_STEP = ("check the release source override (support: overrides.release_source in "
                    "setup, or release_source in endpoints.json), or choose another channel")
NOT_JSON_NEXT_STEP = ("if a captive portal or proxy login intercepts HTTPS, let the appliance "
                      "through; else " + SOURCE_NEXT_STEP)
RETRY_NEXT_STEP = "retry later; if it persists, check the registry's status"


@pytest.mark.parametrize("route, message, category, next_step", [
    (Route(body={"tags": "0.2.0"}), "{what} at {url} is not a list of tags", "release-source",
     SOURCE_NEXT_STEP),
    (Route(body={"tags": [1]}), "{what} at {url} is not a list of tags", "release-source",
     SOURCE_NEXT_STEP),
    (Route(body=b"[]", headers={"Content-Type": "application/json"}),
     "{what} at {url} is not a list of tags", "release-source", SOURCE_NEXT_STEP),
    (Route(body="<html>login</html>", headers={"Content-Type": "text/html"}),
     "{what} at {url} is an HTML page: a captive portal, a proxy's login page or a web server "
     "answering for the registry", "release-source", NOT_JSON_NEXT_STEP),
    (Route(body={"tags": []}, headers={"Link": '</v2/r/tags/list>; rel="next"'}),
     "{what} has more than 20 pages", "release-source", SOURCE_NEXT_STEP),
    (Route(status=502, body="bad gateway"), "{what} at {url} answered 502", "network",
     RETRY_NEXT_STEP),
    (Route(status=401), "{url} answered 401 without a usable token challenge (no "
     "WWW-Authenticate header): {host} does not offer anonymous pull", "release-source",
     "use a registry or mirror that allows anonymous pull (ghcr.io does), or correct the "
     "release source override"),
])
def test_a_hostile_tag_list_is_refused(ca, route, message, category, next_step):
    with HttpsServer(ca, {"/v2/r/tags/list": route}) as server, requests.Session() as session:
        session.trust_env, session.verify = False, str(ca.ca_pem_path)
        host = server.url.removeprefix("https://")
        with pytest.raises(https.FetchError) as refused:
            oci_source.Registry(session, host).tags("r", 5)
    url = f"{server.url}/v2/r/tags/list?n=1000"
    assert (str(refused.value), refused.value.category, refused.value.next_step) == (
        message.format(what=f"the tag list of {host}/r", url=url, host=host), category,
        next_step)


def test_a_tag_list_challenge_without_a_scope_gets_the_pull_scope(ca):
    """The token is asked for the repository's pull scope when the challenge names none."""
    routes = {"/token": Route(body={"token": "t"})}
    with HttpsServer(ca, routes) as server, requests.Session() as session:
        session.trust_env, session.verify = False, str(ca.ca_pem_path)
        routes["/v2/r/tags/list"] = Route(status=401, headers={
            "WWW-Authenticate": f'Bearer realm="{server.url}/token",service="registry"'})
        with pytest.raises(https.FetchError, match=r"refused the pull token .* \(401\)$"):
            oci_source.Registry(session, server.url.removeprefix("https://")).tags("r", 5)
    token_requests = [path for _, path, _ in server.requests if path.startswith("/token")]
    assert token_requests == ["/token?service=registry&scope=repository%3Ar%3Apull"]


@pytest.mark.parametrize("slow", ["/v2/r/tags/list", "/token"])
def test_a_tag_list_or_its_token_that_never_comes_times_out(ca, slow):
    routes = {"/token": Route(body={"token": "t"})}
    with HttpsServer(ca, routes) as server, requests.Session() as session:
        session.trust_env, session.verify = False, str(ca.ca_pem_path)
        routes["/v2/r/tags/list"] = Route(status=401, headers={
            "WWW-Authenticate": f'Bearer realm="{server.url}/token",scope="repository:r:pull"'})
        routes[slow] = dataclasses.replace(routes[slow], delay=5)
        with pytest.raises(https.FetchError, match=r"did not answer within 0.5 s"):
            oci_source.Registry(session, server.url.removeprefix("https://")).tags("r", 0.5)


# --- hostile manifests ------------------------------------------------------------------

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=12)
GENUINE = make_release(small_tree("0.2.0"), "0.2.0", None).manifest


@settings(max_examples=200)
@given(field=st.sampled_from(sorted(GENUINE)), value=JSON)
def test_a_hostile_manifest_is_refused_or_valid_never_raised(field, value):
    document = {**GENUINE, field: value}
    try:
        parsed = hr.parse_manifest(json.dumps(document).encode(), "hypothesis")
    except hr.Refused as exc:
        assert "host release manifest" in exc.reason
    else:
        assert parsed == document


@settings(max_examples=300)
@given(path=st.text(st.sampled_from("ab./-_\\\0:~ \n"), min_size=1, max_size=12))
def test_every_path_a_manifest_may_list_stays_inside_the_staging_directory(path):
    document = {**GENUINE, "files": [{**GENUINE["files"][0], "path": path}]}
    try:
        release_format.check_manifest(document, "hypothesis")
    except hr.Refused:
        return
    inside = Path("/srv/into")  # no file system needed: the path alone decides
    assert (inside / path).resolve().is_relative_to(inside) and (inside / path) != inside


def test_invalid_utf8_or_json_in_the_manifest_is_refused():
    for data in (b"\xff\xfe", b"{", b"[]", b"null"):
        with pytest.raises(hr.Refused, match="host release manifest"):
            hr.parse_manifest(data, "hypothesis")
