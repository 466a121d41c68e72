"""Test-only self-kill points, for the SIGKILL crash matrix. Off unless the env var is set.

``PAIREXEC_TEST_KILL_AT=<point>`` makes the process SIGKILL itself the first time it reaches
that point, so a test can prove that a crash *exactly there* loses nothing. Points:

- ``intent:A`` / ``intent:B`` / ``intent:UNWIND``: the order's intent is committed, its
  create_order not yet called;
- ``sent:A`` / ``sent:B`` / ``sent:UNWIND``: create_order returned, its answer not yet stored;
- ``state:<STATE>``: a transition into STATE was just committed (e.g. ``state:LEG_A_FILLED``).

Read once at import: with the variable unset, ``reached`` is a constant-time no-op.
"""

from __future__ import annotations

import os
import signal

ENV_VAR = "PAIREXEC_TEST_KILL_AT"
_TARGET = os.environ.get(ENV_VAR) or None


def reached(point: str) -> None:
    if _TARGET is not None and point == _TARGET:
        os.kill(os.getpid(), signal.SIGKILL)
