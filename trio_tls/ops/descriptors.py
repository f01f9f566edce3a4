"""Make the descriptor limit fit the connections the server is asked to hold open."""

from __future__ import annotations

import resource

# Descriptors beyond one per connection: listeners, log and key files, worker pipes.
RESERVED_DESCRIPTORS = 64


def ensure_descriptors(max_connections: int) -> str | None:
    """Make RLIMIT_NOFILE fit `max_connections`; a warning to print if it cannot.

    The soft limit is raised as far as the hard limit allows. Past that, accept() will fail
    with EMFILE under load; the server survives it, but the operator should know in advance.
    """
    needed = max_connections + RESERVED_DESCRIPTORS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return None
    if hard == resource.RLIM_INFINITY or hard >= needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
        return None
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return (
        f"--max-connections {max_connections} needs about {needed} file descriptors, but the "
        f"limit is {hard} (ulimit -n): raise it, or lower --max-connections to "
        f"{max(1, hard - RESERVED_DESCRIPTORS)}"
    )
