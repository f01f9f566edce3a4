"""JA3 and JA4: fingerprints of a client, computed from its ClientHello as it was sent.

Both read only what the decoded ClientHello keeps in wire order (wire/extensions.py leaves
GREASE and unknown extensions in place), and both leave GREASE (RFC 8701) out, because clients
choose it at random per connection.

JA3 (Salesforce, 2017; the reference is salesforce/ja3's ja3.py): the five fields
`SSLVersion,Ciphers,Extensions,EllipticCurves,EllipticCurvePointFormats`, each a `-`-joined list
of decimal values in the order sent (the version is the ClientHello's legacy client_version),
and the MD5 of that string. Since Chrome 110 shuffles its extensions, JA3 changes per
connection for browsers; JA4 was made for that.

JA4 (FoxIO, technical_details/JA4.md): `t13d1516h2_8daaf6152771_e5627efa2ab1`, three parts:
- a: protocol (`t`, TLS over TCP), the highest version in supported_versions (else
  client_version), `d` with SNI or `i` without, the counts of suites and of extensions (two
  digits, at most 99; the extension count includes SNI and ALPN), and the first and last
  characters of the first ALPN protocol (`00` without one; the first and last hex digits of it
  when either end is not an ASCII letter or digit);
- b: the first 12 hex digits of the SHA-256 of the suites, as 4-digit hex, sorted, `,`-joined;
- c: the same of the extensions sorted, leaving out SNI and ALPN (part a has them), then `_`
  and the signature algorithms in the order sent (no `_` when there are none).
A list that is empty hashes to twelve zeros. JA4_r is the same with the lists unhashed.
"""

from __future__ import annotations

import hashlib

from ..engine.wire.enums import ExtensionType
from ..engine.wire.extensions import (
    ApplicationLayerProtocolNegotiation,
    ECPointFormats,
    SignatureAlgorithms,
    SupportedGroups,
    SupportedVersions,
)
from ..engine.wire.messages import ClientHello
from .iana import is_grease

# JA4.md, "TLS and DTLS Version"; any other value is "00".
_JA4_VERSIONS = {
    0x0304: "13",
    0x0303: "12",
    0x0302: "11",
    0x0301: "10",
    0x0300: "s3",
    0x0002: "s2",
    0xFEFF: "d1",
    0xFEFD: "d2",
    0xFEFC: "d3",
}
_EMPTY_HASH = "000000000000"
_LEFT_OUT_OF_JA4_C = frozenset(
    {ExtensionType.server_name, ExtensionType.application_layer_protocol_negotiation}
)


def _without_grease(values: tuple[int, ...]) -> list[int]:
    return [value for value in values if not is_grease(value)]


def _decimal(values: list[int] | tuple[int, ...]) -> str:
    return "-".join(str(value) for value in values)


def _hex(values: list[int]) -> str:
    return ",".join(f"{value:04x}" for value in values)


def _truncated_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:12]


def extension_types(hello: ClientHello) -> list[int]:
    """The extension types the client sent, in its order, GREASE left out."""
    return _without_grease(hello.extensions.types())


def ja3_string(hello: ClientHello) -> str:
    groups = hello.extension(SupportedGroups)
    formats = hello.extension(ECPointFormats)
    return ",".join(
        [
            str(hello.client_version),
            _decimal(_without_grease(hello.cipher_suites)),
            _decimal(extension_types(hello)),
            _decimal(_without_grease(groups.groups)) if groups else "",
            _decimal(formats.formats) if formats else "",
        ]
    )


def ja3_md5(hello: ClientHello) -> str:
    digest = hashlib.md5(ja3_string(hello).encode("ascii"), usedforsecurity=False)
    return digest.hexdigest()


def _ja4_version(hello: ClientHello) -> str:
    supported = hello.extension(SupportedVersions)
    offered = _without_grease(supported.versions) if supported else []
    version = max(offered) if offered else hello.client_version
    return _JA4_VERSIONS.get(version, "00")


def _ja4_alpn(hello: ClientHello) -> str:
    alpn = hello.extension(ApplicationLayerProtocolNegotiation)
    if alpn is None or not alpn.protocols or not alpn.protocols[0]:
        return "00"
    first = alpn.protocols[0]
    ends = bytes([first[0], first[-1]])
    if ends.isalnum():  # bytes.isalnum: ASCII letters and digits only
        return ends.decode("ascii")
    digits = first.hex()
    return digits[0] + digits[-1]


def _ja4_parts(hello: ClientHello) -> tuple[str, str, str]:
    """JA4's part a, and the two lists that parts b and c hash (c: "" when empty)."""
    suites = _without_grease(hello.cipher_suites)
    extensions = extension_types(hello)
    sni = "d" if ExtensionType.server_name in extensions else "i"
    part_a = (
        f"t{_ja4_version(hello)}{sni}{min(len(suites), 99):02d}{min(len(extensions), 99):02d}"
        f"{_ja4_alpn(hello)}"
    )
    hashed_extensions = sorted(e for e in extensions if e not in _LEFT_OUT_OF_JA4_C)
    algorithms = hello.extension(SignatureAlgorithms)
    schemes = _without_grease(algorithms.schemes) if algorithms else []
    part_c = _hex(hashed_extensions)
    if hashed_extensions and schemes:
        part_c += "_" + _hex(schemes)
    return part_a, _hex(sorted(suites)), part_c


def ja4(hello: ClientHello) -> str:
    part_a, suites, extensions = _ja4_parts(hello)
    part_b = _truncated_sha256(suites) if suites else _EMPTY_HASH
    part_c = _truncated_sha256(extensions) if extensions else _EMPTY_HASH
    return f"{part_a}_{part_b}_{part_c}"


def ja4_r(hello: ClientHello) -> str:
    """JA4 with its lists shown instead of hashed: what the hashes were taken over."""
    return "_".join(_ja4_parts(hello))
