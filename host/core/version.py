"""The project version, shared by the host package, isobuild and the build manifest."""

__version__ = "0.1.0"
