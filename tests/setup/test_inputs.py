"""Setup input validation: nothing crashes it, and what it accepts round-trips."""

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.answers import parse_with_admin

from host.core.validation import validate
from host.setup.inputs import (
    FIELDS,
    InputErrors,
    as_answers,
    password_stored,
    without_password,
)

NODE_IP = "10.0.0.5"

junk = st.one_of(st.none(), st.text(max_size=40), st.integers(), st.lists(st.text(max_size=20),
                                                                          max_size=4))
raw_answers = st.dictionaries(st.sampled_from([*FIELDS, "junk"]), junk, max_size=9)

labels = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
hostnames = st.lists(labels, min_size=1, max_size=3).map(".".join)
hosts = st.one_of(hostnames, st.ip_addresses(v=4).map(str))
ports = st.none() | st.integers(1, 65535)
app_urls = st.one_of(
    st.just(""), hostnames,
    st.builds(lambda s, h, p: f"{s}://{h.upper()}{'' if p is None else f':{p}'}/",
              st.sampled_from(["http", "https", "HTTP"]), hosts, ports))
resolvers = st.lists(st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)).filter(
    lambda a: not (a.is_loopback or a.is_unspecified or a.is_multicast
                   or str(a) == "255.255.255.255" or getattr(a, "ipv4_mapped", None))).map(str),
    min_size=1, max_size=3, unique=True)
proxies = st.builds(lambda s, h, p: f"{s}://{h}:{p}",
                    st.sampled_from(["http", "https"]),
                    st.one_of(hosts, st.ip_addresses(v=6).map(lambda a: f"[{a}]")),
                    st.integers(1, 65535))
# What a proxy password may hold: URL syntax, spaces, non-ASCII; never control characters
# or line and paragraph separators.
printable = st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"))
passwords = st.text(st.sampled_from("@:#/%?& ü€'\"$\\") | printable, min_size=1, max_size=24)
users = st.text(st.sampled_from("@#/% ü") | printable.filter(lambda c: c != ":"),
                min_size=1, max_size=12).filter(lambda u: u.strip() == u and u)
repos = st.builds(lambda form, owner, name: form.format(owner=owner, name=name),
                  st.sampled_from(["https://github.com/{owner}/{name}",
                                   "https://github.com/{owner}/{name}.git",
                                   "git@github.com:{owner}/{name}.git",
                                   "git@github.com:{owner}/{name}"]), labels, labels)
oci_segment = st.from_regex(r"[a-z0-9]{1,8}([._-][a-z0-9]{1,8}){0,2}", fullmatch=True)
oci_references = st.builds(
    "oci://{}/{}{}".format, st.sampled_from(["ghcr.io", "registry.example.com:5000", "10.1.2.3"]),
    st.lists(oci_segment, min_size=1, max_size=3).map("/".join),
    st.sampled_from(["", ":1.0.3", ":stable", "@sha256:" + "0" * 64]))
valid_answers = st.fixed_dictionaries({}, optional={
    "channel": st.sampled_from(["stable", "nightly", " Nightly ", ""]),
    "app_url": app_urls,
    "dns_mode": st.just("custom"), "dns_servers": resolvers,
    "proxy_url": proxies, "no_proxy": st.lists(hostnames, max_size=3).map(",".join),
    "proxy_user": users, "proxy_password": passwords,
    "release_source": st.one_of(repos, oci_references),
    "branch": st.sampled_from(["main", "release/1.0.0", "feature/x-1"]),
}).filter(lambda a: ("dns_mode" in a) == ("dns_servers" in a)
          and ("no_proxy" not in a or "proxy_url" in a)
          and ("proxy_user" in a) == ("proxy_password" in a)
          and ("proxy_user" not in a or "proxy_url" in a))


STORED = {"channel": "stable", "app_url": "http://10.0.0.5:3000", "dns": {"mode": "system"},
          "proxy": {"url": "http://proxy.corp:3128", "user": "svc", "password": "p@ss:w/rd #%",
                    "no_proxy": ["localhost"]}, "overrides": {}}


@given(raw_answers, st.sampled_from([None, STORED]))
def test_no_input_crashes_the_validator(raw, stored):
    try:
        document = parse_with_admin(raw, NODE_IP, stored)
    except InputErrors as errors:
        assert errors.errors and all(e.field and e.message for e in errors.errors)
        return
    validate(document, "setup-inputs.schema.json", name="setup inputs", source="test")


@given(valid_answers, st.sampled_from([NODE_IP, "192.168.1.20", "2001:db8::5"]))
def test_accepted_inputs_round_trip_through_the_schema(raw, node_ip):
    document = parse_with_admin(raw, node_ip)
    validate(document, "setup-inputs.schema.json", name="setup inputs", source="test")
    assert parse_with_admin(as_answers(document), node_ip, stored=document) == document
    assert "proxy_password" not in as_answers(document)
    if document["proxy"]:
        assert {node_ip, "10.42.0.0/16", "10.43.0.0/16", ".svc", ".cluster.local"} <= set(
            document["proxy"]["no_proxy"])


def test_defaults():
    document = parse_with_admin({}, NODE_IP)
    admin = document.pop("admin")
    assert document == {
        "channel": "stable", "app_url": "http://10.0.0.5:3000", "dns": {"mode": "system"},
        "proxy": None, "overrides": {}}
    assert admin["ssh_authorized_keys"] == [] and admin["ssh_password_login"] is False
    assert parse_with_admin({}, "2001:db8::5")["app_url"] == "http://[2001:db8::5]:3000"


@pytest.mark.parametrize(("given_url", "normalised"), [
    ("psa.example.com", "http://psa.example.com:3000"),
    ("HTTPS://PSA.Example.com/", "https://psa.example.com"),
    ("https://psa.example.com:443", "https://psa.example.com"),
    ("http://10.1.2.3:8000", "http://10.1.2.3:8000"),
])
def test_app_url_normalisation(given_url, normalised):
    assert parse_with_admin({"app_url": given_url}, NODE_IP)["app_url"] == normalised


@pytest.mark.parametrize(("repo", "normalised"), [
    ("git@github.com:Nine-Minds/alga-psa.git", "https://github.com/Nine-Minds/alga-psa"),
    ("github.com:Nine-Minds/alga-psa", "https://github.com/Nine-Minds/alga-psa"),
    ("https://github.com/Nine-Minds/alga-psa.git", "https://github.com/Nine-Minds/alga-psa"),
    ("https://GitHub.com/Nine-Minds/alga-psa/", "https://github.com/Nine-Minds/alga-psa"),
])
def test_git_release_source_normalisation(repo, normalised):
    overrides = parse_with_admin({"release_source": repo}, NODE_IP)["overrides"]
    assert overrides["release_source"] == normalised


@pytest.mark.parametrize("reference", [
    "oci://ghcr.io/nine-minds/alga-appliance-release",
    "oci://127.0.0.1:5000/mirror/alga-appliance-release:1.0.3",
    "oci://ghcr.io/nine-minds/alga-appliance-release@sha256:" + "ab" * 32,
])
def test_oci_release_sources_are_kept_as_given(reference):
    overrides = parse_with_admin({"release_source": reference}, NODE_IP)["overrides"]
    assert overrides == {"release_source": reference}


@pytest.mark.parametrize(("answers", "field", "phrase"), [
    ({"channel": "beta"}, "channel", "stable (recommended) or nightly (testing)"),
    ({"app_url": "https://psa.example.com/app"}, "app_url", "must not have a path"),
    ({"app_url": "ftp://psa"}, "app_url", "http:// or https://"),
    ({"app_url": "bad_host!"}, "app_url", "valid hostname"),
    ({"dns_mode": "custom"}, "dns_servers", "1 to 3 resolver addresses"),
    ({"dns_mode": "custom", "dns_servers": "1.1.1.1 8.8.8.8 9.9.9.9 1.0.0.1"}, "dns_servers",
     "1 to 3"),
    ({"dns_mode": "custom", "dns_servers": "127.0.0.53"}, "dns_servers", "loopback"),
    ({"dns_mode": "custom", "dns_servers": "dns.example"}, "dns_servers", "not an IPv4 or IPv6"),
    ({"dns_servers": "10.0.0.53"}, "dns_servers", "only used with dns_mode custom"),
    ({"dns_mode": "dhcp"}, "dns_mode", "system"),
    ({"proxy_url": "http://proxy.example"}, "proxy_url", "host:port"),
    ({"proxy_url": "http://svc:s3cret@proxy.example:3128"}, "proxy_url",
     "give them in the proxy user and proxy password fields"),
    ({"proxy_url": "http://svc:p#w@proxy.example:3128"}, "proxy_url", "proxy user and proxy"),
    ({"proxy_url": "http://proxy.example:3128", "proxy_user": "svc"}, "proxy_password",
     "needed with a proxy user"),
    ({"proxy_url": "http://proxy.example:3128", "proxy_password": "pw"}, "proxy_user",
     "needed with a proxy password"),
    ({"proxy_url": "http://proxy.example:3128", "proxy_user": "a:b", "proxy_password": "pw"},
     "proxy_user", "must not contain ':'"),
    ({"proxy_url": "http://proxy.example:3128", "proxy_user": "svc",
      "proxy_password": "p\nw"}, "proxy_password", "control characters"),
    ({"proxy_user": "svc", "proxy_password": "pw"}, "proxy_user", "only used together"),
    ({"no_proxy": "corp.local"}, "no_proxy", "only used together with a proxy URL"),
    ({"release_source": "http://github.com/a/b"}, "release_source", "https://"),
    ({"release_source": "oci://ghcr.io/Nine-Minds/alga"}, "release_source", "lower case"),
    ({"release_source": "oci://ghcr.io/nine-minds/alga@sha256:abc"}, "release_source",
     "@sha256:<digest>"),
    ({"release_source": "oci://ghcr.io"}, "release_source", "oci://<registry>/<repository>"),
    ({"branch": "../main"}, "branch", "not a valid git branch name"),
    ({"colour": "blue"}, "colour", "unknown field"),
])
def test_errors_name_the_field_and_what_is_allowed(answers, field, phrase):
    with pytest.raises(InputErrors) as caught:
        parse_with_admin(answers, NODE_IP)
    assert any(e.field == field and phrase in e.message for e in caught.value.errors), (
        caught.value.errors)


def test_every_bad_field_is_reported_at_once():
    with pytest.raises(InputErrors) as caught:
        parse_with_admin({"channel": "x", "app_url": "ftp://x", "branch": ".."}, NODE_IP)
    assert [e.field for e in caught.value.errors] == ["channel", "app_url", "branch"]


def test_custom_resolvers_are_deduplicated_and_canonical():
    document = parse_with_admin({"dns_mode": "custom",
                                   "dns_servers": "2001:DB8::0:1, 10.0.0.53 2001:db8::1"}, NODE_IP)
    assert document["dns"]["servers"] == [str(ipaddress.ip_address("2001:db8::1")), "10.0.0.53"]


def answers_with_a_bad_proxy(password: str) -> tuple[dict, ...]:
    return ({"proxy_url": f"http://svc:{password}@proxy.corp:3128"},
            {"proxy_url": "http://proxy.corp:3128", "proxy_password": password},
            {"proxy_url": "http://proxy.corp:3128", "proxy_user": "a:b",
             "proxy_password": password})


def refusal(answers: dict) -> str:
    with pytest.raises(InputErrors) as caught:
        parse_with_admin(answers, NODE_IP)
    return str(caught.value)


@given(passwords)
def test_messages_never_repeat_the_proxy_password(password):
    # Not a word of it: each message is the one any other password gets.
    for answers, reference in zip(answers_with_a_bad_proxy(password),
                                  answers_with_a_bad_proxy("x"), strict=True):
        assert refusal(answers) == refusal(reference)


@given(passwords)
def test_a_password_is_kept_exactly_as_typed(password):
    proxy = parse_with_admin({"proxy_url": "http://proxy.corp:3128", "proxy_user": "svc",
                                "proxy_password": password}, NODE_IP)["proxy"]
    assert (proxy["url"], proxy["user"], proxy["password"]) == (
        "http://proxy.corp:3128", "svc", password)


def test_an_empty_password_keeps_the_stored_one_only_for_the_same_url_and_user():
    same = {"proxy_url": "HTTP://Proxy.Corp:3128/", "proxy_user": "svc"}
    assert parse_with_admin(same, NODE_IP, STORED)["proxy"]["password"] == "p@ss:w/rd #%"
    assert parse_with_admin({**same, "proxy_password": "new"}, NODE_IP, STORED)["proxy"][
        "password"] == "new"
    for changed in ({**same, "proxy_user": "other"}, {**same, "proxy_url": "http://x.corp:3128"}):
        with pytest.raises(InputErrors) as caught:
            parse_with_admin(changed, NODE_IP, STORED)
        assert [(e.field, e.message) for e in caught.value.errors] == [
            ("proxy_password", "is needed with a proxy user")]
    assert parse_with_admin({"proxy_url": same["proxy_url"]}, NODE_IP, STORED)["proxy"] == {
        "url": "http://proxy.corp:3128", "no_proxy": parse_with_admin(
            {"proxy_url": same["proxy_url"]}, NODE_IP)["proxy"]["no_proxy"]}


# Issue 19 item 8: inputs that crashed the validator (a 500) or were accepted unusable.
@pytest.mark.parametrize(("answers", "field", "phrase"), [
    ({"proxy_url": "http://[fe80::1%eth0]:3128"}, "proxy_url", "has a zone"),
    ({"app_url": "http://[fe80::1%eth0]:3000"}, "app_url", "has a zone"),
    ({"dns_mode": "custom", "dns_servers": "fe80::1%eth0"}, "dns_servers", "has a zone"),
    ({"release_source": "https://svc:s3cret@github.com/o/r"}, "release_source",
     "must not contain a user or password"),
    ({"release_source": "https://:s3cret@github.com/o/r"}, "release_source",
     "must not contain a user or password"),
    ({"release_source": "https://github.com/o/r r"}, "release_source", "must not contain"),
    ({"app_url": "al\u200bga.example.com"}, "app_url", "invisible character"),
    ({"proxy_url": "http://pro\u200dxy.corp:3128"}, "proxy_url", "invisible character"),
    ({"release_source": "https://git\u200bhub.com/o/r"}, "release_source", "invisible"),
    ({"app_url": "http://alga:0"}, "app_url", "port 0"),
    ({"proxy_url": "http://proxy.corp:0"}, "proxy_url", "port 0"),
    ({"dns_mode": "custom", "dns_servers": "::ffff:10.0.0.53"}, "dns_servers", "IPv4-mapped"),
    ({"dns_mode": "custom", "dns_servers": "::ffff:127.0.0.1"}, "dns_servers", "IPv4-mapped"),
    ({"dns_mode": "custom", "dns_servers": "224.0.0.251"}, "dns_servers", "multicast"),
    ({"dns_mode": "custom", "dns_servers": "ff02::fb"}, "dns_servers", "multicast"),
    ({"dns_mode": "custom", "dns_servers": "255.255.255.255"}, "dns_servers", "broadcast"),
    ({"branch": "--upload-pack=touch"}, "branch", "must not start with '-'"),
    ({"branch": "-main"}, "branch", "must not start with '-'"),
    ({"proxy_url": "http://proxy.corp:3128", "proxy_user": "svc",
      "proxy_password": "p\x85w"}, "proxy_password", "control characters"),
    ({"proxy_url": "http://proxy.corp:3128", "proxy_user": "svc",
      "proxy_password": "p\u2028w"}, "proxy_password", "line breaks"),
    ({"proxy_url": "http://proxy.corp:3128", "proxy_user": "s\x1bvc",
      "proxy_password": "pw"}, "proxy_user", "control characters"),
    ({"proxy_url": "http://proxy.corp:3128", "proxy_user": "", "proxy_password": "pw"},
     "proxy_user", "needed with a proxy password"),
    ({"proxy_url": "http://proxy.corp:3128", "proxy_user": " \t", "proxy_password": "pw"},
     "proxy_user", "needed with a proxy password"),
])
def test_hostile_answers_are_refused_field_by_field(answers, field, phrase):
    with pytest.raises(InputErrors) as caught:
        parse_with_admin(answers, NODE_IP)
    assert [(e.field, phrase in e.message) for e in caught.value.errors] == [(field, True)], (
        caught.value.errors)


# Full-width letters and dots, written escaped (they look like ASCII).
@pytest.mark.parametrize(("answers", "key", "normalised"), [
    ({"app_url": "\uff41\uff4c\uff47\uff41.example.com"}, "app_url", "http://alga.example.com:3000"),
    ({"app_url": "https://Bücher.example"}, "app_url", "https://xn--bcher-kva.example"),
    ({"proxy_url": "http://\uff50\uff52\uff4f\uff58\uff59\uff0ecorp:3128"}, "proxy",
     "http://proxy.corp:3128"),
    ({"release_source": "https://\uff27\uff49\uff54\uff28\uff55\uff42.com/Nine-Minds/alga-psa"},
     "overrides", "https://github.com/Nine-Minds/alga-psa"),
])
def test_host_names_are_normalised_to_their_ascii_form(answers, key, normalised):
    document = parse_with_admin(answers, NODE_IP)
    value = document[key]
    assert (value if key == "app_url" else value.get("url") or value["release_source"]) == \
        normalised
    validate(document, "setup-inputs.schema.json", name="setup inputs", source="test")


@pytest.mark.parametrize(("user", "password"), [
    ("svc@corp.example", "p@ss word"), ("Domain User", " leading and trailing "),
    ("ü@x", "@"),
])
def test_proxy_credentials_with_at_signs_and_spaces_round_trip(user, password):
    document = parse_with_admin({"proxy_url": "http://proxy.corp:3128", "proxy_user": user,
                                   "proxy_password": password}, NODE_IP)
    assert (document["proxy"]["user"], document["proxy"]["password"]) == (user, password)
    assert parse_with_admin(as_answers(document), NODE_IP, stored=document) == document


# Issue 24: literal documents, so a change that corrupts both directions of a round trip
# alike (credentials dropped on parse and on as_answers) cannot pass.
PROXIED = {"proxy_url": "HTTP://Proxy.Corp:3128/", "proxy_user": " user ",
           "proxy_password": "s3cret", "no_proxy": "corp.local, 192.168.0.0/16"}
PROXIED_DOCUMENT = {
    "channel": "stable", "app_url": "http://10.0.0.5:3000", "dns": {"mode": "system"},
    "proxy": {"url": "http://proxy.corp:3128", "user": "user", "password": "s3cret",
              "no_proxy": ["localhost", "127.0.0.1", "::1", "10.42.0.0/16", "10.43.0.0/16",
                           ".svc", ".cluster.local", "10.0.0.5", "corp.local",
                           "192.168.0.0/16"]},
    "overrides": {}}


def without_admin(document: dict) -> dict:
    return {k: v for k, v in document.items() if k != "admin"}


def test_proxy_credentials_are_kept_exactly_through_a_round_trip():
    document = parse_with_admin(PROXIED, NODE_IP)
    assert without_admin(document) == PROXIED_DOCUMENT
    answers = as_answers(document)
    assert answers == {
        "channel": "stable", "app_url": "http://10.0.0.5:3000", "dns_mode": "system",
        "dns_servers": "", "proxy_url": "http://proxy.corp:3128", "proxy_user": "user",
        "no_proxy": "localhost, 127.0.0.1, ::1, 10.42.0.0/16, 10.43.0.0/16, .svc, "
                    ".cluster.local, 10.0.0.5, corp.local, 192.168.0.0/16",
        "ssh_authorized_keys": "", "ssh_password_login": False}
    assert parse_with_admin(answers, NODE_IP, stored=document) == document
    # Another user or proxy does not inherit the stored password.
    for change in ({"proxy_user": "other"}, {"proxy_url": "http://proxy.corp:8080"}):
        with pytest.raises(InputErrors) as caught:
            parse_with_admin({**answers, **change}, NODE_IP, stored=document)
        assert [(e.field, e.message) for e in caught.value.errors] == [
            ("proxy_password", "is needed with a proxy user")]


def test_a_proxy_without_credentials_has_none():
    document = parse_with_admin({"proxy_url": "https://[2001:db8::1]:3128"}, NODE_IP)
    assert document["proxy"] == {"url": "https://[2001:db8::1]:3128", "no_proxy": [
        "localhost", "127.0.0.1", "::1", "10.42.0.0/16", "10.43.0.0/16", ".svc",
        ".cluster.local", "10.0.0.5"]}


@pytest.mark.parametrize(("answers", "field", "message"), [
    ({"proxy_url": "ftp://proxy.corp:21"}, "proxy_url", "must look like http(s)://host:port"),
    ({"proxy_url": "socks5://proxy.corp:1080"}, "proxy_url",
     "must look like http(s)://host:port"),
    ({"proxy_url": "proxy.corp:3128"}, "proxy_url", "must look like http(s)://host:port"),
    ({"proxy_url": "http://:3128"}, "proxy_url", "must look like http(s)://host:port"),
    ({"proxy_url": "http://proxy.corp:3128/path"}, "proxy_url",
     "must be scheme, host and port only"),
    ({"proxy_url": "http://proxy.corp:3128?x=1"}, "proxy_url",
     "must be scheme, host and port only"),
    ({"proxy_url": "http://proxy.corp:0"}, "proxy_url",
     "port 0 cannot be connected to: give a port from 1 to 65535"),
    ({"proxy_url": "http://user@proxy.corp:3128"}, "proxy_url",
     "must not contain a user or password: give them in the proxy user and proxy password "
     "fields"),
    ({"app_url": "https://user@psa.example.com"}, "app_url", "must be scheme, host and port only"),
    ({"app_url": "https://:pw@psa.example.com"}, "app_url", "must be scheme, host and port only"),
    ({"app_url": "https://psa.example.com?x=1"}, "app_url", "must be scheme, host and port only"),
    ({"app_url": "https://psa.example.com#top"}, "app_url", "must be scheme, host and port only"),
    ({"app_url": "ftp://psa.example.com"}, "app_url",
     "must be an http:// or https:// URL, or a hostname"),
    ({"app_url": "https://psa.example.com:0"}, "app_url",
     "port 0 cannot be connected to: give a port from 1 to 65535"),
])
def test_urls_with_other_schemes_or_credentials_are_refused_exactly(answers, field, message):
    with pytest.raises(InputErrors) as caught:
        parse_with_admin(answers, NODE_IP)
    assert [(e.field, e.message) for e in caught.value.errors] == [(field, message)]


@pytest.mark.parametrize(("given_repo", "normalised"), [
    ("https://git.example.com:8443/o/r.git/", "https://git.example.com:8443/o/r"),
    ("https://github.com/o/r.git/", "https://github.com/o/r"),
    ("git@github.com:o/r.git", "https://github.com/o/r"),
    ("HTTPS://GitHub.com/o/r/", "https://github.com/o/r"),
    ("https://[2001:db8::1]/o/r", "https://[2001:db8::1]/o/r"),
    ("https://github.com/o/FIX/", "https://github.com/o/FIX"),
    ("https://github.com/o/r/.git", "https://github.com/o/r"),
])
def test_git_repository_urls_normalise_to_exactly_this(given_repo, normalised):
    assert parse_with_admin({"release_source": given_repo}, NODE_IP)["overrides"] == {
        "release_source": normalised}


REPOSITORY_CHARACTERS = "the repository path must not contain spaces, '@' or control characters"
NOT_A_REPOSITORY = "must name a repository, like https://github.com/owner/repo"


@pytest.mark.parametrize(("answers", "field", "message"), [
    ({"release_source": "https://github.com/o/r@main"}, "release_source",
     REPOSITORY_CHARACTERS),
    ({"release_source": "https://github.com/o/r x"}, "release_source", REPOSITORY_CHARACTERS),
    ({"release_source": "https://github.com/o/r\x7fx"}, "release_source",
     REPOSITORY_CHARACTERS),
    ({"release_source": "http://github.com/o/r"}, "release_source",
     "must be oci://<registry>/<repository>, an https:// git repository URL or "
     "git@host:owner/repo"),
    ({"release_source": "https://github.com/o"}, "release_source", NOT_A_REPOSITORY),
    ({"release_source": "https://github.com/o/r?x=1"}, "release_source", NOT_A_REPOSITORY),
    ({"release_source": "https://github.com:99999/o/r"}, "release_source",
     "is not a URL (Port out of range 0-65535)"),
    ({"release_source": "https://svc@github.com/o/r"}, "release_source",
     "must not contain a user or password: the appliance reads the release repository "
     "without credentials"),
    ({"dns_mode": "custom", "dns_servers": "::ffff:1.2.3.4"}, "dns_servers",
     "::ffff:1.2.3.4 is an IPv4-mapped IPv6 address (an IPv4 resolver is given as IPv4); "
     "give the network's resolvers"),
    ({"dns_mode": "custom", "dns_servers": "::"}, "dns_servers",
     ":: is a local address (k3s cannot use a loopback resolver); give the network's "
     "resolvers"),
    ({"dns_mode": "custom", "dns_servers": "255.255.255.255"}, "dns_servers",
     "255.255.255.255 is a multicast or broadcast address, not one resolver; give the "
     "network's resolvers"),
    ({"dns_mode": "custom", "dns_servers": "ff02::fb"}, "dns_servers",
     "ff02::fb is a multicast or broadcast address, not one resolver; give the network's "
     "resolvers"),
])
def test_release_sources_and_resolvers_are_refused_exactly(answers, field, message):
    with pytest.raises(InputErrors) as caught:
        parse_with_admin(answers, NODE_IP)
    assert [(e.field, e.message) for e in caught.value.errors] == [(field, message)]


def test_the_error_text_lists_every_field_and_its_message():
    with pytest.raises(InputErrors) as caught:
        parse_with_admin({"channel": "x", "branch": ".."}, NODE_IP)
    assert str(caught.value) == ("channel: must be stable (recommended) or nightly (testing); "
                                 "branch: is not a valid git branch name")


def test_a_proxy_without_a_user_shows_an_empty_user():
    answers = as_answers(parse_with_admin({"proxy_url": "http://p:1"}, NODE_IP))
    assert (answers["proxy_url"], answers["proxy_user"]) == ("http://p:1", "")


def test_a_document_is_shown_without_its_password_and_says_one_is_stored():
    shown = without_password(PROXIED_DOCUMENT)
    assert shown == {**PROXIED_DOCUMENT, "proxy": {
        "url": "http://proxy.corp:3128", "user": "user",
        "no_proxy": PROXIED_DOCUMENT["proxy"]["no_proxy"]}}
    assert PROXIED_DOCUMENT["proxy"]["password"] == "s3cret"  # the original is kept whole
    unproxied = without_admin(parse_with_admin({}, NODE_IP))
    assert without_password(unproxied) == unproxied
    no_user = without_admin(parse_with_admin({"proxy_url": "http://p:1"}, NODE_IP))
    assert without_password(no_user) == no_user
    assert [password_stored(d) for d in (PROXIED_DOCUMENT, shown, unproxied, no_user, None)] \
        == [True, False, False, False, False]


@pytest.mark.parametrize(("answers", "errors"), [
    ({"channel": 5}, [("channel", "must be text")]),
    ({"channel": "beta"}, [("channel", "must be stable (recommended) or nightly (testing)")]),
    ({"app_url": "http://[::1"}, [("app_url", "is not a URL or hostname (Invalid IPv6 URL)")]),
    ({"app_url": "psa:99999"},
     [("app_url", "is not a URL or hostname (Port out of range 0-65535)")]),
    ({"app_url": "https://psa.example.com/app"},
     [("app_url", "must not have a path: Alga is served at the root")]),
    ({"app_url": "psa\u200b.example"},
     [("app_url", "contains an invisible character (zero-width or formatting): type the host "
                  "name again")]),
    ({"app_url": "a..b"},
     [("app_url", "needs a valid hostname or IP address (a label is empty, longer than 63 "
                  "characters or not a valid name)")]),
    ({"app_url": "bad_host!"}, [("app_url", "needs a valid hostname or IP address")]),
    ({"app_url": "http://:8080"}, [("app_url", "needs a valid hostname or IP address")]),
    ({"app_url": "http://[fe80::1%25eth0]"},
     [("app_url", "'fe80::1%25eth0' has a zone (%...): give the address without it, or a "
                  "host name")]),
    ({"dns_servers": "1.1.1.1"}, [("dns_servers", "are only used with dns_mode custom")]),
    ({"dns_mode": "dhcp"},
     [("dns_mode", "must be system (DHCP or the host's resolvers) or custom")]),
    ({"dns_mode": 1}, [("dns_mode", "must be text")]),
    ({"dns_mode": "custom", "dns_servers": [1]}, [("dns_servers", "must be a list of text")]),
    ({"dns_mode": "custom", "dns_servers": "a.b"},
     [("dns_servers", "'a.b' is not an IPv4 or IPv6 address")]),
    ({"dns_mode": "custom"}, [("dns_servers", "custom DNS needs 1 to 3 resolver addresses")]),
    ({"proxy_user": "u"}, [("proxy_user", "is only used together with a proxy URL")]),
    ({"proxy_password": "p"}, [("proxy_password", "is only used together with a proxy URL")]),
    ({"no_proxy": "x"}, [("no_proxy", "is only used together with a proxy URL")]),
    ({"proxy_url": 1}, [("proxy_url", "must be text")]),
    ({"proxy_url": "http://p:1", "no_proxy": "a b!c"},
     [("no_proxy", "'b!c' is not a host, domain, IP or CIDR")]),
    ({"proxy_url": "http://p:1", "no_proxy": [1]}, [("no_proxy", "must be a list of text")]),
    ({"proxy_url": "http://p:1", "proxy_user": "u", "proxy_password": 5},
     [("proxy_password", "must be text")]),
    ({"branch": "-x"}, [("branch", "must not start with '-' (git would read it as an option)")]),
    ({"branch": "a..b"}, [("branch", "is not a valid git branch name")]),
    ({"release_source": "oci://Bad"},
     [("release_source", "must be oci://<registry>/<repository> (lower case), optionally "
                         "with :<tag> or @sha256:<digest>")]),
    ({"app_url": 5}, [("app_url", "must be text")]),
    ({"release_source": 5}, [("release_source", "must be text")]),
    ({"branch": 5}, [("branch", "must be text")]),
    ({"proxy_url": "http://p:1", "proxy_user": 5, "proxy_password": "p"},
     [("proxy_user", "must be text")]),
    ({"proxy_url": "http://p:1", "proxy_password": "p"},
     [("proxy_user", "is needed with a proxy password")]),
    ({"proxy_url": "http://p:1", "proxy_user": "a:b", "proxy_password": "p"},
     [("proxy_user", "must not contain ':' (proxy authentication cannot carry it)")]),
    ({"proxy_url": "http://p:1", "proxy_user": "u", "proxy_password": "p\x00"},
     [("proxy_password", "must not contain control characters or line breaks")]),
    # A paragraph separator and a lone surrogate are as unusable as a control character.
    ({"proxy_url": "http://p:1", "proxy_user": "u", "proxy_password": "p\u2029w"},
     [("proxy_password", "must not contain control characters or line breaks")]),
    ({"proxy_url": "http://p:1", "proxy_user": "u\ud800x", "proxy_password": "p"},
     [("proxy_user", "must not contain control characters or line breaks")]),
    ({"proxy_url": "http://[::1:3128"}, [("proxy_url", "is not a URL (Invalid IPv6 URL)")]),
    ({"release_source": "https://github.com:0/o/r"},
     [("release_source", "port 0 cannot be connected to: give a port from 1 to 65535")]),
    ({"colour": 1},
     [("colour", "unknown field; allowed: channel, app_url, dns_mode, dns_servers, proxy_url, "
                 "proxy_user, proxy_password, no_proxy, release_source, branch, "
                 "admin_password, admin_password_confirm, ssh_authorized_keys, "
                 "ssh_password_login")]),
])
def test_each_refusal_reads_exactly(answers, errors):
    with pytest.raises(InputErrors) as caught:
        parse_with_admin(answers, NODE_IP)
    assert [(e.field, e.message) for e in caught.value.errors] == errors


@pytest.mark.parametrize(("given_url", "normalised"), [
    ("psa.example.com:8443", "http://psa.example.com:8443"),
    ("http://psa.example.com:80", "http://psa.example.com"),
    ("https://psa.example.com:80", "https://psa.example.com:80"),
    ("HTTP://10.0.0.9:3000", "http://10.0.0.9:3000"),
])
def test_app_urls_keep_only_ports_other_than_their_schemes_default(given_url, normalised):
    assert parse_with_admin({"app_url": given_url}, NODE_IP)["app_url"] == normalised


def test_no_proxy_entries_are_kept_as_given_after_the_fixed_ones():
    proxy = parse_with_admin({"proxy_url": "http://p:1",
                                "no_proxy": "Corp.Local *.x.y [::1] 10.0.0.5"}, NODE_IP)["proxy"]
    assert proxy["no_proxy"] == ["localhost", "127.0.0.1", "::1", "10.42.0.0/16", "10.43.0.0/16",
                                 ".svc", ".cluster.local", "10.0.0.5", "Corp.Local", "*.x.y",
                                 "[::1]"]
