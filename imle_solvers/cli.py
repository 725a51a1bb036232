"""The ``imle-solvers`` command."""

from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="imle_solvers")
def main() -> None:
    """Discrete solvers as trainable layers: list solvers, run the demo."""


@main.command()
def solvers() -> None:
    """List the registered solvers: problem kind, backend, installed or not."""
    from .adapters import list_solvers

    for entry in list_solvers():
        state = "installed" if entry.installed else f"missing (pip install imle_solvers[{entry.extra}])"
        click.echo(f"{entry.kind:24} {entry.backend:12} priority {entry.priority:3}  {state}")
