"""The `isobuild` command line."""

import json
import sys
from pathlib import Path

import click

from host.core import pins
from host.core.version import __version__
from isobuild import download, gpg, layout, publish
from isobuild.build import build
from isobuild.errors import IsoBuildError
from isobuild.image import NotAnIso
from isobuild.options import resolve_options
from isobuild.progress import Progress
from isobuild.verify import verify as verify_iso

PathArg = click.Path(path_type=Path)


@click.group()
@click.version_option(__version__, prog_name="isobuild")
def main() -> None:
    """Build the Alga appliance ISO from the official Ubuntu Server 24.04 live-server ISO."""


def host_release_options(command):
    """The flags that pin which host releases an appliance trusts: `build` writes them
    into the ISO's payload, `host-release` into the release (the next trust, on a rotation)."""
    command = click.option(
        "--host-release-repository", help="<registry>/<repository> the appliance takes host "
        f"releases (its own software updates) from [{pins.HOST_RELEASE_REPOSITORY}].")(command)
    return click.option(
        "--host-release-key", "host_release_keys", multiple=True, type=PathArg,
        help="ASCII-armored public key whose signatures the appliance accepts on host "
        "releases (repeatable, at most 2: the current key and the next). Without one, the "
        "appliance refuses self-updates.")(command)


def _host_releases(trust: dict | None) -> str:
    if trust is None:
        return "  note     no --host-release-key given: this appliance refuses self-updates"
    return (f"  host     releases from {trust['repository']}, signed by "
            f"{' or '.join(key['fingerprint'] for key in trust['keys'])}")


@main.command("build")
@click.option("--base-iso", type=PathArg, help="Ubuntu 24.04 live-server amd64 ISO. Default: "
              f"download {download.ISO_NAME} into the cache and verify it.")
@click.option("--output", type=PathArg, required=True, help="Where to write the appliance ISO.")
@click.option("--sha256sums", type=PathArg, help="Ubuntu's SHA256SUMS; the base must match it.")
@click.option("--sha256sums-gpg", type=PathArg, help="Ubuntu's SHA256SUMS.gpg: checked against "
              "the pinned signing key before SHA256SUMS is trusted.")
@click.option("--sign-key", help="Sign the output's SHA256SUMS with this gpg key id or secret "
              "key file (writes <output>.SHA256SUMS.gpg).")
@click.option("--options", "options_file", type=PathArg,
              help="YAML build options (schemas/isobuild-options.schema.json); flags override.")
@click.option("--hostname", help="Hostname of the installed appliance [alga-appliance].")
@click.option("--admin-user", help="Admin account, SSH keys only [alga-admin].")
@click.option("--ssh-key", "ssh_keys", multiple=True,
              help="OpenSSH public key for the admin user (repeatable).")
@click.option("--timezone", help="Timezone of the installed system [Etc/UTC].")
@click.option("--installer-proxy", help="HTTP(S) proxy for the Ubuntu installer.")
@click.option("--grub-timeout", type=int, help="Boot menu timeout in seconds [5].")
@click.option("--serial-console/--no-serial-console", default=None,
              help="Add a ttyS0 serial terminal to GRUB and the kernel.")
@click.option("--release-source", help="Where the appliance resolves Alga releases: "
              "oci://<registry>/<repository>[:<tag>|@sha256:<digest>] or a git repository URL "
              "publishing channel files [oci://ghcr.io/nine-minds/alga-appliance-release].")
@host_release_options
def build_command(base_iso, output, sha256sums, sha256sums_gpg, sign_key, options_file, hostname,
                  admin_user, ssh_keys, timezone, installer_proxy, grub_timeout, serial_console,
                  release_source, host_release_keys, host_release_repository) -> None:
    """Remaster the base ISO into the appliance ISO, verify it, and write a manifest, a
    SHA256SUMS line and, with --sign-key, its signature."""
    if base_iso is None and (sha256sums or sha256sums_gpg):
        raise click.UsageError("--sha256sums and --sha256sums-gpg describe a --base-iso; the "
                               "download fetches and checks Ubuntu's own")
    if sha256sums_gpg and not sha256sums:
        raise click.UsageError("--sha256sums-gpg is the signature of --sha256sums: pass both")
    progress = Progress()
    try:
        options = resolve_options(options_file, {
            "hostname": hostname, "admin_user": admin_user,
            "ssh_authorized_keys": list(ssh_keys) or None, "timezone": timezone,
            "installer_proxy": installer_proxy, "grub_timeout": grub_timeout,
            "serial_console": serial_console, "release_source": release_source,
            "host_release_keys": [str(key) for key in host_release_keys] or None,
            "host_release_repository": host_release_repository,
        })
        if sign_key:
            gpg.check_signing_key(sign_key)
        trust = gpg.host_release_trust(options.host_release_keys,
                                       options.host_release_repository)
        if base_iso is None:
            fetched = download.fetch_base_iso(progress)
            base_iso, sha256sums = fetched.iso, fetched.sums
            provenance = [f"  from     {fetched.source}", _signed_by(fetched.signer)]
        else:
            provenance = _local_base_provenance(sha256sums, sha256sums_gpg)
        result = build(base_iso, output, sha256sums, options, progress)
        # A signature left by an earlier build would not match this ISO.
        result.sums_path.with_name(result.sums_path.name + ".gpg").unlink(missing_ok=True)
        signature = gpg.sign_detached(result.sums_path, sign_key) if sign_key else None
    except IsoBuildError as exc:
        progress.summary([])
        raise click.ClickException(str(exc)) from exc
    manifest = result.manifest
    progress.summary([
        f"built {result.output} ({manifest['output']['size'] >> 20} MiB) "
        f"in {result.seconds:.1f} s",
        f"  sha256   {manifest['output']['sha256']}",
        f"  base     {manifest['base_iso']['name']} {manifest['base_iso']['sha256']}",
        *provenance,
        f"  kernel   {' '.join(manifest['kernel_arguments'])}",
        f"  releases {options.release_source}",
        _host_releases(trust),
        f"  manifest {result.manifest_path}",
        f"  sums     {result.sums_path}",
        *([f"  signed   {signature}"] if signature else []),
        *([] if options.ssh_authorized_keys else
          ["  note     no --ssh-key given: the admin account cannot log in over SSH"]),
    ])


def _signed_by(key: gpg.PinnedKey) -> str:
    whose = "Canonical's CD image signing key" if key.is_ubuntu else \
        f"the key in {key.path} ({gpg.KEY_ENV}), NOT Canonical's"
    return f"  verified SHA256SUMS signed by {whose}, {key.fingerprint}"


def _local_base_provenance(sums: Path | None, signature: Path | None) -> list[str]:
    """Check the signature of a local base's SHA256SUMS now; say how far the base is
    verified (the build checks the ISO against SHA256SUMS)."""
    if sums is None:
        return ["  note     base ISO NOT verified: pass --sha256sums and --sha256sums-gpg "
                "to check it is Canonical's"]
    if signature is None:
        return ["  note     base ISO matches SHA256SUMS, but SHA256SUMS is NOT authenticated: "
                "pass --sha256sums-gpg to check it is Canonical's"]
    key = gpg.pinned_key()
    gpg.verify_signature(sums, signature, key)
    return [_signed_by(key)]


@main.command("host-release")
@click.option("--output", type=PathArg, required=True, help="Directory for the tarball, its "
              "manifest and the manifest's signature (alga-appliance-host-<version>.*).")
@click.option("--sign-key", required=True, help="Sign the manifest with this gpg key id or "
              "secret key file: the host-release key the appliances pin.")
@click.option("--repository", help="Push to <registry>/<repository>:<version> (credentials "
              f"from {publish.USER_ENV} and {publish.TOKEN_ENV}). Without it, nothing is "
              "pushed.")
@click.option("--notes-file", type=PathArg,
              help="Release notes (plain text) the appliance's Updates page shows.")
@click.option("--min-upgrade-from", default=publish.OLDEST_UPGRADABLE, show_default=True,
              help="The oldest installed version this release can upgrade.")
@click.option("--options", "options_file", type=PathArg,
              help="The YAML build options of the ISOs it updates (release source, admin "
              "user, host-release keys); flags override.")
@click.option("--admin-user", help="Admin account, as the ISO was built [alga-admin].")
@click.option("--release-source", help="Where the appliance resolves Alga releases, as the "
              "ISO was built.")
@host_release_options
def host_release_command(output, sign_key, repository, notes_file, min_upgrade_from,
                         options_file, admin_user, release_source, host_release_keys,
                         host_release_repository) -> None:
    """Build the appliance's own software (the ISO's payload) as a signed host release and,
    with --repository, push it as an OCI artifact."""
    try:
        options = resolve_options(options_file, {
            "admin_user": admin_user, "release_source": release_source,
            "host_release_keys": [str(key) for key in host_release_keys] or None,
            "host_release_repository": host_release_repository,
        })
        gpg.check_signing_key(sign_key)
        release = publish.build_release(options, output, sign_key, _notes(notes_file),
                                        min_upgrade_from)
        digest = publish.push(release, repository) if repository else None
    except IsoBuildError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"host release {release.version} ({len(release.document['files'])} files, "
               f"upgrades from {release.document['min_upgrade_from']})")
    for path in (release.tarball, release.manifest, release.signature):
        click.echo(f"  wrote    {path}")
    click.echo(f"  pushed   {repository}:{release.version} ({digest})" if digest else
               "  note     not pushed: give --repository to publish it")


def _notes(path: Path | None) -> str:
    if path is None:
        return ""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise IsoBuildError(f"cannot read the release notes {path}: {exc}",
                            "give --notes-file a readable UTF-8 text file") from exc


@main.command("check-base")
def check_base_command() -> None:
    """Whether a newer Ubuntu 24.04 point release than the pinned one exists, and how to
    move the pin to it."""
    try:
        newest, page = download.newest_point_release()
    except IsoBuildError as exc:
        raise click.ClickException(str(exc)) from exc
    pinned = download.UBUNTU_RELEASE
    click.echo(f"pinned   {pinned} (UBUNTU_RELEASE in isobuild/download.py)")
    click.echo(f"current  {newest} ({page})")
    if download.release_key(newest) < download.release_key(pinned):
        raise click.ClickException(
            f"the page names {newest}, older than the pinned {pinned}: it is not Canonical's "
            "current list (check ISOBUILD_UBUNTU_SERIES_URL, or a proxy's cached copy)")
    if newest == pinned:
        click.echo("the pin is the current point release")
        return
    click.echo(f"""a newer point release exists; {pinned} is now only on old-releases.ubuntu.com,
where the download falls back to. To move the pin:
  1. set UBUNTU_RELEASE = "{newest}" in isobuild/download.py (the ISO name and both
     download locations follow from it)
  2. .venv/bin/isobuild build --output alga-appliance.iso  (downloads {newest} and checks
     its SHA256SUMS.gpg against Canonical's pinned key)
  3. .venv/bin/isobuild verify alga-appliance.iso, boot it once on real firmware, and run
     ci/test.sh (docs/release-engineering.md, sections 4 to 6)
  4. commit the one-line change""")


@main.command("verify")
@click.argument("iso", type=PathArg)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def verify_command(iso: Path, as_json: bool) -> None:
    """Check an appliance ISO's boot structures, seed and md5sum.txt (exit 0 or 1)."""
    report = verify_iso(iso)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        for check in report["checks"]:
            click.echo(f"{'ok  ' if check['ok'] else 'FAIL'} {check['id']}: {check['detail']}")
        click.echo("verified" if report["ok"] else "verification FAILED")
    sys.exit(0 if report["ok"] else 1)


@main.command("inspect")
@click.argument("iso", type=PathArg)
@click.option("--json", "as_json", is_flag=True, help="Print the description as JSON.")
def inspect_command(iso: Path, as_json: bool) -> None:
    """Volume id, release, boot layout, and which Alga build (if any) an ISO is."""
    try:
        info = layout.describe(iso)
    except (NotAnIso, OSError) as exc:
        raise click.ClickException(f"{iso} is not a readable ISO 9660 image: {exc}") from exc
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    boot = info["boot"]
    alga = info["alga_appliance"]
    click.echo(f"volume id   {info['volume_id']}")
    click.echo(f"release     {info['release'] or 'unknown'} ({info['arch'] or 'unknown arch'})")
    click.echo(f"size        {info['size']} bytes")
    for entry in boot["el_torito"]:
        click.echo(f"el torito   {entry['platform']}: LBA {entry['load_rba']}, "
                   f"{entry['sectors']} sectors")
    for part in boot["gpt"] or []:
        click.echo(f"gpt         {part['name']}: LBA {part['first_lba']}-{part['last_lba']}")
    click.echo("alga        " + (f"appliance ISO, version {alga['version']}, built "
                                 f"{alga['built_at']} from {alga['base_iso']['name']}"
                                 if alga else "not an Alga appliance ISO"))
