"""Network diagnostics on demand: preflight's network checks run again, read-only, from the
web UI (Status page), the console (Network diagnostics) or `alga-appliance
diagnose-network`.

The checks are preflight's own (host/setup/preflight.py: DNS, the proxy, the release
source, GHCR and Docker Hub, GitHub's downloads, the clock), with setup's answers (its DNS,
proxy and channel) or, before setup, the defaults. They only send requests and read; the
disk and port checks are left out (they are the host's, not the network's). The report is
preflight's format, written to its own state file, so setup's preflight report stays
what setup found. The web service and the console ask through the spool (`submit`);
alga-appliance-network-diagnostics-request.path starts a root oneshot that runs `accept`.
"""

from collections.abc import Callable
from pathlib import Path

from host.core import busy, paths, spool, state
from host.net import endpoints
from host.releases import channels
from host.setup import preflight, progress

# The ids (prefixes) of the network checks, in preflight's order: all but disk and ports.
CHECK_PREFIXES = ("dns.", "proxy", "release.", "ghcr", "dockerhub", "k3s.release",
                  "flux.release", "clock")
# Before setup has answers: the machine's own DNS, no proxy, the default channel.
DEFAULT_INPUTS = {"channel": channels.DEFAULT_CHANNEL, "app_url": "", "dns": {"mode": "system"},
                  "proxy": None, "overrides": {}}


class Busy(Exception):
    """Diagnostics are running or already asked for."""


def submit(root: Path | None = None) -> str:
    """Spool a request; its id. Raises Busy."""
    if running(root):
        raise Busy("network diagnostics are running; wait for their report")
    try:
        return spool.submit(spool.NETWORK_DIAGNOSTICS, {"requested_at": state.timestamp()}, root)
    except spool.AlreadyPending as exc:
        raise Busy("network diagnostics were already asked for and start in a moment") from exc


def last_status(root: Path | None = None) -> dict | None:
    """The last run's status; a broken file reads as none, since the next run replaces it."""
    try:
        return state.read(state.NETWORK_DIAGNOSTICS, root)
    except state.StateFileInvalid:
        return None


def last_report(root: Path | None = None) -> dict | None:
    """The last run's report, when that run succeeded (a running one has none yet)."""
    status = last_status(root)
    if status is None or status["state"] != "succeeded":
        return None
    try:
        return state.read(state.NETWORK_DIAGNOSTICS_REPORT, root)
    except state.StateFileInvalid:
        return None


def running(root: Path | None = None) -> bool:
    current = last_status(root)
    return bool(current) and current["state"] == "running"


def accept(root: Path | None = None) -> dict | None:
    """Run the checks a waiting request asks for; the report (None when no request
    waits). Raises spool.Malformed."""
    request = spool.take(spool.NETWORK_DIAGNOSTICS, root)
    if request is None:
        return None
    return run(root, request["id"], request["requested_at"])


def run(root: Path | None = None, request_id: str | None = None,
        requested_at: str | None = None,
        log: Callable[[str], None] = lambda line: None) -> dict:
    """Run the network checks now, recording their progress (each check's result as
    preflight logs it, also given to `log`) and report; the report. Raises
    state.StateFileInvalid (setup inputs or endpoints unreadable: recorded too)."""
    status = {"state": "running", "request_id": request_id, "requested_at": requested_at,
              "started_at": state.timestamp(), "finished_at": None, "inputs": "defaults",
              "setup_running": None, "checks_done": 0, "last_check": None, "error": None}
    state.write(state.NETWORK_DIAGNOSTICS, status, root)

    def checked(line: str) -> None:
        status.update(checks_done=status["checks_done"] + 1, last_check=line)
        state.write(state.NETWORK_DIAGNOSTICS, status, root)
        log(line)

    try:  # from here every failure is recorded, so whoever asked is not left waiting
        inputs = state.read(state.SETUP_INPUTS, root)
        status.update(inputs="setup inputs" if inputs else "defaults",
                      setup_running=busy.running(root))
        result = preflight.run_checks(inputs or DEFAULT_INPUTS, endpoints.load(root),
                                      paths.host_root(root), only=CHECK_PREFIXES,
                                      write_report=False, log=checked)
    except Exception as exc:  # any: recorded for whoever asked, then reported as usual
        status.update(state="failed", finished_at=state.timestamp(), error=str(exc))
        state.write(state.NETWORK_DIAGNOSTICS, status, root)
        raise
    state.write(state.NETWORK_DIAGNOSTICS_REPORT, result.report, root)
    status.update(state="succeeded", finished_at=state.timestamp())
    state.write(state.NETWORK_DIAGNOSTICS, status, root)
    return result.report


def report_lines(status: dict, report: dict) -> list[str]:
    """The report as text (the CLI and the console): the outcome, each root cause with
    its fix once, then every check as preflight's checklist shows it."""
    lines = [f"Network diagnostics: {report['outcome']} (checked at {report['generated_at']}, "
             f"with the {status['inputs']})"]
    if status["setup_running"]:
        lines.append(f"While these ran: {status['setup_running']} (the checks only read; "
                     "its changes in progress may show here).")
    if report["causes"]:
        lines += ["", *progress.root_causes(report)]
    lines += ["", "Checks:"]
    for check in report["checks"]:
        lines.append(f"  {progress.MARKS[check['status']]} {check['id']}: {check['message']}")
        if check["status"] == "warn" and check["remediation"]:  # a failure's fix is above
            lines.append(f"       fix: {check['remediation']}")
    return lines


def progress_lines(root: Path | None, request_id: str) -> tuple[list[str], bool]:
    """The run asked for as `request_id`: what to show now, and whether it has ended."""
    status = last_status(root)
    if status is None or status["request_id"] != request_id:
        return ["Waiting for the host to start the network checks..."], False
    if status["state"] == "running":
        return ["Running the network checks (DNS, proxy, release source, registries, "
                "clock); this takes up to a minute...",
                *([f"{status['checks_done']} done; last: {status['last_check']}"]
                  if status["last_check"] else [])], False
    if status["state"] == "failed":
        return [f"The network checks could not run: {status['error']}",
                "Next: try again; `sudo alga-appliance diagnose-network` (in the Shell) runs "
                "them here and prints why."], True
    report = last_report(root)
    if report is None:
        return ["The report cannot be read; run the checks again."], True
    return report_lines(status, report), True
