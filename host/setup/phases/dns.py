"""Custom DNS: the admin's resolvers for the host (a systemd-resolved drop-in) and for k3s
(its own resolv.conf, so CoreDNS never forwards to the 127.0.0.53 stub). System DNS changes
nothing, and undoes an earlier custom setup."""

from host.core import hostcmd, paths, state
from host.core.failures import SUPPORT_COMMAND, OperationFailed

READS = (state.SETUP_INPUTS,)
OURS = (paths.RESOLVED_DROPIN, paths.K3S_RESOLV_CONF)


def execute(ctx) -> None:
    dns = ctx.inputs()["dns"]
    if dns["mode"] == "system":
        ctx.action("system DNS: leaving the host's resolvers as they are")
        if any(paths.on_host(path, ctx.root).exists() for path in OURS):
            ctx.action("removing the custom DNS files of an earlier setup")
            for path in OURS:
                paths.on_host(path, ctx.root).unlink(missing_ok=True)
            _restart_resolved(ctx)
        ctx.record_host_changes([])
        return
    servers = dns["servers"]
    ctx.action(f"configuring custom resolvers {', '.join(servers)}")
    ctx.write_file(paths.RESOLVED_DROPIN,
                   "# Written by alga-appliance setup (custom DNS). Delete this file and "
                   f"restart systemd-resolved to undo.\n[Resolve]\nDNS={' '.join(servers)}\n",
                   0o644)
    ctx.write_file(paths.K3S_RESOLV_CONF,
                   "# Written by alga-appliance setup: the resolvers k3s gives CoreDNS.\n"
                   + "".join(f"nameserver {server}\n" for server in servers), 0o644)
    _restart_resolved(ctx)
    ctx.record_host_changes([
        {"path": paths.RESOLVED_DROPIN, "phase": "dns",
         "purpose": "custom resolvers for the host",
         "undo": "delete it, then: systemctl restart systemd-resolved"},
        {"path": paths.K3S_RESOLV_CONF, "phase": "dns",
         "purpose": "the resolvers k3s gives CoreDNS",
         "undo": "delete it and the resolv-conf line of /etc/rancher/k3s/config.yaml"}])


def _restart_resolved(ctx) -> None:
    ctx.action("restarting systemd-resolved")
    try:
        hostcmd.run(["systemctl", "try-restart", "systemd-resolved.service"])
    except hostcmd.CommandFailed as exc:
        raise OperationFailed("dns", f"systemd-resolved did not restart: {exc}",
                              "retry setup; if it fails again, send the support bundle "
                              f"(`{SUPPORT_COMMAND}`), which holds systemd-resolved's state"
                              ) from exc
