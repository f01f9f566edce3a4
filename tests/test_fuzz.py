"""Property tests: random and mutated input, and h11's whole-and-byte-by-byte rule.

(a) Random bytes, in any chunking, give NEED_DATA (or the alert events a peer may send) until a
    RemoteProtocolError; nothing else ever escapes, and a failure sends exactly its one alert.
(b) Real ClientHellos with flipped, inserted and deleted bytes get either a proper first flight
    or a RemoteProtocolError naming an alert.
(c) A whole client flight fed at once, byte by byte, or in random pieces gives the same events
    and the same kinds of output records.
(d) Every captured ClientHello gets a TLS 1.2 ServerHello for one of our ECDHE suites.
(e) A client Certificate with flipped bytes, in any chunking, is verified or refused with an alert.
"""

from __future__ import annotations

import itertools
import pathlib
from collections.abc import Callable, Sequence

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trio_tls.engine.config import ServerConfig
from trio_tls.engine.connection import ServerConnection
from trio_tls.engine.crypto.suites import ALL_SUITES, SUITES_BY_ID, CipherSuite
from trio_tls.engine.events import (
    NEED_DATA,
    AlertReceived,
    ApplicationData,
    ConnectionClosed,
    Event,
    HandshakeComplete,
)
from trio_tls.engine.wire.codec import Reader
from trio_tls.engine.wire.enums import (
    TLS12,
    TLS_EMPTY_RENEGOTIATION_INFO_SCSV,
    AlertDescription,
    AlertLevel,
    ContentType,
    ExtensionType,
    HandshakeType,
    NamedGroup,
)
from trio_tls.engine.wire.errors import LocalProtocolError, RemoteProtocolError
from trio_tls.engine.wire.extensions import ExtendedMasterSecret, RenegotiationInfo, SupportedGroups
from trio_tls.engine.wire.messages import ClientHello

from .client_certs import ALICE, BOB_RSA, T61_V3, client_auth
from .scripted_client import ScriptedClient, split_handshake, split_records

FIXTURES_DIR = pathlib.Path(__file__).parent / "fixtures" / "clienthellos"
FIXTURES = {path.name: path.read_bytes() for path in sorted(FIXTURES_DIR.glob("*.bin"))}
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# These harnesses check TLS 1.2 flights (ServerKeyExchange, 1.2 records): the captured hellos
# offer TLS 1.3, so the server here speaks 1.2 only.
@pytest.fixture(scope="module")
def rsa_config(rsa_config: ServerConfig) -> ServerConfig:
    return attrs.evolve(rsa_config, versions={TLS12})


@pytest.fixture(scope="module")
def dual_config(dual_config: ServerConfig) -> ServerConfig:
    return attrs.evolve(dual_config, versions={TLS12})


def test_fixtures_are_present() -> None:
    assert len(FIXTURES) >= 7
    assert all(data[:1] == b"\x16" for data in FIXTURES.values())


# -- helpers -----------------------------------------------------------------------------------


def chunked(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    """`data` split at the (sorted, deduplicated) offsets `cuts`."""
    bounds = [0, *sorted({c for c in cuts if 0 < c < len(data)}), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]


@st.composite
def chunkings(draw: st.DrawFn, data: bytes) -> list[bytes]:
    cuts = draw(st.lists(st.integers(0, max(len(data), 1)), max_size=25))
    return chunked(data, cuts)


def alert_record(alert: AlertDescription) -> tuple[int, bytes]:
    return (ContentType.alert, bytes((AlertLevel.fatal, alert)))


class Outcome:
    """What feeding some chunks did: events, output, and the failure if there was one."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.output = bytearray()
        self.error: RemoteProtocolError | None = None
        self.closed = False


def feed(server: ServerConnection, chunks: Sequence[bytes], *, eof: bool = False) -> Outcome:
    """Feed `chunks` one at a time, pulling events after each; stop at the first error."""
    outcome = Outcome()
    pieces: list[bytes] = [*chunks, b""] if eof else list(chunks)
    for piece in pieces:
        server.receive_data(piece)
        try:
            while not outcome.closed and (event := server.next_event()) is not NEED_DATA:
                outcome.events.append(event)
                outcome.closed = isinstance(event, ConnectionClosed)
        except RemoteProtocolError as exc:
            outcome.error = exc
            outcome.output += server.data_to_send()
            check_dead(server)
            return outcome
        outcome.output += server.data_to_send()
    return outcome


def check_dead(server: ServerConnection) -> None:
    """After a failure: raise again with no new alert, send nothing, whatever arrives."""
    for more in (b"", b"\x16\x03\x03\x00\x01\x01"):
        server.receive_data(more)
        with pytest.raises(RemoteProtocolError) as again:
            server.next_event()
        assert type(again.value) is RemoteProtocolError
        assert again.value.alert is None
        assert server.data_to_send() == b""


def check_failure(outcome: Outcome, *, flight_allowed: bool) -> None:
    """A failure sent its one alert (plaintext: no keys exist yet); alert None sent nothing.

    With `flight_allowed`, a complete first flight may come first: a valid ClientHello record
    answered before a broken record (or EOF) in the same input.
    """
    error = outcome.error
    assert error is not None
    assert type(error) is RemoteProtocolError
    output = bytes(outcome.output)
    if error.alert is not None:
        records = [(r.content_type, r.fragment) for r in split_records(output)]
        assert records[-1:] == [alert_record(error.alert)]
        output = output[:-7]  # a plaintext alert record is 7 bytes
    if output:
        assert flight_allowed
        check_first_flight(output)


def check_first_flight(output: bytes) -> int:
    """Output is exactly one first flight; returns the chosen suite id."""
    assert output.startswith(b"\x16\x03\x03")
    client = ScriptedClient()
    flight = client.read_server_flight(output)
    assert flight.server_hello.server_version == 0x0303
    assert set(flight.record_versions) == {0x0303}
    assert flight.server_hello.cipher_suite in SUITES_BY_ID
    assert flight.server_hello.compression_method == 0
    return flight.server_hello.cipher_suite


# -- (a) random bytes --------------------------------------------------------------------------

CONTENT_TYPES = st.sampled_from([20, 21, 22, 23, 0, 99, 0x80])
# Records that pass or nearly pass the header checks, with a length that may lie a little.
TLS_LIKE_RECORDS = st.builds(
    lambda content_type, minor, body, lie: (
        bytes((content_type, 3, minor)) + max(0, len(body) + lie).to_bytes(2, "big") + body
    ),
    CONTENT_TYPES,
    st.sampled_from([0, 1, 3, 4]),
    st.binary(max_size=64),
    st.sampled_from([0, 0, 0, 1, -1, 3]),
)
RANDOM_INPUT = st.one_of(
    st.binary(max_size=512),
    st.lists(TLS_LIKE_RECORDS, max_size=4).map(b"".join),
    # A real ClientHello followed by garbage records.
    st.tuples(st.sampled_from(sorted(FIXTURES)), st.lists(TLS_LIKE_RECORDS, max_size=3)).map(
        lambda pair: FIXTURES[pair[0]] + b"".join(pair[1])
    ),
)


@FUZZ
@given(data=st.data(), blob=RANDOM_INPUT, eof=st.booleans())
def test_random_bytes_only_raise_the_protocol_error(
    rsa_config: ServerConfig, data: st.DataObject, blob: bytes, eof: bool
) -> None:
    chunks = data.draw(chunkings(blob), label="chunks")
    outcome = feed(ServerConnection(rsa_config), chunks, eof=eof)
    assert all(isinstance(e, AlertReceived | ConnectionClosed) for e in outcome.events)
    if outcome.error is not None:
        check_failure(outcome, flight_allowed=True)
    elif not outcome.closed:
        assert not eof  # EOF before the handshake completes is always an error
        if outcome.output:
            check_first_flight(bytes(outcome.output))


@FUZZ
@given(blob=RANDOM_INPUT)
def test_random_bytes_whole_and_byte_by_byte_agree(rsa_config: ServerConfig, blob: bytes) -> None:
    whole = feed(ServerConnection(rsa_config), [blob] if blob else [])
    bytewise = feed(ServerConnection(rsa_config), [blob[i : i + 1] for i in range(len(blob))])
    assert whole.events == bytewise.events
    assert (whole.error is None) == (bytewise.error is None)
    if whole.error is not None:
        assert bytewise.error is not None
        assert whole.error.alert == bytewise.error.alert
        assert [r.content_type for r in split_records(whole.output)] == [
            r.content_type for r in split_records(bytewise.output)
        ]


# -- (b) mutated ClientHellos ------------------------------------------------------------------


@st.composite
def mutated_hellos(draw: st.DrawFn) -> tuple[str, bytes]:
    name = draw(st.sampled_from(sorted(FIXTURES)))
    data = bytearray(FIXTURES[name])
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete"]))
        # Half the time aim at the headers and fixed fields, where framing lives.
        high = len(data) if op == "insert" else len(data) - 1
        if high < 0:
            break
        index = draw(st.integers(0, min(high, 80)) | st.integers(0, high))
        if op == "flip":
            data[index] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            data[index] = draw(st.sampled_from([0x00, 0x01, 0x03, 0x7F, 0x80, 0xFF]))
        elif op == "insert":
            data.insert(index, draw(st.integers(0, 255)))
        else:
            del data[index]
    return name, bytes(data)


@FUZZ
@given(hello=mutated_hellos(), data=st.data())
def test_mutated_client_hellos(
    rsa_config: ServerConfig, hello: tuple[str, bytes], data: st.DataObject
) -> None:
    _, blob = hello
    chunks = data.draw(st.just([blob]) | chunkings(blob), label="chunks")
    server = ServerConnection(rsa_config)
    outcome = feed(server, chunks)
    if outcome.error is not None:
        assert outcome.error.alert is not None
        check_failure(outcome, flight_allowed=True)
        return
    assert outcome.events == [] or all(
        isinstance(e, AlertReceived | ConnectionClosed) for e in outcome.events
    )
    if outcome.closed:
        return
    if outcome.output:
        suite = check_first_flight(bytes(outcome.output))
        assert SUITES_BY_ID[suite].auth == "rsa"
    # Either way the handshake is not finished, so EOF now is an error that sends nothing.
    server.receive_data(b"")
    with pytest.raises(RemoteProtocolError) as eof:
        server.next_event()
    assert eof.value.alert is None
    assert server.data_to_send() == b""


# -- (c) the h11 rule: whole, byte by byte, in random pieces ------------------------------------

Chunker = Callable[[bytes], list[bytes]]


def whole(data: bytes) -> list[bytes]:
    return [data] if data else []


def byte_by_byte(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def record_kinds(output: bytes | bytearray) -> list[tuple[int, int]]:
    return [(r.content_type, len(r.fragment)) for r in split_records(output)]


def run_full_connection(
    config: ServerConfig, chunker: Chunker, client: ScriptedClient
) -> tuple[list[Event], list[object]]:
    """A whole connection, each client flight cut by `chunker`; (events, output summary)."""
    server = ServerConnection(config)
    summary: list[object] = []

    first = feed(server, chunker(client.client_hello()))
    assert first.error is None, first.error
    assert first.events == []
    flight = client.read_server_flight(first.output)
    client.verify_server_key_exchange()
    summary += [record_kinds(first.output), flight.message_types]

    second_flight = (
        client.client_key_exchange()
        + client.finished()
        + client.application_data(b"hello")
        + client.application_data(b"")
        + client.application_data(b"world" * 1000)
    )
    second = feed(server, chunker(second_flight))
    assert second.error is None, second.error
    rest = client.read_server_finished(second.output)
    summary += [record_kinds(second.output), rest]

    server.send(b"reply")
    # RFC 5246 §7.2.1: the peer's close_notify is answered with ours, and nothing follows.
    third = feed(server, chunker(client.alert(AlertDescription.close_notify, AlertLevel.warning)))
    assert third.error is None, third.error
    closing = client.read(third.output)
    assert closing == [
        (ContentType.application_data, b"reply"),
        (ContentType.alert, bytes((AlertLevel.warning, AlertDescription.close_notify))),
    ]
    with pytest.raises(LocalProtocolError):
        server.send(b"too late")
    summary += [record_kinds(third.output), closing]
    return first.events + second.events + third.events, summary


EXPECTED_EVENT_TYPES = [
    HandshakeComplete,
    ApplicationData,
    ApplicationData,
    AlertReceived,
    ConnectionClosed,
]


@pytest.mark.parametrize("ems", [True, False], ids=["ems", "no-ems"])
@pytest.mark.parametrize(
    "suite", [s for s in ALL_SUITES if s.auth == "rsa"], ids=lambda s: s.openssl_name
)
def test_whole_and_byte_by_byte_give_the_same_connection(
    rsa_config: ServerConfig, suite: CipherSuite, ems: bool
) -> None:
    runs = [
        run_full_connection(rsa_config, chunker, ScriptedClient(suites=(suite.id,), ems=ems))
        for chunker in (whole, byte_by_byte)
    ]
    (events_whole, summary_whole), (events_bytes, summary_bytes) = runs
    assert [type(e) for e in events_whole] == EXPECTED_EVENT_TYPES
    assert events_whole[1:] == [
        ApplicationData(b"hello"),
        ApplicationData(b"world" * 1000),
        AlertReceived(AlertLevel.warning, AlertDescription.close_notify),
        ConnectionClosed(close_notify=True),
    ]
    assert events_whole == events_bytes
    assert summary_whole == summary_bytes


@FUZZ
@given(
    data=st.data(),
    suite=st.sampled_from([s.id for s in ALL_SUITES if s.auth == "rsa"]),
    group=st.sampled_from([NamedGroup.x25519, NamedGroup.secp256r1, NamedGroup.secp384r1]),
    ems=st.booleans(),
)
def test_random_chunkings_give_the_same_connection(
    rsa_config: ServerConfig, data: st.DataObject, suite: int, group: int, ems: bool
) -> None:
    def random_pieces(blob: bytes) -> list[bytes]:
        return data.draw(chunkings(blob))

    reference = run_full_connection(
        rsa_config, whole, ScriptedClient(suites=(suite,), groups=(group,), ems=ems)
    )
    pieces = run_full_connection(
        rsa_config, random_pieces, ScriptedClient(suites=(suite,), groups=(group,), ems=ems)
    )
    assert [type(e) for e in reference[0]] == EXPECTED_EVENT_TYPES
    assert pieces == reference


# -- (d) every captured ClientHello gets a TLS 1.2 ServerHello -----------------------------------


def decode_fixture(data: bytes) -> ClientHello:
    (rec,) = split_records(data)
    ((msg_type, message),) = split_handshake(rec.fragment)
    assert msg_type == HandshakeType.client_hello
    reader = Reader(message)
    reader.raw(4)
    hello = ClientHello.decode(reader)
    reader.end()
    return hello


@pytest.mark.parametrize("config_name", ["rsa_config", "dual_config"])
@pytest.mark.parametrize("fixture", sorted(FIXTURES))
def test_captured_client_hellos_get_tls12(
    request: pytest.FixtureRequest, fixture: str, config_name: str
) -> None:
    config: ServerConfig = request.getfixturevalue(config_name)
    data = FIXTURES[fixture]
    hello = decode_fixture(data)
    server = ServerConnection(config)
    outcome = feed(server, [data])
    assert outcome.error is None, outcome.error
    assert outcome.events == []

    client = ScriptedClient()
    client.client_random = hello.random
    flight = client.read_server_flight(outcome.output)
    server_hello = flight.server_hello
    assert server_hello.server_version == 0x0303
    assert set(flight.record_versions) == {0x0303}
    suite = SUITES_BY_ID[server_hello.cipher_suite]
    assert suite in ALL_SUITES
    assert suite.id in hello.cipher_suites
    if config_name == "rsa_config":
        assert suite.auth == "rsa"
    # Server preference: the first of our suites the client offers (that a certificate serves).
    servable = {"rsa", "ecdsa"} if config_name == "dual_config" else {"rsa"}
    ours = [s for s in config.cipher_suites if s.id in hello.cipher_suites and s.auth in servable]
    assert suite == ours[0]

    # The key exchange uses a group the client offered, signed with the certificate's key.
    groups = hello.extension(SupportedGroups)
    offered_groups = groups.groups if groups is not None else (NamedGroup.secp256r1,)
    assert flight.server_key_exchange.named_curve in offered_groups
    client.verify_server_key_exchange()

    # RFC 5746 and RFC 7627 are answered when asked.
    renegotiation = (
        hello.extension(RenegotiationInfo) is not None
        or TLS_EMPTY_RENEGOTIATION_INFO_SCSV in hello.cipher_suites
    )
    assert (server_hello.extension(ExtensionType.renegotiation_info) == b"\x00") is renegotiation
    ems = hello.extension(ExtendedMasterSecret) is not None
    assert (server_hello.extension(ExtensionType.extended_master_secret) == b"") is ems
    # Nothing unsolicited (RFC 5246 §7.4.1.4); the SCSV solicits renegotiation_info.
    solicited = {e.extension_type for e in hello.extensions}
    if renegotiation:
        solicited.add(ExtensionType.renegotiation_info)
    assert {t for t, _ in server_hello.extensions} <= solicited

    # And the connection carries on: ClientKeyExchange is what it waits for.
    assert server.next_event() is NEED_DATA


# -- (e) client certificates -------------------------------------------------------------------


@FUZZ
@given(
    who=st.sampled_from(["alice", "bob", "t61"]),
    flips=st.lists(st.tuples(st.integers(0, 2**16), st.integers(1, 255)), max_size=4),
    tamper=st.booleans(),
    pieces=st.lists(st.integers(0, 4096), max_size=8),
)
def test_flipped_client_certificates_only_raise_the_protocol_error(
    rsa_config: ServerConfig,
    who: str,
    flips: list[tuple[int, int]],
    tamper: bool,
    pieces: list[int],
) -> None:
    """The client's Certificate with bytes flipped, then ClientKeyExchange and CertificateVerify,
    in random pieces: the handshake goes on, or fails with a RemoteProtocolError whose alert is
    the last record sent. Certificates are parsed lazily, so a flip can surface anywhere in
    verification (fuzz/fuzz_connection.py's client-auth mode does this at length)."""
    leaf = {"alice": ALICE, "bob": BOB_RSA, "t61": T61_V3}[who]
    scheme = 0x0403 if who != "bob" else 0x0804
    config = attrs.evolve(rsa_config, client_auth=client_auth("required"))
    server = ServerConnection(config)
    client = ScriptedClient()
    hello = feed(server, [client.client_hello()])
    assert hello.error is None
    client.read_server_flight(bytes(hello.output))
    message = bytearray(client.client_certificate(leaf.chain))
    for position, mask in flips:
        message[5 + position % (len(message) - 5)] ^= mask  # past the record header
    flight = bytes(message) + client.client_key_exchange()
    flight += client.certificate_verify(leaf.key, scheme, tamper=tamper)
    outcome = feed(server, chunked(flight, pieces))
    if outcome.error is None:
        assert not outcome.output  # nothing to say until the client's Finished
        return
    assert type(outcome.error) is RemoteProtocolError
    assert outcome.error.alert is not None
    records = [(r.content_type, r.fragment) for r in split_records(bytes(outcome.output))]
    assert records == [alert_record(outcome.error.alert)]
