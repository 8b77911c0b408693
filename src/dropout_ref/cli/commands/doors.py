"""``dropout-ref doors``: every door of ``portable_masks`` and what the context does with it."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dropout_ref.core.doors import INTERCEPT_MODULE, door_table_markdown


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--backend`` (repeatable) and ``--markdown``."""
    parser.add_argument(
        "--backend", action="append", choices=INTERCEPT_MODULE.backends,
        help="only this backend's doors (repeatable; default: every installed backend)",
    )
    parser.add_argument(
        "--markdown", action="store_true",
        help="print the sections of docs/doors.md instead of a table",
    )


def run(args: argparse.Namespace) -> int:
    """Print the door tables (SPEC P8) of the chosen backends; skip absent frameworks."""
    console = Console()
    for backend in args.backend or INTERCEPT_MODULE.backends:
        try:
            doors = INTERCEPT_MODULE.load(backend).DOORS
        except ImportError as exc:
            console.print(f"[yellow]{backend}: skipped[/yellow] ({escape(str(exc))})")
            continue
        if args.markdown:
            print(door_table_markdown(backend, doors))
            continue
        table = Table(title=f"portable_masks doors: {backend} (SPEC P8)")
        for column in ("door", "handling", "detail"):
            table.add_column(column)
        for door in doors:
            style = "green" if door.handling == "site" else "red"
            table.add_row(escape(door.name), f"[{style}]{door.handling}[/{style}]",
                          escape(door.detail))
        console.print(table)
    return 0
