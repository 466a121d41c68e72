"""Who an engine process is, in lease owner ids, and whether a local owner is still alive.

An owner id is ``host:pid:nonce``. ``host`` is PAIREXEC_HOST or the machine's hostname: give
each container or machine sharing one database a distinct name. A lease normally runs out by
time; but when the owner ran on *this* host and its process is gone (killed, crashed), waiting
for the lease would only delay recovery, so such an owner counts as dead at once.
"""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path


def this_host() -> str:
    return os.environ.get("PAIREXEC_HOST") or socket.gethostname()


def new_owner_id() -> str:
    return f"{this_host()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def is_dead_locally(owner: str) -> bool:
    """True only if ``owner`` ran on this host and its process no longer runs."""
    parts = owner.rsplit(":", 2)
    if len(parts) != 3 or parts[0] != this_host() or not parts[1].isdigit():
        return False
    pid = int(parts[1])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    """A killed child its parent has not reaped yet still answers kill(0)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]
