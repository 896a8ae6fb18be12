"""Setup progress as text, for both console modes: the preflight checklist, the phases and
the failure view with its next step (what the web UI's Progress page shows)."""

import time
from collections.abc import Callable
from pathlib import Path

from host.core import paths, state
from host.net import addresses as netinfo

PHASE_TITLES = {"preflight": "Preflight checks", "dns": "DNS for k3s", "k3s": "Install k3s",
                "flux": "Install Flux", "release": "Point Flux at the Alga release"}
MARKS = {"pending": "[ ]", "running": "[>]", "succeeded": "[x]", "skipped": "[-]",
         "failed": "[!]", "pass": "ok  ", "warn": "WARN", "fail": "FAIL"}
POLL_SECONDS = 1.0


def ordered_phases(install: dict) -> list[tuple[str, dict]]:
    rank = list(PHASE_TITLES)
    return sorted(install["phases"].items(),
                  key=lambda item: rank.index(item[0]) if item[0] in rank else len(rank))


def describe(install: dict | None, preflight: dict | None) -> list[str]:
    """The whole progress view as lines (long ones are left to the terminal to wrap)."""
    if install is None:
        return ["Waiting for setup to start..."]
    lines = [f"Setup: {install['status']}", ""]
    for name, phase in ordered_phases(install):
        action = f" - {phase['last_action']}" if phase["last_action"] else ""
        lines.append(f"{MARKS[phase['state']]} {PHASE_TITLES.get(name, name)}{action}")
    lines += failure_view(install)
    if install["status"] == "succeeded":
        lines += ["", "Setup complete: the host steps are done. Flux is now installing the",
                  "Alga app; it is usable once its bootstrap finishes. Follow it at",
                  f"  http://{netinfo.node_ip()}:{paths.WEB_PORT}/status"]
    preflight_phase = install["phases"].get("preflight")
    if preflight and preflight_phase and preflight_phase["state"] in ("failed", "succeeded"):
        lines += ["", "Preflight checks:"]
        for check in preflight["checks"]:
            lines.append(f"  {MARKS[check['status']]} {check['id']}: {check['message']}")
            if check["status"] != "pass" and check["remediation"]:
                lines.append(f"       fix: {check['remediation']}")
    return lines


def failure_view(install: dict) -> list[str]:
    failed = [(name, phase) for name, phase in ordered_phases(install)
              if phase["state"] == "failed" and phase["failure"]]
    if not failed:
        return []
    name, phase = failed[0]
    failure = phase["failure"]
    lines = ["", f"FAILED: {PHASE_TITLES.get(name, name)} [{failure['category']}]"]
    if name == "preflight":
        lines.append("Nothing on this machine has been changed: preflight stops setup first.")
    lines += [f"Last action:     {failure['last_action']}",
              f"Suspected cause: {failure['suspected_cause']}",
              f"Next step:       {failure['next_step']}",
              "Retry:           " + ("safe - run setup again (same or edited answers)"
                                     if failure["retry_safe"] else
                                     "NOT safe from here - follow the next step first"),
              f"Support bundle:  {failure['support_command']}"]
    return lines


def settled(install: dict | None) -> bool:
    return install is not None and install["status"] in ("succeeded", "failed")


def follow(root: Path | None, previous: dict | None, show: Callable[[list[str]], None],
           stop: Callable[[], bool] = lambda: False) -> dict:
    """Show progress until the run after `previous` (the install state when setup was
    submitted, or None to follow the current run) settles; returns its install state."""
    shown = None
    while True:
        install = state.read(state.INSTALL_STATE, root)
        started = previous is None or install != previous
        lines = describe(install if started else None, state.read(state.PREFLIGHT_REPORT, root))
        if lines != shown:
            show(lines)
            shown = lines
        if (started and settled(install)) or stop():
            return install
        time.sleep(POLL_SECONDS)
