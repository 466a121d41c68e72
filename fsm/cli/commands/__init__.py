"""One module per ``pairexec`` command, each with ``async def run(args) -> int`` (the exit code).

``pairexec.fsm.cli.main`` imports only the module of the command given, once its command line
has been checked: the commands need the engine, the store and ccxt (seconds of imports), which a
mistyped command line or ``--help`` must not wait for.
"""
