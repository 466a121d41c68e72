"""``python -m pairexec``: the same program as the ``pairexec`` command."""

import sys

from pairexec.fsm.cli.main import main

sys.exit(main())
