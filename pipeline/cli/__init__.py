"""The ``ldct`` command line. Subcommands live in :mod:`pipeline.cli.commands`, one module each."""
