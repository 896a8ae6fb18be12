"""The `isobuild` command line."""

import json
import sys
from pathlib import Path

import click

from host.core.version import __version__
from isobuild import download, layout
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


@main.command("build")
@click.option("--base-iso", type=PathArg, help="Ubuntu 24.04 live-server amd64 ISO. Default: "
              f"download {download.ISO_NAME} into the cache and verify it.")
@click.option("--output", type=PathArg, required=True, help="Where to write the appliance ISO.")
@click.option("--sha256sums", type=PathArg, help="Ubuntu's SHA256SUMS; the base must match it.")
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
def build_command(base_iso, output, sha256sums, options_file, hostname, admin_user, ssh_keys,
                  timezone, installer_proxy, grub_timeout, serial_console,
                  release_source) -> None:
    """Remaster the base ISO into the appliance ISO, verify it, and write a manifest."""
    progress = Progress()
    try:
        options = resolve_options(options_file, {
            "hostname": hostname, "admin_user": admin_user,
            "ssh_authorized_keys": list(ssh_keys) or None, "timezone": timezone,
            "installer_proxy": installer_proxy, "grub_timeout": grub_timeout,
            "serial_console": serial_console, "release_source": release_source,
        })
        if base_iso is None:
            base_iso, downloaded_sums = download.fetch_base_iso(progress)
            sha256sums = sha256sums or downloaded_sums
        result = build(base_iso, output, sha256sums, options, progress)
    except IsoBuildError as exc:
        progress.summary([])
        raise click.ClickException(str(exc)) from exc
    manifest = result.manifest
    progress.summary([
        f"built {result.output} ({manifest['output']['size'] >> 20} MiB) "
        f"in {result.seconds:.1f} s",
        f"  sha256   {manifest['output']['sha256']}",
        f"  base     {manifest['base_iso']['name']} {manifest['base_iso']['sha256']}",
        f"  kernel   {' '.join(manifest['kernel_arguments'])}",
        f"  releases {options.release_source}",
        f"  manifest {result.manifest_path}",
        *([] if options.ssh_authorized_keys else
          ["  note     no --ssh-key given: the admin account cannot log in over SSH"]),
    ])


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
