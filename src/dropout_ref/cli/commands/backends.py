"""``dropout-ref backends``: which backends import here."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dropout_ref.core.registry import BACKENDS, get_backend


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add no options: the command has none."""


def run(args: argparse.Namespace) -> int:
    """Print one row per backend: available or the install command, and its fast path."""
    table = Table(title="dropout_ref backends")
    table.add_column("backend")
    table.add_column("status")
    table.add_column("install")
    table.add_column("fast path")
    for name, info in BACKENDS.items():
        fast = ""
        try:
            registration = get_backend(name)
            status = "[green]available[/green]"
            # Adapters with a compiled CPU kernel say whether it runs, or why not.
            fast = registration.fast_path_status()
        except ImportError as exc:
            status = f"[red]missing[/red]: {escape(str(exc))}"
        # escape: "jax[cpu]" is text, not a rich style tag.
        table.add_row(name, status, escape(info.install), escape(fast))
    Console().print(table)
    return 0
