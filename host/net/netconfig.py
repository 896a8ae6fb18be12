"""The appliance's network settings: which wired interfaces there are, how each is
addressed (DHCP or static, optionally on a VLAN), the checks on what people type, and the
one netplan file that describes them all.

The settings live in /etc/alga-appliance/network.json (schemas/network.schema.json), one
entry per interface:
  {"mode": "dhcp"} or {"mode": "static", "addresses": ["192.0.2.10/24", "2001:db8::10/64"],
  "gateway4": "192.0.2.1", "gateway6": "2001:db8::1", "dns": ["192.0.2.53"]}, plus
  "vlan": 1-4094 when the addressing is on a tagged VLAN of that interface.
An interface the settings do not name is addressed by DHCP, as the installer left it.
"""

import ipaddress
import json
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from host.core import hostcmd, paths, state
from host.core.validation import (
    FieldError,
    InputErrors,
    IPAddress,
    ip_address,
    not_a_resolver,
    validate,
)
from host.net.addresses import VIRTUAL_INTERFACES

# The answers as typed (console fields, CLI flags, a JSON file): all text.
FIELDS = ("interface", "mode", "ipv4_address", "ipv4_gateway", "ipv6_address", "ipv6_gateway",
          "dns_servers", "vlan")
MODES = ("dhcp", "static")
MAX_DNS = 3  # what the console and the banner show; resolved uses the first three anyway
VLAN_IDS = range(1, 4095)  # 0 and 4095 are reserved by 802.1Q
PREFIXES = {4: range(1, 33), 6: range(1, 129)}
_INTERFACE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")  # the kernel's IFNAMSIZ, no '/'


@dataclass(frozen=True)
class Interface:
    """A wired interface as the kernel shows it now."""
    name: str
    mac: str
    link: str  # the kernel's operstate: up, down, dormant, unknown...
    addresses: tuple[str, ...]  # address/prefix, IPv4 first


def wired_interfaces(root: Path | None = None) -> list[Interface]:
    """The machine's wired Ethernet interfaces, by name: those backed by a device (so not
    lo, bridges, VLANs or veth pairs), not wireless, and not k3s's or containers' own."""
    sys_net = paths.on_host(paths.SYS_NET, root)
    found = []
    for entry in sorted(sys_net.iterdir()) if sys_net.is_dir() else []:
        if (entry.name.startswith(VIRTUAL_INTERFACES) or not (entry / "device").exists()
                or (entry / "wireless").exists() or _read(entry / "type") != "1"):
            continue
        found.append(Interface(entry.name, _read(entry / "address"),
                               _read(entry / "operstate") or "unknown",
                               tuple(_current_addresses().get(entry.name, ()))))
    return found


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _current_addresses() -> dict[str, list[str]]:
    """Every interface's global addresses (address/prefix) as `ip` reports them."""
    try:
        done = subprocess.run(["ip", "-j", "address", "show"], capture_output=True, text=True,
                              timeout=10)
        listed = json.loads(done.stdout or "[]")
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return {}  # shown as no addresses: the settings do not depend on it
    found: dict[str, list[str]] = {}
    for link in listed:
        infos = sorted(link.get("addr_info", []), key=lambda a: a.get("family") != "inet")
        found[link["ifname"]] = [f"{a['local']}/{a['prefixlen']}" for a in infos
                                 if a.get("scope") == "global"]
    return found


# --- the settings ------------------------------------------------------------------------


def read_settings(root: Path | None = None) -> dict:
    """The appliance's settings (network.json), or none yet: every interface by DHCP."""
    return state.read(state.NETWORK, root) or {"interfaces": {}}


def settings_of(document: dict, interface: str) -> dict:
    return document["interfaces"].get(interface, {"mode": "dhcp"})


def as_answers(interface: str, settings: dict) -> dict:
    """The typed answers that parse back to `settings` (the defaults screens offer)."""
    answers = {"interface": interface, "mode": settings["mode"],
               "vlan": str(settings.get("vlan", ""))}
    for version in (4, 6):
        address = next((a for a in settings.get("addresses", [])
                        if ipaddress.ip_interface(a).version == version), "")
        answers[f"ipv{version}_address"] = address
        answers[f"ipv{version}_gateway"] = settings.get(f"gateway{version}", "")
    answers["dns_servers"] = ", ".join(settings.get("dns", []))
    return answers


def parse_settings(raw: dict, interfaces: list[str]) -> tuple[str, dict]:
    """The interface and its settings for `raw` answers, or InputErrors naming each bad
    field, why, and what it takes."""
    errors = [FieldError(k, f"unknown field; allowed: {', '.join(FIELDS)}")
              for k in sorted(set(raw) - set(FIELDS))]
    text = {}
    for field in FIELDS:
        value = raw.get(field, "")
        if isinstance(value, int) and not isinstance(value, bool) and field == "vlan":
            value = str(value)
        if not isinstance(value, str):
            errors.append(FieldError(field, "must be text"))
            value = ""
        text[field] = value.strip()
    interface = text["interface"]
    if not _INTERFACE_NAME.match(interface) or interface not in interfaces:
        known = ", ".join(interfaces) or "none found"
        errors.append(FieldError("interface", f"must be one of this machine's wired "
                                              f"interfaces: {known}"))
    settings = {}
    try:
        settings = _settings(text)
    except InputErrors as exc:
        errors += exc.errors
    if errors:  # in the order the fields are asked
        raise InputErrors(sorted(errors, key=lambda e: (
            FIELDS.index(e.field) if e.field in FIELDS else len(FIELDS), e.field)))
    validate({"interfaces": {interface: settings}}, "network.schema.json",
             name="network settings", source="parsed answers")
    return interface, settings


def _settings(text: dict) -> dict:
    errors: list[FieldError] = []

    def check(field: str, parse, *args):
        try:
            return parse(text[field], *args)
        except ValueError as exc:
            errors.append(FieldError(field, str(exc)))
            return None

    mode = text["mode"].lower() or "dhcp"
    vlan = check("vlan", _vlan)
    if mode not in MODES:
        raise InputErrors([FieldError("mode", "must be dhcp (addresses from the network's "
                                              "DHCP server) or static (addresses you give)")])
    settings: dict = {"mode": mode}
    if mode == "dhcp":
        for field in FIELDS[2:7]:
            if text[field]:
                errors.append(FieldError(field, "is only used with mode static: clear it, "
                                                "or choose static"))
    else:
        addresses, gateways = [], {}
        for version in (4, 6):
            before = len(errors)
            address = check(f"ipv{version}_address", _address, version)
            # A gateway is checked against a valid address only: one error per mistake.
            gateway = check(f"ipv{version}_gateway", _gateway, version, address) \
                if len(errors) == before else None
            if address:
                addresses.append(str(address))
            if gateway:
                gateways[f"gateway{version}"] = str(gateway)
        dns = check("dns_servers", _dns)
        if not addresses and not any(e.field.endswith("_address") for e in errors):
            errors.append(FieldError("ipv4_address", "static addressing needs an IPv4 or an "
                                                     "IPv6 address, like 192.0.2.10/24"))
        settings.update(addresses=addresses, **gateways, dns=dns or [])
    if errors:
        raise InputErrors(errors)
    if vlan is not None:
        settings["vlan"] = vlan
    return settings


def _vlan(text: str) -> int | None:
    if not text:
        return None
    if not text.isascii() or not text.isdigit() or int(text) not in VLAN_IDS:
        raise ValueError(f"{text!r} is not a VLAN id: give a number from 1 to 4094, or "
                         "leave it empty for the untagged network")
    return int(text)


def _address(text: str, version: int) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface | None:
    """A static address with its prefix, usable as this host's own."""
    if not text:
        return None
    example = "192.0.2.10/24" if version == 4 else "2001:db8::10/64"
    host, slash, prefix = text.partition("/")
    address = ip_address(host)  # a zone raises ValueError, which names it
    if address is None or address.version != version:
        raise ValueError(f"{text!r} is not an IPv{version} address: give it with its prefix, "
                         f"like {example}")
    if not slash:
        raise ValueError(f"{text} has no prefix: add the network's prefix length, like "
                         f"{example}")
    if not prefix.isascii() or not prefix.isdigit() or int(prefix) not in PREFIXES[version]:
        top = PREFIXES[version][-1]
        raise ValueError(f"prefix /{prefix} is out of range: IPv{version} prefixes are 1 to "
                         f"{top}, like {example}")
    interface = ipaddress.ip_interface(f"{address}/{int(prefix)}")
    unusable = _not_a_host(address) or _not_a_member(interface)
    if unusable:
        raise ValueError(f"{text} is {unusable}; give this machine's own address, like "
                         f"{example}")
    return interface


def _not_a_host(address) -> str | None:
    """Why `address` cannot be a host's own unicast address, or None."""
    if address.is_loopback or address.is_unspecified:
        return "a loopback or unspecified address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_link_local:
        return "a link-local address (those are made automatically)"
    if getattr(address, "ipv4_mapped", None) is not None:
        return "an IPv4-mapped IPv6 address (give IPv4 as IPv4)"
    if address.version == 4 and address.is_reserved:
        return "a reserved address (240.0.0.0/4)"
    return None


def _not_a_member(interface) -> str | None:
    """Why `interface`'s address is not a usable member of its subnet, or None."""
    network = interface.network
    if network.version == 4 and network.prefixlen <= 30:
        if interface.ip == network.network_address:
            return f"the network address of {network}"
        if interface.ip == network.broadcast_address:
            return f"the broadcast address of {network}"
    return None


def _gateway(text: str, version: int, interface) -> IPAddress | None:
    if not text:
        return None
    gateway = ip_address(text)
    if gateway is None or gateway.version != version:
        raise ValueError(f"{text!r} is not an IPv{version} address: give the router's "
                         "address, or leave it empty")
    if interface is None:
        raise ValueError(f"needs an IPv{version} address on this interface: give one, or "
                         "leave the gateway empty")
    unusable = _not_a_host(gateway) if not (version == 6 and gateway.is_link_local) else None
    if unusable:
        raise ValueError(f"{text} is {unusable}; give the router's address")
    if gateway == interface.ip:
        raise ValueError(f"{text} is this machine's own address: give the router's")
    on_link = version == 6 and gateway.is_link_local  # IPv6 routers often use fe80::
    if not on_link and gateway not in interface.network:
        raise ValueError(f"{text} is not in the subnet {interface.network}: give a router "
                         "on that subnet, or correct the address's prefix")
    member = _not_a_member(ipaddress.ip_interface(f"{gateway}/{interface.network.prefixlen}"))
    if not on_link and member:
        raise ValueError(f"{text} is {member}, not a router: give the router's address")
    return gateway


def _dns(text: str) -> list[str]:
    listed = [item for item in re.split(r"[,\s]+", text) if item]
    if len(listed) > MAX_DNS:
        raise ValueError(f"give at most {MAX_DNS} DNS servers")
    servers = []
    for item in listed:
        address = ip_address(item)
        if address is None:
            raise ValueError(f"{item!r} is not an IPv4 or IPv6 address")
        unusable = not_a_resolver(address)
        if unusable:
            raise ValueError(f"{item} is {unusable}; give the network's DNS servers")
        if str(address) not in servers:
            servers.append(str(address))
    return servers


# --- the netplan file ----------------------------------------------------------------------


def render(settings: dict, interfaces: list[str]) -> str:
    """The appliance's netplan file: every wired interface in `interfaces`, addressed as
    `settings` says (DHCP when it does not name one). A VLAN's addressing is on the VLAN
    interface (<name>.<id>); its parent then carries the tagged traffic only."""
    ethernets, vlans = {}, {}
    for name in interfaces:
        wanted = settings_of(settings, name)
        addressing = _addressing(wanted)
        # Not optional, as in the installer's file: boot waits for any one NIC, 30 s at most
        # (units/systemd-networkd-wait-online.service.d); an optional NIC would be ignored.
        if "vlan" in wanted:
            ethernets[name] = {"dhcp4": False, "dhcp6": False}
            vlans[f"{name}.{wanted['vlan']}"] = {"id": wanted["vlan"], "link": name,
                                                 **addressing}
        else:
            ethernets[name] = addressing
    network: dict = {"version": 2, "renderer": "networkd", "ethernets": ethernets}
    if vlans:
        network["vlans"] = vlans
    header = ("# Written by alga-appliance (the console's Network entry, or: sudo "
              "alga-appliance network set).\n# Edits here are replaced: change it there.\n")
    return header + yaml.safe_dump({"network": network}, sort_keys=False)


def _addressing(wanted: dict) -> dict:
    if wanted["mode"] == "dhcp":
        return {"dhcp4": True, "dhcp6": True}
    addressing: dict = {"dhcp4": False, "dhcp6": False, "addresses": wanted["addresses"]}
    routes = [{"to": "default", "via": wanted[key]} for key in ("gateway4", "gateway6")
              if key in wanted]
    if routes:
        addressing["routes"] = routes
    if wanted["dns"]:
        addressing["nameservers"] = {"addresses": wanted["dns"]}
    return addressing


class NetplanRefused(Exception):
    """netplan would not take the rendered file; the message is netplan's own."""


def networkd_files(text: str) -> dict[str, str]:
    """What the real `netplan generate` makes of the netplan file `text`, in a scratch root:
    {file name: content} of the systemd-networkd files. Checked before anything on the host
    changes, so a file netplan refuses is never applied."""
    with tempfile.TemporaryDirectory(prefix="alga-netplan-") as scratch:
        netplan_file = paths.on_host(paths.NETPLAN_FILE, Path(scratch))
        netplan_file.parent.mkdir(parents=True)
        netplan_file.write_text(text)
        netplan_file.chmod(0o600)
        try:
            hostcmd.run(["netplan", "generate", "--root-dir", scratch])
        except hostcmd.CommandFailed as exc:
            raise NetplanRefused(str(exc)) from exc
        generated = Path(scratch, "run/systemd/network")
        return {f.name: f.read_text() for f in sorted(generated.glob("*"))} \
            if generated.is_dir() else {}
