"""The `alga-appliance` command line: the entry point every appliance unit runs."""

import click

from host.version import __version__


@click.group()
@click.version_option(__version__, prog_name="alga-appliance")
def main() -> None:
    """Manage the Alga PSA appliance on this host."""
