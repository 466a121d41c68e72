import sys

from fsm.cli.main import main

sys.exit(main())
