"""The ``pairexec`` command line (see ``fsm.cli.main``)."""
