"""Private Redis and PostgreSQL servers for development, demos and tests.

Each server is a child process of the caller, listening on 127.0.0.1 on a free port, with its
data in a folder of its own (``.var/`` in the repository, git-ignored).  Nothing here is meant
for production: PostgreSQL runs with ``fsync=off`` and Redis without snapshots.

Typical use::

    with PrivateStack() as stack:
        run_something(stack.redis_url, stack.database_url)

    with PrivateStack(redis=False) as stack:  # PostgreSQL only: redis-server not even needed
        run_something_else(stack.database_url)

The servers are stopped when the stack exits, when this process exits normally (atexit), on
SIGTERM/SIGHUP of this process, and (on Linux) when this process dies abruptly: the children get
SIGKILL from the kernel through ``PR_SET_PDEATHSIG``.  No orphan servers outlive a run.
"""

from charging_engine.devservers.binaries import (
    INSTALL_HINT,
    MIN_POSTGRES,
    MIN_REDIS,
    MissingBinaries,
    apt_packages,
    ensure_binaries,
    ensure_needed,
    install_hint,
)
from charging_engine.devservers.postgres import PostgresServer
from charging_engine.devservers.redis_server import RedisServer
from charging_engine.devservers.stack import PrivateStack, reap_stale_runs
from charging_engine.devservers.supervision import free_port

__all__ = [
    "INSTALL_HINT",
    "MIN_POSTGRES",
    "MIN_REDIS",
    "MissingBinaries",
    "PostgresServer",
    "PrivateStack",
    "RedisServer",
    "apt_packages",
    "ensure_binaries",
    "ensure_needed",
    "free_port",
    "install_hint",
    "reap_stale_runs",
]
