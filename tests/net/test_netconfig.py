"""The network settings: which interfaces are listed, what a typed answer may be (a table of
mistakes with the message each gets, hypothesis over valid and hostile answers), and the
netplan file, checked by what the real `netplan generate` makes of it for systemd-networkd."""

import ipaddress

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.hostile_inputs import objects_with, texts
from support.network import add_nic, network_host

from host.core.validation import InputErrors
from host.net import netconfig

NICS = ["ens3", "ens4"]


def parsed(**answers) -> dict:
    return netconfig.parse_settings({"interface": "ens3", **answers}, NICS)[1]


def error(**answers) -> tuple[str, str]:
    with pytest.raises(InputErrors) as caught:
        netconfig.parse_settings({"interface": "ens3", **answers}, NICS)
    assert len(caught.value.errors) == 1, caught.value.errors
    return caught.value.errors[0].field, caught.value.errors[0].message


# --- the interfaces -------------------------------------------------------------------------


def test_only_wired_nics_are_listed_with_mac_and_link(tmp_path, monkeypatch):
    network_host(tmp_path, monkeypatch)
    add_nic(tmp_path, "flannel.1")
    add_nic(tmp_path, "wlp2s0")
    (tmp_path / "sys/class/net/wlp2s0/wireless").mkdir()
    add_nic(tmp_path, "enp9s0", "52:54:00:ab:cd:ef", link="down")
    listed = netconfig.wired_interfaces(tmp_path)
    assert [i.name for i in listed] == ["enp9s0", "ens3", "ens4"]  # no lo, veth, cni, wifi
    assert (listed[0].mac, listed[0].link) == ("52:54:00:ab:cd:ef", "down")


# --- valid answers ----------------------------------------------------------------------------


def test_dhcp_is_the_default_and_takes_only_a_vlan():
    assert parsed() == {"mode": "dhcp"}
    assert parsed(mode="DHCP", vlan=" 42 ") == {"mode": "dhcp", "vlan": 42}


def test_static_dual_stack_with_gateways_and_dns():
    assert parsed(mode="static", ipv4_address="192.0.2.10/24", ipv4_gateway="192.0.2.1",
                  ipv6_address="2001:DB8::10/64", ipv6_gateway="fe80::1",
                  dns_servers="192.0.2.53, 2001:db8::53 192.0.2.53") == {
        "mode": "static", "addresses": ["192.0.2.10/24", "2001:db8::10/64"],
        "gateway4": "192.0.2.1", "gateway6": "fe80::1", "dns": ["192.0.2.53", "2001:db8::53"]}


def test_point_to_point_and_host_prefixes_have_no_network_or_broadcast_address():
    assert parsed(mode="static", ipv4_address="192.0.2.0/31",
                  ipv4_gateway="192.0.2.1")["addresses"] == ["192.0.2.0/31"]
    assert parsed(mode="static", ipv4_address="192.0.2.7/32")["addresses"] == ["192.0.2.7/32"]


def test_settings_round_trip_through_the_answers_the_screens_offer():
    settings = parsed(mode="static", ipv4_address="10.1.2.3/16", ipv4_gateway="10.1.0.1",
                      dns_servers="10.1.0.2", vlan="7")
    assert netconfig.parse_settings(netconfig.as_answers("ens3", settings), NICS) == \
        ("ens3", settings)


# --- mistakes, each named with its field, its cause and the fix ----------------------------------

MISTAKES = [
    ({"interface": "eth9"}, "interface", "wired interfaces: ens3, ens4"),
    ({"interface": "../../x"}, "interface", "wired interfaces"),
    ({"mode": "manual"}, "mode", "dhcp (addresses from"),
    ({"mode": "dhcp", "ipv4_address": "192.0.2.10/24"}, "ipv4_address", "only used with mode "
                                                                          "static"),
    ({"mode": "static"}, "ipv4_address", "needs an IPv4 or an IPv6 address"),
    ({"mode": "static", "ipv4_address": "192.0.2.10"}, "ipv4_address", "has no prefix"),
    ({"mode": "static", "ipv4_address": "192.0.2.10/33"}, "ipv4_address",
     "prefix /33 is out of range: IPv4 prefixes are 1 to 32"),
    ({"mode": "static", "ipv4_address": "192.0.2.10/0"}, "ipv4_address", "out of range"),
    ({"mode": "static", "ipv4_address": "192.0.2.10/x"}, "ipv4_address", "out of range"),
    ({"mode": "static", "ipv6_address": "2001:db8::1/129"}, "ipv6_address",
     "IPv6 prefixes are 1 to 128"),
    ({"mode": "static", "ipv4_address": "192.0.2.0/24"}, "ipv4_address",
     "the network address of 192.0.2.0/24"),
    ({"mode": "static", "ipv4_address": "192.0.2.255/24"}, "ipv4_address",
     "the broadcast address of 192.0.2.0/24"),
    ({"mode": "static", "ipv4_address": "224.0.0.5/24"}, "ipv4_address", "multicast"),
    ({"mode": "static", "ipv4_address": "127.0.0.2/8"}, "ipv4_address", "loopback"),
    ({"mode": "static", "ipv4_address": "0.0.0.0/8"}, "ipv4_address", "unspecified"),
    ({"mode": "static", "ipv4_address": "169.254.1.1/16"}, "ipv4_address", "link-local"),
    ({"mode": "static", "ipv4_address": "240.0.0.1/8"}, "ipv4_address", "reserved"),
    ({"mode": "static", "ipv6_address": "fe80::5/64"}, "ipv6_address", "link-local"),
    ({"mode": "static", "ipv6_address": "::ffff:192.0.2.1/96"}, "ipv6_address", "IPv4-mapped"),
    ({"mode": "static", "ipv6_address": "fe80::1%eth0/64"}, "ipv6_address", "has a zone"),
    ({"mode": "static", "ipv4_address": "2001:db8::1/64"}, "ipv4_address",
     "not an IPv4 address"),
    ({"mode": "static", "ipv4_address": "192.0.2.10/24", "ipv4_gateway": "198.51.100.1"},
     "ipv4_gateway", "not in the subnet 192.0.2.0/24"),
    ({"mode": "static", "ipv4_address": "192.0.2.10/24", "ipv4_gateway": "192.0.2.10"},
     "ipv4_gateway", "this machine's own address"),
    ({"mode": "static", "ipv4_address": "192.0.2.10/24", "ipv4_gateway": "192.0.2.255"},
     "ipv4_gateway", "the broadcast address of 192.0.2.0/24, not a router"),
    ({"mode": "static", "ipv4_address": "192.0.2.10/24", "ipv4_gateway": "192.0.2.0"},
     "ipv4_gateway", "the network address"),
    ({"mode": "static", "ipv4_address": "192.0.2.10/24", "ipv4_gateway": "gw"},
     "ipv4_gateway", "not an IPv4 address"),
    ({"mode": "static", "ipv6_address": "2001:db8::10/64", "ipv4_gateway": "192.0.2.1"},
     "ipv4_gateway", "needs an IPv4 address on this interface"),
    ({"mode": "static", "ipv6_address": "2001:db8::10/64", "ipv6_gateway": "2001:db9::1"},
     "ipv6_gateway", "not in the subnet 2001:db8::/64"),
    ({"mode": "static", "ipv6_address": "2001:db8::10/64", "ipv6_gateway": "ff02::1"},
     "ipv6_gateway", "multicast"),
    ({"mode": "static", "ipv4_address": "192.0.2.10/24", "dns_servers": "127.0.0.53"},
     "dns_servers", "a local address"),
    ({"mode": "static", "ipv4_address": "192.0.2.10/24", "dns_servers": "224.0.0.251"},
     "dns_servers", "multicast"),
    ({"mode": "static", "ipv4_address": "192.0.2.10/24", "dns_servers": "dns.example"},
     "dns_servers", "not an IPv4 or IPv6 address"),
    ({"mode": "static", "ipv4_address": "192.0.2.10/24", "dns_servers": "1.1.1.1 " * 4},
     "dns_servers", "at most 3"),
    ({"vlan": "0"}, "vlan", "from 1 to 4094"),
    ({"vlan": "4095"}, "vlan", "from 1 to 4094"),
    ({"vlan": "-1"}, "vlan", "from 1 to 4094"),
    ({"vlan": "\uff11\uff12"}, "vlan", "from 1 to 4094"),  # full-width digits
    ({"vlan": ["12"]}, "vlan", "must be text"),
    ({"mode": None}, "mode", "must be text"),
    ({"mtu": "9000"}, "mtu", "unknown field; allowed: interface, mode"),
]


@pytest.mark.parametrize(("answers", "field", "message"), MISTAKES)
def test_each_mistake_names_its_field_its_cause_and_the_fix(answers, field, message):
    named, said = error(**answers)
    assert (named, message in said) == (field, True), said


def test_a_gateway_after_a_bad_address_is_not_blamed_twice():
    assert error(mode="static", ipv4_address="192.0.2.0/24",
                 ipv4_gateway="192.0.2.1")[0] == "ipv4_address"


@settings(max_examples=150, deadline=None)
@given(address=st.ip_addresses(v=4), prefix=st.integers(1, 30), gateway_host=st.integers(1, 6))
def test_any_usable_host_address_is_taken_with_a_router_in_its_subnet(address, prefix,
                                                                      gateway_host):
    network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    gateway = network.network_address + gateway_host
    answers = {"mode": "static", "ipv4_address": f"{address}/{prefix}",
               "ipv4_gateway": str(gateway)}
    usable = not (address.is_loopback or address.is_multicast or address.is_link_local
                  or address.is_unspecified or address.is_reserved
                  or address in (network.network_address, network.broadcast_address))
    router = gateway in network and gateway not in (address, network.broadcast_address)
    if usable and router:
        assert parsed(**answers)["gateway4"] == str(gateway)
    else:
        with pytest.raises(InputErrors):
            parsed(**answers)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(objects_with(netconfig.FIELDS, mode=st.sampled_from(["static", "dhcp"])))
def test_hostile_answers_are_refused_by_field_or_give_settings_the_schema_takes(answers):
    """Never an exception other than InputErrors (the schema check inside raises otherwise)."""
    try:
        _, settings = netconfig.parse_settings(answers, NICS)
    except InputErrors as exc:
        assert exc.errors and all(e.field and e.message for e in exc.errors)
        return
    assert settings["mode"] in netconfig.MODES


@given(texts)
def test_hostile_interface_names_never_reach_the_file(name):
    with pytest.raises(InputErrors):
        netconfig.parse_settings({"interface": name}, [])


# --- the netplan file, as netplan and networkd see it ------------------------------------------


def generated(settings: dict, nics: list[str] = NICS) -> dict[str, str]:
    return netconfig.networkd_files(netconfig.render(settings, nics))


def test_static_dual_stack_renders_to_networkd_addresses_routes_and_dns():
    files = generated({"interfaces": {"ens3": parsed(
        mode="static", ipv4_address="192.0.2.10/24", ipv4_gateway="192.0.2.1",
        ipv6_address="2001:db8::10/64", ipv6_gateway="2001:db8::1",
        dns_servers="192.0.2.53 2001:db8::53")}})
    ens3 = files["10-netplan-ens3.network"]
    for line in ("Name=ens3", "Address=192.0.2.10/24", "Address=2001:db8::10/64",
                 "DNS=192.0.2.53", "DNS=2001:db8::53", "Gateway=192.0.2.1",
                 "Destination=0.0.0.0/0", "Gateway=2001:db8::1", "Destination=::/0"):
        assert line in ens3.splitlines(), ens3
    assert "DHCP=" not in ens3
    # The other NIC stays as the installer left it: DHCP for both families.
    assert "DHCP=yes" in files["10-netplan-ens4.network"].splitlines()


def test_a_vlan_gets_its_own_netdev_and_the_parent_only_carries_it():
    files = generated({"interfaces": {"ens4": parsed(
        interface="ens4", mode="static", ipv4_address="198.51.100.5/24",
        ipv4_gateway="198.51.100.1", vlan="100")}})
    assert files["10-netplan-ens4.100.netdev"].splitlines()[-3:] == ["", "[VLAN]", "Id=100"]
    parent = files["10-netplan-ens4.network"].splitlines()
    assert "VLAN=ens4.100" in parent and not any(line.startswith(("Address=", "DHCP="))
                                                 for line in parent)
    vlan = files["10-netplan-ens4.100.network"].splitlines()
    assert "Address=198.51.100.5/24" in vlan and "Gateway=198.51.100.1" in vlan


def test_dhcp_on_a_vlan():
    files = generated({"interfaces": {"ens3": parsed(vlan="7")}})
    assert "DHCP=yes" in files["10-netplan-ens3.7.network"].splitlines()
    assert "Kind=vlan" in files["10-netplan-ens3.7.netdev"].splitlines()


def test_netplan_refusing_a_file_is_reported_with_its_own_words():
    with pytest.raises(netconfig.NetplanRefused, match="netplan generate"):
        netconfig.networkd_files("network: {version: 2, ethernets: {ens3: {dhcp4: maybe}}}\n")


GLOBAL_V4 = st.ip_addresses(v=4).filter(lambda a: a.is_global and not a.is_multicast)
GLOBAL_V6 = st.ip_addresses(network="2000::/3")  # global unicast


@settings(max_examples=25, deadline=None)
@given(address=GLOBAL_V4, prefix=st.integers(8, 30), address6=GLOBAL_V6,
       vlan=st.integers(1, 4094),
       dns=st.lists(st.one_of(GLOBAL_V4, GLOBAL_V6), max_size=3, unique=True))
def test_any_valid_static_settings_are_what_networkd_gets(address, prefix, address6, vlan, dns):
    network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    if address in (network.network_address, network.broadcast_address):
        address = network.network_address + 1
    answers = {"mode": "static", "ipv4_address": f"{address}/{prefix}",
               "ipv6_address": f"{address6}/64", "dns_servers": ", ".join(map(str, dns)),
               "vlan": str(vlan)}
    files = generated({"interfaces": {"ens3": parsed(**answers)}})
    lines = files[f"10-netplan-ens3.{vlan}.network"].splitlines()
    assert f"Address={address}/{prefix}" in lines and f"Address={address6}/64" in lines
    # netplan lists IPv4 servers before IPv6 ones, each in the order given.
    in_order = sorted(dns, key=lambda d: d.version)
    assert [line for line in lines if line.startswith("DNS=")] == [f"DNS={d}" for d in in_order]
    assert f"Id={vlan}" in files[f"10-netplan-ens3.{vlan}.netdev"].splitlines()
