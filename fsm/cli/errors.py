"""Errors the CLI reports as one line on stderr with a non-zero exit, never a traceback."""


class CliError(Exception):
    """Bad input or an unusable environment: the message is shown to the user as is."""

    exit_code = 2
