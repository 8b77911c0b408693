"""Subcommands of ``dropout-ref``; see :mod:`dropout_ref.cli.main`."""
