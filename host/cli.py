"""The `alga-appliance` command line: the entry point every appliance unit runs."""

import os
import sys
from pathlib import Path

import click

from host import engine, phases, state
from host.version import __version__


@click.group()
@click.version_option(__version__, prog_name="alga-appliance")
@click.option("--root", type=click.Path(file_okay=False, path_type=Path),
              help=f"Prefix for every host path (also ${state.ROOT_ENV}); for tests.")
def main(root: Path | None) -> None:
    """Manage the Alga PSA appliance on this host."""
    if root is not None:
        os.environ[state.ROOT_ENV] = str(root)


@main.command("phase")
@click.argument("name", type=click.Choice([p.name for p in phases.PHASES]))
def phase_command(name: str) -> None:
    """Run one setup phase (what each phase unit runs)."""
    try:
        status = engine.run_phase(name)
    except engine.SetupBusy as exc:
        click.echo(f"alga-appliance phase {name}: {exc}", err=True)
        sys.exit(engine.EXIT_BUSY)
    except state.StateFileInvalid as exc:
        click.echo(f"alga-appliance phase {name}: {exc}", err=True)
        sys.exit(engine.EXIT_FAILED)
    if status != 0:
        failure = state.read(state.INSTALL_STATE)["phases"][name]["failure"]
        click.echo(f"alga-appliance phase {name} failed [{failure['category']}]: "
                   f"{failure['suspected_cause']}\n  next step: {failure['next_step']}",
                   err=True)
    sys.exit(status)
