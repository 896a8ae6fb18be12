"""Release-engineer options for a build: defaults, an optional YAML file, then flags."""

from dataclasses import dataclass, fields, replace
from pathlib import Path

import yaml

from host.core import paths, pins
from host.core.validation import DocumentInvalid, validate
from isobuild.errors import IsoBuildError

OPTIONS_SCHEMA = "isobuild-options.schema.json"
# Fixes more telling than the schema's pattern, by the JSON pointer of the invalid value.
FIXES = {"/release_source": "give oci://<registry>/<repository> (the repository in lower "
                            "case), optionally pinned with :<tag> or @sha256:<digest>, or a "
                            "git repository as https://<host>/<owner>/<repo>",
         "/host_release_keys": "give at most two key files: the current host-release key "
                               "and the next (docs/release-engineering.md, key rotation)",
         "/host_release_repository": "give <registry>/<repository> in lower case, e.g. "
                                     "ghcr.io/nine-minds/alga-appliance-host"}


@dataclass(frozen=True)
class BuildOptions:
    hostname: str = "alga-appliance"
    admin_user: str = paths.DEFAULT_ADMIN_USER
    ssh_authorized_keys: tuple[str, ...] = ()
    timezone: str = "Etc/UTC"
    installer_proxy: str | None = None
    grub_timeout: int = 5
    serial_console: bool = False
    # Where the appliance resolves releases (host/releases/source.py); support can override.
    release_source: str = pins.RELEASE_SOURCE
    # Which host releases (the appliance's own software) it trusts: keys, at most two.
    host_release_keys: tuple[str, ...] = ()
    host_release_repository: str = pins.HOST_RELEASE_REPOSITORY

    def as_document(self) -> dict:
        doc = {f.name: getattr(self, f.name) for f in fields(self)}
        doc["ssh_authorized_keys"] = list(self.ssh_authorized_keys)
        doc["host_release_keys"] = list(self.host_release_keys)
        return doc


def resolve_options(options_file: Path | None, overrides: dict) -> BuildOptions:
    """Defaults, then the options file, then the flags that were given (not None)."""
    document = BuildOptions().as_document()
    if options_file is not None:
        document.update(_read_options_file(options_file))
    document.update({k: v for k, v in overrides.items() if v is not None})
    _check(document, "build options (file and flags combined)", str(options_file or "flags"))
    document["ssh_authorized_keys"] = tuple(document["ssh_authorized_keys"])
    document["host_release_keys"] = tuple(document["host_release_keys"])
    return replace(BuildOptions(), **document)


def _read_options_file(path: Path) -> dict:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise IsoBuildError(f"cannot read options file {path}: {exc.strerror}",
                            "pass the path of a readable YAML file to --options") from exc
    except yaml.YAMLError as exc:
        raise IsoBuildError(f"options file {path} is not valid YAML: {exc}",
                            "fix the YAML syntax at the position shown") from exc
    _check(document, "options file", str(path))
    return document


def _check(document: object, name: str, source: str) -> None:
    try:
        validate(document, OPTIONS_SCHEMA, name=name, source=source)
    except DocumentInvalid as exc:
        raise IsoBuildError(str(exc), FIXES.get(exc.pointer, (
            f"correct the value; allowed keys and formats are in schemas/{OPTIONS_SCHEMA}"))
        ) from exc
