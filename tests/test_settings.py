"""--tls-versions, --ciphers and --groups to a ServerConfig: each version's suites and the
groups in the order the operator gave. (Their mistakes: test_cli.ERROR_CASES.)"""

from __future__ import annotations

from typing import Any

import attrs
import pytest
import trustme

from trio_tls.engine.crypto.keyshare import TLS13_GROUPS
from trio_tls.engine.crypto.suites import DEFAULT_SUITES, TLS13_SUITES
from trio_tls.engine.wire.enums import TLS12, TLS13, NamedGroup
from trio_tls.ops.settings import Settings, build_config


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, rsa_leaf: trustme.LeafCert) -> Settings:
    directory = tmp_path_factory.mktemp("settings")
    cert, key = directory / "rsa.crt", directory / "rsa.key"
    rsa_leaf.cert_chain_pems[0].write_to_path(cert)
    rsa_leaf.private_key_pem.write_to_path(key)
    key.chmod(0o600)
    return Settings(certfiles=[str(cert)], keyfiles=[str(key)])


def _config(files: Settings, **changes: str) -> tuple[Any, ...]:
    config, _ = build_config(attrs.evolve(files, **changes))
    return config.versions, config.cipher_suites, config.tls13_suites, config.groups


def test_defaults_serve_both_versions_with_every_suite_and_group(files: Settings) -> None:
    assert _config(files) == ({TLS12, TLS13}, DEFAULT_SUITES, TLS13_SUITES, TLS13_GROUPS)


def test_ciphers_set_each_versions_suites_in_the_order_given(files: Settings) -> None:
    names = "TLS_CHACHA20_POLY1305_SHA256:ECDHE-RSA-AES256-GCM-SHA384,TLS_AES_256_GCM_SHA384"
    _, suites, suites13, _ = _config(files, ciphers=names)
    assert [s.openssl_name for s in suites] == ["ECDHE-RSA-AES256-GCM-SHA384"]
    assert [s.name for s in suites13] == [
        "TLS_CHACHA20_POLY1305_SHA256",
        "TLS_AES_256_GCM_SHA384",
    ]


@pytest.mark.parametrize(
    ("ciphers", "kept"),
    [("TLS_AES_256_GCM_SHA384", 1), ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", 2)],
    ids=["only-1.3-named", "only-1.2-named"],
)
def test_a_version_no_suite_is_named_for_keeps_its_defaults(
    files: Settings, ciphers: str, kept: int
) -> None:
    config = _config(files, ciphers=ciphers)
    assert config[kept] == (DEFAULT_SUITES, TLS13_SUITES)[kept - 1]


@pytest.mark.parametrize("hybrid", ["x25519mlkem768", "X25519MLKEM768", "X25519MLKem768"])
def test_groups_name_the_hybrid_and_order_the_preference(files: Settings, hybrid: str) -> None:
    _, _, _, groups = _config(files, groups=f"secp384r1:{hybrid}:x25519")
    assert groups == (NamedGroup.secp384r1, NamedGroup.X25519MLKEM768, NamedGroup.x25519)


def test_tls12_alone_keeps_the_default_groups(files: Settings) -> None:
    """The default list starts with the hybrid; a 1.2 handshake skips it, so this is no mistake."""
    versions, _, _, groups = _config(files, tls_versions="TLSv1.2")
    assert (versions, groups) == ({TLS12}, TLS13_GROUPS)


def test_tls13_alone_with_the_hybrid_alone(files: Settings) -> None:
    versions, _, _, groups = _config(files, tls_versions="1.3", groups="x25519mlkem768")
    assert (versions, groups) == ({TLS13}, (NamedGroup.X25519MLKEM768,))
