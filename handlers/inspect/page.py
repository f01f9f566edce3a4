"""The inspect page: a HandshakeReport as one self-contained HTML document.

Everything is inline (CSS in a <style>, no script, no image, no font, no link out), so the page
works offline and under `Content-Security-Policy: default-src 'none'`. The ladder is CSS: a
list between two borders, the client's lane on the left and the server's on the right; each
message is an arrow drawn with a border and a triangle, and what the server decided in between
sits on its side. The ladder, the tables and the long fingerprints wrap or scroll on their own,
so the page reads on a phone. Every string that came from the client (SNI, ALPN) or from an
engine message is escaped.
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape

from trio_tls.engine.crypto.suites import SUITES_BY_ID
from trio_tls.observe.clienthello import ClientHelloReport
from trio_tls.observe.iana import Code

from .report import ConnectionSummary, HandshakeReport, KeyExchange, Rung, Share

STYLE = """
:root{--client:#0b6bcb;--server:#1a7f37;--why:#8a6100;--key:#8250df;--alert:#cf222e;
--line:#d0d7de;--muted:#57606a;font-family:system-ui,-apple-system,"Segoe UI",sans-serif}
body{margin:0;background:#f6f8fa;color:#1f2328;line-height:1.45}
main{max-width:60rem;margin:0 auto;padding:1rem}
h1{font-size:1.6rem;margin:.2rem 0}h2{font-size:1.2rem;margin:1.6rem 0 .5rem}
h3{font-size:1rem;margin:1.1rem 0 .3rem}
section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:.2rem 1rem 1rem;
margin:1rem 0}
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.85em;
overflow-wrap:anywhere}
.summary{font-size:1.05rem}.muted,small{color:var(--muted)}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{text-align:left;vertical-align:top;padding:.25rem .5rem;border-bottom:1px solid var(--line)}
th{background:#f6f8fa}td code{white-space:nowrap}
.badge{display:inline-block;border-radius:1em;padding:0 .5em;font-size:.75rem;margin:0 .15em;
background:#eaeef2;white-space:nowrap}
.grease{background:#fff8c5;color:#7d4e00}.chosen{background:#dafbe1;color:#116329}
dl{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:.25rem 1rem;margin:.5rem 0}
dt{font-weight:600}dd{margin:0;min-width:0;overflow-wrap:anywhere}
@media (max-width:36rem){dl{grid-template-columns:1fr}dd{margin-bottom:.4rem}}
.lanes{display:flex;justify-content:space-between;font-weight:700;padding:0 .2rem}
.lanes span:first-child{color:var(--client)}.lanes span:last-child{color:var(--server)}
ol.ladder{list-style:none;margin:0;padding:.3rem 0;border-left:4px solid var(--client);
border-right:4px solid var(--server)}
.ladder li{padding:.3rem .6rem;font-size:.9rem}
.ladder .t{display:block;font-size:.72rem;color:var(--muted)}
.arrow{position:relative;border-bottom:2px solid currentColor;padding:0 .8rem .1rem}
.arrow::after{content:"";position:absolute;bottom:-6px;border:5px solid transparent}
.received .arrow{color:var(--client);margin-right:.4rem}
.received .arrow::after{right:-12px;border-left:9px solid currentColor}
.sent .arrow{color:var(--server);margin-left:.4rem;text-align:right}
.sent .arrow::after{left:-12px;border-right:9px solid currentColor}
.alert .arrow{color:var(--alert)}
.arrow b{color:#1f2328}.detail{display:block;font-size:.8rem;color:var(--muted)}
ul.decisions{list-style:none;padding:0;margin:0}
.decisions li{border-left:3px solid var(--why);padding:.2rem .6rem;margin:.5rem 0}
.note{margin-left:22%;border-left:3px solid var(--why);padding-left:.5rem}
.key .note{border-color:var(--key)}.record .note{border-color:var(--muted)}
.what{font-size:.72rem;text-transform:uppercase;letter-spacing:.04em;color:var(--why)}
.key .what{color:var(--key)}.record .what{color:var(--muted)}
pre{overflow-x:auto;font-size:.75rem;background:#f6f8fa;padding:.5rem}
summary{cursor:pointer;margin:.8rem 0 .3rem;font-weight:600}
cite{font-style:normal;color:var(--muted);font-size:.8em;white-space:nowrap}
"""

# The hex dump's bytes: more than a browser's hello (about 1,800 with an ML-KEM key share),
# 256 lines; a hostile hello's 131,396 would make 8,213.
MAX_HEX_BYTES = 4096
_NOTE_WORDS = {"decision": "why", "key": "key schedule", "record": "record protection"}


def render(report: HandshakeReport) -> str:
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>Your TLS handshake · trio-tls</title>",
        f"<style>{STYLE}</style></head><body><main>",
        "<h1>Your TLS handshake</h1>",
        _summary(report),
        "<p class=muted>What your client sent this server, what the server chose and why, and"
        " the messages that went back and forth, recorded as this very connection was made."
        ' The same as JSON: <a href="/json">/json</a>.</p>',
        _decisions(report),
        _key_exchange(report.key_exchange),
        _ladder(report),
    ]
    if report.client_hello is not None:
        parts += [_fingerprints(report.client_hello), _client_hello(report)]
    parts.append("</main></body></html>\n")
    return "\n".join(parts)


def _cite(rfc: str) -> str:
    return f" <cite>{escape(rfc)}</cite>" if rfc else ""


def _summary(report: HandshakeReport) -> str:
    negotiated = report.negotiated
    if negotiated is None:
        return "<p class=summary>The handshake has not completed.</p>"
    items = [escape(negotiated.version), f"<b>{escape(negotiated.cipher_suite)}</b>"]
    items += [escape(value) for value in (negotiated.group, negotiated.signature_scheme) if value]
    if negotiated.alpn:
        items.append(f"ALPN {escape(negotiated.alpn)}")
    kind = "resumed session (abbreviated handshake)" if negotiated.resumed else "full handshake"
    if report.handshake_ms is not None:
        kind += f" in {report.handshake_ms:.1f} ms"
    items.append(kind)
    return f"<p class=summary>{' · '.join(items)}</p>" + _connection(negotiated)


def _connection(negotiated: ConnectionSummary) -> str:
    rows = [
        ("Your address", negotiated.peer),
        ("Server name (SNI)", negotiated.sni or "none sent"),
        ("Extended master secret", _extended_master_secret(negotiated)),
        ("Client certificate", negotiated.client_certificate or "none"),
    ]
    return _definitions((name, escape(value)) for name, value in rows if value is not None)


def _extended_master_secret(negotiated: ConnectionSummary) -> str:
    """RFC 7627 is a TLS 1.2 extension; TLS 1.3 binds every secret to the transcript anyway."""
    if negotiated.version == "TLSv1.3":
        return "built into TLS 1.3 (every secret covers the transcript)"
    return "yes" if negotiated.extended_master_secret else "no"


def _definitions(rows: Iterable[tuple[str, str]]) -> str:
    """A <dl> of (term, HTML) pairs."""
    items = "".join(f"<dt>{escape(term)}</dt><dd>{html}</dd>" for term, html in rows)
    return f"<dl>{items}</dl>"


def _decisions(report: HandshakeReport) -> str:
    if not report.decisions:
        return ""
    items = "".join(
        f"<li><span class=what>{escape(d.topic)}</span> <b>{escape(d.choice)}</b>"
        f"<span class=detail>{escape(d.reason)}{_cite(d.rfc)}</span></li>"
        for d in report.decisions
    )
    return (
        "<section id=negotiated><h2>What was negotiated, and why</h2>"
        f"<ul class=decisions>{items}</ul></section>"
    )


def _ladder(report: HandshakeReport) -> str:
    if not report.ladder:
        return (
            "<section id=ladder><h2>The handshake, step by step</h2><p>This server did not"
            " record the handshake.</p></section>"
        )
    rows = "".join(_rung(rung) for rung in report.ladder)
    return (
        "<section id=ladder><h2>The handshake, step by step</h2>"
        "<p class=muted>Time since the connection was accepted. Arrows are messages; the notes"
        " between them are what the server worked out. Secret values are never shown here:"
        " <code>--trace</code> with <code>--key-log-file</code> shows them.</p>"
        "<div class=lanes><span>Client</span><span>Server (trio-tls)</span></div>"
        f"<ol class=ladder>{rows}</ol></section>"
    )


def _key_exchange(exchange: KeyExchange | None) -> str:
    """TLS 1.3's key shares: what the client sent, any HelloRetryRequest, what was chosen."""
    if exchange is None:
        return ""
    rows = [("Key shares you sent", _share_list(exchange.offered))]
    if exchange.hello_retry_request is not None:
        asked = (
            f"yes: the server asked for a <b>{escape(exchange.hello_retry_request)}</b> share,"
            " a round trip more <cite>RFC 8446 §4.1.4</cite>"
        )
        rows += [
            ("HelloRetryRequest", asked),
            ("Key shares sent again", _share_list(exchange.offered_again)),
        ]
    else:
        rows.append(("HelloRetryRequest", "no: one of your shares was taken (1-RTT)"))
    if exchange.server_share is not None:
        rows.append(("Group chosen", _share_list((exchange.server_share,)) + " from the server"))
    return (
        "<section id=key-exchange><h2>Key exchange (TLS 1.3)</h2>"
        "<p class=muted>A TLS 1.3 client guesses the server's group and sends its public key"
        " (a key share) in the ClientHello; when it guessed wrong, a HelloRetryRequest asks for"
        " another. X25519MLKEM768 is the post-quantum hybrid: an ML-KEM-768 key and an X25519"
        " key in one share.</p>"
        f"{_definitions(rows)}</section>"
    )


def _share_list(shares: tuple[Share, ...]) -> str:
    if not shares:
        return "<span class=muted>none</span>"
    return ", ".join(
        f"<b>{escape(share.group)}</b> <small>{share.length:,} "
        f"{'byte' if share.length == 1 else 'bytes'}</small>"
        for share in shares
    )


def _rung(rung: Rung) -> str:
    time = f"<span class=t>+{rung.ms:.2f} ms</span>"
    detail = f"<span class=detail>{escape(rung.detail)}{_cite(rung.rfc)}</span>"
    if rung.direction is not None:
        unit = "byte" if rung.length == 1 else "bytes"
        size = f" <small>{rung.length} {unit}</small>" if rung.length else ""
        if rung.keys:
            size += f" <small>encrypted with the {rung.keys} keys</small>"
        label = f"<b>{escape(rung.title)}</b>{size}"
        arrow = f"<div class=arrow>{label}{detail}</div>"
        return f"<li class='{rung.kind} {rung.direction}'>{time}{arrow}</li>"
    what = f"<span class=what>{_NOTE_WORDS.get(rung.kind, rung.kind)}</span>"
    return (
        f"<li class={rung.kind}>{time}<div class=note>{what} <b>{escape(rung.title)}</b>"
        f"{detail}</div></li>"
    )


def _fingerprints(hello: ClientHelloReport) -> str:
    prints = hello.fingerprints
    cut = hello.omitted.get
    rows = [
        ("JA4", f"<code>{escape(prints.ja4)}</code>"),
        ("JA4_r", f"<code>{escape(prints.ja4_r)}</code>{_more(cut('ja4_r', 0), 'characters')}"),
        ("JA3", f"<code>{escape(prints.ja3_md5)}</code>"),
        ("JA3 string", f"<code>{escape(prints.ja3)}</code>{_more(cut('ja3', 0), 'characters')}"),
    ]
    return (
        "<section id=fingerprints><h2>Fingerprints</h2>"
        "<p class=muted>Computed from your ClientHello as it arrived, GREASE left out. JA3 keeps"
        " your order (browsers that shuffle their extensions change it on every connection);"
        " JA4 sorts, and JA4_r shows what its two hashes were taken over.</p>"
        f"{_definitions(rows)}</section>"
    )


def _badges(code: Code, chosen: str | None = None) -> str:
    badges = []
    if code.grease:
        badges.append("<span class='badge grease'>GREASE</span>")
    if chosen is not None and code.name == chosen:
        badges.append("<span class='badge chosen'>chosen</span>")
    return "".join(badges)


def _code_list(codes: tuple[Code, ...], omitted: int = 0) -> str:
    if not codes:
        return "<span class=muted>none</span>"
    return ", ".join(
        f"<span class='badge grease'>GREASE {code.hex}</span>"
        if code.grease
        else f"{escape(code.name)} <small>{code.hex}</small>"
        for code in codes
    ) + _more(omitted)


def _more(omitted: int, what: str = "more") -> str:
    """What a list capped at MAX_ENTRIES says of the rest."""
    return f" <span class=muted>… and {omitted:,} {what}, not shown</span>" if omitted else ""


def _heading(what: str, shown: int, omitted: int) -> str:
    if not omitted:
        return f"<h3>{what}: {shown}, in your order</h3>"
    return (
        f"<h3>{what}: {shown + omitted:,}, in your order</h3>"
        f"<p class=muted>Only the first {shown} are shown here.</p>"
    )


def _client_hello(report: HandshakeReport) -> str:
    hello = report.client_hello
    assert hello is not None
    negotiated = report.negotiated
    chosen = negotiated.cipher_suite if negotiated else None
    suites = "".join(
        f"<tr><td>{number}</td><td><code>{code.hex}</code></td><td>{escape(code.name)}"
        f"{_badges(code, chosen)}</td><td>{'yes' if code.value in SUITES_BY_ID else ''}</td></tr>"
        for number, code in enumerate(hello.cipher_suites, 1)
    )
    extensions = "".join(
        f"<tr><td>{number}</td><td><code>{e.type.hex}</code></td><td>{escape(e.type.name)}"
        f"{_badges(e.type)}</td><td>{e.length}</td><td>{escape(e.summary)}{_cite(e.spec)}</td>"
        f"<td>{'yes' if e.read_by_server else ''}</td></tr>"
        for number, e in enumerate(hello.extensions, 1)
    )
    omitted = hello.omitted.get
    shares = ", ".join(
        f"{escape(share.group.name)} <small>{share.group.hex}, {share.key_length}-byte key</small>"
        for share in hello.key_shares
    ) + _more(omitted("key_shares", 0))
    grease = ", ".join(
        f"<span class='badge grease'>{g.value.hex}</span> in {escape(g.field)}"
        for g in hello.grease
    )
    details = [
        ("Length", f"{hello.length} bytes"),
        ("client_version", _code_list((hello.client_version,))),
        ("random", f"<code>{hello.random.hex()}</code>"),
        ("session_id", f"<code>{hello.session_id.hex()}</code>" if hello.session_id else "empty"),
        ("Server name (SNI)", escape(hello.server_name or "none")),
        ("ALPN", (escape(", ".join(hello.alpn)) or "none") + _more(omitted("alpn", 0))),
        ("Compression methods", _code_list(hello.compression_methods)),
        ("Supported versions", _code_list(hello.supported_versions)),
        ("Groups", _code_list(hello.supported_groups, omitted("supported_groups", 0))),
        ("Key shares", shares or "none"),
        (
            "Signature algorithms",
            _code_list(hello.signature_algorithms, omitted("signature_algorithms", 0)),
        ),
        ("EC point formats", _code_list(hello.ec_point_formats)),
        ("PSK modes", _code_list(hello.psk_key_exchange_modes)),
        ("GREASE (RFC 8701)", grease or "none"),
    ]
    return (
        "<section id=clienthello><h2>Your ClientHello</h2>"
        + _definitions(details)
        + _heading("Cipher suites", len(hello.cipher_suites), omitted("cipher_suites", 0))
        + "<div class=scroll><table><tr><th>#</th><th>Value</th><th>Name</th>"
        f"<th>This server</th></tr>{suites}</table></div>"
        + _heading("Extensions", len(hello.extensions), omitted("extensions", 0))
        + "<div class=scroll><table><tr><th>#</th><th>Type</th><th>Name</th><th>Bytes</th>"
        f"<th>Says</th><th>Read by this server</th></tr>{extensions}</table></div>"
        + _hex_section(hello.encoded)
        + "</section>"
    )


def _hex_section(data: bytes) -> str:
    shown = data[:MAX_HEX_BYTES]
    summary = f"The {len(data)} bytes, in hex"
    if len(shown) < len(data):
        summary = f"The first {len(shown):,} of the {len(data):,} bytes, in hex"
    return f"<details><summary>{summary}</summary><pre>{_hex_dump(shown)}</pre></details>"


def _hex_dump(data: bytes) -> str:
    """Offset and 16 bytes a line, as `xxd` and Wireshark show them."""
    return "\n".join(
        f"{offset:04x}  {data[offset : offset + 16].hex(' ')}" for offset in range(0, len(data), 16)
    )
