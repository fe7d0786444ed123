"""Who holds a lease or a scratch file: ``host:pid:token`` owners, and whether such a process is gone.

One definition for the embedding claims, the job leases and replay's scratch files: an owner on this
host whose pid no longer exists can be taken over at once instead of waiting for its lease to expire.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable


def _pid_namespace() -> str:
    """Which processes ``os.kill(pid, 0)`` can see: containers sharing a hostname may not share them."""
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return "-"


HOST = f"{socket.gethostname()}/{_pid_namespace()}"  # no ":" inside: owners are "host:pid:token"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def new_owner() -> str:
    """An owner id for this process: ``host:pid:token``."""
    return f"{HOST}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def owner_gone(owner: str, *, host: str = HOST, alive: Callable[[int], bool] = pid_alive) -> bool:
    """The owner (``host:pid:token``) is a process of this host that no longer exists."""
    owner_host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    return owner_host == host and pid.isdigit() and not alive(int(pid))
