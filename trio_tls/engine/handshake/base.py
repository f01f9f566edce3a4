"""What every handshake state shares: the State base, the context it acts on, Negotiated.

Each state holds only what exists at that point of the handshake (no ephemeral key after the
key exchange, no handshake secrets once traffic flows) and answers the messages it expects;
`accepted` names them, and the connection refuses any other type with unexpected_message before
its body is buffered or decoded (order before content). `handle_*` returns the next state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import ClassVar, Protocol

import attrs
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from ..clientauth import subject_text
from ..config import CertifiedKey, ServerConfig
from ..crypto.key_schedule import (
    TrafficKeys,
    key_block,
)
from ..crypto.suites import CipherSuite
from ..events import ConnectionInfo, Decision, KeyDerived, Observer
from ..record.protection import RecordProtection
from ..wire.enums import (
    NamedGroup,
    SignatureScheme,
)
from ..wire.errors import (
    InternalError,
    UnexpectedMessage,
)
from ..wire.messages import (
    ClientMessage,
    HandshakeMessage,
)


class HandshakeContext(Protocol):
    """What a state may do to its connection: the connection implements this."""

    @property
    def config(self) -> ServerConfig: ...

    @property
    def observer(self) -> Observer | None: ...

    def send_handshake(self, message: HandshakeMessage, encoded: bytes | None = None) -> bytes:
        """Queue a handshake message (or its pre-encoded bytes); return the bytes queued."""
        ...

    def negotiated_version(self) -> None:
        """From now on every record must carry version TLS 1.2 (legacy_record_version in 1.3)."""
        ...

    def enter_tls13(self) -> None:
        """From now on the record rules of TLS 1.3 apply (connection.py's docstring)."""
        ...

    def set_read_protection(self, protection: RecordProtection) -> None:
        """Open later records with `protection`; unexpected_message if a handshake message
        is cut by the change (RFC 8446 §5.1)."""
        ...

    def change_write_protection(self, protection: RecordProtection) -> None:
        """Send ChangeCipherSpec, then protect every later record with `protection`."""
        ...

    def set_write_protection(self, protection: RecordProtection) -> None:
        """Send what is queued, then protect every later record with `protection` (TLS 1.3:
        no ChangeCipherSpec marks the change)."""
        ...

    def send_change_cipher_spec(self) -> None:
        """Send what is queued, then a ChangeCipherSpec record: in TLS 1.3 only for middlebox
        compatibility (RFC 8446 App. D.4), and without changing keys."""
        ...

    def count_key_update(self) -> None:
        """Count a KeyUpdate received; unexpected_message past the limit of a row of them."""
        ...

    def update_write_keys(self, key_update: HandshakeMessage, protection: RecordProtection) -> None:
        """Send our KeyUpdate, then protect later records with `protection`: unless our
        close_notify is out, after which nothing more is sent."""
        ...

    def refuse_renegotiation(self) -> None:
        """Answer a ClientHello after the handshake with a warning no_renegotiation."""
        ...

    def handshake_complete_event(self, info: ConnectionInfo) -> None: ...

    def request_signature(self, sign: Callable[[], bytes], awaiting: AwaitingSignature) -> State:
        """Sign now and go on (`awaiting.signed`), or hand `sign` to the connection's user
        (events.SignatureNeeded) and wait in `awaiting`."""
        ...


def accepting(*classes: type[ClientMessage]) -> Mapping[int, type[ClientMessage]]:
    return MappingProxyType({cls.handshake_type: cls for cls in classes})


class State:
    """A state refuses every message; subclasses accept the ones they expect.

    `accepted` names the handshake messages a state takes: the connection refuses any other
    type with unexpected_message before its body is buffered or decoded (order before content).
    """

    accepted: ClassVar[Mapping[int, type[ClientMessage]]] = accepting()
    accepts_application_data = False

    def handle_handshake(
        self, ctx: HandshakeContext, message: HandshakeMessage, raw: bytes
    ) -> State:
        raise UnexpectedMessage(f"{type(message).__name__} in state {type(self).__name__}")

    def handle_change_cipher_spec(self, ctx: HandshakeContext) -> State:
        raise UnexpectedMessage(f"ChangeCipherSpec in state {type(self).__name__}")

    def update_own_keys(self, ctx: HandshakeContext) -> State:
        """Update our write keys before their record limit (TLS 1.3's traffic state only)."""
        raise InternalError(f"no key update in state {type(self).__name__}")


class AwaitingSignature(State):
    """A state that goes on once its signature is made (HandshakeContext.request_signature);
    meanwhile, like State, it accepts no message."""

    def signed(self, ctx: HandshakeContext, signature: bytes) -> State:
        raise NotImplementedError


@attrs.frozen
class Negotiated:
    """The parameters fixed by ClientHello / ServerHello."""

    suite: CipherSuite
    client_random: bytes
    server_random: bytes
    extended_master_secret: bool
    sni: str | None
    alpn: bytes | None
    resumed: bool = False
    session_id: bytes = b""  # the ServerHello's session ID (b"" for none); cached only with EMS
    issue_ticket: bool = False
    # Full handshakes only: a resumed session proves itself with the old master secret.
    certified: CertifiedKey | None = None
    group: int | None = None
    signature_scheme: int | None = None
    # The client's verified chain, once it has sent one (on resumption: what was kept of it).
    client_chain: tuple[x509.Certificate, ...] | None = None

    def info(self) -> ConnectionInfo:
        return describe(
            "TLSv1.2",
            self.suite.name,
            self.sni,
            self.alpn,
            resumed=self.resumed,
            extended_master_secret=self.extended_master_secret,
            group=self.group,
            signature_scheme=self.signature_scheme,
            client_chain=self.client_chain,
        )


def describe(
    version: str,
    suite_name: str,
    sni: str | None,
    alpn: bytes | None,
    *,
    resumed: bool,
    extended_master_secret: bool,
    group: int | None,
    signature_scheme: int | None,
    client_chain: tuple[x509.Certificate, ...] | None,
) -> ConnectionInfo:
    """What a handler learns of a handshake, in either version: names, not code points."""
    return ConnectionInfo(
        version=version,
        cipher_suite=suite_name,
        sni=sni,
        alpn=alpn.decode("ascii", "replace") if alpn is not None else None,
        resumed=resumed,
        extended_master_secret=extended_master_secret,
        group=wire_name(NamedGroup, group),
        signature_scheme=wire_name(SignatureScheme, signature_scheme),
        client_certificate=client_chain,
        client_subject=subject_text(client_chain[0]) if client_chain else None,
    )


def kept_identity(
    config: ServerConfig, client_chain: tuple[x509.Certificate, ...] | None
) -> tuple[tuple[bytes, ...], bytes]:
    """What a session keeps of the client's identity: its leaf alone (the chain was verified
    now, and a resumption is re-checked against the same settings, negotiate.py, so tickets
    stay small) and the client-auth settings' epoch it was verified under."""
    leaf = (client_chain[0].public_bytes(Encoding.DER),) if client_chain else ()
    return leaf, config.client_auth.epoch if config.client_auth is not None else b""


def wire_name(enum: type[NamedGroup] | type[SignatureScheme], value: int | None) -> str | None:
    if value is None:
        return None
    try:
        return enum(value).name
    except ValueError:
        return str(value)


def traffic_keys(ctx: HandshakeContext, negotiated: Negotiated, master: bytes) -> TrafficKeys:
    """The key block (RFC 5246 §6.3) cut into both directions' keys and IVs."""
    suite = negotiated.suite
    keys = key_block(
        suite.prf_hash,
        master,
        negotiated.client_random,
        negotiated.server_random,
        suite.key_length,
        suite.iv_length,
    )
    if ctx.observer is not None:
        for name, value in (
            ("client write key", keys.client_key),
            ("server write key", keys.server_key),
            ("client write IV", keys.client_iv),
            ("server write IV", keys.server_iv),
        ):
            ctx.observer(KeyDerived(name, "RFC 5246 §6.3", value))
    return keys


def explain(ctx: HandshakeContext, topic: str, choice: str, reason: str, rfc: str) -> None:
    """Report a decision and its reason to the observer, if there is one."""
    if ctx.observer is not None:
        ctx.observer(Decision(topic, choice, reason, rfc))
