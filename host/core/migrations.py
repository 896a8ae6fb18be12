"""Older shapes of the state files, brought to the current schema when they are read.

A state file written by an earlier version stays on disk as it is; reading it applies the
migration before validation, and the next write stores the current shape. Each migration
is idempotent, so a file already in the current shape passes through unchanged.
"""

from urllib.parse import unquote

from host.core import words

# Failure categories that were renamed, old name to new.
RENAMED_CATEGORIES = {"github-release-source": "release-source"}


def _failure(failure: object) -> None:
    if isinstance(failure, dict) and failure.get("category") in RENAMED_CATEGORIES:
        failure["category"] = RENAMED_CATEGORIES[failure["category"]]


def install_state(document: dict) -> dict:
    phases = document.get("phases")
    for record in phases.values() if isinstance(phases, dict) else ():
        if isinstance(record, dict):
            _failure(record.get("failure"))
    return document


def _release_summary(summary: object) -> None:
    # Summaries written before the OCI source all came from git channel files.
    if isinstance(summary, dict):
        summary.setdefault("source", "git")


def update_history(document: dict) -> dict:
    entries = document.get("entries")
    for entry in entries if isinstance(entries, list) else ():
        if isinstance(entry, dict):
            _failure(entry.get("failure"))
            _release_summary(entry.get("from"))
            _release_summary(entry.get("to"))
    return document


def maintenance(document: dict) -> dict:
    # Records before self-updates had no history of them.
    document.setdefault("self_updates", [])
    return document


def selected_release(document: dict) -> dict:
    if "repo_url" in document:  # only git selections carry it
        document.setdefault("source", "git")
    return document


def setup_inputs(document: dict) -> dict:
    # The git repository override became the release source override (either kind).
    overrides = document.get("overrides")
    if isinstance(overrides, dict) and "repo_url" in overrides:
        overrides.setdefault("release_source", overrides.pop("repo_url"))
    _proxy_credentials(document.get("proxy"))
    return document


def _proxy_credentials(proxy: object) -> None:
    """Credentials moved out of the proxy URL into user and password. The URL carried them
    percent-encoded (as requests decoded them), so they are decoded here."""
    if not isinstance(proxy, dict) or not isinstance(proxy.get("url"), str):
        return
    scheme, separator, rest = proxy["url"].partition("://")
    userinfo, at, address = rest.rpartition("@")
    if not separator or not at:
        return
    user, _, password = userinfo.partition(":")
    proxy["url"] = f"{scheme}://{address}"
    if user:
        proxy.setdefault("user", unquote(user))
        proxy.setdefault("password", unquote(password))


def status(document: dict) -> dict:
    # Tiers gained a state to show; an older snapshot knew no failing tier.
    tiers = document.get("tiers")
    for key, tier in tiers.items() if isinstance(tiers, dict) else ():
        if isinstance(tier, dict) and "state" not in tier:
            tier["state"] = ("ready" if tier.get("ready") else
                             "degraded" if tier.get("degraded") else "waiting")
        _status_words(key, tier)
    rollup = document.get("rollup")
    if isinstance(rollup, dict) and rollup.get("state") in words.ROLLUP:
        rollup.setdefault("label", words.ROLLUP[rollup["state"]])
    blockers = document.get("blockers")
    for blocker in blockers if isinstance(blockers, list) else ():
        if isinstance(blocker, dict) and isinstance(blocker.get("component"), str):
            # The words came with the snapshot later; before, the reason held it all.
            blocker.setdefault("label", words.label(blocker["component"]))
            blocker.setdefault("detail", None)
    document.setdefault("app_failure", None)  # older collectors judged no app stage
    return document


def _status_words(key: str, tier: object) -> None:
    """The tier's title and meaning, which older snapshots left to each reader."""
    if isinstance(tier, dict) and key in words.TIERS:
        title, meaning = words.TIERS[key]
        tier.setdefault("title", title)
        tier.setdefault("meaning", meaning)


SKIPPED = "skipped: "  # how a check not run was reported before it had a status of its own


def preflight_report(document: dict) -> dict:
    # Reports before root causes: a skipped check was a failure, and no failure named its
    # cause, so each stands alone, unclassified.
    checks = document.get("checks")
    if "causes" in document or not isinstance(checks, list):
        return document
    failed = []
    for check in checks:
        if not isinstance(check, dict) or check.get("status") != "fail":
            continue
        message = check.get("message")
        if isinstance(message, str) and message.startswith(SKIPPED):
            check.update(status="not-run", message="not run: " + message[len(SKIPPED):],
                         remediation="")
        else:
            failed.append(check)
    document["causes"] = [{"cause": "unclassified", "summary": check.get("message"),
                           "remediation": check.get("remediation"), "checks": [check.get("id")]}
                          for check in failed]
    return document
