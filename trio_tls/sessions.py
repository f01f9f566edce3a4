"""Session resumption state: a bounded session-ID cache and RFC 5077 session tickets.

What is resumed is a SessionState: the suite, master secret, whether the extended master secret
made it (RFC 7627 §5.3 forbids crossing that line), the SNI it was made for, and when. The
cache keeps at most `size` of them for at most `lifetime` seconds (LRU). A ticket is the same
state sealed with AES-256-GCM under a named key: key_name(16) ‖ nonce(12) ‖ ciphertext+tag,
with the key name as additional data. Any ticket that fails to open — tampered, expired,
unknown key — is simply not a session: the caller runs a full handshake, never fails one.

TicketKeys holds the current key (which seals) and older ones (which only open); it rotates on
its own every `rotate_after` seconds unless the keys come from a file shared by several
processes, in which case rotating is the job of whoever writes the file.
"""

from __future__ import annotations

import os
import struct
import time
from collections import OrderedDict
from pathlib import Path

import attrs
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .keys import MASTER_SECRET_LENGTH

KEY_NAME_LENGTH = 16
TICKET_KEY_LENGTH = 32
_NONCE_LENGTH = 12
_STATE_HEADER = struct.Struct("!BHQ?B")  # format, suite, created, ems, sni length
_STATE_FORMAT = 1


@attrs.frozen
class SessionState:
    suite_id: int
    master_secret: bytes = attrs.field(repr=False)
    extended_master_secret: bool
    sni: str | None
    created: float

    def encode(self) -> bytes:
        sni = (self.sni or "").encode("ascii")
        header = _STATE_HEADER.pack(
            _STATE_FORMAT, self.suite_id, int(self.created), self.extended_master_secret, len(sni)
        )
        return header + self.master_secret + sni

    @classmethod
    def decode(cls, data: bytes) -> SessionState | None:
        """None for anything malformed: a ticket we sealed is never malformed."""
        if len(data) < _STATE_HEADER.size + MASTER_SECRET_LENGTH:
            return None
        version, suite_id, created, ems, sni_length = _STATE_HEADER.unpack_from(data)
        rest = data[_STATE_HEADER.size :]
        if version != _STATE_FORMAT or len(rest) != MASTER_SECRET_LENGTH + sni_length:
            return None
        sni = rest[MASTER_SECRET_LENGTH:].decode("ascii") or None
        return cls(suite_id, rest[:MASTER_SECRET_LENGTH], ems, sni, float(created))


class SessionCache:
    """Server-side sessions by ID: bounded in count and in age, least recently used first out."""

    def __init__(self, size: int = 20_000, lifetime: float = 7200) -> None:
        self.size = size
        self.lifetime = lifetime
        self._sessions: OrderedDict[bytes, SessionState] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def store(self, session_id: bytes, state: SessionState) -> None:
        if self.size <= 0:
            return
        self._sessions[session_id] = state
        self._sessions.move_to_end(session_id)
        while len(self._sessions) > self.size:
            self._sessions.popitem(last=False)

    def lookup(self, session_id: bytes, now: float) -> SessionState | None:
        state = self._sessions.get(session_id)
        if state is None:
            return None
        if not 0 <= now - state.created <= self.lifetime:
            del self._sessions[session_id]
            return None
        self._sessions.move_to_end(session_id)
        return state


@attrs.frozen
class TicketKey:
    name: bytes
    secret: bytes = attrs.field(repr=False)

    @classmethod
    def generate(cls) -> TicketKey:
        return cls(os.urandom(KEY_NAME_LENGTH), os.urandom(TICKET_KEY_LENGTH))


class TicketKeyFileError(ValueError):
    """The ticket key file is missing, unreadable or malformed; str() is one line."""


def load_ticket_keys(path: str | os.PathLike[str]) -> list[TicketKey]:
    """Read a ticket key file: one key per line, 96 hex digits (16-byte name, 32-byte key).

    The first line seals new tickets; later lines only open old ones, so a rotation is "write a
    new first line, keep the old one below it for a ticket lifetime".
    """
    try:
        lines = [line.strip() for line in Path(path).read_text("ascii").splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        raise TicketKeyFileError(f"cannot read ticket key file {path}: {exc}") from None
    keys = []
    for number, line in enumerate(lines, 1):
        if not line or line.startswith("#"):
            continue
        try:
            raw = bytes.fromhex(line)
        except ValueError:
            raw = b""
        if len(raw) != KEY_NAME_LENGTH + TICKET_KEY_LENGTH:
            raise TicketKeyFileError(f"{path}:{number}: expected 96 hex digits")
        keys.append(TicketKey(raw[:KEY_NAME_LENGTH], raw[KEY_NAME_LENGTH:]))
    if not keys:
        raise TicketKeyFileError(f"ticket key file {path} holds no key")
    return keys


def write_ticket_key_file(path: str | os.PathLike[str], keys: list[TicketKey]) -> None:
    """Create a key file (mode 0600): the secrets in it decrypt every session they sealed."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as file:
        for key in keys:
            file.write((key.name + key.secret).hex() + "\n")


class TicketKeys:
    """Seals and opens session tickets; see the module docstring."""

    def __init__(
        self,
        keys: list[TicketKey] | None = None,
        *,
        lifetime: float = 7200,
        rotate_after: float | None = 3600,
        now: float | None = None,
    ) -> None:
        self.lifetime = lifetime
        self._rotate_after = rotate_after if keys is None else None
        self._rotated_at = time.time() if now is None else now
        self._keys: list[tuple[bytes, AESGCM]] = []
        for key in keys or [TicketKey.generate()]:
            self._keys.append((key.name, AESGCM(key.secret)))

    def _maybe_rotate(self, now: float) -> None:
        if self._rotate_after is None or now - self._rotated_at < self._rotate_after:
            return
        key = TicketKey.generate()
        self._keys.insert(0, (key.name, AESGCM(key.secret)))
        # Keep old keys for as long as tickets they sealed may still be valid.
        keep = 1 + int(self.lifetime // self._rotate_after) + 1
        del self._keys[keep:]
        self._rotated_at = now

    def seal(self, state: SessionState) -> bytes:
        """Seal under the current key (rotating first, if it is time, by the state's clock)."""
        self._maybe_rotate(state.created)
        name, aead = self._keys[0]
        nonce = os.urandom(_NONCE_LENGTH)
        return name + nonce + aead.encrypt(nonce, state.encode(), name)

    def open(self, ticket: bytes, now: float) -> SessionState | None:
        name = ticket[:KEY_NAME_LENGTH]
        aead = next((aead for key_name, aead in self._keys if key_name == name), None)
        if aead is None:
            return None
        nonce = ticket[KEY_NAME_LENGTH : KEY_NAME_LENGTH + _NONCE_LENGTH]
        try:
            plaintext = aead.decrypt(nonce, ticket[KEY_NAME_LENGTH + _NONCE_LENGTH :], name)
        except (InvalidTag, ValueError):
            return None
        state = SessionState.decode(plaintext)
        if state is None or not 0 <= now - state.created <= self.lifetime:
            return None
        return state
