"""The release channels, literally: which exist, which is the default and which asks for
confirmation (tests/architecture/test_contracts.py checks every other place agrees); and the
fields a channel file may carry."""

from support.answers import parse_with_admin

from host.releases import channels, git_source


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
