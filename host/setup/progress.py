"""Setup progress as text: the phases, the failure view with its next step and the
preflight checklist (what the web UI's Progress page shows), for the console and the
support bundle's summary."""

from host.core import elapsed, paths
from host.net import addresses
from host.setup import chain

MARKS = {"pending": "[ ]", "running": "[>]", "succeeded": "[x]", "skipped": "[-]",
         "failed": "[!]", "pass": "ok  ", "warn": "WARN", "fail": "FAIL", "not-run": "--  "}
# The root causes of a failed preflight (schemas/preflight-report.schema.json) in words.
CAUSES = {"no-route": "the network: no route", "proxy": "the proxy", "dns": "DNS",
          "clock": "the clock", "tls": "TLS (certificates)", "http": "an unexpected answer",
          "release": "the release source", "disk": "disk space", "ports": "ports in use",
          "unclassified": "a failed check"}
CREDENTIALS_FAILED = "The admin password could not be set"


def describe(install: dict | None, preflight: dict | None,
             credentials: dict | None = None, timing: dict | None = None) -> list[str]:
    """The whole progress view as lines (long ones are left to the terminal to wrap), with
    the admin credentials' `credentials` outcome for this run when there is one, and with
    `timing` (host/setup/timing.py's progress) each step's time and the app stage."""
    if install is None:
        return ["Waiting for setup to start..."]
    steps = {(s["stage"], s["name"]): s for s in (timing or {}).get("steps", [])}
    now = f" ({headline(timing)})" if timing else ""
    lines = [f"Setup: {install['status']}{now}", "", *credentials_lines(credentials)]
    for name, phase in chain.ordered(install["phases"]):
        action = f" - {phase['last_action']}" if phase["last_action"] else ""
        took = step_time(steps.get(("host", name)))
        lines.append(f"{MARKS[phase['state']]} {chain.title(name)}{action}{took}")
    lines += failure_view(install, preflight)
    if install["status"] == "succeeded":
        lines += ["", "Setup complete: the host steps are done. Flux is now installing the",
                  "Alga app; it is usable once its bootstrap finishes. Follow it at",
                  f"  http://{addresses.node_ip()}:{paths.WEB_PORT}/progress",
                  *app_stage_lines(timing)]
    preflight_phase = install["phases"].get("preflight")
    if preflight and preflight_phase and preflight_phase["state"] in ("failed", "succeeded"):
        lines += ["", "Preflight checks:"]
        for check in preflight["checks"]:
            lines.append(f"  {MARKS[check['status']]} {check['id']}: {check['message']}")
            # A failure's fix is said once, with its root cause; a check not run has none.
            if check["status"] == "warn" and check["remediation"]:
                lines.append(f"       fix: {check['remediation']}")
    return lines


def headline(timing: dict) -> str:
    """step 3 of 9, 4 min elapsed, about 14 min left: ASCII (a serial console may not speak
    UTF-8), and to the minute, so a serial console (which prints each new line) gets a line
    a minute, not one a second."""
    remaining = timing["remaining_seconds"]
    if remaining is None:
        left = "stopped"
    elif timing["done"] == timing["of"]:
        left = "done"
    else:
        left = f"about {_coarse(remaining)} left" if remaining else "taking longer than usual"
    return (f"step {timing['step']} of {timing['of']}, {_coarse(timing['elapsed_seconds'])} "
            f"elapsed, {left}")


def step_time(step: dict | None) -> str:
    """What a step's line says of its time: what it took, or since when it runs and how
    long it usually takes (a moment, not a ticking count)."""
    if step is None:
        return ""
    if step["state"] == "running":
        since = f"since {step['started_at'][11:19]} UTC, " if step["started_at"] else ""
        estimate = "on this appliance" if step["expected_from"] == "this appliance" else \
            "usually"
        return f" ({since}{estimate} {elapsed.words(step['expected_seconds'])})"
    # A failed step's time is in its failure view's log; its line stays short.
    if step["elapsed_seconds"] is None or step["state"] != "succeeded":
        return ""
    return f" (took {elapsed.words(step['elapsed_seconds'])})"


def app_stage_lines(timing: dict | None) -> list[str]:
    """The app stage's steps after the host phases (status.json's tiers), and a note when
    status.json is behind."""
    if not timing:
        return []
    lines = ["", "App stage:"]
    for step in (s for s in timing["steps"] if s["stage"] == "app"):
        lines.append(f"{MARKS[step['state']]} {step['title']}{step_time(step)}")
    if timing["status_behind"]:
        lines += ["", f"Note: {timing['status_behind']}"]
    return lines


def _coarse(seconds: int) -> str:
    return elapsed.words(seconds - seconds % 60) if seconds >= 60 else "under a minute"


def credentials_lines(outcome: dict | None) -> list[str]:
    """The credentials unit's outcome: a failure says why and what to do; setup goes on
    without it (the app does not need the admin's shell)."""
    if outcome is None:
        return []
    if outcome["result"] == "applied":
        return ["[x] Admin password and SSH keys set", ""]
    return [f"[!] {CREDENTIALS_FAILED}: {outcome['message']}",
            "    Setup goes on: the app does not need them.", ""]


def root_causes(preflight: dict) -> list[str]:
    """The failed checks grouped by root cause, the root first, each fix said once."""
    lines = []
    for index, group in enumerate(preflight["causes"]):
        label = "Root cause" if index == 0 else "Also"
        lines += [f"{label} ({CAUSES.get(group['cause'], group['cause'])}): {group['summary']}",
                  *([f"  Fix: {group['remediation']}"] if group["remediation"] else []),
                  f"  Failed checks: {', '.join(group['checks'])}"]
    return lines


def failure_view(install: dict, preflight: dict | None = None) -> list[str]:
    failed = [(name, phase) for name, phase in chain.ordered(install["phases"])
              if phase["state"] == "failed" and phase["failure"]]
    if not failed:
        return []
    name, phase = failed[0]
    failure = phase["failure"]
    lines = ["", f"FAILED: {chain.title(name)} [{failure['category']}]"]
    if name == "preflight":
        # Else: the admin's credentials, set first (and said at the top of the view).
        lines.append("Nothing else on this machine has been changed: preflight stops setup first.")
    lines += [f"Last action:     {failure['last_action']}",
              f"Suspected cause: {failure['suspected_cause']}",
              f"Next step:       {failure['next_step']}",
              "Retry:           safe - run setup again (same or edited answers)",
              *_interruption(failure),
              f"Support bundle:  {failure['support_command']}"]
    if name == "preflight" and preflight:  # before the checklist, each cause's fix once
        lines += ["", *root_causes(preflight)]
    return lines


def _interruption(failure: dict) -> list[str]:
    if "interrupted" not in failure:
        return []
    where = failure["interrupted"]
    return [f"Interrupted:     {chain.title(where['phase'])}, last progress at {where['at']}",
            "Resume:          continues from there (Resume on the Progress page, or here)"]


def resumable(install: dict | None) -> bool:
    """Whether the run `install` shows stopped by an interruption (it offers Resume)."""
    return bool(install) and install["status"] == "failed" and any(
        (record["failure"] or {}).get("interrupted") for record in install["phases"].values())


def settled(install: dict | None) -> bool:
    return install is not None and install["status"] in ("succeeded", "failed")
