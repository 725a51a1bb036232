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


@main.command()
@click.option("--epochs", default=None, type=int, help="Training epochs (default: the demo's own setting).")
@click.option("--maps", default=None, type=int, help="Number of synthetic maps to generate (train + held-out).")
@click.option("--seed", default=0, show_default=True, help="Seed of data generation, initialisation and noise.")
@click.option("--out", default="runs/demo", show_default=True, type=click.Path(), help="Folder for the picture and metrics.")
def demo(epochs: int | None, maps: int | None, seed: int, out: str) -> None:
    """Train a CNN through a grid shortest-path I-MLE layer on synthetic Warcraft maps."""
    from .demo import run_demo

    run_demo(epochs=epochs, maps=maps, seed=seed, out=out)
