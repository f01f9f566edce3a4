"""A deliberately controllable TLS 1.2 client, for driving ServerConnection into faults.

It speaks just enough of RFC 5246 (ECDHE, AEAD suites) to walk a server through every state,
and every step can be bent: the ClientHello's version, suites, compression, extensions (raw, so
duplicates and malformed bodies are possible) and record version; the ClientKeyExchange point;
the ChangeCipherSpec payload; the Finished verify_data (wrong, wrong length) and the sealed
record (a flipped bit). Interop is proven against OpenSSL elsewhere; this is for injecting faults.

The message encoders, record protection and ECDHE key come from the engine, but the key
schedule (PRF, master secret, key block, verify_data) is written out again here straight from
RFC 5246 §5, §6.3, §7.4.9, §8.1 and RFC 7627 §4, so the engine's is checked against a second
copy rather than against itself.

Typical use::

    client = ScriptedClient()
    server.receive_data(client.client_hello())
    ...  # drain server.next_event()
    client.read_server_flight(server.data_to_send())
    server.receive_data(client.client_key_exchange() + client.finished())
    ...
    client.read_server_finished(server.data_to_send())
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from collections.abc import Sequence

import attrs
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from trio_tls.engine.crypto.asymmetric import SCHEMES, EphemeralKey, PrivateKey, sign
from trio_tls.engine.crypto.suites import ALL_SUITES, SUITES_BY_ID, CipherSuite
from trio_tls.engine.record.protection import RecordProtection
from trio_tls.engine.wire.codec import Reader, Writer
from trio_tls.engine.wire.enums import (
    TLS12,
    TLS_EMPTY_RENEGOTIATION_INFO_SCSV,
    AlertLevel,
    ContentType,
    ExtensionType,
    HandshakeType,
    NamedGroup,
)
from trio_tls.engine.wire.extensions import UnknownExtension
from trio_tls.engine.wire.messages import (
    Certificate,
    CertificateRequest,
    ClientHello,
    ServerHelloDone,
    ServerKeyExchange,
)

DEFAULT_SUITES: tuple[int, ...] = tuple(suite.id for suite in ALL_SUITES)
DEFAULT_GROUPS: tuple[int, ...] = (NamedGroup.x25519, NamedGroup.secp256r1, NamedGroup.secp384r1)
DEFAULT_SCHEMES: tuple[int, ...] = tuple(SCHEMES)
_HEADER = struct.Struct("!BHH")

# -- framing helpers -------------------------------------------------------------------------


def record(content_type: int, payload: bytes, version: int = TLS12) -> bytes:
    """One plaintext record (RFC 5246 §6.2.1); the length is the payload's, unchecked."""
    return _HEADER.pack(content_type, version, len(payload)) + payload


def fragmented(content_type: int, payload: bytes, version: int = TLS12, size: int = 2**14) -> bytes:
    """`payload` as consecutive records of at most `size` bytes each (RFC 5246 §6.2.1)."""
    return b"".join(
        record(content_type, payload[start : start + size], version)
        for start in range(0, len(payload), size)
    )


def handshake(msg_type: int, body: bytes, length: int | None = None) -> bytes:
    """Handshake framing (RFC 5246 §7.4) with an optionally lying uint24 length."""
    announced = len(body) if length is None else length
    return bytes((msg_type,)) + announced.to_bytes(3, "big") + body


def extension(extension_type: int, data: bytes) -> tuple[int, bytes]:
    """A raw extension, as `client_hello(extensions=...)` takes them."""
    return (extension_type, data)


def u16_vector(values: Sequence[int]) -> bytes:
    """A uint16 list behind a 2-byte length, the shape of supported_groups and friends."""
    return (2 * len(values)).to_bytes(2, "big") + b"".join(v.to_bytes(2, "big") for v in values)


def sni_extension_data(host_name: bytes) -> bytes:
    """RFC 6066 §3 ServerNameList with one host_name entry."""
    entry = b"\x00" + len(host_name).to_bytes(2, "big") + host_name
    return len(entry).to_bytes(2, "big") + entry


def alpn_extension_data(protocols: Sequence[bytes]) -> bytes:
    names = b"".join(bytes((len(p),)) + p for p in protocols)
    return len(names).to_bytes(2, "big") + names


@attrs.frozen
class Record:
    content_type: int
    version: int
    fragment: bytes


def split_records(data: bytes | bytearray) -> list[Record]:
    """Whole records from a byte string; a trailing partial record is an AssertionError."""
    records = []
    view = bytes(data)
    offset = 0
    while offset < len(view):
        assert len(view) - offset >= 5, "partial record header"
        content_type, version, length = _HEADER.unpack_from(view, offset)
        end = offset + 5 + length
        assert end <= len(view), "partial record body"
        records.append(Record(content_type, version, view[offset + 5 : end]))
        offset = end
    return records


def split_handshake(payload: bytes) -> list[tuple[int, bytes]]:
    """(type, whole message with header) for each handshake message in `payload`."""
    messages = []
    offset = 0
    while offset < len(payload):
        length = int.from_bytes(payload[offset + 1 : offset + 4], "big")
        end = offset + 4 + length
        assert end <= len(payload), "partial handshake message"
        messages.append((payload[offset], payload[offset:end]))
        offset = end
    return messages


# -- the key schedule, written out from the RFCs ----------------------------------------------


def p_hash(hash_name: str, secret: bytes, seed: bytes, length: int) -> bytes:
    """RFC 5246 §5: HMAC(secret, A(1) + seed) + HMAC(secret, A(2) + seed) + ..., A(i) chained."""
    out = b""
    a = seed  # A(0)
    while len(out) < length:
        a = hmac.new(secret, a, hash_name).digest()
        out += hmac.new(secret, a + seed, hash_name).digest()
    return out[:length]


def prf(hash_name: str, secret: bytes, label: bytes, seed: bytes, length: int) -> bytes:
    return p_hash(hash_name, secret, label + seed, length)


@attrs.frozen
class Keys:
    master_secret: bytes
    client_key: bytes
    server_key: bytes
    client_iv: bytes
    server_iv: bytes


def derive_keys(
    suite: CipherSuite,
    pre_master_secret: bytes,
    client_random: bytes,
    server_random: bytes,
    session_hash: bytes | None,
) -> Keys:
    """RFC 5246 §8.1 / RFC 7627 §4 master secret, then the §6.3 key block (AEAD: no MAC keys)."""
    if session_hash is None:
        master = prf(
            suite.prf_hash, pre_master_secret, b"master secret", client_random + server_random, 48
        )
    else:
        master = prf(suite.prf_hash, pre_master_secret, b"extended master secret", session_hash, 48)
    k, i = suite.key_length, suite.iv_length
    block = prf(
        suite.prf_hash, master, b"key expansion", server_random + client_random, 2 * (k + i)
    )
    return Keys(
        master_secret=master,
        client_key=block[:k],
        server_key=block[k : 2 * k],
        client_iv=block[2 * k : 2 * k + i],
        server_iv=block[2 * k + i : 2 * k + 2 * i],
    )


# -- the client ------------------------------------------------------------------------------


@attrs.frozen
class ParsedServerHello:
    """RFC 5246 §7.4.1.3, parsed here with extensions kept raw: (type, data) in wire order."""

    server_version: int
    random: bytes
    session_id: bytes
    cipher_suite: int
    compression_method: int
    extensions: tuple[tuple[int, bytes], ...]

    @classmethod
    def decode(cls, reader: Reader) -> ParsedServerHello:
        server_version = reader.u16()
        random = reader.raw(32)
        session_id = reader.opaque8(maximum=32)
        cipher_suite = reader.u16()
        compression_method = reader.u8()
        extensions = []
        if not reader.at_end():
            block = reader.vec16()
            while not block.at_end():
                extensions.append((block.u16(), block.opaque16()))
        types = [t for t, _ in extensions]
        assert len(types) == len(set(types)), f"duplicate extensions from the server: {types}"
        return cls(
            server_version, random, session_id, cipher_suite, compression_method, tuple(extensions)
        )

    def extension(self, extension_type: int) -> bytes | None:
        for t, data in self.extensions:
            if t == extension_type:
                return data
        return None


@attrs.frozen
class ServerFlight:
    server_hello: ParsedServerHello
    certificate: Certificate
    server_key_exchange: ServerKeyExchange
    record_versions: tuple[int, ...]
    message_types: tuple[int, ...]


class ScriptedClient:
    """One client side of one connection; methods return the bytes to feed the server."""

    def __init__(
        self,
        *,
        suites: Sequence[int] = DEFAULT_SUITES,
        groups: Sequence[int] | None = DEFAULT_GROUPS,
        schemes: Sequence[int] | None = DEFAULT_SCHEMES,
        ems: bool = True,
        sni: str | None = "localhost",
        alpn: Sequence[bytes] | None = None,
        renegotiation_info: bool = True,
    ) -> None:
        self.suites = tuple(suites)
        self.groups = tuple(groups) if groups is not None else None
        self.schemes = tuple(schemes) if schemes is not None else None
        self.ems = ems
        self.sni = sni
        self.alpn = tuple(alpn) if alpn is not None else None
        self.renegotiation_info = renegotiation_info
        self.client_random = os.urandom(32)
        self._handshake_messages: list[bytes] = []  # the transcript, headers included
        self.flight: ServerFlight | None = None
        self.certificate_request: CertificateRequest | None = None
        self.suite: CipherSuite | None = None
        self.keys: Keys | None = None
        self._write: RecordProtection | None = None  # client -> server, after our CCS
        self._read: RecordProtection | None = None  # server -> client, after its CCS
        self.server_finished_verified = False

    # ClientHello ------------------------------------------------------------------------

    def default_extensions(self) -> list[tuple[int, bytes]]:
        """The extensions this client's settings produce, as raw (type, data) pairs."""
        extensions: list[tuple[int, bytes]] = []
        if self.sni is not None:
            extensions.append(
                extension(ExtensionType.server_name, sni_extension_data(self.sni.encode()))
            )
        if self.groups is not None:
            extensions.append(extension(ExtensionType.supported_groups, u16_vector(self.groups)))
        extensions.append(extension(ExtensionType.ec_point_formats, b"\x01\x00"))
        if self.schemes is not None:
            extensions.append(
                extension(ExtensionType.signature_algorithms, u16_vector(self.schemes))
            )
        if self.alpn is not None:
            extensions.append(
                extension(
                    ExtensionType.application_layer_protocol_negotiation,
                    alpn_extension_data(self.alpn),
                )
            )
        if self.ems:
            extensions.append(extension(ExtensionType.extended_master_secret, b""))
        if self.renegotiation_info:
            extensions.append(extension(ExtensionType.renegotiation_info, b"\x00"))
        return extensions

    def client_hello_body(
        self,
        *,
        version: int = TLS12,
        suites: Sequence[int] | None = None,
        compression: bytes = b"\x00",
        session_id: bytes = b"",
        extensions: Sequence[tuple[int, bytes]] | None = None,
    ) -> bytes:
        """The ClientHello body (RFC 5246 §7.4.1.2), every field overridable."""
        raw_extensions = self.default_extensions() if extensions is None else list(extensions)
        hello = ClientHello(
            client_version=version,
            random=self.client_random,
            session_id=session_id,
            cipher_suites=tuple(self.suites if suites is None else suites),
            compression_methods=compression,
            extensions=tuple(UnknownExtension(t, d) for t, d in raw_extensions),
        )
        writer = Writer()
        hello.encode(writer)
        return writer.getvalue()

    def client_hello_message(self, body: bytes) -> bytes:
        """`body` framed as a ClientHello; remembered as the start of the transcript."""
        message = handshake(HandshakeType.client_hello, body)
        self._handshake_messages = [message]
        return message

    def client_hello(
        self,
        *,
        record_version: int = 0x0301,
        body: bytes | None = None,
        version: int = TLS12,
        suites: Sequence[int] | None = None,
        compression: bytes = b"\x00",
        session_id: bytes = b"",
        extensions: Sequence[tuple[int, bytes]] | None = None,
    ) -> bytes:
        """A ClientHello in records of up to 2^14 bytes: `body` verbatim, or one built from the
        other arguments."""
        if body is None:
            body = self.client_hello_body(
                version=version,
                suites=suites,
                compression=compression,
                session_id=session_id,
                extensions=extensions,
            )
        return fragmented(ContentType.handshake, self.client_hello_message(body), record_version)

    # The server's first flight ------------------------------------------------------------

    def read_server_flight(self, data: bytes | bytearray) -> ServerFlight:
        """Parse ServerHello, Certificate, ServerKeyExchange, ServerHelloDone (RFC 5246 §7.3)."""
        records = split_records(data)
        assert records, "the server sent nothing"
        assert all(r.content_type == ContentType.handshake for r in records), records
        messages = split_handshake(b"".join(r.fragment for r in records))
        types = tuple(t for t, _ in messages)
        request = types[3:4] == (HandshakeType.certificate_request,)
        assert types == (
            HandshakeType.server_hello,
            HandshakeType.certificate,
            HandshakeType.server_key_exchange,
            *((HandshakeType.certificate_request,) if request else ()),
            HandshakeType.server_hello_done,
        ), types
        readers = []
        for _, raw in messages:
            reader = Reader(raw)
            reader.raw(4)
            readers.append(reader)
        server_hello = ParsedServerHello.decode(readers[0])
        certificate = Certificate.decode(readers[1])
        key_exchange = ServerKeyExchange.decode(readers[2])
        self.certificate_request = CertificateRequest.decode(readers[3]) if request else None
        ServerHelloDone.decode(readers[-1])
        for reader in readers:
            reader.end()
        self._handshake_messages += [raw for _, raw in messages]
        self.suite = SUITES_BY_ID[server_hello.cipher_suite]
        self.flight = ServerFlight(
            server_hello,
            certificate,
            key_exchange,
            tuple(r.version for r in records),
            types,
        )
        return self.flight

    def verify_server_key_exchange(self) -> None:
        """Check the ServerKeyExchange signature with the leaf's public key (RFC 8422 §5.4)."""
        flight = self._flight()
        ske = flight.server_key_exchange
        public_key = x509.load_der_x509_certificate(
            flight.certificate.certificate_list[0]
        ).public_key()
        signed = (
            self.client_random
            + flight.server_hello.random
            + ServerKeyExchange.encode_params(ske.named_curve, ske.public)
        )
        info = SCHEMES[ske.signature_scheme]
        algorithm = info.hash()
        if isinstance(public_key, rsa.RSAPublicKey):
            pad: padding.AsymmetricPadding
            if info.kind == "rsa_pss":
                pad = padding.PSS(padding.MGF1(algorithm), padding.PSS.DIGEST_LENGTH)
            else:
                assert info.kind == "rsa_pkcs1"
                pad = padding.PKCS1v15()
            public_key.verify(ske.signature, signed, pad, algorithm)
        else:
            assert isinstance(public_key, ec.EllipticCurvePublicKey)
            assert info.kind == "ecdsa"
            public_key.verify(ske.signature, signed, ec.ECDSA(algorithm))

    # The client's Certificate and CertificateVerify (RFC 5246 §7.4.6, §7.4.8) --------------

    def client_certificate(self, chain: Sequence[bytes]) -> bytes:
        """A Certificate record carrying `chain` (DER, leaf first; empty for "none")."""
        writer = Writer()
        Certificate(tuple(chain)).encode(writer)
        message = handshake(HandshakeType.certificate, writer.getvalue())
        self._handshake_messages.append(message)
        return record(ContentType.handshake, message)

    def certificate_verify(
        self, key: PrivateKey, scheme: int, *, tamper: bool = False, claim: int | None = None
    ) -> bytes:
        """A CertificateVerify over the transcript so far; `tamper` flips a signature bit, and
        `claim` names another scheme on the wire than the one that signed."""
        signature = bytearray(sign(key, scheme, b"".join(self._handshake_messages)))
        if tamper:
            signature[-1] ^= 0x01
        named = scheme if claim is None else claim
        body = named.to_bytes(2, "big") + len(signature).to_bytes(2, "big") + signature
        message = handshake(HandshakeType.certificate_verify, body)
        self._handshake_messages.append(message)
        return record(ContentType.handshake, message)

    # ClientKeyExchange, ChangeCipherSpec, Finished ----------------------------------------

    def client_key_exchange(self, public: bytes | None = None) -> bytes:
        """A ClientKeyExchange record: a real ECDHE key of the server's group, or `public`.

        With a real key the keys are derived here; with an injected `public` they are not
        (the server is expected to refuse it).
        """
        flight = self._flight()
        if public is not None:
            message = handshake(HandshakeType.client_key_exchange, bytes((len(public),)) + public)
            self._handshake_messages.append(message)
            return record(ContentType.handshake, message)
        ephemeral = EphemeralKey(flight.server_key_exchange.named_curve)
        message = handshake(
            HandshakeType.client_key_exchange, bytes((len(ephemeral.public),)) + ephemeral.public
        )
        self._handshake_messages.append(message)
        ems = flight.server_hello.extension(ExtensionType.extended_master_secret) is not None
        self.keys = derive_keys(
            self._suite(),
            ephemeral.exchange(flight.server_key_exchange.public),
            self.client_random,
            flight.server_hello.random,
            self._transcript_hash() if ems else None,
        )
        return record(ContentType.handshake, message)

    def verify_data(self, label: bytes = b"client finished") -> bytes:
        """RFC 5246 §7.4.9 over the transcript so far."""
        suite = self._suite()
        return prf(suite.prf_hash, self._keys().master_secret, label, self._transcript_hash(), 12)

    def change_cipher_spec(self, payload: bytes = b"\x01") -> bytes:
        """The ChangeCipherSpec record; from here on our records are sealed."""
        keys = self._keys()
        self._write = self._suite().make_protection(keys.client_key, keys.client_iv)
        return record(ContentType.change_cipher_spec, payload)

    def finished(
        self,
        *,
        verify_data: bytes | None = None,
        tamper: bool = False,
        change_cipher_spec: bool = True,
    ) -> bytes:
        """ChangeCipherSpec + sealed Finished (verify_data overridable, record tamperable)."""
        out = self.change_cipher_spec() if change_cipher_spec else b""
        if verify_data is None:
            verify_data = self.verify_data()
        message = handshake(HandshakeType.finished, verify_data)
        self._handshake_messages.append(message)
        return out + self.sealed(ContentType.handshake, message, tamper=tamper)

    def sealed(self, content_type: int, payload: bytes, *, tamper: bool = False) -> bytes:
        """A record sealed under our write keys; `tamper` flips one ciphertext bit."""
        assert self._write is not None, "no ChangeCipherSpec sent yet"
        pieces: list[bytes] = []
        self._write.seal_into(pieces, content_type, payload)
        out = bytearray(b"".join(pieces))
        if tamper:
            # The last ciphertext byte (or, for an empty payload, the tag's): a flipped bit that
            # the AEAD must catch.
            out[-17 if payload else -1] ^= 0x01
        return bytes(out)

    def application_data(self, data: bytes, *, tamper: bool = False) -> bytes:
        return self.sealed(ContentType.application_data, data, tamper=tamper)

    def alert(self, description: int, level: int = AlertLevel.fatal) -> bytes:
        """An alert, sealed once our ChangeCipherSpec is out, plaintext before."""
        payload = bytes((level, description))
        if self._write is None:
            return record(ContentType.alert, payload)
        return self.sealed(ContentType.alert, payload)

    # Reading what the server sends --------------------------------------------------------

    def read(self, data: bytes | bytearray) -> list[tuple[int, bytes]]:
        """(content type, plaintext) of each server record, opening those after its CCS."""
        out = []
        for rec in split_records(data):
            assert rec.version == TLS12, f"server record version {rec.version:#06x}"
            if self._read is not None:
                plaintext = bytes(self._read.open(rec.content_type, rec.version, rec.fragment)[1])
            else:
                plaintext = rec.fragment
            out.append((rec.content_type, plaintext))
            if rec.content_type == ContentType.change_cipher_spec and self._read is None:
                assert plaintext == b"\x01"
                keys = self._keys()
                self._read = self._suite().make_protection(keys.server_key, keys.server_iv)
        return out

    def read_server_finished(self, data: bytes | bytearray) -> list[tuple[int, bytes]]:
        """The server's CCS + Finished (checked against our transcript), then any more records."""
        records = self.read(data)
        assert records[0] == (ContentType.change_cipher_spec, b"\x01"), records[:1]
        content_type, message = records[1]
        assert content_type == ContentType.handshake
        expected = handshake(HandshakeType.finished, self.verify_data(b"server finished"))
        assert message == expected, "server Finished does not verify"
        self._handshake_messages.append(message)
        self.server_finished_verified = True
        return records[2:]

    # ----------------------------------------------------------------------------------------

    def _transcript_hash(self) -> bytes:
        return hashlib.new(self._suite().prf_hash, b"".join(self._handshake_messages)).digest()

    def _flight(self) -> ServerFlight:
        assert self.flight is not None, "read_server_flight() first"
        return self.flight

    def _suite(self) -> CipherSuite:
        assert self.suite is not None, "read_server_flight() first"
        return self.suite

    def _keys(self) -> Keys:
        assert self.keys is not None, "client_key_exchange() with a real key first"
        return self.keys


def renegotiation_scsv_suites(suites: Sequence[int] = DEFAULT_SUITES) -> tuple[int, ...]:
    """The suites with TLS_EMPTY_RENEGOTIATION_INFO_SCSV appended (RFC 5746 §3.3)."""
    return (*suites, TLS_EMPTY_RENEGOTIATION_INFO_SCSV)
