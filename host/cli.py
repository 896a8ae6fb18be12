"""The `alga-appliance` command line: the entry point every appliance unit runs."""

import json
import os
import re
import sys
from pathlib import Path

import click

from host.cluster.kube import Kube
from host.core import hostcmd, paths, runlock, state, tls, token
from host.core.version import __version__
from host.releases import channels
from host.setup import chain, engine


class Commands(click.Group):
    """Every command's state file and host file errors as one line that names the file, the
    problem and the next step, with exit status 1: never a traceback (the timers' output
    goes to the journal, the admin's to a terminal)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (state.StateFileInvalid, token.NoValidToken, tls.CertificateProblem) as exc:
            _fail(ctx, str(exc))
        except OSError as exc:
            _fail(ctx, _host_file_problem(exc))


def _fail(ctx: click.Context, message: str) -> None:
    click.echo(f"{ctx.invoked_subcommand}: {message}", err=True)
    sys.exit(engine.EXIT_FAILED)


def _host_file_problem(exc: OSError) -> str:
    where = Path(exc.filename) if exc.filename else None
    if where is not None and not where.parent.is_dir():
        return (f"{where.parent} does not exist, so {where.name} cannot be used; next step: "
                f"run this on the appliance (or give --root the prefix it is installed "
                f"under); if the appliance's directories are gone, reinstall it from the ISO")
    return (f"{where or 'a host file'}: {exc.strerror or exc}; next step: run it as root "
            f"(sudo alga-appliance ...), and check the disk (df -h; dmesg | tail)")


class HostPath(click.Path):
    """A path option: one with a NUL character is a usage error (click's own check would
    crash on it: the OS refuses such a path with a ValueError, not an OSError)."""

    def convert(self, value, param, ctx):
        if "\x00" in str(value):
            self.fail("a path cannot contain a NUL character", param, ctx)
        return super().convert(value, param, ctx)


@click.group(cls=Commands)
@click.version_option(__version__, prog_name="alga-appliance")
@click.option("--root", type=HostPath(file_okay=False, path_type=Path),
              help=f"Prefix for every host path (also ${paths.ROOT_ENV}); for tests.")
def main(root: Path | None) -> None:
    """Manage the Alga PSA appliance on this host."""
    if root is not None:
        os.environ[paths.ROOT_ENV] = str(root)


@main.command("phase")
@click.argument("name", type=click.Choice(chain.NAMES))
@click.option("--kubeconfig", default=paths.K3S_KUBECONFIG, show_default=True,
              help="Cluster to act on; point the release phase at any Kubernetes cluster.")
def phase_command(name: str, kubeconfig: str) -> None:
    """Run one setup phase (what each phase unit runs)."""
    try:
        status = engine.run_phase(name, kubeconfig=kubeconfig)
    except runlock.Busy as exc:
        click.echo(f"alga-appliance phase {name}: {exc}", err=True)
        sys.exit(engine.EXIT_BUSY)
    if status != 0:
        failure = state.read(state.INSTALL_STATE)["phases"][name]["failure"]
        click.echo(f"alga-appliance phase {name} failed [{failure['category']}]: "
                   f"{failure['suspected_cause']}\n  next step: {failure['next_step']}",
                   err=True)
    sys.exit(status)


@main.command("serve")
@click.option("--host", default="0.0.0.0", show_default=True)
@click.option("--port", default=paths.WEB_PORT, show_default=True)
@click.option("--tls-port", default=paths.WEB_TLS_PORT, show_default=True,
              help="The same service over HTTPS, with the certificate ensure-tls made or "
                   "tls install installed.")
def serve_command(host: str, port: int, tls_port: int) -> None:
    """Serve the web UI and JSON API (what alga-appliance.service runs)."""
    from host import web_server  # only the web service needs waitress
    from host.web import configure_logging, make_app

    # Without a token no request could be let in: say so and stop, rather than serve 503s
    # (the unit's ExecStartPre runs ensure-token, which repairs it before the restart).
    token.read_token()
    configure_logging()
    web_server.serve(make_app(), host, port, tls_port)


@main.command("ensure-token")
def ensure_token_command() -> None:
    """Create the setup token, or replace a token file that holds no valid token (run as
    root before the web service)."""
    try:
        token.read_token()
        return
    except token.NoValidToken as exc:
        problem = exc.problem
    token.rotate_token()
    # Never the token itself: this output goes to the journal.
    click.echo(f"ensure-token: {token.token_path()} {problem}; wrote a new setup token "
               "(sudo alga-appliance token show prints it)")


@main.command("ensure-tls")
def ensure_tls_command() -> None:
    """Make a self-signed HTTPS certificate when there is no usable one (run as root before
    the web service); a usable one, the customer's included, is kept."""
    try:
        problem = tls.ensure()
    except hostcmd.CommandFailed as exc:
        click.echo(f"ensure-tls: could not make a certificate: {exc}; next step: install "
                   f"openssl (sudo apt install openssl) and run it again; HTTP on "
                   f"{paths.WEB_PORT} serves meanwhile", err=True)
        sys.exit(engine.EXIT_FAILED)
    if problem:
        click.echo(f"ensure-tls: {problem}. Wrote a new self-signed certificate, SHA-256 "
                   f"fingerprint {tls.fingerprint(tls.cert_path().read_bytes())}")


@main.group("tls")
def tls_group() -> None:
    """The HTTPS certificate of the web service (port 8443)."""


@tls_group.command("show")
def tls_show_command() -> None:
    """Print the certificate's path, expiry and SHA-256 fingerprint."""
    cert = tls.cert_path()
    tls.check_pair(cert, tls.key_path())
    click.echo(f"certificate: {cert}\nexpires: {tls.expires(cert):%Y-%m-%d %H:%M} UTC\n"
               f"SHA-256 fingerprint: {tls.fingerprint(cert.read_bytes())}")


@tls_group.command("install")
@click.option("--cert", type=HostPath(dir_okay=False, path_type=Path), required=True,
              help="The certificate (PEM), followed by any intermediate certificates.")
@click.option("--key", type=HostPath(dir_okay=False, path_type=Path), required=True,
              help="Its private key (PEM, without a passphrase).")
def tls_install_command(cert: Path, key: Path) -> None:
    """Serve HTTPS with your own certificate instead of the self-signed one."""
    fingerprint = tls.install(cert, key)
    click.echo(f"Installed {tls.cert_path()} (SHA-256 fingerprint {fingerprint}).\n"
               f"Next step: sudo systemctl restart alga-appliance alga-appliance-console, so "
               f"the web service serves it and the console shows its fingerprint.")


@main.command("token")
@click.argument("action", type=click.Choice(["show", "rotate"]))
def token_command(action: str) -> None:
    """Print the setup token and a QR code of the setup link, or replace the token with a
    new one (root: the old one stops working at once)."""
    from host.console import banner

    if action == "show":
        _show_token(token.ensure_token())
        return
    if os.geteuid() != 0:
        click.echo("token rotate: only root rotates the token (it re-renders the console "
                   "banner); run: sudo alga-appliance token rotate", err=True)
        sys.exit(engine.EXIT_FAILED)
    _show_token(token.rotate_token())
    click.echo("The old token no longer works.")
    # At once, not at the console timer's next run: the banner must not show a dead token.
    banner.update()


def _show_token(setup_token: str) -> None:
    """The grouped token, the setup link that carries it and, where the terminal can draw
    one, the link's QR code (for a phone beside a VM console)."""
    from host.console import banner, qr

    lines, link = banner.token_lines(setup_token)
    click.echo("\n".join(lines))
    if link is None:
        return
    encoding = sys.stdout.encoding  # the terminal's (click would report ASCII as UTF-8)
    if qr.can_draw(encoding):
        click.echo("\n".join(qr.terminal_lines(link)))
    else:
        click.echo(f"No QR code: this terminal writes {encoding}, not UTF-8, so it cannot "
                   "draw one; open the link or type the token.")


@main.command("accept-setup")
def accept_setup_command() -> None:
    """Take a setup request from the spool, record the inputs and start the chain."""
    from host.setup import request

    try:
        request_id = request.accept()
    except request.NotAccepted as exc:
        click.echo(f"accept-setup: {exc}", err=True)
        sys.exit(engine.EXIT_FAILED)
    click.echo(f"setup request {request_id} accepted; {request.SETUP_TARGET} started"
               if request_id else "no setup request is waiting")


@main.command("apply-credentials")
def apply_credentials_command() -> None:
    """Set the admin password, SSH keys and SSH password login from the setup inputs
    (what alga-appliance-credentials.service runs before preflight)."""
    from host.setup import credentials

    try:
        done = credentials.run()
    except (credentials.NotApplied, state.StateFileInvalid) as exc:
        click.echo(f"apply-credentials: {exc}", err=True)
        sys.exit(engine.EXIT_FAILED)
    for line in done:
        click.echo(line)


@main.command("recover-setup")
def recover_setup_command() -> None:
    """Record a setup run whose process is gone as interrupted, and resume it when a reboot
    interrupted it (what the boot unit runs before the web service starts)."""
    from host.setup import request

    try:
        found = request.resume_after_reboot()
    except request.NotAccepted as exc:
        click.echo(f"recover-setup: {exc}", err=True)
        sys.exit(engine.EXIT_FAILED)
    if found is None:
        click.echo("no interrupted setup")
    elif found.rebooted:
        click.echo(f"setup was interrupted by a reboot in {found.phase} (last progress "
                   f"{found.at}); resumed: {request.SETUP_TARGET} started")
    else:
        click.echo(f"setup was interrupted in {found.phase} (last progress {found.at}); "
                   "recorded as failed: resume it on the Progress page or the console")


@main.command("collect-status")
@click.option("--if-due", is_flag=True,
              help="Skip unless due (every run while installing, every 60 s once healthy).")
@click.option("--kubeconfig", default=paths.K3S_KUBECONFIG, show_default=True)
def collect_status_command(if_due: bool, kubeconfig: str) -> None:
    """Write the status snapshot (what the status timer runs, and on demand)."""
    from host import status  # the snapshot's imports are only needed here
    from host.setup import recovery
    from host.update import history

    # Every 10 s as root: a setup run or an update killed by a reboot or a crash is marked
    # interrupted here, which also lets the web UI offer Resume or updates again.
    recovery.recover()
    history.mark_interrupted()
    if if_due and not status.due(None):
        return
    snapshot = status.take_snapshot(None, Kube(kubeconfig))
    click.echo(f"{snapshot['rollup']['state']}: {snapshot['rollup']['message']}")
    _keep_bootstrap_log(Kube(kubeconfig), snapshot)


def _keep_bootstrap_log(kube: Kube, snapshot: dict) -> None:
    """Keep the bootstrap job's log once it ended (it deletes itself 300 s later)."""
    from host.cluster.kube import KubeError
    from host.support import logs

    jobs = [w["name"] for w in snapshot["components"]["workloads"] if w["kind"] == "Job"]
    if not logs.bootstrap_log_wanted(jobs, None):
        return
    try:
        kept = logs.keep_bootstrap_log(None, kube)
    except KubeError as exc:  # the snapshot says what the cluster's trouble is
        click.echo(f"the bootstrap job's log was not kept this time: {exc}", err=True)
        return
    if kept:
        click.echo(f"kept the log of bootstrap job {kept} ({state.BOOTSTRAP_LOG.path()})")


@main.command("console")
@click.option("--plain", is_flag=True,
              help="Line-by-line prompts (chosen by itself on serial lines and dumb terminals).")
@click.option("--service", is_flag=True,
              help="As the alga-appliance-console@ service on a tty: no Exit, Ctrl-\\ and "
                   "Ctrl-Z ignored.")
def console_command(plain: bool, service: bool) -> None:
    """The console menu: set up, status, support bundle, token and a login shell."""
    from host.console import app
    sys.exit(app.start(None, plain, service))


@main.command("console-serial")
def console_serial_command() -> None:
    """Start the console service on each serial line the kernel's console uses."""
    from host.console import serial
    started = serial.start_consoles()
    click.echo(f"console started on {', '.join(started)}" if started
               else "no serial console: nothing to start")


@main.command("console-banner")
def console_banner_command() -> None:
    """Refresh the console banner (/etc/issue.d): node addresses, setup URL and token."""
    from host.console import banner
    changed = banner.update()
    # Never the banner itself: it holds the token, and this output goes to the journal.
    click.echo("console banner updated" if changed else "console banner unchanged")


@main.group("network")
def network_group() -> None:
    """The appliance's addressing: DHCP or static per wired interface, applied with
    automatic rollback unless confirmed."""


@network_group.command("show")
@click.option("--json", "as_json", is_flag=True, help="The settings and the last change as JSON.")
def network_show_command(as_json: bool) -> None:
    """Each wired interface: link, MAC, current addresses and how it is set."""
    from host.net import netchange, netconfig

    settings = netconfig.read_settings()
    interfaces = netconfig.wired_interfaces()
    change = state.read(state.NETWORK_CHANGE)
    if as_json:
        click.echo(json.dumps({"interfaces": [
            {"name": i.name, "mac": i.mac, "link": i.link, "addresses": list(i.addresses),
             "settings": netconfig.settings_of(settings, i.name)} for i in interfaces],
            "last_change": change}, indent=2))
        return
    for found in interfaces:
        wanted = netchange.summary(found.name, netconfig.settings_of(settings, found.name))
        click.echo(f"{found.name}  link {found.link}  MAC {found.mac}\n"
                   f"  now: {', '.join(found.addresses) or 'no address'}\n  set: {wanted}")
    if not interfaces:
        click.echo("no wired interface found (check the VM's network adapter)")
    if change:
        click.echo(f"last change: {change['summary']}, {change['status'].replace('_', ' ')}"
                   + (f" (confirm by {change['deadline']})" if change["status"] == "pending"
                      else f" at {change['settled_at']}"))


def _network_answers(from_file: Path | None, flags: dict) -> dict:
    given = {field: value for field, value in flags.items() if value is not None}
    if from_file is None:
        return given
    if given:
        raise click.UsageError("give the settings as options or in --from-file, not both")
    try:
        answers = json.loads(from_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise click.UsageError(f"{from_file} is not a readable JSON file ({exc})") from exc
    if not isinstance(answers, dict):
        raise click.UsageError(f"{from_file} must hold one JSON object, like "
                               '{"interface": "ens3", "mode": "dhcp"}')
    return answers


def _require_root(command: str) -> None:
    if os.geteuid() != 0:
        click.echo(f"network {command}: must run as root (sudo alga-appliance network "
                   f"{command}): it changes this machine's network", err=True)
        sys.exit(engine.EXIT_FAILED)


@network_group.command("set")
@click.option("--interface", help="A wired interface, as network show lists it.")
@click.option("--mode", help="dhcp or static.")
@click.option("--ipv4-address", help="Static IPv4 address with prefix, like 192.0.2.10/24.")
@click.option("--ipv4-gateway", help="The IPv4 router, in that subnet.")
@click.option("--ipv6-address", help="Static IPv6 address with prefix, like 2001:db8::10/64.")
@click.option("--ipv6-gateway", help="The IPv6 router (in the subnet, or link-local).")
@click.option("--dns", "dns_servers", help="Up to 3 DNS servers, comma-separated.")
@click.option("--vlan", help="An 802.1Q VLAN id (1-4094) to put the addressing on.")
@click.option("--from-file", type=HostPath(dir_okay=False, path_type=Path),
              help="A JSON object with the same fields (interface, mode, ipv4_address, ...).")
@click.option("--timeout", default=60, show_default=True, type=click.IntRange(5, 3600),
              help="Seconds to confirm in before the change is rolled back.")
def network_set_command(from_file: Path | None, timeout: int, **flags) -> None:
    """Set one interface's addressing and apply it; it is rolled back unless `network
    confirm` follows within the timeout."""
    from host.console import banner
    from host.core.validation import InputErrors
    from host.net import netchange, netconfig

    _require_root("set")
    answers = _network_answers(from_file, flags)
    names = [found.name for found in netconfig.wired_interfaces()]
    try:
        interface, settings = netconfig.parse_settings(answers, names)
        change = netchange.apply(interface, settings, window=timeout)
    except InputErrors as exc:
        for error in exc.errors:
            click.echo(f"network set: {error.field}: {error.message}", err=True)
        sys.exit(engine.EXIT_FAILED)
    except netchange.ChangeRefused as exc:
        click.echo(f"network set: {exc}", err=True)
        sys.exit(engine.EXIT_FAILED)
    problem = banner.refresh()
    click.echo(f"applied: {change['summary']}\nKeep it: sudo alga-appliance network confirm "
               f"(before {change['deadline']}, else it is rolled back)"
               + (f"\nnote: {problem}" if problem else ""))


@network_group.command("confirm")
def network_confirm_command() -> None:
    """Keep the change waiting for confirmation."""
    from host.net import netchange

    _require_root("confirm")
    try:
        change = netchange.confirm()
    except netchange.NothingPending as exc:
        click.echo(f"network confirm: {exc}", err=True)
        sys.exit(engine.EXIT_FAILED)
    click.echo(f"confirmed: {change['summary']}")


@network_group.command("rollback")
@click.option("--if-pending", is_flag=True,
              help="Nothing pending is not an error (the timer's and the boot check's use).")
@click.option("--at-boot", is_flag=True,
              help="Before networkd starts: restore and generate, without netplan apply.")
@click.option("--timed-out", is_flag=True, help="Recorded as not confirmed in time (the timer's "
                                                "use), not as rolled back by the admin.")
def network_rollback_command(if_pending: bool, at_boot: bool, timed_out: bool) -> None:
    """Restore the configuration the pending change replaced."""
    from host.console import banner
    from host.net import netchange

    _require_root("rollback")
    reason = netchange.TIMED_OUT if timed_out else \
        "not confirmed before a reboot" if at_boot else "rolled back by the admin"
    try:
        change = netchange.rollback(reason=reason, at_boot=at_boot)
    except netchange.NothingPending as exc:
        click.echo(f"network rollback: {exc}", err=not if_pending)
        sys.exit(0 if if_pending else engine.EXIT_FAILED)
    except hostcmd.CommandFailed as exc:
        click.echo(f"network rollback: the previous files are back in {paths.NETPLAN_DIR} "
                   f"but could not be applied ({exc}); next step: reboot, or sudo netplan "
                   f"apply", err=True)
        sys.exit(engine.EXIT_FAILED)
    problem = None if at_boot else banner.refresh()
    click.echo(f"rolled back: {change['summary']}" + (f"\nnote: {problem}" if problem else ""))


@network_group.command("edit")
@click.option("--plain", is_flag=True,
              help="Line-by-line prompts (chosen by itself on serial lines and dumb terminals).")
@click.option("--timeout", default=60, show_default=True, type=click.IntRange(5, 3600),
              help="Seconds to keep the change in before it is rolled back.")
def network_edit_command(plain: bool, timeout: int) -> None:
    """The console's Network entry: choose an interface, DHCP or static, review, apply,
    keep or roll back."""
    from host.console import app

    _require_root("edit")
    sys.exit(app.start_network(None, plain, timeout))


@main.command("support-bundle")
@click.option("-o", "--output", type=HostPath(path_type=Path),
              help=f"A directory, or the archive's path [default: {paths.SUPPORT_DIR}, where "
                   "the newest 5 are kept].")
@click.option("--obfuscate-network", is_flag=True,
              help="Replace IP addresses and this site's host names; the mapping stays on "
                   "this host, beside the archive.")
@click.option("--no-redact", is_flag=True,
              help="Leave passwords, tokens and keys in (stamped in the bundle); only when "
                   "support asks.")
def support_bundle_command(output: Path | None, obfuscate_network: bool,
                           no_redact: bool) -> None:
    """Collect state, logs and cluster status, secrets removed, into one archive for support."""
    from host.support import bundle  # the bundle's imports are only needed here

    if os.geteuid() != 0:
        click.echo("support-bundle: must run as root (sudo alga-appliance support-bundle): it "
                   "reads the cluster's configuration and the secrets it removes", err=True)
        sys.exit(engine.EXIT_FAILED)
    try:
        archive = bundle.create(None, output, obfuscate_network=obfuscate_network,
                                redact=not no_redact, progress=bundle.terminal_progress())
    except bundle.BundleError as exc:
        click.echo(f"support-bundle: {exc}", err=True)
        sys.exit(engine.EXIT_FAILED)
    if obfuscate_network:
        click.echo(f"the network mapping stays here, do not send it: "
                   f"{bundle.mapping_path(archive)}", err=True)
    click.echo(archive)


@main.command("accept-support-bundle")
def accept_support_bundle_command() -> None:
    """Make the support bundle the web UI asked for (what its .path unit runs)."""
    from host.core import spool
    from host.support import bundle, request

    try:
        name = request.accept()
    except (bundle.BundleError, spool.Malformed) as exc:
        click.echo(f"accept-support-bundle: {exc}", err=True)
        sys.exit(engine.EXIT_FAILED)
    click.echo(f"support bundle {name} made" if name else "no support bundle request is waiting")


@main.command("diagnose-network")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON "
              "(preflight's format, schemas/preflight-report.schema.json).")
def diagnose_network_command(as_json: bool) -> None:
    """Run preflight's network checks again, read-only (DNS, proxy, release source,
    registries, downloads, clock), and print the report; the web UI shows it too.
    Exits 1 when a check fails."""
    from host.setup import diagnostics

    if os.geteuid() != 0:
        click.echo("diagnose-network: must run as root (sudo alga-appliance diagnose-network): "
                   "it records its report in /var/lib/alga-appliance", err=True)
        sys.exit(engine.EXIT_FAILED)
    # Each check as it finishes on stderr; the report alone on stdout.
    report = diagnostics.run(log=lambda line: click.echo(line, err=True))
    status = diagnostics.last_status()
    click.echo(json.dumps(report, indent=2) if as_json
               else "\n".join(diagnostics.report_lines(status, report)))
    sys.exit(engine.EXIT_FAILED if report["outcome"] == "fail" else 0)


@main.command("accept-network-diagnostics")
def accept_network_diagnostics_command() -> None:
    """Run the network checks the web UI or the console asked for (what its .path unit
    runs)."""
    from host.core import spool
    from host.setup import diagnostics

    try:
        report = diagnostics.accept()
    except spool.Malformed as exc:
        click.echo(f"accept-network-diagnostics: {exc}", err=True)
        sys.exit(engine.EXIT_FAILED)
    click.echo(f"network diagnostics: {report['outcome']}" if report
               else "no network diagnostics request is waiting")


def _log_names_help() -> str:
    from host.support import logs

    groups: dict[str, list[str]] = {}
    for source in logs.ALL:
        groups.setdefault(source.group, []).append(source.name)
    return "\n\n".join(f"{group}: {', '.join(names)}" for group, names in groups.items())


@main.command("logs", epilog=_log_names_help())
@click.argument("name")
@click.option("--previous", is_flag=True,
              help="The previous container's log: why a restarted component stopped.")
@click.option("--lines", default=str(200), show_default=True, metavar="N",
              help="How many of the last lines to show (1 to 2000).")
@click.option("--kubeconfig", default=paths.K3S_KUBECONFIG, show_default=True)
def logs_command(name: str, previous: bool, lines: str, kubeconfig: str) -> None:
    """Show the end of one layer's log, redacted, by NAME: an Alga component, a Flux
    controller, k3s, appliance, update or phase-<name> (the names are below). Cluster logs
    and the k3s journal need root: run it with sudo."""
    from host.cluster.kube import KubeError
    from host.support import logs

    try:
        query = logs.parse(name, lines, previous)
    except logs.BadQuery as exc:
        raise click.UsageError("; ".join(
            f"unknown log {name!r}: NAME must be {f['message']}" if f["field"] == "source"
            else f"--{f['field']}: {f['message']}" for f in exc.fields)) from exc
    try:
        excerpt = logs.read(query, None, Kube(kubeconfig))
    except (logs.LogUnavailable, KubeError) as exc:
        click.echo(f"logs: {exc}", err=True)
        sys.exit(engine.EXIT_FAILED)
    if excerpt.note:
        click.echo(f"({excerpt.note})", err=True)
    if excerpt.lines:
        click.echo("\n".join(excerpt.lines))


@main.command("accept-logs")
@click.option("--kubeconfig", default=paths.K3S_KUBECONFIG, show_default=True)
def accept_logs_command(kubeconfig: str) -> None:
    """Read the log the web UI's Logs page asked for (what its .path unit runs)."""
    from host.core import spool
    from host.support import log_request

    try:
        request_id = log_request.accept(None, Kube(kubeconfig))
    except spool.Malformed as exc:
        click.echo(f"accept-logs: {exc}", err=True)
        sys.exit(engine.EXIT_FAILED)
    click.echo(f"log request {request_id} answered" if request_id
               else "no log request is waiting")


def _digest(value: str | None) -> str | None:
    if value is not None and not re.fullmatch(r"sha256:[0-9a-f]{64}", value):
        raise click.BadParameter(f"{value!r} is not a digest: give sha256: and 64 lower-case "
                                 "hex digits, as `alga-appliance update --check` shows it")
    return value


@main.command("update")
@click.option("--channel", "channel", type=click.Choice(channels.CHANNELS),
              help="The app release channel to update to (default: the installed one).")
@click.option("--check", "check_only", is_flag=True,
              help="Only show what would change; nothing is changed.")
@click.option("--confirm", is_flag=True,
              help="Confirm switching to nightly, going back to an older release or "
                   "switching the release source.")
@click.option("--digest", callback=lambda ctx, param, value: _digest(value),
              help="Apply only if the channel still names this release artifact (the digest "
                   "--check showed, sha256:<64 hex>).")
@click.option("--kubeconfig", default=paths.K3S_KUBECONFIG, show_default=True)
def update_command(channel: str | None, check_only: bool, confirm: bool, digest: str | None,
                   kubeconfig: str) -> None:
    """Update the app to what a channel names now (exit 0 up to date, updated or checked;
    1 failed; 2 needs --confirm; 75 another setup or update is running)."""
    from host.update import apply, check, history

    channel = channel or _installed_channel("update")
    try:
        if check_only:
            entry = check.check(None, channel, "cli")
        else:
            click.echo(f"updating to the {channel} channel; progress is logged to "
                       f"{paths.UPDATE_LOG}")
            entry = apply.apply(None, channel, confirm, "cli", kubeconfig, digest=digest)
    except apply.UpdateBusy as exc:
        click.echo(f"update: {exc}", err=True)
        sys.exit(engine.EXIT_BUSY)
    except check.ConfirmationRequired as exc:
        click.echo(f"update: {exc}\n  to go ahead: alga-appliance update --channel {channel} "
                   "--confirm", err=True)
        sys.exit(2)
    click.echo("\n".join(history.summary_lines(entry)))
    sys.exit(engine.EXIT_FAILED if entry["result"] == "failed" else 0)


def _installed_channel(command: str) -> str:
    """The channel of the installed release; before setup has installed one, says so and
    exits 1."""
    current = state.read(state.SELECTED_RELEASE)
    if current is None:
        click.echo(f"{command}: no release is installed yet, so there is no installed "
                   "channel: complete setup first, or give --channel stable or nightly",
                   err=True)
        sys.exit(engine.EXIT_FAILED)
    return current["channel"]


@main.command("check-updates")
@click.option("--if-due", is_flag=True,
              help="Skip unless the last check is a day old (what the daily timer runs).")
def check_updates_command(if_due: bool) -> None:
    """Check whether the installed channel names a newer release, for the status page and
    the console banner; nothing is applied (exit 0 checked or skipped, 1 failed)."""
    from host.core.failures import OperationFailed
    from host.update import notice, request

    try:
        found = request.scheduled_check(None, if_due)
    except request.CheckSkipped as exc:
        click.echo(f"check-updates: {exc}")
        return
    except OperationFailed as exc:
        click.echo(f"check-updates: {exc.suspected_cause}\n  next step: {exc.next_step}",
                   err=True)
        sys.exit(engine.EXIT_FAILED)
    click.echo("\n".join(notice.lines(found)))
    sys.exit(engine.EXIT_FAILED if found["failure"] else 0)


@main.command("accept-update")
@click.option("--kubeconfig", default=paths.K3S_KUBECONFIG, show_default=True)
def accept_update_command(kubeconfig: str) -> None:
    """Run the update check or apply the web UI asked for (what its .path unit runs)."""
    from host.update import history, request

    entry = request.accept(None, kubeconfig)
    if entry is None:
        click.echo("no update request is waiting")
        return
    click.echo("\n".join(history.summary_lines(entry)))
    sys.exit(engine.EXIT_FAILED if entry["result"] == "failed" else 0)


def _version(value: str | None) -> str | None:
    if value is not None and not re.fullmatch(r"[0-9]+\.[0-9]+\.[0-9]+", value):
        raise click.BadParameter(f"{value!r} is not a version: give major.minor.patch, as "
                                 "`alga-appliance self-update --check` shows it")
    return value


@main.command("self-update")
@click.option("--check", "check_only", is_flag=True,
              help="Show the installed version and what the pinned repository offers.")
@click.option("--apply", "apply_version", is_flag=False, flag_value="newest", default=None,
              metavar="[VERSION]",
              help="Apply VERSION (default: the newest offered): switch, restart, health "
                   "check; rolled back by itself if the new version fails.")
@click.option("--force-downgrade", is_flag=True,
              help="For support: allow --apply to go back to an older version.")
def self_update_command(check_only: bool, apply_version: str | None,
                        force_downgrade: bool) -> None:
    """Update the appliance software itself from its pinned, signed host releases (exit 0
    checked or applied; 1 refused, rolled back or failed)."""
    from host.update import self_update

    if check_only == (apply_version is not None):
        raise click.UsageError("give exactly one of --check and --apply [VERSION]")
    if check_only:
        found = self_update.check(None)
        click.echo("\n".join(self_update.check_lines(found)))
        sys.exit(engine.EXIT_FAILED if found["entry"]["outcome"] == "failed" else 0)
    version = None if apply_version == "newest" else _version(apply_version)
    if os.geteuid() != 0:
        click.echo("self-update: --apply must run as root (sudo alga-appliance self-update "
                   "--apply): it replaces the appliance software and restarts its services",
                   err=True)
        sys.exit(engine.EXIT_FAILED)
    click.echo("applying a self-update: the web UI restarts and is back within a minute")
    entry = self_update.run(None, version, force_downgrade)
    click.echo(self_update.entry_line(entry))
    sys.exit(0 if entry["outcome"] == "applied" else engine.EXIT_FAILED)


@main.command("accept-self-update")
def accept_self_update_command() -> None:
    """Do the self-update check or apply the web UI asked for (what its .path unit runs)."""
    from host.core import spool
    from host.update import self_update

    try:
        entry = self_update.accept(None)
    except spool.Malformed as exc:
        click.echo(f"accept-self-update: {exc}", err=True)
        sys.exit(engine.EXIT_FAILED)
    if entry is None:
        click.echo("no self-update request is waiting")
        return
    click.echo(self_update.entry_line(entry))
    sys.exit(engine.EXIT_FAILED if entry["outcome"] in ("failed", "refused", "rolled-back")
             else 0)


@main.command("recover-self-update")
def recover_self_update_command() -> None:
    """Finish or undo a self-update a power loss cut short (at boot, before the web UI)."""
    from host.update import self_update

    outcome = self_update.recover(None)
    if outcome is None:
        click.echo("no self-update was cut short")
        return
    click.echo(f"a self-update from {outcome.from_version} to {outcome.to_version} was cut "
               f"short: {'finished' if outcome.result == 'applied' else 'undone'}; version "
               f"{self_update.installed_version(None)} runs")


@main.command("migrate-state")
def migrate_state_command() -> None:
    """Write every state file in this version's shape (a self-update runs it after the
    switch, as the new version)."""
    from host.update import self_update

    written = self_update.migrate_state(None)
    click.echo(f"state files in this version's shape: {', '.join(written) or 'none yet'}")


@main.command("maintenance")
@click.option("--json", "as_json", is_flag=True, help="The record as JSON.")
def maintenance_command(as_json: bool) -> None:
    """What is installed (OS, kernel, k3s, Flux, app), the last install or update, and the
    last self-update of the appliance software."""
    import json

    from host.update import self_update

    record = state.read(state.MAINTENANCE)
    if record is None:
        click.echo("maintenance: no record yet: setup has not installed the app", err=True)
        sys.exit(engine.EXIT_FAILED)
    if as_json:
        click.echo(json.dumps(record, indent=2, sort_keys=True))
        return
    event = record["last_event"]
    click.echo("\n".join([
        f"OS: {record['os']['id']} {record['os']['version_id']}, kernel {record['kernel']}",
        f"k3s: {record['k3s_version'] or 'not installed by setup'}, "
        f"Flux: {record['flux_version'] or 'not installed by setup'}",
        f"app: {record['app']['channel']} {record['app']['release_version']}",
        f"installed: {record['last_install'] or 'never'}, "
        f"last update: {record['last_update'] or 'never'}",
        "last event: " + (f"{event['kind']} {event['from_release'] or '(none)'} → "
                          f"{event['to_release']} at {event['at']}" if event else "none"),
        "last self-update: " + (self_update.entry_line(record["self_updates"][0])
                                if record["self_updates"] else "none")]))
