"""The support bundle end to end: a host root and a cluster (kubectl's interface, the real
API formats) seeded with canary secrets everywhere the collectors look, real DNS, HTTPS and
proxy servers on loopback for the network checks; then every byte of every member is
searched for every canary. And the faults: no kubectl, the API down, a collector that
hangs, a full disk."""

import base64
import contextlib
import gzip
import json
import os
import re
import subprocess
import tarfile
import threading
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from click.testing import CliRunner
from support.base import FAKES, make_host_root
from support.builders import (
    INSTALLED,
    event,
    flux,
    job,
    node,
    oci_release,
    oci_source,
    pod,
    workload,
)
from support.bundles import forms, members
from support.cluster import FakeCluster
from support.netlab import (
    ConnectProxy,
    DnsServer,
    HttpsServer,
    free_loopback_address,
)
from support.preflight_lab import PreflightLab, proxy_inputs, push_pulled_images
from support.registry import Registry
from support.releases import DNS_NAMES, github_routes

from host import cli
from host.cluster.kube import Kube
from host.core import paths, state
from host.core.validation import validate
from host.net.https import proxy_url_with_credentials
from host.support import bundle
from host.support.collectors import CONTAINER_LOG_BYTES, LOG_LIMIT, Collector, command

TOKEN = "TKNC-ANRY-5D1F-0C9A-8B7E-6D5C-4B3A"  # as the file and the banner hold it
TYPED_TOKEN = TOKEN.replace("-", "")  # as a person may type it
PROXY_PASSWORD = "pr0xy!CANARY#pass"
AUTH_KEY = "AUTHKEYCANARY_Jq8sLm2Xv9Tz4Wc7Rb1N"
DB_PASSWORD = "DBPASSCANARY_s3cr3t-value"
STRING_DATA = "STRINGDATACANARY_42"
ENV_PASSWORD = "ENVCANARY_pw_4711"
K3S_TOKEN = "K10abcdef::server:K3STOKENCANARY77"
GITHUB_TOKEN = "ghp_CANARYgithubTOKEN0123456789abcdef01"
CONNECTION_PASSWORD = "CONNCANARY pass word"
# The admin password's SHA-512 crypt, as setup-inputs.json keeps it (salt and hash made up).
ADMIN_HASH = "$6$CANARYadminsalt$" + "CANARYhash" + "x1Y/" * 19
PEM_BODY = ["MIIEpAIBAAKCAQEAuCANARYPEMBODY" + "A" * 34] + [f"CANARYPEMLINE{i:02d}" + "B" * 51
                                                      for i in range(12)]
PEM = "\n".join(["-----BEGIN RSA PRIVATE KEY-----", *PEM_BODY, "-----END RSA PRIVATE KEY-----"])
CLIENT_KEY_DATA = base64.b64encode(PEM.encode()).decode()
CANARIES = (TOKEN, TYPED_TOKEN, PROXY_PASSWORD, AUTH_KEY, DB_PASSWORD, STRING_DATA,
            ENV_PASSWORD, K3S_TOKEN, GITHUB_TOKEN, CONNECTION_PASSWORD, CLIENT_KEY_DATA, ADMIN_HASH,
            *PEM_BODY)
KUBECONFIG_PATH = "/etc/rancher/k3s/k3s.yaml"


def manifest_of(archive: Path) -> dict:
    return json.loads(members(archive)["bundle.json"])


def put(store: dict, *objects: dict) -> None:
    for obj in objects:
        key = "/".join([obj["kind"], obj["metadata"].get("namespace", ""),
                        obj["metadata"]["name"]])
        store[key] = obj


def secret(name: str, namespace: str, data: dict, string_data: dict | None = None,
           last_applied: bool = False) -> dict:
    obj = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
           "metadata": {"name": name, "namespace": namespace},
           "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}
    if string_data:
        obj["stringData"] = string_data
    if last_applied:
        obj["metadata"]["annotations"] = {
            "kubectl.kubernetes.io/last-applied-configuration": json.dumps(obj)}
    return obj


def cluster(root: Path) -> dict:
    """A failing install: the db crash-looping with a password in its env, the bootstrap job
    failed, Flux's source pointing at a URL with a GitHub token in it."""
    store = {}
    db = pod("db-0", "StatefulSet", "db", waiting="CrashLoopBackOff", restarts=3)
    db["spec"] = {"containers": [{"name": "main", "image": "postgres:16", "env": [
        {"name": "DB_PASSWORD", "value": ENV_PASSWORD}, {"name": "PGDATA", "value": "/data"},
        {"name": "ALGA_AUTH_KEY", "value": AUTH_KEY}]}]}
    core = workload("Deployment", "alga-core-sebastian", 0)
    core["spec"]["template"] = {"spec": {"containers": [{"name": "server", "env": [
        {"name": "DB_PASSWORD_ADMIN", "value": ENV_PASSWORD}]}]}}
    source = flux("GitRepository", "source.toolkit.fluxcd.io/v1", "alga-appliance",
                  "flux-system", "False", "GitOperationFailed",
                  f"failed to checkout https://x-access-token:{GITHUB_TOKEN}@github.com/n/a")
    source["spec"] = {"url": f"https://{GITHUB_TOKEN}@github.com/Nine-Minds/alga-psa"}
    bootstrap = job("alga-core-sebastian-bootstrap-r1", failed=True)
    put(store, node(), {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "msp"}},
        db, pod("alga-core-sebastian-7d9-x", "ReplicaSet", "alga-core-sebastian-7d9"),
        core, workload("StatefulSet", "db", 0), bootstrap, source,
        event("db-0", "BackOff", "Back-off restarting failed container", "2026-11-27T10:00:00Z"),
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
         "metadata": {"name": "data-db-0", "namespace": "msp"},
         "spec": {"storageClassName": "local-path"},
         "status": {"phase": "Bound", "capacity": {"storage": "10Gi"}}},
        secret("alga-psa-shared", "msp", {"ALGA_AUTH_KEY": AUTH_KEY}),
        secret("db-credentials", "msp", {"password": DB_PASSWORD},
               {"extra": STRING_DATA}, last_applied=True))
    (root / "store.json").write_text(json.dumps(store))
    logs = root / "pod-logs"
    escaped_pem = PEM.replace("\n", "\\n")
    write(logs / "msp/db-0/main.log", "2026-11-27T10:00:00Z LOG:  database system is "
          "starting up\n" * 6000 + "FATAL: password authentication failed for user alga\n")
    write(logs / "msp/db-0/main.previous.log",
          f'{{"level":"info","msg":"loaded key {escaped_pem}"}}\n'
          f"connecting with {DB_PASSWORD} and auth key {AUTH_KEY}\n")
    write(logs / "flux-system/deployment/source-controller/all.log",
          f"cloning https://x-access-token:{GITHUB_TOKEN}@github.com/Nine-Minds/alga-psa\n"
          f"proxy http://alga:{quote(PROXY_PASSWORD, safe='')}@10.0.0.9:3128 refused\n")
    for controller in ("kustomize-controller", "helm-controller"):
        write(logs / f"flux-system/deployment/{controller}/all.log", "reconciling\n")
    write(logs / "msp/job/alga-core-sebastian-bootstrap-r1/all.log",
          f"Host=db;Username=alga;Password={CONNECTION_PASSWORD};Database=server\n"
          "migration failed\n")
    return store


def write(path: Path, text: str | bytes, mode: int = 0o640) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    path.chmod(mode)


def plant_host_files(root: Path, proxy_url: str) -> None:
    write(root / paths.TOKEN_FILE.lstrip("/"), TOKEN + "\n", 0o600)
    write(root / paths.ISSUE_FILE.lstrip("/"), f"setup token: {TOKEN}\n", 0o600)
    write(root / KUBECONFIG_PATH.lstrip("/"),
          f"apiVersion: v1\nusers:\n- name: default\n  user:\n"
          f"    client-key-data: {CLIENT_KEY_DATA}\n", 0o600)
    write(root / paths.K3S_CONFIG.lstrip("/"),
          f"write-kubeconfig-mode: '0600'\ntoken: {K3S_TOKEN}\n", 0o600)
    write(root / "var/lib/rancher/k3s/server/token", K3S_TOKEN + "\n", 0o600)
    write(root / "var/lib/rancher/k3s/server/tls/server-ca.key", PEM, 0o600)
    write(root / paths.K3S_ENV.lstrip("/"), f"HTTP_PROXY={proxy_url}\n", 0o600)
    log_dir = root / paths.LOG_DIR.lstrip("/")
    write(log_dir / "preflight.log",
          f"2026-11-27T10:00:00Z → web: token {TOKEN} accepted\n"
          f"2026-11-27T10:00:00Z → web: token {TYPED_TOKEN} accepted\n"
          f"2026-11-27T10:00:01Z kubeconfig: client-key-data: {CLIENT_KEY_DATA}\n"
          f"2026-11-27T10:00:02Z git https://{GITHUB_TOKEN}@github.com/Nine-Minds/alga-psa\n"
          f"2026-11-27T10:00:03Z chpasswd --encrypted got alga-admin:{ADMIN_HASH}\n")
    # Bigger than the limit, with the cut landing inside a PEM block's body.
    end_of_log = "\n".join(["-----BEGIN RSA PRIVATE KEY-----", *PEM_BODY,
                            "-----END RSA PRIVATE KEY-----", "k3s failed: node not ready", ""])
    filler = "2026-11-27T10:00:00Z waiting for the node\n" * (LOG_LIMIT // 40)
    write(log_dir / "k3s.log", filler + end_of_log)
    write(log_dir / "release.log.1.gz", gzip.compress(
        f"rotated: {PEM}\nALGA_AUTH_KEY={AUTH_KEY}\n".encode()))
    write(log_dir / "stray.key", PEM)


@pytest.fixture
def lab(tmp_path, ca, monkeypatch):
    """A failed install on a host root, a cluster, and the network servers preflight uses
    (through an authenticating proxy, with the canary password)."""
    root = make_host_root(tmp_path / "root")
    install_version(root, "0.1.0")
    paths.on_host(paths.CURRENT_DIR, root).symlink_to("versions/0.1.0")
    FakeCluster(root).use(monkeypatch)
    hosts = {"github.test": "127.0.0.1", "ghcr.test": "127.0.0.1"}
    with HttpsServer(ca, github_routes(), hostnames=("github.test",)) as github, \
            Registry(ca, hostnames=("ghcr.test",)) as ghcr, \
            DnsServer(free_loopback_address(), {n: ["127.0.0.1"] for n in DNS_NAMES}) as dns, \
            ConnectProxy(credentials=("alga", PROXY_PASSWORD), hosts=hosts) as proxy:
        push_pulled_images(ghcr)
        network = PreflightLab(root, github, ghcr, dns, ca)
        inputs = proxy_inputs(proxy, ("alga", PROXY_PASSWORD))
        network.configure(proxy=inputs, github_base=github.url.replace("127.0.0.1", "github.test"),
                          ghcr_base=ghcr.url.replace("127.0.0.1", "ghcr.test"))
        failed = json.loads(json.dumps(INSTALLED))
        failed.update(status="failed", current_phase="k3s")
        failed["phases"]["k3s"].update(state="failed", failure={
            "category": "k3s", "last_action": "waiting for the node", "log_excerpt": "",
            "suspected_cause": "the node did not become Ready within 300 s",
            "next_step": "check `journalctl -u k3s`",
            "support_command": "sudo alga-appliance support-bundle"})
        state.write(state.INSTALL_STATE, failed, root)
        plant_host_files(root, proxy_url_with_credentials(inputs))
        recorded = state.read(state.SETUP_INPUTS, root)
        state.write(state.SETUP_INPUTS, {**recorded, "admin": {
            "password_hash": ADMIN_HASH, "ssh_authorized_keys": [],
            "ssh_password_login": False}}, root)
        cluster(root)
        yield root, proxy


def install_version(root: Path, version: str, directory: str | None = None) -> None:
    """A version of the appliance software as the seed or a self-update installs it."""
    installed = paths.on_host(paths.VERSIONS_DIR, root) / (directory or version)
    installed.mkdir(parents=True)
    (installed / "VERSION").write_text(f"{version}\n")


def create(root: Path, **options) -> Path:
    return bundle.create(root, kube=Kube(str(root / "k3s.yaml")), **options)


def by_name(manifest: dict) -> dict:
    return {c["name"]: c for c in manifest["collectors"]}


def test_no_canary_survives_and_the_report_counts_them(lab):
    root, proxy = lab
    archive = create(root)
    found = members(archive)
    for name, data in found.items():
        for canary in CANARIES:
            for form in forms(canary):
                assert form not in data, f"{canary!r} ({form[:20]!r}…) in {name}"
        assert b"CANARY" not in data, name
    rules = manifest_of(archive)["redaction"]["rules"]
    # Two lines: the token as the file holds it, and as a person types it.
    assert rules["known-value:token"]["files"]["logs/phases/preflight.log"] == 2
    assert rules["known-value:proxy-password"]["files"].keys() == {
        "k3s/k3s.service.env", "flux/logs/source-controller.log"}
    # The inputs keep the proxy password and the admin password's hash in fields of their
    # own: gone by their names, before the known values are looked for.
    assert rules["secret-field"]["files"]["state/setup-inputs.json"] == 2
    assert rules["crypt-hash"]["files"] == {"logs/phases/preflight.log": 1}
    assert rules["known-value:alga-auth-key"]["files"] == {
        "kubernetes/pod-logs/msp/db-0/main.previous.log": 1, "logs/phases/release.log.1": 1}
    assert rules["known-value:kubernetes-secret"]["total"] >= 1  # the db password in a log
    assert rules["known-value:k3s-token"]["files"] == {"k3s/config.yaml": 1}
    assert rules["secret-data"]["files"]["kubernetes/secrets.json"] == 4  # 3 values, 1 copy
    assert rules["pem-block"]["files"].keys() >= {
        "kubernetes/pod-logs/msp/db-0/main.previous.log", "logs/phases/k3s.log",
        "logs/phases/release.log.1"}
    assert rules["base64-pem"]["files"]["logs/phases/preflight.log"] == 1
    assert rules["secret-env"]["files"] == {"kubernetes/deployments.json": 1,
                                            "kubernetes/pods.json": 2}
    assert rules["url-credentials"]["files"].keys() >= {
        "flux/gitrepositories.json", "flux/logs/source-controller.log",
        "logs/phases/preflight.log"}
    assert rules["connection-string"]["files"] == {
        "kubernetes/bootstrap-job/alga-core-sebastian-bootstrap-r1.log": 1}
    assert proxy.tunnels, "the network checks went through the proxy, with the password"


def test_the_archive_layout_and_the_manifest(lab):
    root, _ = lab
    archive = create(root)
    assert re.fullmatch(r"alga-appliance-support-[A-Za-z0-9.-]+-\d{8}T\d{6}Z\.tar\.gz",
                        archive.name)
    assert archive.parent == root / paths.SUPPORT_DIR.lstrip("/")
    assert archive.stat().st_mode & 0o777 == 0o600
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    top = archive.name.removesuffix(".tar.gz")
    assert names[:2] == [f"{top}/bundle.json", f"{top}/SUMMARY.md"]
    found = members(archive)
    manifest = json.loads(found["bundle.json"])
    validate(manifest, "support-bundle.schema.json", name="manifest", source=archive.name)
    assert [m["path"] for m in manifest["members"]] == [n.split("/", 1)[1] for n in names[1:]]
    assert manifest["options"] == {"redact": True, "obfuscate_network": False}
    assert "warning" not in manifest
    collectors = by_name(manifest)
    failed = {name for name, c in collectors.items() if c["status"] in ("failed", "timed_out")}
    # The stand-ins have no k3s binary or resolvectl; everything else is collected.
    assert failed <= {"k3s/version", "network/resolvectl-status"}, failed
    assert collectors["logs/phases"]["members"] == [
        "logs/phases/k3s.log", "logs/phases/preflight.log", "logs/phases/release.log.1"]
    # Only the failing pod's logs, this run's and the previous one's.
    assert collectors["kubernetes/pod-logs"]["members"] == [
        "kubernetes/pod-logs/msp/db-0/main.log", "kubernetes/pod-logs/msp/db-0/main.previous.log"]
    # Never collected: the token files, the kubeconfig, k3s's token and TLS keys.
    assert not [name for name in found if re.search(r"token|k3s\.yaml|\.key$|issue", name)]
    # The failure comes first in the summary, as the console shows it.
    summary = found["SUMMARY.md"].decode()
    assert "FAILED: Install k3s [k3s]" in summary
    assert "the node did not become Ready within 300 s" in summary
    # Logs are cut at their limit, keeping the end, and say so.
    k3s_log = found["logs/phases/k3s.log"]
    assert len(k3s_log) <= LOG_LIMIT + 200 and k3s_log.startswith(b"[support bundle: the first")
    assert k3s_log.rstrip().endswith(b"k3s failed: node not ready")
    assert {"path": "logs/phases/k3s.log", "bytes": len(k3s_log), "truncated": True} in (
        manifest["members"])
    # Container logs keep their end; the journal says it was asked for its last lines.
    db_log = found["kubernetes/pod-logs/msp/db-0/main.log"]
    assert len(db_log) < CONTAINER_LOG_BYTES + 200
    assert db_log.startswith(b"[support bundle: the first ")
    assert db_log.endswith(b"FATAL: password authentication failed for user alga\n")
    assert found["logs/journal-k3s.txt"].startswith(
        b"[support bundle: only the last 5000 lines were asked for]\n")
    # The readable summaries beside the JSON.
    assert b"msp/db-0  Running ready 0/1 restarts 3 waiting: CrashLoopBackOff" in (
        found["kubernetes/pods.txt"])
    assert b"msp/db-credentials  Opaque keys: extra, password" in found["kubernetes/secrets.txt"]
    rerun = json.loads(found["network/preflight-rerun.json"])
    statuses = {c["id"]: c["status"] for c in rerun["checks"]}
    assert (statuses["ghcr"], statuses["dockerhub"]) == ("pass", "pass")
    assert b"github.com A via 127.0.53." in found["network/dns-lookups.txt"]


@pytest.mark.parametrize("fault", ["kubectl missing", "API down"])
def test_without_a_cluster_the_bundle_is_still_made(lab, monkeypatch, tmp_path, fault):
    root, _ = lab
    if fault == "API down":
        monkeypatch.setenv("FAKE_KUBE_DOWN", "1")
    else:
        # Only the shell stand-ins: this machine may have a kubectl of its own in /usr/bin.
        only = tmp_path / "no-kubectl"
        only.mkdir()
        for tool in ("journalctl", "systemctl"):
            (only / tool).symlink_to(FAKES / tool)
        monkeypatch.setenv("PATH", str(only))
    manifest = manifest_of(create(root))
    collectors = by_name(manifest)
    cluster_collectors = [name for name in collectors if name.startswith(
        ("kubernetes/", "flux/"))]
    assert len(cluster_collectors) == 20
    expected = "kubectl is not installed" if fault == "kubectl missing" else "refused"
    for name in cluster_collectors:
        assert collectors[name]["status"] == "failed", name
        assert expected in collectors[name]["error"], collectors[name]["error"]
    for name in ("state/install-state", "logs/phases", "logs/journal-k3s",
                 "network/preflight-rerun", "host/meminfo"):
        assert collectors[name]["status"] == "ok", collectors[name]


def test_the_flux_objects_of_an_oci_release_and_a_missing_crd(lab, monkeypatch):
    root, _ = lab
    store = json.loads((root / "store.json").read_text())
    release = oci_release()
    put(store, oci_source("False", "OCIArtifactPullFailed", "failed to pull artifact: "
                          "MANIFEST_UNKNOWN: manifest unknown"), *release.helmrepositories)
    (root / "store.json").write_text(json.dumps(store))
    monkeypatch.setenv("FAKE_KUBE_ABSENT", "helmcharts")
    archive = create(root)
    found, collectors = members(archive), by_name(manifest_of(archive))
    [source] = json.loads(found["flux/ocirepositories.json"])["items"]
    assert source["spec"]["ref"]["digest"] == release.ocirepositories[0]["spec"]["ref"]["digest"]
    assert b"flux-system/alga-appliance  Ready=False OCIArtifactPullFailed: failed to pull" in (
        found["flux/ocirepositories.txt"])
    assert b"flux-system/alga-charts  no Ready condition" in found["flux/helmrepositories.txt"]
    # Without its CRD a kind is a note, not a failure.
    charts = collectors["flux/helmcharts"]
    assert (charts["status"], charts["members"]) == ("missing", [])
    assert 'the server doesn\'t have a resource type "helmcharts"' in charts["notes"][0]


def test_a_hanging_collector_times_out_and_the_bundle_completes(lab):
    root, _ = lab
    released = threading.Event()

    def hangs(ctx, out):
        released.wait()

    def late(ctx, out):
        time.sleep(0.2 + bundle.GRACE + 0.5)
        out.add("test/late.txt", "written after its timeout")

    def quick(ctx, out):
        out.add("test/quick.txt", f"token {TOKEN}")

    collectors = (Collector("test/hangs", 0.2, hangs), Collector("test/late", 0.2, late),
                  command("test/sleeps", ["sleep", "30"], timeout=0.3),
                  Collector("test/quick", 5, quick))
    started = time.monotonic()
    try:
        archive = create(root, collectors=collectors)
    finally:
        released.set()
    assert time.monotonic() - started < 10
    collectors = by_name(manifest_of(archive))
    assert collectors["test/hangs"]["status"] == "timed_out"
    assert collectors["test/hangs"]["error"] == "no result within its timeout of 0.2 s"
    assert collectors["test/sleeps"]["status"] == "timed_out"
    assert "did not finish within 0.3 s" in collectors["test/sleeps"]["error"]
    assert collectors["test/quick"]["status"] == "ok"
    time.sleep(1)  # the late collector has now tried to write
    assert set(members(archive)) == {"bundle.json", "SUMMARY.md", "test/quick.txt"}
    assert members(archive)["test/quick.txt"] == b"token <redacted>"


@contextlib.contextmanager
def tiny_file_system(path: Path, size: str):
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
                   check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_a_nearly_full_disk_is_a_clear_error_and_leaves_nothing(lab, tmp_path):
    root, _ = lab
    with tiny_file_system(tmp_path / "small", "1m") as small:
        (small / "filler").write_bytes(b"\0" * (1024 * 1024 - 160 * 1024))
        with pytest.raises(bundle.BundleError) as caught:
            create(root, output=small)
        assert os.listdir(small) == ["filler"]
    message = str(caught.value)
    assert message.startswith(f"not enough space in {small} for the support bundle")
    assert "nothing was written" in message and "-o PATH" in message


def test_running_out_of_space_while_archiving_leaves_no_partial_archive(lab, monkeypatch,
                                                                       tmp_path):
    root, _ = lab
    output = tmp_path / "out"
    output.mkdir()
    written = []

    def full(self, info, fileobj=None):
        written.append(info.name)
        if len(written) == 3:
            raise OSError(28, "No space left on device")
        return original(self, info, fileobj)

    original = tarfile.TarFile.addfile
    monkeypatch.setattr(tarfile.TarFile, "addfile", full)
    collectors = [Collector(f"test/{n}", 5, lambda ctx, out, n=n: out.add(f"test/{n}.txt", n))
                  for n in ("a", "b")]
    with pytest.raises(bundle.BundleError, match="not enough space"):
        create(root, output=output, collectors=collectors)
    assert len(written) == 3
    assert os.listdir(output) == []


def test_no_redact_is_root_only_and_stamped(lab, monkeypatch):
    root, _ = lab
    quick = Collector("test/quick", 5, lambda ctx, out: out.add(
        "test/quick.json", json.dumps([secret("s", "msp", {"password": DB_PASSWORD}),
                                       {"token": TOKEN}])))
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(bundle.BundleError, match="--no-redact is only for root"):
        create(root, redact=False, collectors=(quick,))
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    archive = create(root, redact=False, collectors=(quick,))
    found = members(archive)
    manifest = json.loads(found["bundle.json"])
    assert manifest["options"]["redact"] is False and manifest["redaction"]["enabled"] is False
    assert manifest["warning"].startswith("NOT REDACTED")
    assert b"NOT REDACTED" in found["SUMMARY.md"]
    document = json.loads(found["test/quick.json"])
    assert document[1] == {"token": TOKEN}  # not redacted, as asked
    assert document[0]["data"] == {"password": "<redacted>"}  # Secret values never travel


def test_obfuscate_network_replaces_addresses_and_names_consistently(lab, monkeypatch):
    root, _ = lab
    monkeypatch.setattr("socket.gethostname", lambda: "psa-node7")
    state.write(state.SETUP_INPUTS, {**state.read(state.SETUP_INPUTS, root),
                                     "app_url": "https://psa.acme.example"}, root)

    def seen(ctx, out):
        out.add("test/seen.txt", "psa-node7 192.168.40.7 asked psa.acme.example and "
                                 "db.acme.example; github.com 127.0.0.1 10.43.0.10\n")
        out.add("test/again.txt", "192.168.40.7 psa-node7\n")

    archive = create(root, obfuscate_network=True, collectors=(Collector("test/seen", 5, seen),))
    assert "psa-node7" not in archive.name and archive.name.startswith(
        "alga-appliance-support-host-")
    found = members(archive)
    assert found["test/seen.txt"] == (b"host-1 ip4-1 asked host-2 and host-3; github.com "
                                      b"127.0.0.1 10.43.0.10\n")
    assert found["test/again.txt"] == b"ip4-1 host-1\n"
    mapping_file = bundle.mapping_path(archive)
    assert mapping_file.stat().st_mode & 0o777 == 0o600
    mapping = json.loads(mapping_file.read_text())
    assert mapping["addresses"]["192.168.40.7"] == "ip4-1"
    assert mapping["hostnames"]["psa-node7"] == "host-1"
    assert not any(b"psa-node7" in data or b"192.168.40.7" in data for data in found.values())
    assert manifest_of(archive)["options"]["obfuscate_network"] is True


def test_only_the_last_five_bundles_are_kept(lab):
    root, _ = lab
    made = [create(root, collectors=()) for _ in range(7)]
    kept = sorted((root / paths.SUPPORT_DIR.lstrip("/")).iterdir())
    assert kept == sorted(made[2:])
    assert len(set(made[:6])) == 6  # in the same second: -2, -3, …


def test_the_command_line(lab, monkeypatch, tmp_path):
    root, _ = lab
    output = tmp_path / "here.tar.gz"
    result = CliRunner().invoke(cli.main, ["--root", str(root), "support-bundle", "-o",
                                           str(output)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(output)
    assert manifest_of(output)["options"] == {"redact": True, "obfuscate_network": False}
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    refused = CliRunner().invoke(cli.main, ["--root", str(root), "support-bundle"])
    assert refused.exit_code == 1
    assert "must run as root (sudo alga-appliance support-bundle)" in refused.output


def test_a_non_utf8_install_state_is_collected_as_it_is_redacted_and_said_invalid(lab):
    # (Truncated and schema-invalid files were already collected so; the bytes were not.)
    root, _ = lab
    path = state.INSTALL_STATE.path(root)
    path.write_bytes(f'{{"\xff": "{PROXY_PASSWORD}", "token": "{TOKEN}"'.encode("latin-1"))
    archive = create(root)
    found = members(archive)
    collected = found["state/install-state.json"]
    assert TOKEN.encode() not in collected and PROXY_PASSWORD.encode() not in collected
    assert len(collected) > 10  # the file itself, not a placeholder
    notes = by_name(manifest_of(archive))["state/install-state"]["notes"]
    assert any(f"install state ({path}) is invalid" in note for note in notes), notes
    assert "install state" in found["SUMMARY.md"].decode()


def test_a_state_file_moved_aside_is_collected_too(lab):
    root, _ = lab
    path = state.INSTALL_STATE.path(root)
    path.rename(state.aside(path))
    found = members(create(root))
    assert b'"status": "failed"' in found["state/install-state.json.broken"]
    assert "state/install-state.json" not in found


def test_the_kept_bootstrap_log_is_collected_redacted(lab):
    """The bootstrap job deletes itself 300 s after it ends; the copy the status collector
    kept (host/support/logs.py) goes into the bundle, and a secret in it still comes out."""
    root, _ = lab
    state.write(state.BOOTSTRAP_LOG, {
        "job": "alga-core-sebastian-bootstrap-r1", "outcome": "failed",
        "kept_at": "2026-11-27T10:05:00Z",
        "lines": ["running migrations", f"connecting with {DB_PASSWORD}",
                  "migration 42 failed: relation already exists"]}, root)
    found = members(create(root))
    kept = json.loads(found["state/bootstrap-log.json"])
    assert kept["outcome"] == "failed" and kept["lines"][-1].startswith("migration 42 failed")
    assert DB_PASSWORD not in found["state/bootstrap-log.json"].decode()


def test_a_self_update_cut_short_is_in_the_bundle(lab, signing_key):
    """What support needs after a self-update that went wrong: which version runs and which
    are installed beside it, the journal of the one under way, what the last check found
    and the repository and keys the appliance trusts (by fingerprint: the redactor takes
    every PEM block out, public or not)."""
    root, _ = lab
    install_version(root, "0.2.0", ".0.2.0.partial")
    state.write(state.HOST_RELEASE_TRUST, {
        "repository": "ghcr.io/nine-minds/alga-appliance-host",
        "keys": [{"fingerprint": signing_key.fingerprint,
                  "armored": signing_key.public.read_text()}]}, root)
    state.write(state.SELF_UPDATE_CHECK, {
        "checked_at": "2026-12-07T10:00:00Z", "installed": "0.1.0",
        "available": [{"version": "0.2.0", "notes": "", "created": "2026-12-06T09:00:00Z"}]},
        root)
    paths.on_host(paths.SELF_UPDATE_DIR, root).mkdir(parents=True)
    state.write(state.SELF_UPDATE_JOURNAL, {
        "from_version": "0.1.0", "to_version": "0.2.0", "signer": signing_key.fingerprint,
        "started_at": "2026-12-07T10:01:00Z", "step": "install", "reason": None,
        "rolled_back_from": None}, root)
    archive = create(root)
    found = members(archive)
    assert found["host/appliance-versions.txt"].decode() == (
        f"{paths.CURRENT_DIR} -> versions/0.1.0\n"
        f"{paths.VERSIONS_DIR}/.0.2.0.partial: 0.2.0\n"
        f"{paths.VERSIONS_DIR}/0.1.0: 0.1.0\n")
    assert json.loads(found["state/journal.json"])["step"] == "install"
    assert json.loads(found["state/self-update-check.json"])["available"][0]["version"] == \
        "0.2.0"
    trust = json.loads(found["state/host-release-trust.json"])
    assert trust["repository"] == "ghcr.io/nine-minds/alga-appliance-host"
    assert trust["keys"][0]["fingerprint"] == signing_key.fingerprint
    assert "BEGIN PGP" not in trust["keys"][0]["armored"]
    statuses = by_name(json.loads(found["bundle.json"]))
    assert statuses["host/appliance-versions"]["status"] == "ok"
