import sys

from pairexec.fsm.cli.main import main

sys.exit(main())
