"""Errors raised on bad input. Command-line entry points catch :class:`MMKGError`,
print its one-line message and exit non-zero."""


class MMKGError(Exception):
    """Base class of every user-facing error: the message names the file, line or id at fault."""


class KGFormatError(MMKGError):
    """A KG source (RDF file, table, saved KG directory) is malformed."""


class MappingError(MMKGError):
    """A mapping file is malformed or names an unknown key."""


class SourceConnectionError(MMKGError):
    """A database cannot be reached or refuses the credentials."""
