"""The command line: ``dropout-ref <command>`` (:mod:`dropout_ref.cli.main`)."""
