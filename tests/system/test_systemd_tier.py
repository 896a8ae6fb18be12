"""The real-systemd tier: a Debian 12 rootfs booted with systemd-nspawn in a network
namespace, the payload installed by the ISO seed's own late-commands. Runs in order:

1. the web unit answers on :8080;
2. a setup request through the web API starts the chain through the .path unit;
3. preflight fails cleanly without network, with the classified failure in the state;
4. with the k3s and Flux releases and DNS served from the host side of the link, and the
   release source in endpoints.json naming a real OCI registry there (token challenge, blob
   redirect), the whole chain succeeds: preflight → DNS → k3s (a stand-in binary at k3s's
   interfaces, run by the real k3s.service) → Flux → release, which pins the config bundle
   by digest in an OCIRepository;
5. a re-run skips the succeeded phases;
6. a phase that fails (k3s, its download no longer matching the checksum) stops the chain:
   Flux never starts;
7. a re-run after that failure resumes at the failed phase;
8. state survives a restart of the container.
9. a support bundle from the web through its unit;
10. network diagnostics from the web through their unit;
11. a root-only log (the k3s journal) from the web through its unit;
12. the daily update check's timer is enabled and its service writes the notice.
"""

import io
import json
import shutil
import tarfile
import time
from dataclasses import dataclass

import pytest
import requests
from support.answers import ADMIN
from support.machines import STAND_IN_STORE, assert_flux_objects_valid, wait_for
from support.netlab import DnsServer, HttpsServer, Route
from support.nspawn import NSPAWN_TIER, booted_appliance, healthz
from support.preflight_lab import push_pulled_images
from support.registry import Registry
from support.releases import (
    CONFIG_REPOSITORY,
    K3S_SUMS,
    K3S_SUMS_PATH,
    OCI_VERSION,
    download_routes,
    oci_source,
    publish_oci,
)

from host.core import paths, pins, spool, state
from host.setup import chain

pytestmark = NSPAWN_TIER

STATE = "var/lib/alga-appliance"
CANARY = "var/lib/alga-appliance-test-canary"
INJECTED_UNITS = {
    # A canary after the last phase: it runs only if the whole chain succeeds.
    "alga-appliance-phase-canary.service": f"""[Unit]
Requires=alga-appliance-phase-release.service
After=alga-appliance-phase-release.service
[Service]
Type=oneshot
ExecStart=/bin/touch /{CANARY}
""",
    "alga-appliance-setup.target.d/canary.conf": """[Unit]
Requires=alga-appliance-phase-canary.service
After=alga-appliance-phase-canary.service
""",
}


@pytest.fixture(scope="module")
def machine(appliance, tmp_path_factory):
    with booted_appliance(appliance.output, tmp_path_factory.mktemp("nspawn"),
                          INJECTED_UNITS) as container:
        yield container


def install_state(machine) -> dict | None:
    return state.read(state.INSTALL_STATE, machine.root)


def submit_setup(machine, answers: dict) -> requests.Response:
    return requests.post(f"{machine.url}/api/setup", json=answers, timeout=10,
                         headers={"Authorization": f"Bearer {machine.token()}"})


def api_get(machine, path: str, **params) -> dict:
    response = requests.get(f"{machine.url}{path}", params=params, timeout=10,
                            headers={"Authorization": f"Bearer {machine.token()}"})
    assert response.status_code == 200, (response.text, machine.run(
        "journalctl", "--no-pager", "-o", "cat", "-n", "20", "-u", "alga-appliance.service"),
        machine.run("ls", "-la", "/var/lib/alga-appliance", "/var/lib/alga-appliance/web-bundles"))
    return response.json()


def state_version(machine) -> int:
    path = state.INSTALL_STATE.path(machine.root)
    return path.stat().st_mtime_ns if path.exists() else 0


def wait_until_settled(machine, since: int, timeout: float = 90) -> dict:
    """The install state once it has changed after `since` and the chain is not running."""
    def settled():
        if state_version(machine) == since:
            return None
        doc = install_state(machine)
        return doc if doc["status"] in ("failed", "succeeded") else None
    try:
        return wait_for(settled, timeout, "the setup chain to settle")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{machine.journal()}") from None


def test_1_web_unit_answers_on_8080(machine):
    response = wait_for(lambda: healthz(machine), 90, "the web service on :8080")
    assert response.json() == {"status": "ok"}
    token = machine.root / paths.TOKEN_FILE.lstrip("/")
    assert token.stat().st_mode & 0o777 == 0o600
    assert token.stat().st_uid != 0  # owned by the service user


def test_1b_console_banner_shows_the_setup_url_and_token_but_never_logs_it(machine):
    issue = machine.root / paths.ISSUE_FILE.lstrip("/")
    wait_for(issue.exists, 60, "the console banner in /etc/issue.d")
    text = issue.read_text()
    secret = machine.token()
    assert f"  http://{machine.node.node_address}:8080/setup?token={secret}\n" in text
    assert f"Setup token: {secret}\n" in text and "sudo alga-appliance console" in text
    assert issue.stat().st_mode & 0o777 == 0o600
    unit_output = machine.run("journalctl", "-b", "--no-pager", "-o", "cat",
                              "-u", "alga-appliance-console.service")
    assert "console banner updated" in unit_output, machine.journal()
    journal = machine.run("journalctl", "-b", "--no-pager", "-o", "cat")
    assert secret not in journal and secret.replace("-", "") not in journal
    assert machine.run("systemctl", "is-enabled", "alga-appliance-console.timer").strip() \
        == "enabled"


def test_1c_the_console_menu_is_enabled_for_tty1_and_the_serial_console(machine):
    """As the late-commands enable them: the menu's tty1 instance (DefaultInstance) and the
    service that starts one on each serial console line."""
    for unit in ("alga-appliance-console@tty1.service", "alga-appliance-serial-console.service"):
        assert machine.run("systemctl", "is-enabled", unit).strip() == "enabled", unit


def test_2_3_request_starts_the_chain_and_preflight_fails_cleanly_offline(machine):
    started = state_version(machine)
    response = submit_setup(machine, {**ADMIN, "channel": "stable"})
    assert response.status_code == 202, response.text
    doc = wait_until_settled(machine, started)
    failure = doc["phases"]["preflight"]["failure"]
    assert doc["status"] == "failed" and failure["category"] == "dns"
    assert failure["suspected_cause"].startswith("dns.github.com: github.com does not resolve")
    assert "retry_safe" not in failure  # no longer written
    assert state.read(state.SETUP_INPUTS, machine.root)["channel"] == "stable"
    assert not spool.spool_file(spool.SETUP, machine.root).exists()
    assert not (machine.root / CANARY).exists()
    # The web unit, sandboxed as shipped, reads the phase log and the units' journal.
    preflight_log = api_get(machine, "/api/logs", source="phase-preflight", lines=50)["lines"]
    assert any("dns.github.com" in line for line in preflight_log)
    journal = api_get(machine, "/api/logs", source="appliance", lines=200)["lines"]
    assert any("alga-appliance-phase-preflight" in line for line in journal), journal[-20:]


@dataclass(frozen=True)
class ReleaseSources:
    github: HttpsServer  # the k3s and Flux releases
    registry: Registry  # the OCI release
    release_digest: str  # of the release artifact `stable` names
    manifest: dict  # its release manifest


@pytest.fixture(scope="module")
def mirror(machine, ca):
    """On the host side of the node's link: the k3s and Flux releases and DNS stand-ins, and
    a real registry (its token service and blob host there too) with the OCI release, which
    endpoints.json names as the release source."""
    address = machine.node.host_address
    with HttpsServer(ca, download_routes(), address=address,
                     hostnames=("github.test",)) as github, \
            Registry(ca, address=address, blob_address=address) as registry, \
            DnsServer(address, {"github.test": [address]}):
        digest, manifest = publish_oci(registry)
        push_pulled_images(registry)  # GHCR's and Docker Hub's stand-in for preflight's pulls
        shutil.copy(ca.ca_pem_path, machine.root / "etc/alga-appliance/mirror-ca.pem")
        base = f"https://github.test:{github.port}"
        state.write(state.ENDPOINTS, {
            "ghcr_base": registry.url, "dockerhub_base": registry.url,
            "release_source": oci_source(registry),
            "k3s_release_base": f"{base}/k3s", "flux_release_base": f"{base}/flux",
            "dns_names": ["github.test"], "ca_bundle": "/etc/alga-appliance/mirror-ca.pem"},
            machine.root)
        yield ReleaseSources(github, registry, digest, manifest)


ANSWERS = {**ADMIN, "channel": "stable", "app_url": "psa.test"}


def test_4_a_failing_phase_stops_the_chain(machine, mirror):
    before = install_state(machine)["phases"]  # preflight failed offline: nothing ran after
    mirror.github.routes[K3S_SUMS_PATH] = Route(body=f"{'0' * 64}  k3s\n")  # nothing will match
    started = state_version(machine)
    assert submit_setup(machine, ANSWERS).status_code == 202
    doc = wait_until_settled(machine, started, timeout=150)
    k3s = doc["phases"]["k3s"]
    assert doc["status"] == "failed" and k3s["state"] == "failed", machine.journal()
    assert [doc["phases"][p]["state"] for p in ("preflight", "dns")] == ["succeeded"] * 2
    assert k3s["failure"]["category"] == "k3s"
    assert "never matched its checksum" in k3s["failure"]["suspected_cause"]
    assert doc["phases"]["flux"] == before["flux"]  # never started
    assert doc["phases"]["release"] == before["release"]
    time.sleep(2)
    assert not (machine.root / CANARY).exists()


def test_5_a_rerun_resumes_at_the_failed_phase_and_the_chain_succeeds(machine, mirror):
    mirror.github.routes[K3S_SUMS_PATH] = Route(body=K3S_SUMS)  # the download matches again
    before = install_state(machine)["phases"]
    log = machine.root / "var/log/alga-appliance/preflight.log"
    preflight_runs = log.read_text().count("→ checking DNS")
    started = state_version(machine)
    assert submit_setup(machine, ANSWERS).status_code == 202
    doc = wait_until_settled(machine, started, timeout=150)
    assert doc["status"] == "succeeded", ({p: doc["phases"][p]["failure"] for p in chain.NAMES},
                                          machine.journal())
    assert [doc["phases"][p]["state"] for p in ("preflight", "dns")] == ["skipped"] * 2
    assert doc["phases"]["preflight"]["started_at"] == before["preflight"]["started_at"]
    assert log.read_text().count("→ checking DNS") == preflight_runs
    assert [doc["phases"][p]["state"] for p in ("k3s", "flux", "release")] == ["succeeded"] * 3


def test_6_the_chain_installed_k3s_flux_and_the_release(machine, mirror, tmp_path):
    assert wait_for(lambda: (machine.root / CANARY).exists(), 30, "the canary")
    assert machine.run("systemctl", "is-active", "k3s.service").strip() == "active"
    passed = {check["id"] for check in state.read(state.PREFLIGHT_REPORT, machine.root)["checks"]
              if check["status"] == "pass"}
    assert {"release.token", "release.manifest", "release.config", "release.bundle"} <= passed
    selected = state.read(state.SELECTED_RELEASE, machine.root)
    assert (selected["source"], selected["manifest_digest"]) == ("oci", mirror.release_digest)
    store = json.loads((machine.root / STAND_IN_STORE).read_text())
    source = store["OCIRepository/flux-system/alga-appliance"]["spec"]
    assert (source["url"], source["ref"]) == (f"oci://{mirror.registry.host}/{CONFIG_REPOSITORY}",
                                              {"digest": mirror.manifest["config"]["digest"]})
    assert store["Kustomization/flux-system/alga-appliance"]["spec"]["sourceRef"] == {
        "kind": "OCIRepository", "name": "alga-appliance"}
    assert not [key for key in store if key.startswith("GitRepository/")]
    assert_flux_objects_valid(store, tmp_path)
    assert (machine.root / "etc/rancher/k3s/config.yaml").stat().st_mode & 0o777 == 0o600
    # The status timer runs the collector against the (stand-in) cluster, every 10 s: the
    # last snapshot may still be one taken while the chain ran (k3s already active).
    snapshot = wait_for(lambda: (status := state.read(state.STATUS, machine.root)) and
                        status["host"]["k3s_state"] == "active" and
                        status["install"]["status"] == "succeeded" and status, 60,
                        "a status snapshot of the finished install")
    assert snapshot["rollup"]["state"] == "installing"  # no Alga workloads in the stand-in
    maintenance = state.read(state.MAINTENANCE, machine.root)
    assert maintenance["app"]["release_version"] == OCI_VERSION
    assert (maintenance["k3s_version"], maintenance["flux_version"]) == (pins.K3S_VERSION,
                                                                         pins.FLUX_VERSION)


def test_7_setup_after_it_succeeded_is_refused_and_points_to_updates(machine, mirror):
    """Changes after the install go through updates: setup does not run again, and the
    channel does not move without the update's confirmation."""
    started = state_version(machine)
    response = submit_setup(machine, {**ANSWERS, "channel": "nightly"})
    assert response.status_code == 409, response.text
    assert "already completed" in response.json()["error"] and "update" in response.json()[
        "error"]
    time.sleep(2)
    assert state_version(machine) == started
    assert not spool.spool_file(spool.SETUP, machine.root).exists()
    assert state.read(state.SETUP_INPUTS, machine.root)["channel"] == "stable"


def test_8_state_survives_a_restart(machine):
    before = install_state(machine)
    report = state.read(state.PREFLIGHT_REPORT, machine.root)
    machine.stop()
    machine.start()
    wait_for(lambda: healthz(machine), 90, "the web service after the restart")
    assert install_state(machine) == before
    assert state.read(state.PREFLIGHT_REPORT, machine.root) == report
    assert json.loads((machine.root / STATE / "selected-release.json").read_text())


def test_9_support_bundle_from_the_web_through_its_unit(machine):
    """The button's path on a real systemd: API → spool → .path → the sandboxed root
    oneshot → an archive only the web service may read → download without the token in it."""
    secret = machine.token()
    auth = {"Authorization": f"Bearer {secret}"}
    response = requests.post(f"{machine.url}/api/support-bundle", headers=auth, timeout=10)
    assert response.status_code == 202, response.text
    status = wait_for(lambda: (s := api_get(machine, "/api/support-bundle")["status"])
                      and s["state"] != "running" and s, 180, "the support bundle")
    assert status["state"] == "succeeded", (status, machine.journal())
    archive = requests.get(f"{machine.url}/api/support-bundle/download", headers=auth,
                           params={"name": status["archive"]}, timeout=30)
    assert archive.status_code == 200 and archive.content[:2] == b"\x1f\x8b"
    on_disk = machine.root / STATE / "web-bundles" / status["archive"]
    assert on_disk.stat().st_mode & 0o777 == 0o600 and on_disk.stat().st_uid != 0
    with tarfile.open(fileobj=io.BytesIO(archive.content)) as bundle:
        names = bundle.getnames()
        assert names[0].endswith("/bundle.json")
        for member in bundle.getmembers():
            if member.isfile():
                assert secret.encode() not in bundle.extractfile(member).read(), member.name


def test_10_network_diagnostics_from_the_web_through_their_unit(machine):
    """The Status page's "Run the network checks": API → spool → .path → the sandboxed root
    oneshot (no write access but its state, AF_INET/AF_UNIX only) → the report, in
    preflight's format, against the release source endpoints.json names."""
    auth = {"Authorization": f"Bearer {machine.token()}"}
    response = requests.post(f"{machine.url}/api/network-diagnostics", headers=auth, timeout=10)
    assert response.status_code == 202, response.text
    asked = response.json()["request_id"]
    answer = wait_for(lambda: (a := api_get(machine, "/api/network-diagnostics"))["status"]
                      and a["status"]["request_id"] == asked
                      and a["status"]["state"] != "running" and a, 180, "the network checks")
    assert answer["status"]["state"] == "succeeded", (answer, machine.journal())
    checks = {check["id"]: check["status"] for check in answer["report"]["checks"]}
    # The registry the release came from answers from inside the sandbox, with its token.
    assert checks["release.manifest"] == "pass", answer["report"]
    assert not spool.spool_file(spool.NETWORK_DIAGNOSTICS, machine.root).exists()


def test_11_a_root_only_log_from_the_web_through_its_unit(machine):
    """The Logs page's k3s journal: the web service (unprivileged) spools the request, the
    root oneshot reads journalctl and hands back a redacted excerpt."""
    auth = {"Authorization": f"Bearer {machine.token()}"}
    response = requests.get(f"{machine.url}/api/logs", headers=auth, timeout=90,
                            params={"source": "k3s", "lines": "50"})
    assert response.status_code == 200, (response.text, machine.journal())
    excerpt = response.json()
    assert excerpt["source"] == "k3s" and 0 < len(excerpt["lines"]) <= 50, excerpt
    result = machine.run("systemctl", "show", "--property=Result", "--value",
                         "alga-appliance-logs-request.service").strip()
    assert result == "success"
    refused = requests.get(f"{machine.url}/api/logs", headers=auth, timeout=10,
                           params={"source": "k3s", "lines": "100000"})
    assert refused.status_code == 400 and refused.json()["fields"], refused.text


def test_12_the_daily_update_check_runs_in_its_sandbox(machine):
    """The timer is enabled; its service, started as the timer would, checks the installed
    channel at the registry and writes the notice the status page shows."""
    assert machine.run("systemctl", "is-enabled",
                       "alga-appliance-update-check.timer").strip() == "enabled"
    machine.run("systemctl", "start", "alga-appliance-update-check.service")
    found = wait_for(lambda: state.read(state.UPDATE_NOTICE, machine.root), 60, "the notice")
    assert found["failure"] is None, (found, machine.run(
        "journalctl", "--no-pager", "-o", "cat", "-u", "alga-appliance-update-check.service"))
    assert (found["channel"], found["installed"]["release_version"]) == ("stable", OCI_VERSION)
    assert found["headline"] is None  # the installed release is the channel's newest
    assert api_get(machine, "/api/status")["update_notice"] == found
