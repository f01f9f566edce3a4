"""Session resumption state: a bounded session-ID cache and RFC 5077 session tickets.

What is resumed is a SessionState: the suite, master secret, whether the extended master secret
made it (RFC 7627 §5.3 forbids crossing that line), the SNI it was made for, when, and the
client's verified certificate chain if it authenticated. The
cache keeps at most `size` of them for at most `lifetime` seconds (LRU). A ticket is the same
state sealed with AES-256-GCM under a named key: key_name(16) ‖ nonce(12) ‖ ciphertext+tag,
with the key name as additional data. Any ticket that fails to open — tampered, expired,
unknown key — is simply not a session: the caller runs a full handshake, never fails one.

TicketKeys holds one key that seals and others that only open. Keys it made itself rotate every
`rotate_after` seconds (RFC 5077 §5.5: keys should change regularly, which is what keeps a key
stolen today from opening last week's tickets and their master secrets), and a retired key opens
tickets until the last one it sealed has expired. Keys handed in belong to whoever handed them in:
ticketfile.FileTicketKeys follows a key file that its owner rotates.

Every key counts its seals. The nonces are random, and NIST SP 800-38D §8.3 allows 2^32 of them
per key; a process seals at most SEAL_LIMIT (2^24) tickets under one key, rotating its own keys
when they reach it, and sending an empty ticket (RFC 5077 §3.3: "no ticket this time") when it
cannot rotate a key that reached it. 2^24 leaves room for 256 processes sharing one key.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from collections.abc import Sequence

import attrs
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .crypto.key_schedule import MASTER_SECRET_LENGTH
from .wire.codec import Reader, Writer
from .wire.enums import TLS12
from .wire.errors import DecodeError

KEY_NAME_LENGTH = 16
TICKET_KEY_LENGTH = 32
_NONCE_LENGTH = 12
_TLS12_ONLY_FORMAT = 2
_STATE_FORMAT = 3
SEAL_LIMIT = 2**24


@attrs.frozen
class SessionState:
    """What a resumption restores. `master_secret` is the TLS 1.2 master secret, or in TLS 1.3
    the resumption PSK (RFC 8446 §4.6.1); `version` says which, and a session resumes only in
    its own version. `client_chain` is the client's verified chain (DER, leaf first) when it
    authenticated, and `auth_epoch` the client-auth settings it was verified under
    (clientauth.ClientAuth.epoch, b"" for none): a session is only resumed under the same
    settings, so the identity it carries is one today's settings would accept. `age_add`
    obscures a TLS 1.3 ticket's age on the wire (§4.6.1)."""

    suite_id: int
    master_secret: bytes = attrs.field(repr=False)
    extended_master_secret: bool
    sni: str | None
    created: float
    client_chain: tuple[bytes, ...] = ()
    auth_epoch: bytes = b""
    version: int = TLS12
    age_add: int = 0

    def encode(self) -> bytes:
        writer = Writer()
        writer.u8(_STATE_FORMAT)
        writer.u16(self.version)
        writer.u16(self.suite_id)
        writer.u32(int(self.created))
        writer.u8(self.extended_master_secret)
        writer.opaque8(self.master_secret)
        writer.u32(self.age_add)
        writer.opaque8((self.sni or "").encode("ascii"))
        writer.opaque8(self.auth_epoch)
        for der in self.client_chain:
            writer.opaque24(der)
        return writer.getvalue()

    @classmethod
    def decode(cls, data: bytes) -> SessionState | None:
        """None for anything malformed: a ticket we sealed is never malformed. A ticket of the
        previous format (TLS 1.2 only, a 48-byte master secret) still opens."""
        reader = Reader(data)
        try:
            state_format = reader.u8()
            if state_format not in (_TLS12_ONLY_FORMAT, _STATE_FORMAT):
                return None
            version = reader.u16() if state_format == _STATE_FORMAT else TLS12
            suite_id, created, ems = reader.u16(), reader.u32(), reader.u8()
            if state_format == _STATE_FORMAT:
                secret, age_add = reader.opaque8(minimum=1), reader.u32()
            else:
                secret, age_add = reader.raw(MASTER_SECRET_LENGTH), 0
            sni = reader.opaque8().decode("ascii") or None
            epoch = reader.opaque8()
            chain = []
            while not reader.at_end():
                chain.append(reader.opaque24(minimum=1))
        except (DecodeError, UnicodeDecodeError):
            return None
        return cls(
            suite_id, secret, bool(ems), sni, float(created), tuple(chain), epoch, version, age_add
        )


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


class TicketKeys:
    """Seals and opens session tickets; see the module docstring."""

    def __init__(
        self,
        keys: Sequence[TicketKey] | None = None,
        *,
        lifetime: float = 7200,
        rotate_after: float | None = 3600,
        now: float | None = None,
        seal_limit: int = SEAL_LIMIT,
    ) -> None:
        self.lifetime = lifetime
        self._rotate_after = rotate_after if keys is None else None
        self._rotated_at = time.time() if now is None else now
        self._seal_limit = seal_limit
        self._aeads: dict[bytes, AESGCM] = {}
        self._seals: dict[bytes, int] = {}  # tickets this process sealed under each key
        self._retired: dict[bytes, float] = {}  # our own old keys: when each stopped sealing
        self._sealing = b""
        self._install(keys or [TicketKey.generate()])

    def _install(self, keys: Sequence[TicketKey]) -> None:
        """The first key seals and all open; a key kept across a reload keeps its count."""
        self._aeads = {key.name: AESGCM(key.secret) for key in keys}
        self._seals = {name: self._seals.get(name, 0) for name in self._aeads}
        self._sealing = keys[0].name

    def _refresh(self, now: float) -> None:
        """Rotate our own keys when it is time, or when the sealing key reaches its limit."""
        if self._rotate_after is None or (
            now - self._rotated_at < self._rotate_after
            and self._seals[self._sealing] < self._seal_limit
        ):
            return
        self._retired[self._sealing] = now
        for name, retired in list(self._retired.items()):
            if now - retired > self.lifetime:  # every ticket it sealed has expired
                del self._retired[name], self._aeads[name], self._seals[name]
        key = TicketKey.generate()
        self._aeads[key.name] = AESGCM(key.secret)
        self._seals[key.name] = 0
        self._sealing = key.name
        self._rotated_at = now

    def seal(self, state: SessionState) -> bytes:
        """A ticket for state, by the state's clock; b"" if the key is spent (module docstring)."""
        self._refresh(state.created)
        name = self._sealing
        if self._seals[name] >= self._seal_limit:
            return b""
        self._seals[name] += 1
        nonce = os.urandom(_NONCE_LENGTH)
        return name + nonce + self._aeads[name].encrypt(nonce, state.encode(), name)

    def open(self, ticket: bytes, now: float) -> SessionState | None:
        self._refresh(now)
        name = ticket[:KEY_NAME_LENGTH]
        aead = self._aeads.get(name)
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
