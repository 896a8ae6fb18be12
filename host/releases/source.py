"""The release source: where the appliance learns which release a channel names, with what
images, values and Flux source.

Two kinds answer the same way (a Resolution: its steps, then the selection and the profile
values): an OCI release artifact in a registry (host/releases/oci_source.py, the default)
and channel files in a git repository (host/releases/git_source.py). Which one a site uses
is a reference, taken by precedence from the setup override, endpoints.json, the payload
(chosen at build time with `isobuild build --release-source`) and the built-in default.
"""

from dataclasses import dataclass
from pathlib import Path

import requests

from host.core import pins, state
from host.net.endpoints import Endpoints
from host.releases import git_source, oci_source

Resolution = oci_source.Resolution | git_source.Resolution


@dataclass(frozen=True)
class Configured:
    reference: str  # oci://… or a git repository URL
    origin: str  # where it was set, for support

    @property
    def kind(self) -> str:
        return "oci" if self.reference.startswith("oci://") else "git"


def configured(inputs: dict, site: Endpoints, root: Path | None) -> Configured:
    if "release_source" in inputs["overrides"]:
        return Configured(inputs["overrides"]["release_source"], "the setup override")
    if site.release_source:
        return Configured(site.release_source, "endpoints.json")
    payload = state.read(state.RELEASE_SOURCE, root)
    if payload is not None:
        return Configured(payload["release_source"], "the ISO payload")
    return Configured(pins.RELEASE_SOURCE, "the built-in default")


def resolution(inputs: dict, site: Endpoints, root: Path | None, session: requests.Session,
               channel: str) -> Resolution:
    """A resolution of `channel` (or the pin the reference carries) from the configured
    source, not started yet."""
    chosen = configured(inputs, site, root)
    if chosen.kind == "oci":
        return oci_source.Resolution(session, oci_source.Reference.parse(chosen.reference),
                                     channel)
    ref = inputs["overrides"].get("branch", pins.ALGA_DEFAULT_REF)
    return git_source.Resolution(session, git_source.Source(site, chosen.reference, ref),
                                 channel)


def describe(selection: dict) -> str:
    """Where a selected release came from, exactly: the artifact's digest, or the git
    repository and ref."""
    if selection["source"] == "oci":
        return (f"oci://{selection['registry']}/{selection['repository']}"
                f"@{selection['manifest_digest']}")
    return f"{selection['repo_url']} ({selection['source_ref']}, branch {selection['repo_branch']})"


def origin(selection: dict) -> str:
    """Which source a selected release came from, without what it resolved to: changes
    only when the site's release source does."""
    if selection["source"] == "oci":
        return f"oci://{selection['registry']}/{selection['repository']}"
    return selection["repo_url"]


def summary(selection: dict) -> dict:
    """A release as the status snapshot and the update history show it: its source,
    exactly where it came from, its version and (OCI) the artifact's digest or (git) the
    branch Flux tracks."""
    kept = ("source", "channel", "release_version", "app_version", "repo_branch",
            "manifest_digest")
    return {"location": describe(selection),
            **{key: selection[key] for key in kept if key in selection}}
