"""tlslite-ng's TLS 1.3 client against the engine in-process (tlslite_peer.py's `connect`).

tlslite-ng derives every secret with its own HKDF, makes its own key shares (pure-Python X25519,
python-ecdsa's curves, and X25519MLKEM768 through the pure-Python ML-KEM of `kyber-py`), checks
our CertificateVerify and Finished, and protects its records itself. Besides Chromium it is the
only independent ML-KEM TLS peer on these machines: OpenSSL 3.0 has none.
"""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from tlslite.constants import CipherSuite

from trio_tls.engine.config import ServerConfig
from trio_tls.engine.connection import ServerConnection
from trio_tls.engine.crypto.suites import TLS13_SUITES, Tls13Suite
from trio_tls.engine.events import Decision, Observation
from trio_tls.engine.wire.enums import TLS12, TLS13, NamedGroup

from .test_tlslite import TLSLITE_CIPHERS
from .tlslite_peer import connect, connection_data_flows

TLSLITE13 = (3, 4)
BOTH = frozenset({TLS12, TLS13})


def connect13(
    config: ServerConfig,
    group: str,
    observed: list[Observation] | None = None,
    **overrides: Any,
) -> ServerConnection:
    """A tlslite-ng TLS 1.3 handshake with one share of `group` (unless `overrides` say
    otherwise); data flows both ways after. The server's observations go to `observed`."""
    options = {"eccCurves": [group], "keyShares": [group], **overrides}
    server = ServerConnection(
        attrs.evolve(config, versions=BOTH), observed.append if observed is not None else None
    )
    connection, loop = connect(
        server,
        minVersion=TLSLITE13,
        maxVersion=TLSLITE13,
        **options,
    )
    assert connection.version == TLSLITE13
    connection_data_flows(connection, loop)
    return loop.server


@pytest.mark.parametrize(
    ("group", "reported"),
    [
        ("x25519", "x25519"),
        ("secp256r1", "secp256r1"),
        ("secp384r1", "secp384r1"),
        ("x25519mlkem768", "X25519MLKEM768"),
    ],
)
def test_each_group(rsa_config: ServerConfig, group: str, reported: str) -> None:
    info = connect13(rsa_config, group).info
    assert info is not None
    assert (info.version, info.group) == ("TLSv1.3", reported)
    assert info.cipher_suite == "TLS_AES_128_GCM_SHA256"


@pytest.mark.parametrize("suite", TLS13_SUITES, ids=lambda suite: suite.name)
def test_each_suite(full_config: ServerConfig, suite: Tls13Suite) -> None:
    (cipher,) = [tlslite for iana, tlslite in TLSLITE_CIPHERS.items() if f"_{iana}_" in suite.name]
    info = connect13(full_config, "x25519", cipherNames=[cipher]).info
    assert info is not None
    assert (info.version, info.cipher_suite) == ("TLSv1.3", suite.name)
    assert getattr(CipherSuite, suite.name) == suite.id


def test_hello_retry_request_for_the_hybrid(rsa_config: ServerConfig) -> None:
    # tlslite-ng sends an x25519 share and lists X25519MLKEM768 too; a server that serves only
    # the hybrid asks for its share, and tlslite-ng's second hello carries 1,184 + 32 bytes.
    config = attrs.evolve(rsa_config, groups=(NamedGroup.X25519MLKEM768,))
    observed: list[Observation] = []
    offer = {"eccCurves": ["x25519", "x25519mlkem768"], "keyShares": ["x25519"]}
    info = connect13(config, "x25519", observed, **offer).info
    assert info is not None
    assert (info.version, info.group) == ("TLSv1.3", "X25519MLKEM768")
    key_shares = [o.choice for o in observed if isinstance(o, Decision) and o.topic == "key share"]
    assert key_shares == ["HelloRetryRequest for X25519MLKEM768", "X25519MLKEM768"]
