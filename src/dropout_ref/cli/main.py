"""The ``dropout-ref`` command line.

Each subcommand lives in ``dropout_ref.cli.commands.<name>`` and offers
``add_arguments(parser)`` and ``run(args) -> int``. Building the parser
imports no framework, so ``dropout-ref --help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

#: Subcommand name -> one-line help. Modules are imported only when listed here.
COMMANDS: dict[str, str] = {
    "backends": "list the backends, whether they import here, and how to install the rest",
    "report": "run the conformance kit over every backend and native dropout; print the matrix",
    "train": "train the course MLP (dropout 0.2/0.5) on Fashion-MNIST or digits",
    "compare": "train the MLP in every backend with portable masks and compare step by step",
    "bench": "time dropout_layer against each framework's native dropout and X * 2.0",
    "generate": "sample text from a GPT checkpoint with portable top-k sampling (any backend)",
    "doors": "list every door of portable_masks per framework: a numbered site or a refusal",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """Return the parser with every available subcommand (or only the one named ``only``).

    Parsing one command imports only that command's module, so a machine lacking a
    dependency of another command (e.g. rich, on a bare GPU box) still runs this one.
    """
    parser = argparse.ArgumentParser(
        prog="dropout-ref",
        description="One dropout, every framework, provably the same.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, help_text in COMMANDS.items():
        if only is not None and name != only:
            continue
        try:
            module = importlib.import_module(f"dropout_ref.cli.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"dropout_ref.cli.commands.{name}":
                raise
            continue
        command = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(command)
        command.set_defaults(handler=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    only = argv[0] if argv and argv[0] in COMMANDS else None
    args = build_parser(only).parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
