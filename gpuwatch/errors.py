"""Errors a person can meet, by what the command line does with them.

    config.ConfigError      a config file or setting that cannot be used     exit 2
    cli.UsageError          a command-line value that cannot be used          exit 2
    Unavailable             what was asked for cannot be obtained             exit 1
    └── store.StoreError    a database that cannot be opened, created or read

Every one prints as one line (`gpuwatch: MESSAGE`), never a traceback. This module imports
nothing, so `cli.main` can catch them all without loading the layers that raise them.
"""

from __future__ import annotations


class Unavailable(Exception):
    """What was asked for cannot be obtained (no database, an unusable directory); one line, exit 1."""
