"""The base of the errors that describe a user's input or files rather than a bug."""


class OmnirouterError(Exception):
    """The command line prints these as one-line messages (see `omnirouter.cli`)."""
