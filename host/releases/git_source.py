"""Releases from channel files in a git repository (Alga's publishing before June 2026,
still used by forks and mirrors): the channel file and its release manifest, both read from
one ref (the default branch or the support override).

The channel's repoBranch may not contain the manifest the channel names (this has
happened for stable), so the manifest is never read from there; repoBranch is only what
Flux tracks and where the values profiles are read.
"""

from dataclasses import dataclass

import requests
import yaml

from host.cluster import alga
from host.core import pins
from host.net.endpoints import Endpoints
from host.net.https import FetchError, NotRun, fetch_document


@dataclass(frozen=True)
class Source:
    endpoints: Endpoints
    repo_url: str
    ref: str  # the support override's branch, else the default branch

    def url(self, path: str, ref: str | None = None) -> str:
        return self.endpoints.repo_file(self.repo_url, ref or self.ref, path)


CHANNEL_FIELDS = ("channel", "releaseVersion", "repoBranch", "updatedAt")


def unknown_fields(channel_file: dict) -> list[str]:
    """Fields a newer channel file may carry that this appliance ignores (to be logged)."""
    return sorted(set(channel_file) - set(CHANNEL_FIELDS))


def fetch_channel(session: requests.Session, source: Source, channel: str, timeout: float) -> dict:
    url = source.url(pins.CHANNEL_PATH.format(channel=channel))
    document = fetch_document(session, url, timeout, f"the {channel} channel file",
                              "channel.schema.json")
    if document["releaseVersion"] is None or "repoBranch" not in document:
        raise FetchError(f"no release is published on the {channel} channel yet "
                         f"({url} has releaseVersion null)", "release-source")
    return document


def fetch_manifest(session: requests.Session, source: Source, release: str,
                   timeout: float) -> dict:
    url = source.url(pins.MANIFEST_PATH.format(release=release))
    return fetch_document(session, url, timeout, f"release manifest {release}",
                          "release-manifest.schema.json")


def selection(channel: str, source: Source, channel_file: dict, manifest: dict,
              at: str) -> dict:
    """The selected-release document."""
    app = manifest["app"]
    return {
        "source": "git", "channel": channel, "repo_url": source.repo_url, "source_ref": source.ref,
        "release_version": manifest["releaseVersion"], "repo_branch": channel_file["repoBranch"],
        "app_version": app["version"], "release_branch": app["releaseBranch"],
        "values_profile": app["valuesProfile"], "images": app["images"], "selected_at": at,
    }


def fetch_profile_values(session: requests.Session, source: Source, repo_branch: str,
                         profile: str, timeout: float) -> dict:
    """Each Helm release's values from `profile` (the release phase and app updates render
    the same way). The profiles live on the branch Flux tracks, not on the resolution ref."""
    values = {}
    for release in alga.HELM_RELEASES:
        url = source.url(pins.PROFILE_VALUES_PATH.format(profile=profile, release=release),
                         ref=repo_branch)
        values[release] = fetch_document(session, url, timeout, f"{release} {profile} values",
                                         parse=_yaml, syntax="YAML") or {}
    return values


def _yaml(data: bytes) -> object:
    """YAML parsed as fetch_document expects: a document that is not YAML is a ValueError
    (PyYAML's own errors are not, and would escape as an unexpected failure)."""
    try:
        return yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise ValueError(str(exc)) from exc


def _after(done: bool, step: str) -> None:
    """Steps run in order; one whose predecessor failed is not run."""
    if not done:
        raise NotRun(f"not run: {step} did not succeed")


@dataclass
class Resolution:
    """One resolution of a channel, step by step, as host/releases/oci_source.py resolves
    OCI releases: preflight runs the steps as checks, the release phase and updates run them
    all."""

    session: requests.Session
    source: Source
    channel: str
    kind: str = "git"
    channel_file: dict | None = None
    release: dict | None = None  # the release manifest

    @property
    def steps(self) -> tuple:
        return (("release.channel", self.fetch_channel), ("release.manifest", self.manifest))

    def describe(self) -> str:
        return f"{self.source.repo_url} ({self.source.ref})"

    def fetch_channel(self, timeout: float) -> str:
        self.channel_file = fetch_channel(self.session, self.source, self.channel, timeout)
        found = self.channel_file
        return f"{self.channel} → release {found['releaseVersion']} on {found['repoBranch']}"

    def manifest(self, timeout: float) -> str:
        _after(self.channel_file is not None, "release.channel")
        version = self.channel_file["releaseVersion"]
        self.release = fetch_manifest(self.session, self.source, version, timeout)
        return f"release {version}: app {self.release['app']['version']} from {self.source.ref}"

    def unknown_fields(self) -> list[str]:
        return unknown_fields(self.channel_file or {})

    def selection(self, at: str) -> dict:
        return selection(self.channel, self.source, self.channel_file, self.release, at)

    def profile_values(self, timeout: float) -> dict:
        return fetch_profile_values(self.session, self.source, self.channel_file["repoBranch"],
                                    self.release["app"]["valuesProfile"], timeout)
