"""Protocol errors, and the one place that decides which alert each failure sends.

Code inside the engine raises a subclass of LocalProtocolError named after the alert RFC 5246
§7.2 (and its updates) prescribes for that failure; `ServerConnection` queues that alert, enters
its error state, and re-raises input failures as RemoteProtocolError, in the manner of h11. Callers
therefore catch `TLSError` and read `.alert` to learn what was sent.
"""

from __future__ import annotations

import enum

from .enums import AlertDescription


class _Default(enum.Enum):
    # Distinguishes "no alert argument" (keep the class's alert) from an explicit alert=None
    # (send no alert), which a plain `None` default cannot do.
    ALERT = enum.auto()


class TLSError(Exception):
    """Base of every protocol error; `.alert` is the alert sent to the peer (None if none)."""

    alert: AlertDescription | None = AlertDescription.internal_error

    def __init__(
        self, message: str, alert: AlertDescription | _Default | None = _Default.ALERT
    ) -> None:
        super().__init__(message)
        if alert is not _Default.ALERT:
            self.alert = alert


class LocalProtocolError(TLSError):
    """Raised where a failure is detected; the connection turns input failures remote."""


class RemoteProtocolError(TLSError):
    """The peer broke the protocol (or sent a fatal alert); the connection is dead."""


class DecodeError(LocalProtocolError):
    """A length disagrees, a field is out of range, or bytes trail a structure."""

    alert = AlertDescription.decode_error


class IllegalParameter(LocalProtocolError):
    """A field is well formed but its value is not allowed here."""

    alert = AlertDescription.illegal_parameter


class UnexpectedMessage(LocalProtocolError):
    """A record or handshake message arrived out of order or has an unknown type."""

    alert = AlertDescription.unexpected_message


class HandshakeFailure(LocalProtocolError):
    """No acceptable set of security parameters is shared with the peer."""

    alert = AlertDescription.handshake_failure


class ProtocolVersionError(LocalProtocolError):
    """The peer speaks no version we serve."""

    alert = AlertDescription.protocol_version


class BadRecordMac(LocalProtocolError):
    """A record failed AEAD authentication."""

    alert = AlertDescription.bad_record_mac


class RecordOverflow(LocalProtocolError):
    """A record is longer than RFC 5246 §6.2 allows."""

    alert = AlertDescription.record_overflow


class DecryptError(LocalProtocolError):
    """A handshake check on secrets failed: Finished verify_data or a signature."""

    alert = AlertDescription.decrypt_error


class NoApplicationProtocol(LocalProtocolError):
    """RFC 7301 §3.2: none of the client's ALPN protocols is one we serve."""

    alert = AlertDescription.no_application_protocol


class UnrecognizedName(LocalProtocolError):
    """RFC 6066 §3: strict SNI and a host name we have no certificate for."""

    alert = AlertDescription.unrecognized_name


class BadCertificate(LocalProtocolError):
    """The client's certificate cannot be parsed, or fails a check other than those below."""

    alert = AlertDescription.bad_certificate


class UnsupportedCertificate(LocalProtocolError):
    """The client's certificate has a key of a type or size we do not accept."""

    alert = AlertDescription.unsupported_certificate


class CertificateExpired(LocalProtocolError):
    """A certificate of the client's chain is outside its validity period."""

    alert = AlertDescription.certificate_expired


class UnknownCA(LocalProtocolError):
    """The client's chain leads to no CA we were configured to trust."""

    alert = AlertDescription.unknown_ca


class InappropriateFallback(LocalProtocolError):
    """RFC 7507 §3: a fallback signal from a client whose version is below our highest."""

    alert = AlertDescription.inappropriate_fallback


class MissingExtension(LocalProtocolError):
    """RFC 8446 §4.2: a TLS 1.3 handshake lacks an extension it requires."""

    alert = AlertDescription.missing_extension


class CertificateRequired(LocalProtocolError):
    """RFC 8446 §4.4.2.4: we require a client certificate and the client sent none."""

    alert = AlertDescription.certificate_required


class InternalError(LocalProtocolError):
    """Our own limit or invariant, not the peer's fault (sequence numbers exhausted, ...)."""

    alert = AlertDescription.internal_error
