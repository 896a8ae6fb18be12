"""The release channels, literally: which exist, which is the default and which asks for
confirmation (tests/architecture/test_contracts.py checks every other place agrees); the
fields a channel file may carry; and how a selected release is named."""

from support.answers import parse_with_admin

from host.releases import channels, git_source, source


def test_the_channels_are_stable_by_default_and_nightly_for_testing():
    assert channels.CHANNELS == ("stable", "nightly")
    assert channels.DEFAULT_CHANNEL == "stable"
    assert channels.TESTING_CHANNELS == ("nightly",)


def test_setup_offers_exactly_these():
    assert parse_with_admin({}, "10.0.0.5")["channel"] == "stable"
    assert parse_with_admin({"channel": "NIGHTLY"}, "10.0.0.5")["channel"] == "nightly"


def test_the_fields_a_channel_file_may_carry_are_exactly_these():
    channel_file = dict.fromkeys(("channel", "releaseVersion", "repoBranch", "updatedAt",
                                  "rolloutWave"), "x")
    assert git_source.unknown_fields(channel_file) == ["rolloutWave"]


OCI_SELECTION = {"source": "oci", "channel": "stable", "release_version": "1.0.3",
                 "registry": "ghcr.io", "repository": "nine-minds/alga-appliance-release",
                 "manifest_digest": "sha256:ab", "images": {}}
GIT_SELECTION = {"source": "git", "channel": "nightly", "release_version": "1.1",
                 "app_version": "1.1-rc", "repo_url": "https://github.com/Nine-Minds/alga-psa",
                 "source_ref": "main", "repo_branch": "release/1.1"}


def test_a_selected_release_is_named_exactly_so():
    assert [source.describe(s) for s in (OCI_SELECTION, GIT_SELECTION)] == [
        "oci://ghcr.io/nine-minds/alga-appliance-release@sha256:ab",
        "https://github.com/Nine-Minds/alga-psa (main, branch release/1.1)"]
    assert [source.origin(s) for s in (OCI_SELECTION, GIT_SELECTION)] == [
        "oci://ghcr.io/nine-minds/alga-appliance-release", "https://github.com/Nine-Minds/alga-psa"]
    assert [source.summary(s) for s in (OCI_SELECTION, GIT_SELECTION)] == [
        {"location": "oci://ghcr.io/nine-minds/alga-appliance-release@sha256:ab",
         "source": "oci", "channel": "stable", "release_version": "1.0.3",
         "manifest_digest": "sha256:ab"},
        {"location": "https://github.com/Nine-Minds/alga-psa (main, branch release/1.1)",
         "source": "git", "channel": "nightly", "release_version": "1.1",
         "app_version": "1.1-rc", "repo_branch": "release/1.1"}]
