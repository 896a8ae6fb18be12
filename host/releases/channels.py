"""The app release channels, declared once: setup, updates, the CLI, the web UI (GET
/api/setup serves them) and the console all take them from here."""

CHANNELS = ("stable", "nightly")
DEFAULT_CHANNEL = "stable"
TESTING_CHANNELS = ("nightly",)  # not release-tested: choosing one asks for confirmation
