"""The ``pairexec`` command line (see ``pairexec.fsm.cli.main``)."""
