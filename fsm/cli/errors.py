"""Exit codes, and the errors the CLI reports as one line on stderr with a non-zero exit, never
a traceback (see ``pairexec.fsm.cli.main`` for what each code tells a supervisor)."""

EXIT_OK, EXIT_NOT_EXECUTED, EXIT_BAD_INPUT, EXIT_ATTENTION = 0, 1, 2, 3


class CliError(Exception):
    """Bad input or an unusable environment: the message is shown to the user as is."""

    exit_code = EXIT_BAD_INPUT
