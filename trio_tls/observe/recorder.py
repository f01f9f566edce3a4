"""Per-connection observers: several at once, and the handshake record a handler may ask for.

serve() gives each connection one observer made of what is configured: the key log (shared),
a trace (one per connection), and a HandshakeRecord when the handler declares
`records_handshake = True`, which it then finds on `stream.handshake_record`. A record keeps
every observation with its time since the connection began, except secrets: a handler (a web
page, say) never gets the key schedule's values or the master secret.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import attrs

from ..engine.events import KeyDerived, Observation, Observer, SecretsEstablished

Record = list[tuple[float, Observation]]


def combine(*observers: Observer | None) -> Observer | None:
    """One observer calling each given one in turn (None when none is given: free when off)."""
    present = [observer for observer in observers if observer is not None]
    if not present:
        return None
    if len(present) == 1:
        return present[0]

    def each(observation: Observation) -> None:
        for observer in present:
            observer(observation)

    return each


class HandshakeRecorder:
    """Collects (seconds since start, observation) pairs, secrets removed."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.record: Record = []
        self._clock = clock
        self._start = clock()

    def __call__(self, observation: Observation) -> None:
        if isinstance(observation, SecretsEstablished):
            return
        if isinstance(observation, KeyDerived):
            observation = attrs.evolve(observation, value=None)
        self.record.append((self._clock() - self._start, observation))
