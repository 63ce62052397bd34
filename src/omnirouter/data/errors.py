"""The errors of bad data input: a missing file, a malformed table, an unknown or existing set.

Each is an `OmnirouterError`, so `omnirouter data ...` prints its message and exits 2, as every
other command does on bad input. Each also keeps the built-in type it refines (ValueError,
FileNotFoundError, KeyError), so code that caught those still catches them.
"""

from __future__ import annotations

from omnirouter.errors import OmnirouterError


class DataError(OmnirouterError, ValueError):
    """Input that cannot be used as given; the message names the file (and line) and why."""


class DataFileNotFoundError(OmnirouterError, FileNotFoundError):
    """A table, directory or corpus file the input names does not exist."""


class UnknownNameError(OmnirouterError, KeyError):
    """A name that is not among those known (a corpus's sets, the recipes); the message lists
    the known ones."""

    def __str__(self) -> str:
        # KeyError would print the message quoted, as if it were the missing key.
        return str(self.args[0]) if self.args else ""


class SetExistsError(DataError):
    """Writing sets that a corpus (or a Shar export) already has, without being asked to
    replace them."""
