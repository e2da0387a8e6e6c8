"""Errors that carry a message meant for the person running the tool.

Anything raised as a :class:`UserError` is printed by the CLI and the GUI as one
line, without a traceback: the message must name the offending file, key or value.
"""


class UserError(Exception):
    """A problem with the user's input (files, options, configs), not a bug."""


class CheckpointError(UserError):
    """A weights file that cannot be read safely or does not fit the architecture."""


class ConfigError(UserError):
    """A configuration file or value that is missing, unknown or out of range."""


class SourceError(UserError):
    """A video source that cannot be opened or read."""
