"""The error every model source raises when it cannot be turned into a directory."""


class SourceError(ValueError):
    """A model source that cannot be turned into a directory, with what to do instead."""
