"""Coverage-guided fuzzing of ServerConnection with atheris (libFuzzer driving CPython).

The property under test is h11's contract: whatever bytes reach `receive_data()`, pulling
`next_event()` until NEED_DATA (or a ConnectionClosed, which then repeats) raises nothing but
`RemoteProtocolError`; once it has, the connection is dead (it raises again with no alert and sends
nothing more), and the output of the failing step ends with the one alert the error names (any
earlier alert in that step being a warning, as no_renegotiation is). An `internal_error` alert
counts as a crash too: it means one of our own invariants broke on peer input. Everything else
(which alert, whether a handshake succeeds) is left to the unit tests; a fuzzer that encoded
per-input expectations would mostly fuzz itself.

Why structure-aware modes: random bytes never get past the ClientHello, and nothing random ever
produces a valid Finished or an authentic record. So the harness plays a real client (the scripted
client from the tests) up to a stage picked by the input, and lets the input take over there:

  0 raw         the input is the whole byte stream of a fresh connection.
  1 after-hello a valid ClientHello is answered first; the input is what the client sends next
                (ClientKeyExchange, ChangeCipherSpec and Finished decoding, all in plaintext).
  2 after-ccs   ClientKeyExchange and ChangeCipherSpec are sent too; the input is a list of records
                (type, payload) that the harness seals with the client's real keys, so mutations
                reach Finished decoding and every path behind record decryption. One record kind is
                "the genuine Finished", so the search can step into Traffic on its own.
  3 traffic     a complete handshake first; the input is again sealed records: application data,
                alerts, ChangeCipherSpec, a renegotiation ClientHello, floods of any of them.
  4 mutate      a valid ClientHello (a captured one from tests/fixtures/clienthellos, or one the
                scripted client builds) parsed into a tree of vectors; the input picks up to three
                nodes and bends each (a lying length, a removed, duplicated or multiplied entry, a
                replaced or stretched body with the lengths around it fixed up), optionally re-cut
                into 2^14-byte records: that is how the deep extension decoders and the size limit
                of a multi-record ClientHello are reached without rediscovering the framing.
  5 resume      an abbreviated handshake (RFC 5246 §7.3) from a session the harness planted in
                the session cache or sealed into a ticket with the config's key; then sealed
                records as in mode 2. Session IDs and tickets are unguessable, so without this the
                resumption code would be unreachable.
  6 client-auth a server that asks for a client certificate (RFC 5246 §7.4.4-§7.4.8), and a
                client that answers with a genuine chain from the trusted CA (P-256, P-384, or a
                T61String subject cryptography cannot decode; the CA appended or not; or none),
                whose Certificate message the input flips bytes in, then ClientKeyExchange and a
                CertificateVerify that is genuine, tampered, names another scheme, is the input's
                own bytes, or is left out; then ChangeCipherSpec, Finished and sealed records as
                in mode 3. Certificates are hostile until verified: cryptography parses them
                lazily, so a flipped byte can surface anywhere in the verifier.

  7 tls13-after-hello, 8 tls13-handshake, 9 tls13-traffic
                TLS 1.3 (RFC 8446), with the client of tests/tlslite13_peer.py: after our
                encrypted flight, the input as it is (the client's flight in clear: CCS, alerts,
                refused 0-RTT records); or record items sealed under the client's handshake key
                (Certificate, CertificateVerify and Finished decoding, and every path behind the
                1.3 record layer); or, after a genuine Finished, under its application key
                (KeyUpdate, alerts, data). The options pick suites, groups (one choice sends no
                share, so a HelloRetryRequest comes first), a session ID, a resumable ticket as a
                PSK, a server asking for a client certificate, and early_data (see run_tls13).

Input layout (all modes): byte 0 = mode (mod 10; with `--modes a,b,...`, a mode not named is
replaced by one that is); byte 1 = how to feed the fuzz-controlled part
(bits 0-1: 0 whole, 1 byte by byte, 2-3 cut at positions read from the input; bit 5: compare
with whole; bit 6: attach an observer; bit 7: EOF at the end); bytes 2-3 = client options
(suites, groups, EMS, SNI, ALPN, ticket, strict-SNI config, mode specifics; see `ClientOptions`);
then the cut positions and a custom SNI if those were chosen; then the mode's payload. With bit 5,
a byte-by-byte or cut feeding is run again whole and must give the same events and the same
outcome (h11's rule, which is where record and handshake reassembly bugs show).

The server config has an ECDSA P-256 certificate (signing ~30 µs, so most executions stay cheap)
and an RSA-2048 one (the suite choice reaches it), a session cache, ticket keys, ALPN and a fixed
clock, all made once at import. Only `trio_tls` is instrumented; cryptography, trio and the
scripted client are not, so coverage feedback is about our code.

Run (new inputs go to the first directory, the checked-in seeds are only read)::

    nox -s fuzz                                  # 300 s; `nox -s fuzz -- -max_total_time=60`
    python fuzz/fuzz_connection.py .fuzz-corpus fuzz/corpus -dict=fuzz/tls.dict \\
        -max_total_time=600 -print_final_stats=1 -artifact_prefix=.fuzz-artifacts/
    python fuzz/fuzz_connection.py .fuzz-artifacts/crash-...   # replay one input, with traceback

fuzz/tls.dict holds TLS tokens (record headers, suites, extension types) for the mutator.
`--modes tls13-after-hello,tls13-handshake,tls13-traffic` runs a campaign over those modes only.
`--keep-going` records each distinct crash (by exception type and innermost frame) next to the
artifact prefix, with its traceback, and carries on instead of stopping at the first one: for
long campaigns. `--write-seeds DIR` regenerates the seed corpus. To fold finds back into the
checked-in seeds, merge into a fresh directory and keep only a few small files::

    python fuzz/fuzz_connection.py -merge=1 /tmp/merged fuzz/corpus .fuzz-corpus
"""

from __future__ import annotations

import collections
import copy
import ctypes
import datetime
import hashlib
import itertools
import pathlib
import sys
import traceback
import typing
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import atheris

REPO = pathlib.Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import attrs  # noqa: E402
import trustme  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305  # noqa: E402
from cryptography.hazmat.primitives.serialization import (  # noqa: E402
    Encoding,
    load_pem_private_key,
)
from cryptography.x509.name import _ASN1Type  # noqa: E402
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID  # noqa: E402

# Only trio_tls's bytecode gets coverage and comparison hooks: cryptography, trio and attrs
# (imported from inside trio_tls, within the block) are left alone, and so is the harness.
with atheris.instrument_imports(include=["trio_tls"]):
    import trio_tls  # noqa: F401  (the whole package, so every module is instrumented)
    from trio_tls.engine.clientauth import ClientAuth
    from trio_tls.engine.config import CertifiedKey, ServerConfig
    from trio_tls.engine.connection import ServerConnection
    from trio_tls.engine.crypto.asymmetric import PrivateKey
    from trio_tls.engine.crypto.suites import ALL_SUITES, SUITES_BY_ID
    from trio_tls.engine.events import (
        NEED_DATA,
        AlertReceived,
        ApplicationData,
        ConnectionClosed,
        Event,
        HandshakeComplete,
        MessageObserved,
        Observation,
    )
    from trio_tls.engine.sessions import SessionCache, SessionState, TicketKey, TicketKeys
    from trio_tls.engine.wire.codec import Reader, Writer
    from trio_tls.engine.wire.enums import (
        TLS12,
        TLS13,
        TLS_EMPTY_RENEGOTIATION_INFO_SCSV,
        AlertDescription,
        AlertLevel,
        ContentType,
        ExtensionType,
        HandshakeType,
        NamedGroup,
    )
    from trio_tls.engine.wire.errors import RemoteProtocolError
    from trio_tls.engine.wire.messages import Certificate

OBSERVATION_TYPES = typing.get_args(Observation)

from tests.scripted_client import (  # noqa: E402
    Keys,
    ParsedServerHello,
    ScriptedClient,
    extension,
    handshake,
    prf,
    record,
    sni_extension_data,
    split_handshake,
    split_records,
)
from tests.tlslite13_peer import Client13, KeyShare, raw_extension  # noqa: E402

# -- the server under test, made once -------------------------------------------------------------

CLOCK = 1_700_000_000.0
FIXTURES_DIR = REPO / "tests" / "fixtures" / "clienthellos"
FIXTURES: tuple[bytes, ...] = tuple(p.read_bytes() for p in sorted(FIXTURES_DIR.glob("*.bin")))
FIXTURE_NAMES: tuple[str, ...] = tuple(p.stem for p in sorted(FIXTURES_DIR.glob("*.bin")))


def _certified(leaf: trustme.LeafCert) -> CertifiedKey:
    chain = tuple(x509.load_pem_x509_certificate(pem.bytes()) for pem in leaf.cert_chain_pems)
    key = load_pem_private_key(leaf.private_key_pem.bytes(), None)
    assert isinstance(key, PrivateKey)
    return CertifiedKey(chain, key)


def _fixed_clock() -> float:
    return CLOCK


_CA = trustme.CA(key_type=trustme.KeyType.ECDSA)
_CERTIFICATES = (
    _certified(_CA.issue_cert("localhost", "127.0.0.1", key_type=trustme.KeyType.ECDSA)),
    _certified(_CA.issue_cert("localhost", "127.0.0.1", key_type=trustme.KeyType.RSA)),
)
# Fixed ticket key: tickets sealed at import stay valid for every execution and across runs.
_TICKET_KEYS = TicketKeys([TicketKey(b"fuzz-ticket-name", bytes(range(32)))], lifetime=7200)
_CACHE = SessionCache(size=256, lifetime=7200)
CONFIG = ServerConfig(
    _CERTIFICATES,
    alpn_protocols=(b"h2", b"http/1.1"),
    session_cache=_CACHE,
    ticket_keys=_TICKET_KEYS,
    clock=_fixed_clock,
)
STRICT_CONFIG = attrs.evolve(CONFIG, strict_sni=True)


def _sessions() -> tuple[tuple[bytes, SessionState, bytes], ...]:
    """(session ID, state, ticket) for the resume mode: a GCM and a ChaCha20 suite, with and
    without EMS. The IDs are planted in the cache before each use; the tickets stay valid."""
    out = []
    for index, (suite, ems) in enumerate(itertools.product((0xC02B, 0xCCA8), (True, False))):
        state = SessionState(suite, bytes((index,)) * 48, ems, "localhost", CLOCK - 60)
        out.append((bytes((0xA0 + index,)) * 32, state, _TICKET_KEYS.seal(state)))
    return tuple(out)


SESSIONS = _sessions()


# -- client certificates for the client-auth mode, made once ----------------------------------
# Deterministic (fixed keys, RFC 6979 signatures), so a saved input replays in another process.


def _client_certificate(
    name: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    signer: ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(int.from_bytes(hashlib.sha256(name.public_bytes()).digest()[:8]))
        .not_valid_before(datetime.datetime.fromtimestamp(CLOCK - 86400, datetime.UTC))
        .not_valid_after(datetime.datetime.fromtimestamp(CLOCK + 86400 * 365, datetime.UTC))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
        ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    else:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        ).add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), False
        )
    return builder.sign(signer, hashes.SHA256(), ecdsa_deterministic=True)


def _cn(text: str, kind: _ASN1Type = _ASN1Type.UTF8String) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text, _type=kind)])


def _client_identities() -> tuple[x509.Certificate, tuple[tuple[bytes, PrivateKey, int], ...]]:
    """The client CA, and (leaf DER, key, signature scheme) for P-256, P-384 and a T61String
    subject (CN=café in Latin-1, as `openssl req` writes it: the TBSCertificate is edited after
    the builder and signed again)."""
    ca_key = ec.derive_private_key(0xCA, ec.SECP256R1())
    ca = _client_certificate(_cn("fuzz client CA"), ca_key, _cn("fuzz client CA"), ca_key, ca=True)
    p256, p384 = (
        ec.derive_private_key(0xA11CE, ec.SECP256R1()),
        ec.derive_private_key(0xB0B, ec.SECP384R1()),
    )
    t61 = _client_certificate(_cn("cafX", _ASN1Type.T61String), p256, ca.subject, ca_key, ca=False)
    tbs = t61.tbs_certificate_bytes.replace(b"\x14\x04cafX", b"\x14\x04caf\xe9")
    signature = ca_key.sign(tbs, ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    sig_alg = bytes.fromhex("300a06082a8648ce3d040302")
    t61_der = _der_sequence(tbs + sig_alg + _der(0x03, b"\x00" + signature))
    leaves = (
        (
            _client_certificate(_cn("alice"), p256, ca.subject, ca_key, ca=False).public_bytes(
                Encoding.DER
            ),
            p256,
            0x0403,
        ),
        (
            _client_certificate(_cn("bob"), p384, ca.subject, ca_key, ca=False).public_bytes(
                Encoding.DER
            ),
            p384,
            0x0503,
        ),
        (t61_der, p256, 0x0403),
    )
    return ca, leaves


def _der(tag: int, body: bytes) -> bytes:
    size = len(body)
    if size < 0x80:
        return bytes((tag, size)) + body
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(octets))) + octets + body


def _der_sequence(body: bytes) -> bytes:
    return _der(0x30, body)


CLIENT_CA_CERT, CLIENT_LEAVES = _client_identities()
CLIENT_AUTH_CONFIGS = {
    mode: attrs.evolve(CONFIG, client_auth=ClientAuth((CLIENT_CA_CERT,), mode))
    for mode in ("required", "optional")
}

# TLS 1.3 beside 1.2 (the 1.3 modes), and with a client certificate asked for.
CONFIG13 = attrs.evolve(CONFIG, versions=frozenset({TLS12, TLS13}))
CLIENT_AUTH_CONFIG13 = attrs.evolve(CLIENT_AUTH_CONFIGS["optional"], versions=CONFIG13.versions)
# A TLS 1.3 ticket with a known PSK, so the 1.3 modes can resume (binder and all).
PSK13 = bytes(range(32))
TICKET13 = _TICKET_KEYS.seal(
    SessionState(0x1301, PSK13, True, "localhost", CLOCK - 60, version=TLS13, age_add=7)
)

# A renegotiation ClientHello (a whole handshake message), sealed as-is in the later stages.
RENEGOTIATION_HELLO = handshake(HandshakeType.client_hello, ScriptedClient().client_hello_body())

# -- reading the input ----------------------------------------------------------------------------

MODES = (
    "raw",
    "after-hello",
    "after-ccs",
    "traffic",
    "mutate",
    "resume",
    "client-auth",
    "tls13-after-hello",
    "tls13-handshake",
    "tls13-traffic",
)
RAW, AFTER_HELLO, AFTER_CCS, TRAFFIC, MUTATE, RESUME, CLIENT_AUTH = range(7)
TLS13_AFTER_HELLO, TLS13_HANDSHAKE, TLS13_TRAFFIC = range(7, 10)
FEED_NAMES = ("whole", "byte by byte", "cut", "cut")
FEED_COMPARE = 0x20
FEED_OBSERVER = 0x40
FEED_EOF = 0x80
# Byte-by-byte feeding of a stretched flood would take minutes; past this, the rest goes whole.
BYTEWISE_LIMIT = 16_384


# `--modes a,b`: byte 0 picks among these only (a campaign over some modes).
SELECTED_MODES: tuple[int, ...] = tuple(range(len(MODES)))


def mode_of(byte: int) -> int:
    """Byte 0's mode (mod the number of modes), or, when that one is not selected, one that is."""
    mode = byte % len(MODES)
    return mode if mode in SELECTED_MODES else SELECTED_MODES[byte % len(SELECTED_MODES)]


class Input:
    """A cursor over the fuzz data that never fails: past the end it reads zeros / nothing."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def u8(self) -> int:
        if self.pos >= len(self.data):
            return 0
        self.pos += 1
        return self.data[self.pos - 1]

    def u16(self) -> int:
        return (self.u8() << 8) | self.u8()

    def take(self, n: int) -> bytes:
        chunk = self.data[self.pos : self.pos + n]
        self.pos += len(chunk)
        return chunk

    def rest(self) -> bytes:
        return self.take(len(self.data) - self.pos)

    def remaining(self) -> int:
        return len(self.data) - self.pos


_ALL = tuple(suite.id for suite in ALL_SUITES)
SUITE_CHOICES: tuple[tuple[int, ...], ...] = (
    _ALL,
    (0xC02B,),  # ECDHE-ECDSA-AES128-GCM-SHA256
    (0xCCA9,),  # ECDHE-ECDSA-CHACHA20-POLY1305
    (0xC02C,),  # ECDHE-ECDSA-AES256-GCM-SHA384
    (*_ALL, TLS_EMPTY_RENEGOTIATION_INFO_SCSV),
    (0xCCA9, 0xC02B),
    tuple(reversed(_ALL)),
    (0xC02F, 0xCCA8, 0xC030),  # RSA only
)


@dataclass
class ClientOptions:
    """Bytes 2-3 of the input: how the scripted client's ClientHello looks."""

    bits: int
    custom_sni: bytes = b""

    @property
    def suites(self) -> tuple[int, ...]:
        # RSA signing costs ~30 times ECDSA P-256's: one choice in eight reaches it, the rest
        # still cover every record protection and PRF hash with the ECDSA certificate.
        return SUITE_CHOICES[self.bits & 0b111]

    @property
    def groups(self) -> tuple[int, ...]:
        return (
            (NamedGroup.x25519, NamedGroup.secp256r1, NamedGroup.secp384r1),
            (NamedGroup.x25519, NamedGroup.secp256r1),  # P-256 too, for the ECDSA certificate
            (NamedGroup.secp256r1,),
            (NamedGroup.secp384r1,),
        )[(self.bits >> 3) & 0b11]

    @property
    def ems(self) -> bool:
        return bool(self.bits & 0x20)

    @property
    def sni_choice(self) -> int:
        return (self.bits >> 6) & 0b11

    @property
    def sni(self) -> bytes | None:
        return (None, b"localhost", b"www.example.org", self.custom_sni)[self.sni_choice]

    @property
    def alpn(self) -> tuple[bytes, ...] | None:
        return (None, (b"h2", b"http/1.1"), (b"spdy/1",), (b"http/1.1",))[(self.bits >> 8) & 0b11]

    @property
    def ticket(self) -> bool:
        return bool(self.bits & 0x400)

    @property
    def config(self) -> ServerConfig:
        return STRICT_CONFIG if self.bits & 0x800 else CONFIG

    @property
    def specific(self) -> int:
        """Bits 12-15, read by the mode: the mutate mode's source, the resume mode's session."""
        return self.bits >> 12


@dataclass
class Header:
    mode: int
    feed: int
    options: ClientOptions
    cuts: list[int] = field(default_factory=list)
    whole: bool = False  # feed whole whatever the input says (the differential's reference)

    @classmethod
    def read(cls, inp: Input) -> Header:
        header = cls(mode_of(inp.u8()), inp.u8(), ClientOptions(inp.u16()))
        if header.feed & 0b10:
            header.cuts = [inp.u16() for _ in range(inp.u8() % 16 + 1)]
        if header.options.sni_choice == 3:
            length, repeat = inp.u8(), inp.u8() % 8 + 1
            header.options.custom_sni = inp.take(length) * repeat
        return header

    def chunks(self, data: bytes) -> list[bytes]:
        how = 0 if self.whole else self.feed & 0b11
        if not data:
            return []
        if how == 0:
            return [data]
        if how == 1:
            head = [data[i : i + 1] for i in range(min(len(data), BYTEWISE_LIMIT))]
            return head + ([data[BYTEWISE_LIMIT:]] if len(data) > BYTEWISE_LIMIT else [])
        bounds = [0, *sorted({c % (len(data) + 1) for c in self.cuts}), len(data)]
        return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]


# -- the contract ---------------------------------------------------------------------------------


class ContractViolation(AssertionError):
    """The engine broke the receive_data/next_event contract (a crash for the fuzzer)."""


def require(condition: bool, message: str) -> None:
    if not condition:
        raise ContractViolation(message)


Records = list[tuple[int, bytes | None]]  # (content type, plaintext or None if we hold no key)


class PlainReader:
    """Server output read without keys: plaintext until the server's ChangeCipherSpec."""

    def __init__(self) -> None:
        self.encrypted = False

    def __call__(self, data: bytes) -> Records:
        out: Records = []
        for rec in split_records(data):
            out.append((rec.content_type, None if self.encrypted else rec.fragment))
            if rec.content_type == ContentType.change_cipher_spec:
                self.encrypted = True
        return out


class ClientReader:
    """Server output read by the scripted client, which opens records once the server's CCS
    arrives (its keys must exist by then)."""

    def __init__(self, client: ScriptedClient) -> None:
        self.client = client

    def __call__(self, data: bytes) -> Records:
        return [(t, p) for t, p in self.client.read(data)]


class Driver:
    """Feeds one ServerConnection and checks every step against the contract."""

    def __init__(self, config: ServerConfig, *, observe: bool) -> None:
        self.observations: list[Observation] = []
        observer = self.observations.append if observe else None
        self.server = ServerConnection(config, observer)
        self.reader: Callable[[bytes], Records] = PlainReader()
        self.output = bytearray()  # since the last take_output(), for the scripted client
        self.events: list[Event] = []
        self.error: RemoteProtocolError | None = None
        self.closed = False
        self.handshake_done = False

    @property
    def alive(self) -> bool:
        return self.error is None and not self.closed

    def take_output(self) -> bytes:
        out = bytes(self.output)
        self.output.clear()
        return out

    def feed(self, chunks: Sequence[bytes], *, eof: bool = False) -> bool:
        """Feed each chunk and pull events to NEED_DATA; False once failed or closed."""
        for chunk in [*chunks, b""] if eof else chunks:
            if not self.alive:
                break
            self.server.receive_data(chunk)
            self._pump()
        return self.alive

    def _pump(self) -> None:
        # An engine that never returns NEED_DATA would hang the fuzzer: bound the loop.
        for _ in range(1_000_000):
            try:
                event = self.server.next_event()
            except RemoteProtocolError as exc:
                self._failed(exc)
                return
            self._check_output(self._drain())
            if event is NEED_DATA:
                return
            self._check_event(event)
            if isinstance(event, ConnectionClosed):
                again = self.server.next_event()
                require(again == event, f"ConnectionClosed did not repeat: {again!r}")
                self.closed = True
                return
        raise ContractViolation("next_event() never reached NEED_DATA")

    def _drain(self) -> bytes:
        out = bytes(self.server.data_to_send())
        self.output += out
        return out

    def _check_event(self, event: Event) -> None:
        self.events.append(event)
        if isinstance(event, HandshakeComplete):
            require(not self.handshake_done, "a second HandshakeComplete")
            self.handshake_done = True
        elif isinstance(event, ApplicationData):
            require(self.handshake_done, "ApplicationData before HandshakeComplete")
        else:
            require(isinstance(event, AlertReceived | ConnectionClosed), f"event {event!r}")

    def _check_output(self, data: bytes) -> None:
        for content_type, plaintext in self.reader(data):
            if content_type == ContentType.alert and plaintext is not None:
                # Fatal alerts only go out with a RemoteProtocolError (a warning may not).
                require(plaintext[:1] != bytes((AlertLevel.fatal,)), "fatal alert, no error")

    def _failed(self, exc: RemoteProtocolError) -> None:
        self.error = exc
        require(type(exc) is RemoteProtocolError, f"raised {type(exc).__name__}")
        if exc.alert == AlertDescription.internal_error:
            raise ContractViolation(f"internal_error alert on peer input: {exc}") from exc
        require(self.server.errored, "errored is False after a RemoteProtocolError")
        records = self.reader(self._drain())
        alerts = [i for i, (t, _) in enumerate(records) if t == ContentType.alert]
        if exc.alert is None:
            require(not alerts, f"alert sent for a failure without one: {exc}")
        else:
            require(alerts[-1:] == [len(records) - 1], f"no final alert: {records}")
            # Earlier in the same step the engine may have sent warnings (no_renegotiation).
            for index in alerts[:-1]:
                earlier = records[index][1]
                require(earlier is None or earlier[:1] == b"\x01", f"two fatal alerts: {records}")
            plaintext = records[-1][1]
            # Errors are fatal unless the engine says otherwise (older versions had `.level`).
            expected = bytes((getattr(exc, "level", AlertLevel.fatal), exc.alert))
            require(plaintext in (None, expected), f"alert {plaintext!r}, error says {expected!r}")
        self._check_dead()

    def _check_dead(self) -> None:
        """After a failure: raise again with no new alert, send nothing, whatever arrives."""
        for more in (b"", b"\x16\x03\x03\x00\x01\x01", b"\x17\x03\x03\x00\x00"):
            self.server.receive_data(more)
            try:
                self.server.next_event()
            except RemoteProtocolError as again:
                require(type(again) is RemoteProtocolError, "dead: raised a subclass")
                require(again.alert is None, f"dead: raised again with alert {again.alert}")
            else:
                raise ContractViolation("next_event() returned after a failure")
            require(self.server.data_to_send() == b"", "dead connection sent more")

    def verdict(self) -> tuple[str, tuple[Event, ...]]:
        """What a feeding may not change: the outcome and every event."""
        return outcome(self), tuple(self.events)

    def check_observations(self) -> None:
        """Only the observation kinds events.py declares, and each message with its bytes."""
        for observation in self.observations:
            require(isinstance(observation, OBSERVATION_TYPES), f"observation {observation!r}")
            if isinstance(observation, MessageObserved):
                require(bool(observation.encoded), f"message without its bytes {observation!r}")


# -- building client flights ----------------------------------------------------------------------


# The scripted client's random is os.urandom; a mutated length can make the server parse it as
# structure, so a fixed one keeps verdicts (and the whole-vs-chunked comparison) deterministic.
CLIENT_RANDOM = hashlib.sha256(b"fuzz_connection client random").digest()


def make_client(options: ClientOptions) -> ScriptedClient:
    client = ScriptedClient(
        suites=options.suites,
        groups=options.groups,
        ems=options.ems,
        sni=None,  # added raw below, so any bytes can be a host name
        alpn=options.alpn,
    )
    client.client_random = CLIENT_RANDOM
    return client


def client_hello(
    client: ScriptedClient,
    options: ClientOptions,
    *,
    session_id: bytes = b"",
    ticket: bytes | None = None,
) -> bytes:
    extensions = client.default_extensions()
    if options.sni is not None:
        extensions.insert(0, extension(ExtensionType.server_name, sni_extension_data(options.sni)))
    if ticket is None and options.ticket:
        ticket = b""
    if ticket is not None:
        extensions.append(extension(ExtensionType.session_ticket, ticket))
    return client.client_hello(session_id=session_id, extensions=extensions)


# Record items of the sealed modes: kind byte, u16 length, payload.
K_CCS, K_ALERT, K_HANDSHAKE, K_APPDATA, K_FINISHED, K_RENEGOTIATE, K_PLAIN, K_TYPED = range(8)
REPEAT, STRETCH, TAMPER = 0x20, 0x40, 0x80
MAX_STRETCH = 2**15
# Stretched floods could otherwise ask for gigabytes; a mebibyte is thousands of records.
MAX_STREAM = 2**20
SEALED_TYPES = (
    ContentType.change_cipher_spec,
    ContentType.alert,
    ContentType.handshake,
    ContentType.application_data,
)


def item(kind: int, payload: bytes = b"", *, flags: int = 0, repeat: int = 0) -> bytes:
    """One record item as the sealed modes read it (for seeds)."""
    out = bytes((kind | flags,)) + len(payload).to_bytes(2, "big")
    if flags & REPEAT:
        out += bytes((repeat,))
    return out + payload


def sealed_stream(client: ScriptedClient, inp: Input) -> bytes:
    """The rest of the input as records, sealed under the client's keys.

    kind & 7: 0-3 CCS / alert / handshake / application data with the payload as plaintext;
    4 the genuine Finished; 5 a renegotiation ClientHello; 6 the payload as raw bytes, unsealed;
    7 sealed with content type payload[0]. Flags: 0x80 flip a ciphertext bit, 0x40 the length
    is a target that the first <=16 payload bytes are repeated to, 0x20 a count byte follows and
    the record is sent count+1 times (floods).
    """

    def make(kind: int, payload: bytes, tamper: bool) -> bytes:
        if kind < K_FINISHED:
            return client.sealed(SEALED_TYPES[kind], payload, tamper=tamper)
        if kind == K_FINISHED:
            return client.finished(change_cipher_spec=False, tamper=tamper)
        if kind == K_RENEGOTIATE:
            return client.sealed(ContentType.handshake, RENEGOTIATION_HELLO, tamper=tamper)
        if kind == K_PLAIN:
            return payload
        content_type = payload[0] if payload else 0
        return client.sealed(content_type, payload[1:], tamper=tamper)

    return record_stream(inp, make)


def record_stream(inp: Input, make: Callable[[int, bytes, bool], bytes]) -> bytes:
    """The rest of the input read as record items (see sealed_stream), each made by `make`."""
    out = bytearray()
    while inp.remaining() >= 3 and len(out) < MAX_STREAM:
        kind_byte, length = inp.u8(), inp.u16()
        count = inp.u8() % 128 + 1 if kind_byte & REPEAT else 1
        if kind_byte & STRETCH:
            # Past 2^14 + 2048 is record_overflow already; a sealed record's own length field
            # could not hold much more.
            length = min(length, MAX_STRETCH)
            seed = inp.take(min(length, 16)) or b"\x00"
            payload = (seed * (length // len(seed) + 1))[:length]
        else:
            payload = inp.take(length)
        kind, tamper = kind_byte & 0b111, bool(kind_byte & TAMPER)
        for _ in range(count):
            if len(out) >= MAX_STREAM:
                break
            out += make(kind, payload, tamper)
    return bytes(out)


# -- ClientHello as a tree of vectors, for the mutate mode -------------------------------------

MAX_PLAINTEXT = 2**14
STRETCH_UNIT = 4  # a stretched field is 4 * (a << 8 | b) bytes long
MAX_GROWN = 2**19  # what multiplying entries may grow a vector to: 4 times the largest hello


@dataclass
class Node:
    """Raw bytes (`data`), or a sequence of children behind an optional length prefix."""

    data: bytes = b""
    children: list[Node] | None = None
    width: int = 0  # length prefix size in bytes (0: none)
    length: int | None = None  # a lying length, when mutated

    def encode(self) -> bytes:
        if self.children is None:
            return self.data
        body = b"".join(child.encode() for child in self.children)
        if not self.width:
            return body
        length = len(body) if self.length is None else self.length
        return (length % (1 << (8 * self.width))).to_bytes(self.width, "big") + body

    def walk(self) -> Iterator[Node]:
        yield self
        for child in self.children or ():
            yield from child.walk()


def raw(data: bytes) -> Node:
    return Node(data=data)


def vec(width: int, children: list[Node]) -> Node:
    return Node(children=children, width=width)


def seq(children: list[Node]) -> Node:
    return Node(children=children)


class _Cut:
    """Splits structures for the tree; any inconsistency raises ValueError (kept raw then)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError("short")
        self.pos += n
        return self.data[self.pos - n : self.pos]

    def vector(self, width: int) -> bytes:
        return self.take(int.from_bytes(self.take(width), "big"))

    def at_end(self) -> bool:
        return self.pos == len(self.data)

    def end(self) -> None:
        if not self.at_end():
            raise ValueError("trailing bytes")

    def rest(self) -> bytes:
        return self.take(len(self.data) - self.pos)


def _items(data: bytes, size: int) -> list[Node]:
    return [raw(data[i : i + size]) for i in range(0, len(data), size)]


def _extension_body(extension_type: int, body: bytes) -> Node:
    try:
        cut = _Cut(body)
        if extension_type == ExtensionType.server_name:
            names = _Cut(cut.vector(2))
            entries = []
            while not names.at_end():
                entries.append(seq([raw(names.take(1)), vec(2, [raw(names.vector(2))])]))
            node = vec(2, entries)
        elif extension_type in (ExtensionType.supported_groups, ExtensionType.signature_algorithms):
            node = vec(2, _items(cut.vector(2), 2))
        elif extension_type == ExtensionType.ec_point_formats:
            node = vec(1, _items(cut.vector(1), 1))
        elif extension_type == ExtensionType.supported_versions:
            node = vec(1, _items(cut.vector(1), 2))
        elif extension_type == ExtensionType.renegotiation_info:
            node = vec(1, [raw(cut.vector(1))])
        elif extension_type == ExtensionType.application_layer_protocol_negotiation:
            names = _Cut(cut.vector(2))
            protocols = []
            while not names.at_end():
                protocols.append(vec(1, [raw(names.vector(1))]))
            node = vec(2, protocols)
        else:
            return raw(body)
        if not cut.at_end():
            return raw(body)
        return node
    except ValueError:
        return raw(body)


def parse_hello_record(data: bytes) -> Node:
    """A ClientHello record as a tree: record and handshake headers, fields, extensions."""
    try:
        cut = _Cut(data)
        header = cut.take(3)
        fragment = _Cut(cut.vector(2))
        tail = cut.rest()
        msg_type = fragment.take(1)
        body = _Cut(fragment.vector(3))
        fragment.end()  # one message per record, as every captured first flight has
        fields = [
            raw(body.take(2)),
            raw(body.take(32)),
            vec(1, [raw(body.vector(1))]),
            vec(2, _items(body.vector(2), 2)),
            vec(1, _items(body.vector(1), 1)),
        ]
        if not body.at_end():
            block = _Cut(body.vector(2))
            extensions = []
            while not block.at_end():
                extension_type = block.take(2)
                body_node = _extension_body(int.from_bytes(extension_type), block.vector(2))
                extensions.append(seq([raw(extension_type), vec(2, [body_node])]))
            fields.append(vec(2, extensions))
        body.end()
        hello = seq([raw(msg_type), vec(3, [seq(fields)])])
        return seq([raw(header), vec(2, [hello]), raw(tail)])
    except ValueError:
        return raw(data)


def mutate(tree: Node, inp: Input) -> None:
    """Bend one node: target index, operation, two argument bytes, and maybe a blob."""
    nodes = list(tree.walk())
    target = nodes[inp.u8() % len(nodes)]
    op, a, b = inp.u8(), inp.u8(), inp.u8()
    if target.children is not None:
        children = target.children
        match op % 7:
            case 1:  # a length that lies by a little
                target.length = len(b"".join(c.encode() for c in children)) + (a - 128) // 8
            case 2:  # a length that lies by anything
                target.length = (a << 8) | b
            case 3 if children:  # drop an entry (an extension, a suite, a name)
                del children[a % len(children)]
            case 4 if children:  # duplicate an entry
                index = a % len(children)
                children.insert(index, copy.deepcopy(children[index]))
            case 5:  # new contents, the lengths around them fixed up
                target.children = [raw(inp.take(a))]
            case 6:  # the entries many times over (thousands of suites, repeated extensions)
                # Bounded: nested multiplications would otherwise reach gigabytes.
                size = max(1, len(target.encode()))
                factor = min(a % 64 + 1, max(1, MAX_GROWN // size))
                target.children = [copy.deepcopy(c) for c in children * factor]
            case _:
                pass
    else:
        data = bytearray(target.data)
        match op % 7:
            case 1 if data:
                data[a % len(data)] ^= 1 << (b % 8)
            case 2 if data:
                data[a % len(data)] = b
            case 3:
                data = bytearray(inp.take(a))
            case 4:
                del data[a % (len(data) + 1) :]
            case 5:
                data += inp.take(a)
            case 6:  # stretched to up to 256 KiB: hellos near and past the size limit
                target_length, unit = STRETCH_UNIT * ((a << 8) | b), bytes(data) or b"\x00"
                data = bytearray((unit * (target_length // len(unit) + 1))[:target_length])
            case _:
                pass
        target.data = bytes(data)


def reframe(tree: Node) -> bytes:
    """The (mutated) handshake message re-cut into records of at most 2^14 bytes, as a client
    must send a ClientHello too big for one record (RFC 5246 §6.2.1)."""
    if tree.children is None or len(tree.children) != 3:  # not parsed: nothing to re-cut
        return tree.encode()
    header, fragment, tail = tree.children
    message = b"".join(child.encode() for child in fragment.children or ())
    records = [
        header.data + len(piece).to_bytes(2, "big") + piece
        for piece in (message[i : i + MAX_PLAINTEXT] for i in range(0, len(message), MAX_PLAINTEXT))
    ]
    return b"".join(records) + tail.encode()


# -- the modes ------------------------------------------------------------------------------------


def run(data: bytes) -> Driver:
    """One input; with FEED_COMPARE, a chunked feeding must match the same stream fed whole."""
    driver = run_once(data)
    STATS.modes[MODES[mode_of(data[0] if data else 0)]] += 1
    feed = data[1] if len(data) > 1 else 0
    if feed & FEED_COMPARE and feed & 0b11:
        chunked, whole = driver.verdict(), run_once(data, whole=True).verdict()
        require(
            chunked == whole,
            f"fed {FEED_NAMES[feed & 0b11]}: {chunked!r}; fed whole: {whole!r}",
        )
    return driver


def run_once(data: bytes, *, whole: bool = False) -> Driver:
    inp = Input(data)
    header = Header.read(inp)
    header.whole = whole
    options = header.options
    config = options.config
    if header.mode == CLIENT_AUTH:
        config = CLIENT_AUTH_CONFIGS["optional" if options.specific & 0b100 else "required"]
    elif header.mode >= TLS13_AFTER_HELLO:
        config = CLIENT_AUTH_CONFIG13 if options.bits & 0x800 else CONFIG13
    driver = Driver(config, observe=bool(header.feed & FEED_OBSERVER))
    eof = bool(header.feed & FEED_EOF)

    if header.mode == RAW:
        driver.feed(header.chunks(inp.rest()), eof=eof)
    elif header.mode == MUTATE:
        source = options.specific & 0b111
        if source < len(FIXTURES):
            hello = FIXTURES[source]
        else:
            hello = client_hello(make_client(options), options)
        tree = parse_hello_record(hello)
        control = inp.u8()  # bits 0-1: how many mutations; bit 7: re-cut into records
        for _ in range(control % 4):
            mutate(tree, inp)
        stream = (reframe(tree) if control & 0x80 else tree.encode())[:MAX_STREAM]
        driver.feed(header.chunks(stream + inp.rest()), eof=eof)
    elif header.mode == RESUME:
        run_resume(driver, header, inp, eof)
    elif header.mode == CLIENT_AUTH:
        run_client_auth(driver, header, inp, eof)
    elif header.mode >= TLS13_AFTER_HELLO:
        driver = run_tls13(header, inp, eof, config)
    else:
        run_full(driver, header, inp, eof)
    driver.check_observations()
    return driver


def run_full(driver: Driver, header: Header, inp: Input, eof: bool) -> None:
    client = make_client(header.options)
    if not driver.feed([client_hello(client, header.options)]):
        return
    client.read_server_flight(driver.take_output())
    if header.mode == AFTER_HELLO:
        driver.feed(header.chunks(inp.rest()), eof=eof)
        return
    if not driver.feed([client.client_key_exchange() + client.change_cipher_spec()]):
        return
    driver.reader = ClientReader(client)
    if header.mode == TRAFFIC:
        if not driver.feed([client.finished(change_cipher_spec=False)]):
            return
        require(driver.handshake_done, "a genuine Finished did not complete the handshake")
    driver.feed(header.chunks(sealed_stream(client, inp)), eof=eof)


# -- the TLS 1.3 modes -----------------------------------------------------------------------------

TLS13_SUITE_CHOICES = ((0x1301, 0x1302, 0x1303), (0x1301,), (0x1302,), (0x1303,))
# (supported_groups, the groups with a share): with none shared, a HelloRetryRequest first.
TLS13_GROUP_CHOICES: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...] = (
    ((NamedGroup.x25519, NamedGroup.secp256r1), (NamedGroup.x25519,)),
    ((NamedGroup.x25519, NamedGroup.secp256r1), ()),
    ((NamedGroup.secp256r1, NamedGroup.x25519), (NamedGroup.secp256r1,)),
    ((NamedGroup.secp384r1,), (NamedGroup.secp384r1,)),
)
K13_KEY_UPDATE = K_RENEGOTIATE  # in the 1.3 modes, kind 5 is a KeyUpdate (payload[0] its request)


def tls13_hello(
    client: Client13, options: ClientOptions, *, early_data: bool, record_version: int = 0x0301
) -> bytes:
    # SNI and ALPN's other choices are the 1.2 modes' business: here they would multiply the
    # snapshots (see SNAPSHOTS) for little.
    extensions = client.extensions(server_name=b"localhost")
    if options.bits & 0x100:
        alpn = b"\x00\x0c\x02h2\x08http/1.1"
        extensions.append(raw_extension(ExtensionType.application_layer_protocol_negotiation, alpn))
    if early_data:
        extensions.append(raw_extension(ExtensionType.early_data, b""))
    if options.ticket:
        extensions += client.psk_extensions(TICKET13, PSK13, "sha256")
        hello = client.bind(client.hello(extensions=extensions))
    else:
        hello = client.hello(extensions=extensions)
    return client.hello_record(hello, version=record_version)


def run_tls13(header: Header, inp: Input, eof: bool, config: ServerConfig) -> Driver:
    """The TLS 1.3 modes, with tlslite13_peer's client (fast: `cryptography`'s ECDH and AEADs).

    Options: suites (bits 0-1, of TLS13_SUITE_CHOICES), groups (bits 3-4, TLS13_GROUP_CHOICES;
    choice 1 sends no share, so a HelloRetryRequest comes first), a session ID for the
    middlebox-compatibility CCS (bit 5), ALPN h2 and http/1.1 (bit 8; the SNI is localhost), a
    resumable ticket as a PSK (bit 10), a client certificate asked for (bit 11), early_data
    offered (specific bit 0).
    tls13-after-hello feeds the input as it is once our encrypted flight is read (the client's
    flight in clear: CCS, plaintext alerts, skipped 0-RTT records, anything); tls13-handshake
    seals record items (as sealed_stream reads them; kind 4 the genuine Finished, kind 5 a
    KeyUpdate) under the client's handshake key, so mutations reach the Certificate,
    CertificateVerify and Finished decoders; tls13-traffic does the same after a genuine
    Finished, under the application keys, where KeyUpdate and the alerts live.

    The connection up to where the input takes over depends on the options only, and costs
    several times what the input does: it is made once per option set and copied (snapshot).
    """
    driver, client = snapshot(header, config)
    if not driver.alive:
        return driver
    if header.mode == TLS13_AFTER_HELLO:
        driver.feed(header.chunks(inp.rest()), eof=eof)
        return driver

    def make(kind: int, payload: bytes, tamper: bool) -> bytes:
        if kind < K_FINISHED:
            return client.sealed(SEALED_TYPES[kind], payload, tamper=tamper)
        if kind == K_FINISHED:
            if tamper:
                return client.sealed(ContentType.handshake, client.finished_message(), tamper=True)
            return client.finished()
        if kind == K13_KEY_UPDATE:
            return client.key_update(payload[0] if payload else 0)
        if kind == K_PLAIN:
            return payload
        return client.sealed_inner(payload)  # the whole TLSInnerPlaintext, padding and all

    driver.feed(header.chunks(record_stream(inp, make)), eof=eof)
    return driver


# Snapshots of 1.3 connections, by what made them: at most 2 * 2^9 (the option bits run_tls13
# reads), a few KiB each, so that once warm nearly every input starts from a copy.
SNAPSHOTS: dict[tuple[bool, int], tuple[Driver, Client13]] = {}
TLS13_OPTION_BITS = 0x1D3B
# What a snapshot shares with its copies: the configs (keys, certificates, ticket keys); and the
# AEADs (stateless: the sequence numbers are ours) and hash objects (copied by their own copy()).
_SHARED = {
    id(o): o
    for c in (CONFIG13, CLIENT_AUTH_CONFIG13)
    for o in (c, *attrs.astuple(c, recurse=False), *c.certificates)
    if o is not None
}
copy._deepcopy_dispatch[AESGCM] = lambda aead, memo: aead  # type: ignore[attr-defined]
copy._deepcopy_dispatch[ChaCha20Poly1305] = lambda aead, memo: aead  # type: ignore[attr-defined]
copy._deepcopy_dispatch[type(hashlib.sha256())] = lambda h, memo: h.copy()  # type: ignore[attr-defined]


def snapshot(header: Header, config: ServerConfig) -> tuple[Driver, Client13]:
    """A copy of the connection (and its client) after our flight was read, or after the
    client's genuine Finished in tls13-traffic. Made with an observer (its observations of the
    prefix checked then); the copy keeps observing only if the input says so."""
    key = (header.mode == TLS13_TRAFFIC, header.options.bits & TLS13_OPTION_BITS)
    made = SNAPSHOTS.get(key) or SNAPSHOTS.setdefault(key, tls13_prefix(header, config))
    driver, client = copy.deepcopy(made, dict(_SHARED))
    observe = bool(header.feed & FEED_OBSERVER)
    driver.server._observer = driver.observations.append if observe else None
    return driver, client


def tls13_prefix(header: Header, config: ServerConfig) -> tuple[Driver, Client13]:
    options = header.options
    driver = Driver(config, observe=True)
    groups, shares = TLS13_GROUP_CHOICES[(options.bits >> 3) & 0b11]
    client = Client13(
        groups=groups,
        share_groups=shares,
        suites=TLS13_SUITE_CHOICES[options.bits & 0b11],
        session_id=b"\x5a" * 32 if options.ems else b"",
        fast=True,
        random=CLIENT_RANDOM,
    )
    early_data = bool(options.specific & 1)
    if not driver.feed([tls13_hello(client, options, early_data=early_data)]):
        return driver, client
    if client.read_flight(driver.take_output()) == "retry":
        assert client.retry_group is not None
        client.shares = {client.retry_group: KeyShare(client.retry_group, fast=True)}
        # 0x0301 is only for the first hello (RFC 8446 §5.1).
        second = tls13_hello(client, options, early_data=False, record_version=0x0303)
        if not driver.feed([second]):
            return driver, client
        require(client.read_flight(driver.take_output()) == "flight", "a second retry")
    client.shares = {}  # spent; private keys are not copied
    driver.reader = ClientReader(client)  # type: ignore[arg-type]
    if header.mode == TLS13_TRAFFIC and driver.feed([client.finished()]):
        require(driver.handshake_done, "a genuine Finished did not complete the handshake")
    driver.check_observations()
    driver.observations.clear()  # checked: not copied for every input
    return driver, client


# CertificateVerify kinds in the client-auth mode.
CV_GENUINE, CV_TAMPERED, CV_OTHER_SCHEME, CV_RAW, CV_NONE = range(5)
MAX_FLIPS = 8


def run_client_auth(driver: Driver, header: Header, inp: Input, eof: bool) -> None:
    """Specific bits 0-1: the leaf (P-256, P-384, T61String subject, none); bit 2: optional
    rather than required; bit 3: the CA certificate after the leaf. Payload: a flip count
    (mod 8), that many (u16 position, u8 mask) flips in the Certificate message, a
    CertificateVerify kind (mod 5; CV_OTHER_SCHEME reads a u16 scheme, CV_RAW a u16 length and
    the body), then sealed records after ChangeCipherSpec and Finished."""
    specific = header.options.specific
    client = make_client(header.options)
    if not driver.feed([client_hello(client, header.options)]):
        return
    client.read_server_flight(driver.take_output())
    leaf = CLIENT_LEAVES[specific & 0b11] if specific & 0b11 < len(CLIENT_LEAVES) else None
    chain: list[bytes] = []
    if leaf is not None:
        chain = [leaf[0], CLIENT_CA_CERT.public_bytes(Encoding.DER)][
            : 2 if specific & 0b1000 else 1
        ]
    writer = Writer()
    Certificate(tuple(chain)).encode(writer)
    message = bytearray(handshake(HandshakeType.certificate, writer.getvalue()))
    for _ in range(inp.u8() % (MAX_FLIPS + 1)):
        position, mask = inp.u16() % len(message), inp.u8()
        message[position] ^= mask
    client._handshake_messages.append(bytes(message))
    flight = record(ContentType.handshake, bytes(message)) + client.client_key_exchange()
    kind = inp.u8() % 5
    if leaf is not None and kind in (CV_GENUINE, CV_TAMPERED):
        flight += client.certificate_verify(leaf[1], leaf[2], tamper=kind == CV_TAMPERED)
    elif leaf is not None and kind == CV_OTHER_SCHEME:
        flight += client.certificate_verify(leaf[1], leaf[2], claim=inp.u16())
    elif kind == CV_RAW:
        body = inp.take(inp.u16() % 1024)
        cv = handshake(HandshakeType.certificate_verify, body)
        client._handshake_messages.append(cv)
        flight += record(ContentType.handshake, cv)
    if not driver.feed(header.chunks(flight)):
        return
    driver.reader = ClientReader(client)
    if not driver.feed([client.change_cipher_spec() + client.finished(change_cipher_spec=False)]):
        return
    driver.feed(header.chunks(sealed_stream(client, inp)), eof=eof)


def run_resume(driver: Driver, header: Header, inp: Input, eof: bool) -> None:
    options = header.options
    session_id, state, ticket = SESSIONS[options.specific & 0b11]
    via_ticket = bool(options.specific & 0b100)
    _CACHE.store(session_id, state)  # full handshakes may have pushed it out
    client = make_client(options)
    if via_ticket:
        hello = client_hello(client, options, session_id=b"\x5a" * 32, ticket=ticket)
    else:
        hello = client_hello(client, options, session_id=session_id)
    if not driver.feed([hello]):
        return
    out = driver.take_output()
    records = split_records(out)
    first = split_handshake(records[0].fragment)[0][1]
    reader = Reader(first)
    reader.raw(4)
    server_hello = ParsedServerHello.decode(reader)
    if not any(r.content_type == ContentType.change_cipher_spec for r in records):
        # Not resumed (the options did not match the session): a full handshake's first flight.
        driver.feed(header.chunks(inp.rest()), eof=eof)
        return
    suite = SUITES_BY_ID[server_hello.cipher_suite]
    k, i = suite.key_length, suite.iv_length
    block = prf(
        suite.prf_hash,
        state.master_secret,
        b"key expansion",
        server_hello.random + client.client_random,
        2 * (k + i),
    )
    client.suite = suite
    client.keys = Keys(
        state.master_secret,
        block[:k],
        block[k : 2 * k],
        block[2 * k : 2 * k + i],
        block[2 * k + i :],
    )
    client._handshake_messages.append(first)
    opened = client.read(out)
    finished = opened[-1][1]
    require(opened[-1][0] == ContentType.handshake, "resumption did not end with Finished")
    require(
        finished == handshake(HandshakeType.finished, client.verify_data(b"server finished")),
        "the server's resumption Finished does not verify",
    )
    client._handshake_messages.append(finished)
    driver.reader = ClientReader(client)
    if not driver.feed([client.change_cipher_spec()]):
        return
    driver.feed(header.chunks(sealed_stream(client, inp)), eof=eof)


# -- statistics, crashes, entry point -------------------------------------------------------------


@dataclass
class Stats:
    executions: int = 0
    modes: collections.Counter[str] = field(default_factory=collections.Counter)
    outcomes: collections.Counter[str] = field(default_factory=collections.Counter)
    crashes: dict[str, str] = field(default_factory=dict)  # signature -> saved input path

    def report(self) -> str:
        lines = [f"fuzz_connection: {self.executions} executions"]
        lines.append("  modes: " + ", ".join(f"{m}={n}" for m, n in sorted(self.modes.items())))
        common = self.outcomes.most_common(12)
        lines.append("  outcomes: " + ", ".join(f"{o}={n}" for o, n in common))
        lines.append(f"  distinct crashes: {len(self.crashes)}")
        lines += [f"    {sig} -> {path}" for sig, path in self.crashes.items()]
        return "\n".join(lines)


STATS = Stats()
KEEP_GOING = False
ARTIFACT_PREFIX = "./"
REPORT_EVERY = 1 << 14


def outcome(driver: Driver) -> str:
    if driver.error is not None:
        alert = driver.error.alert
        return "error:" + (AlertDescription(alert).name if alert is not None else "none")
    if driver.closed:
        return "closed"
    return "traffic" if driver.handshake_done else "need-data"


def signature(exc: BaseException) -> str:
    """Exception type plus the innermost frame inside trio_tls (or anywhere, failing that)."""
    frames = traceback.extract_tb(exc.__traceback__)
    cause = exc.__cause__
    if isinstance(exc, ContractViolation) and cause is not None:
        frames = traceback.extract_tb(cause.__traceback__) or frames
    ours = [f for f in frames if "trio_tls" in f.filename] or frames
    where = f"{pathlib.Path(ours[-1].filename).name}:{ours[-1].lineno}" if ours else "?"
    kind = type(exc).__name__
    if isinstance(exc, ContractViolation):
        kind += "(" + str(exc).split(":")[0][:60] + ")"
    return f"{kind}@{where}"


def save_crash(data: bytes, exc: BaseException) -> None:
    sig = signature(exc)
    if sig in STATS.crashes:
        return
    path = f"{ARTIFACT_PREFIX}crash-{hashlib.sha1(data).hexdigest()}"
    pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(path).write_bytes(data)
    text = "".join(traceback.format_exception(exc))
    pathlib.Path(path + ".txt").write_text(f"{sig}\n\n{text}")
    STATS.crashes[sig] = path
    print(f"\n=== NEW CRASH {sig} -> {path}\n{text}", file=sys.stderr, flush=True)


def test_one_input(data: bytes) -> None:
    STATS.executions += 1
    if STATS.executions % REPORT_EVERY == 0:
        print(STATS.report(), file=sys.stderr, flush=True)
    try:
        driver = run(data)
    except Exception as exc:
        STATS.outcomes["crash"] += 1
        if not KEEP_GOING:
            raise
        save_crash(data, exc)
        return
    STATS.outcomes[outcome(driver)] += 1


# -- seeds ----------------------------------------------------------------------------------------


def _options(
    suite: int = 0,
    groups: int = 0,
    ems: bool = True,
    sni: int = 1,
    alpn: int = 0,
    ticket: bool = False,
    strict: bool = False,
    specific: int = 0,
) -> bytes:
    bits = suite | groups << 3 | ems << 5 | sni << 6 | alpn << 8 | ticket << 10 | strict << 11
    return (bits | specific << 12).to_bytes(2, "big")


def seeds() -> dict[str, bytes]:
    """The checked-in corpus: real first flights, and valid flights of each structured mode."""
    out: dict[str, bytes] = {}
    whole = b"\x00"
    for name, hello in zip(FIXTURE_NAMES, FIXTURES, strict=True):
        out[f"raw-{name}"] = bytes((RAW,)) + whole + _options() + hello
        source = FIXTURES.index(hello)
        out[f"mutate-{name}"] = bytes((MUTATE,)) + whole + _options(specific=source) + b"\x00"
    out["raw-openssl-tls12-bytewise-eof"] = (
        bytes((RAW, FEED_EOF | FEED_COMPARE | 1))
        + _options()
        + FIXTURES[FIXTURE_NAMES.index("openssl-tls12")]
    )
    out["raw-curl-default-cut"] = (
        bytes((RAW, FEED_COMPARE | 2))
        + _options()
        + bytes((2,))
        + b"\x00\x03\x00\x2b\x01\x00"  # three cuts: in the header, the random, the extensions
        + FIXTURES[FIXTURE_NAMES.index("curl-default")]
    )
    out["mutate-scripted-alpn"] = bytes((MUTATE,)) + whole + _options(alpn=1, specific=7) + b"\x00"
    # A scripted ClientHello, then an unsealed ClientKeyExchange + CCS + a Finished that cannot
    # open: the shape of the client's second flight.
    client = ScriptedClient(suites=(0xC02B,), groups=(NamedGroup.x25519, NamedGroup.secp256r1))
    client.read_server_flight(_first_flight(client))
    flight = client.client_key_exchange() + client.change_cipher_spec()
    flight += record(ContentType.handshake, bytes(40))
    out["after-hello-cke-ccs"] = bytes((AFTER_HELLO,)) + whole + _options(1, 1) + flight
    out["after-hello-p256-cke"] = (
        bytes((AFTER_HELLO, FEED_COMPARE | 1))
        + _options(7, 2, ems=False)
        + record(
            ContentType.handshake,
            handshake(HandshakeType.client_key_exchange, b"\x41\x04" + bytes(64)),
        )
    )
    out["after-hello-x25519-small-order"] = (
        bytes((AFTER_HELLO,))
        + whole
        + _options(1, 1)
        + record(
            ContentType.handshake, handshake(HandshakeType.client_key_exchange, b"\x20" + bytes(32))
        )
    )
    sni_options = ClientOptions(int.from_bytes(_options(sni=1)))
    tree = parse_hello_record(client_hello(make_client(sni_options), sni_options))
    sni_list = next(
        index
        for index, node in enumerate(tree.walk())
        if node.width == 2
        and node.children
        and node.children[0].children is not None
        and node.children[0].children[0].data == b"\x00"
    )
    # One mutation: the SNI list's only entry duplicated (two host names).
    out["mutate-scripted-two-host-names"] = (
        bytes((MUTATE,)) + whole + _options(specific=7) + bytes((1, sni_list, 4, 0, 0))
    )
    # Chromium's biggest field (its post-quantum key share) stretched to 40,000 and 140,000
    # bytes, and the message re-cut into records: a ClientHello inside, and past, the limit.
    chromium = FIXTURE_NAMES.index("chromium")
    nodes = list(parse_hello_record(FIXTURES[chromium]).walk())
    biggest = max(range(len(nodes)), key=lambda i: len(nodes[i].data))
    for size in (40_000, 140_000):
        units = size // STRETCH_UNIT
        out[f"mutate-chromium-{size // 1000}k"] = (
            bytes((MUTATE,))
            + whole
            + _options(specific=chromium)
            + bytes((0x81, biggest, 6, units >> 8, units & 0xFF))
        )
    finished_then_data = (
        item(K_FINISHED)
        + item(K_APPDATA, b"GET / HTTP/1.1\r\n\r\n")
        + item(K_ALERT, bytes((AlertLevel.warning, AlertDescription.close_notify)))
    )
    out["after-ccs-finished"] = bytes((AFTER_CCS,)) + whole + _options(0) + finished_then_data
    out["after-ccs-chacha-ticket"] = (
        bytes((AFTER_CCS,)) + whole + _options(2, 1, ticket=True) + finished_then_data
    )
    out["after-ccs-bad-finished"] = (
        bytes((AFTER_CCS,))
        + whole
        + _options(3, 2)
        + item(K_HANDSHAKE, b"\x14\x00\x00\x0c" + bytes(12))
    )
    out["traffic-data-renegotiate"] = (
        bytes((TRAFFIC,))
        + whole
        + _options(0, alpn=1)
        + item(K_APPDATA, b"hello")
        + item(K_RENEGOTIATE)
        + item(K_APPDATA, b"world")
        + item(K_ALERT, bytes((AlertLevel.warning, AlertDescription.close_notify)))
    )
    out["traffic-rsa-flood"] = (
        bytes((TRAFFIC, FEED_EOF))
        + _options(7, 3, ems=False)
        + item(K_APPDATA, flags=REPEAT, repeat=40)
        + item(K_ALERT, b"\x01\x5a", flags=REPEAT, repeat=20)
    )
    out["traffic-cut-eof"] = (
        bytes((TRAFFIC, FEED_EOF | FEED_COMPARE | 2))
        + _options(2, 2)
        + bytes((2,))
        + b"\x00\x07\x00\x20\x01\x00"
        + item(K_APPDATA, b"x" * 100)
        + item(K_APPDATA, b"y", flags=TAMPER)
    )
    # A 192-byte host name (the custom SNI: 64 bytes, three times) and a ticket to seal it in.
    out["traffic-long-sni-ticket"] = (
        bytes((TRAFFIC,))
        + whole
        + _options(sni=3, ticket=True)
        + bytes((64, 2))
        + b"a" * 62
        + b".b"
        + item(K_APPDATA, b"x")
        + item(K_ALERT, bytes((AlertLevel.warning, AlertDescription.close_notify)))
    )
    # Client certificates: (name, specific bits, flips, CertificateVerify kind and its bytes).
    no_flips = b"\x00"
    for name, specific, flips, verify in (
        ("p256", 0b0000, no_flips, bytes((CV_GENUINE,))),
        ("p384-with-ca", 0b1000, no_flips, bytes((CV_GENUINE,))),
        ("t61-subject", 0b0000 | 2, no_flips, bytes((CV_GENUINE,))),
        ("none-optional", 0b0100 | 3, no_flips, bytes((CV_NONE,))),
        ("p256-tampered-verify", 0b0000, no_flips, bytes((CV_TAMPERED,))),
        ("p256-sha1-verify", 0b0000, no_flips, bytes((CV_OTHER_SCHEME,)) + b"\x02\x03"),
        (
            "p256-raw-verify",
            0b0000,
            no_flips,
            bytes((CV_RAW, 0, 8)) + b"\x04\x03\x00\x04" + bytes(4),
        ),
        # A flipped byte in the leaf's version and one in its key's curve OID.
        ("p256-flipped", 0b0000, b"\x02\x00\x14\x55\x00\xf0\x01", bytes((CV_GENUINE,))),
    ):
        out[f"client-auth-{name}"] = (
            bytes((CLIENT_AUTH,))
            + whole
            + _options(specific=specific)
            + flips
            + verify
            + item(K_APPDATA, b"GET / HTTP/1.1\r\n\r\n")
        )
    # TLS 1.3: options are suites (0-3), groups (0-3, 1 = retry), session ID, SNI, ALPN, ticket,
    # client auth, early data (see run_tls13).
    close = item(K_ALERT, bytes((AlertLevel.warning, AlertDescription.close_notify)))
    out["tls13-after-hello-ccs-alert"] = (
        bytes((TLS13_AFTER_HELLO,))
        + whole
        + _options(0, ems=True)
        + record(ContentType.change_cipher_spec, b"\x01")
        + record(ContentType.alert, b"\x02\x2a")
    )
    out["tls13-after-hello-early-data"] = (
        bytes((TLS13_AFTER_HELLO,))
        + whole
        + _options(1, ems=False, specific=1)
        + record(ContentType.application_data, bytes(300))
    )
    out["tls13-handshake-finished-data-update"] = (
        bytes((TLS13_HANDSHAKE,))
        + whole
        + _options(2, 0)
        + item(K_FINISHED)
        + item(K_APPDATA, b"GET / HTTP/1.1\r\n\r\n")
        + item(K13_KEY_UPDATE, b"\x01")
        + close
    )
    out["tls13-handshake-retry-empty-certificate"] = (
        bytes((TLS13_HANDSHAKE,))
        + whole
        + _options(3, 1, strict=True)
        + item(K_HANDSHAKE, handshake(HandshakeType.certificate, b"\x00\x00\x00\x00"))
        + item(K_FINISHED)
    )
    out["tls13-handshake-resumed-p256"] = (
        bytes((TLS13_HANDSHAKE,)) + whole + _options(1, 2, ticket=True) + item(K_FINISHED) + close
    )
    out["tls13-traffic-updates-padding"] = (
        bytes((TLS13_TRAFFIC,))
        + whole
        + _options(0, 0, alpn=1)
        + item(K_APPDATA, b"hello")
        + item(K13_KEY_UPDATE, b"\x01", flags=REPEAT, repeat=3)
        + item(K_TYPED, b"x\x17" + bytes(40))
        + close
    )
    out["resume-id"] = bytes((RESUME,)) + whole + _options(specific=0) + finished_then_data
    out["resume-ticket-chacha"] = (
        bytes((RESUME,)) + whole + _options(ems=False, specific=0b111) + finished_then_data
    )
    return out


def _first_flight(client: ScriptedClient) -> bytes:
    server = ServerConnection(CONFIG)
    server.receive_data(client.client_hello())
    require(server.next_event() is NEED_DATA, "seed handshake failed")
    return bytes(server.data_to_send())


def write_seeds(directory: pathlib.Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in seeds().items():
        driver = run(data)  # every seed must run clean
        print(f"{name}: {len(data)} bytes, {outcome(driver)}")
        (directory / name).write_bytes(data)


def _final_report(status: int, arg: int | None) -> None:
    print(STATS.report(), file=sys.stderr, flush=True)


_REPORT_AT_EXIT = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_void_p)(_final_report)


def main(argv: list[str]) -> None:
    global KEEP_GOING, ARTIFACT_PREFIX, SELECTED_MODES  # noqa: PLW0603
    args = list(argv)
    if "--modes" in args:
        index = args.index("--modes")
        SELECTED_MODES = tuple(MODES.index(name) for name in args[index + 1].split(","))
        del args[index : index + 2]
    if "--write-seeds" in args:
        write_seeds(pathlib.Path(args[args.index("--write-seeds") + 1]))
        return
    if "--keep-going" in args:
        args.remove("--keep-going")
        KEEP_GOING = True
    for arg in args:
        if arg.startswith("-artifact_prefix="):
            ARTIFACT_PREFIX = arg.split("=", 1)[1]
            # libFuzzer refuses a prefix whose directory is missing.
            pathlib.Path(ARTIFACT_PREFIX + "x").parent.mkdir(parents=True, exist_ok=True)
    # libFuzzer ends the process with C exit(), which skips Python's atexit: register in C.
    ctypes.CDLL(None).on_exit(_REPORT_AT_EXIT, None)
    atheris.Setup(args, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
