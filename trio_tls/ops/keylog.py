"""NSS key log output (the SSLKEYLOGFILE format Wireshark reads), as a connection observer.

Each TLS 1.2 handshake appends `CLIENT_RANDOM <client random hex> <master secret hex>`; each TLS
1.3 handshake five lines, one per traffic secret and the exporter secret, each under its label.
The file is opened for append, so several servers (or a client and a server) can share one,
under the rules of secretfiles: never through a symbolic link, created 0600 with O_EXCL, and
refused if it exists with access for other users or belongs to another user. Anyone holding this
file can decrypt the recorded traffic: it is for debugging only, and the CLI warns at start-up
whenever it is on.
"""

from __future__ import annotations

import os

from ..engine.events import Observation, SecretsEstablished
from .secretfiles import open_for_append


class KeyLogFile:
    """An observer that records master secrets; call `close()` when the server stops."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        """Raises OSError, or SecretFileError for a link or a file others may read."""
        self.path = os.fspath(path)
        fd = open_for_append(self.path)
        self._file = os.fdopen(fd, "a", encoding="ascii")

    def __call__(self, observation: Observation) -> None:
        if isinstance(observation, SecretsEstablished):
            self._file.write(
                f"{observation.label} {observation.client_random.hex()} "
                f"{observation.master_secret.hex()}\n"
            )
            self._file.flush()

    def close(self) -> None:
        self._file.close()
