"""E-mail channel: one multipart/alternative message (text and HTML) over the server's SMTP settings.

The ``Message-ID`` is derived from the notification's idempotency key, so a retried notification is the same
message to the receiving side. Failures: a refused recipient, a ``5xx`` answer or an authentication failure are
permanent; connection errors, timeouts and ``4xx`` answers are transient.
"""

from __future__ import annotations

import hashlib
import html
import logging
import re
import smtplib
import socket
import ssl
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import Any

from stackwatch.server.alerts.channels.base import ChannelError
from stackwatch.server.alerts.message import Notification
from stackwatch.server.alerts.render import facts, held_back_line, one_line, subject, text_body
from stackwatch.server.config import Settings

__all__ = [
    "KIND",
    "MAX_RECIPIENTS",
    "EmailChannel",
    "build",
    "compose",
    "html_body",
    "public",
    "validate",
    "waiting_for",
]

KIND = "email"
MAX_RECIPIENTS = 50
log = logging.getLogger(__name__)

# Practical, not RFC 5322: no white space or specials in the local part, a dotted host name as the domain.
_ADDRESS = re.compile(
    r"[^@\s<>()\[\],;:\"\\]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+"
)
# Inline styles only: mail clients drop <style> blocks and block remote content.
_CELL = "padding:4px 12px 4px 0;vertical-align:top;text-align:left"
_BUTTON = (
    "display:inline-block;padding:8px 14px;background:#1f6feb;color:#ffffff;border-radius:4px;text-decoration:none"
)
_LABEL = f"{_CELL};color:#57606a;font-weight:normal"


def _addresses(value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"to: expected a list of 1 to {MAX_RECIPIENTS} e-mail addresses")
    seen: dict[str, str] = {}
    for item in value:
        if not isinstance(item, str) or len(item.strip()) > 254 or not _ADDRESS.fullmatch(item.strip()):
            raise ValueError(f"to: not an e-mail address: {item!r}")
        seen.setdefault(item.strip().lower(), item.strip())
    if len(seen) > MAX_RECIPIENTS:
        raise ValueError(f"to: at most {MAX_RECIPIENTS} addresses, got {len(seen)}")
    return list(seen.values())


def validate(config: dict[str, Any], *, settings: Settings | None = None) -> dict[str, Any]:
    """``{"to": ["a@example.com", ...]}``: 1 to 50 addresses, duplicates removed. With ``"admins": true`` the
    administrators (looked up when a message is sent) are recipients too, and ``to`` may be empty."""
    if not isinstance(config, dict):
        raise ValueError("expected a JSON object")
    unknown = sorted(set(config) - {"to", "admins"})
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(unknown)}")
    admins = config.get("admins", False)
    if not isinstance(admins, bool):
        raise ValueError("admins: expected true or false")
    if admins:
        to = config.get("to") or []
        return {"to": _addresses(to) if to else [], "admins": True}
    return {"to": _addresses(config.get("to"))}


def public(config: dict[str, Any]) -> dict[str, Any]:
    shown: dict[str, Any] = {"to": list(config.get("to", []))}
    if config.get("admins"):
        shown["admins"] = True
    return shown


def html_body(n: Notification) -> str:
    """The HTML part. Every value goes through ``html.escape``; no scripts, no remote images, inline styles."""
    e = html.escape
    rows = "".join(
        f'<tr><th style="{_LABEL}">{e(label)}</th><td style="{_CELL}">{e(value)}</td></tr>' for label, value in facts(n)
    )
    parts = [
        f'<p style="margin:0 0 4px;color:#57606a">{e(n.reason)}</p>',
        f'<h1 style="margin:0 0 8px;font-size:18px;word-break:break-word">{e(n.title)}</h1>',
    ]
    if n.culprit:
        parts.append(f'<p style="margin:0 0 12px"><code style="word-break:break-all">{e(n.culprit)}</code></p>')
    parts.append(f'<table style="border-collapse:collapse;margin:0 0 12px">{rows}</table>')
    more = held_back_line(n)
    if more:
        parts.append(f'<p style="margin:0 0 12px">{e(more)} since the previous notification.</p>')
    if n.url.startswith(("http://", "https://")):
        parts.append(f'<p style="margin:0"><a href="{e(n.url)}" style="{_BUTTON}">View issue</a></p>')
    content = "".join(parts)
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"></head>'
        f'<body style="font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;font-size:14px;color:#1f2328">'
        f"{content}</body></html>"
    )


def message_id(idempotency_key: str, sender: str) -> str:
    """The same ``Message-ID`` for every attempt of one notification."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "stackwatch.invalid"
    return f"<{hashlib.sha256(idempotency_key.encode()).hexdigest()[:40]}@{domain}>"


def compose(n: Notification, *, sender: str, to: list[str]) -> EmailMessage:
    """The complete message for ``n``: headers, the text part and the HTML alternative."""
    message = EmailMessage()
    message["Subject"] = subject(n)
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = message_id(n.idempotency_key, sender)
    message["Auto-Submitted"] = "auto-generated"  # no vacation replies to alerts
    message["X-Stackwatch-Idempotency-Key"] = one_line(n.idempotency_key)
    message.set_content(text_body(n))
    message.add_alternative(html_body(n), subtype="html")
    return message


def _failure(exc: Exception) -> ChannelError:
    """The delivery policy for SMTP failures (see the module doc)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = ", ".join(f"{rcpt}: {code} {_text(msg)}" for rcpt, (code, msg) in exc.recipients.items())
        return ChannelError(f"SMTP refused every recipient ({codes})", permanent=True)
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return ChannelError(f"SMTP authentication failed: {exc.smtp_code} {_text(exc.smtp_error)}", permanent=True)
    if isinstance(exc, smtplib.SMTPResponseException):
        message = f"SMTP answered {exc.smtp_code} {_text(exc.smtp_error)}"
        return ChannelError(message, permanent=500 <= exc.smtp_code < 600)
    if isinstance(exc, smtplib.SMTPServerDisconnected | TimeoutError):
        return ChannelError(f"SMTP connection lost: {exc or type(exc).__name__}", permanent=False)
    if isinstance(exc, ssl.SSLCertVerificationError):
        hint = " (STACKWATCH_SMTP_VERIFY_TLS=false accepts it; only for a server you trust)"
        return ChannelError(f"SMTP TLS certificate not accepted: {exc.verify_message}{hint}", permanent=False)
    if isinstance(exc, smtplib.SMTPException):  # e.g. STARTTLS or AUTH not offered: a configuration mismatch
        return ChannelError(f"SMTP: {exc}", permanent=True)
    return ChannelError(f"SMTP connection failed: {exc or type(exc).__name__}", permanent=False)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class EmailChannel:
    kind = KIND

    def __init__(self, to: list[str], settings: Settings):
        self.to = to
        self.settings = settings
        self.sender = settings.smtp_from or f"stackwatch@{socket.gethostname()}"

    def _tls(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if not self.settings.smtp_verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        if s.smtp_security == "ssl":
            return smtplib.SMTP_SSL(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout, context=self._tls())
        smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout)
        if s.smtp_security == "starttls":
            try:
                smtp.starttls(context=self._tls())
            except BaseException:
                smtp.close()
                raise
        return smtp

    def _deliver(self, message: EmailMessage) -> dict[str, tuple[int, bytes]]:
        with self._connect() as smtp:
            if self.settings.smtp_user:
                smtp.login(self.settings.smtp_user, self.settings.smtp_password)
            return smtp.send_message(message, from_addr=parseaddr(self.sender)[1], to_addrs=self.to)

    def send(self, notification: Notification) -> None:
        message = compose(notification, sender=self.sender, to=self.to)
        try:
            refused = self._deliver(message)
        except (smtplib.SMTPException, OSError) as exc:
            raise _failure(exc) from None
        if refused:  # some recipients got it: a retry would send them a second copy, so this counts as delivered
            log.warning("SMTP refused some recipients of %s: %s", notification.idempotency_key, sorted(refused))


def waiting_for(settings: Settings) -> str | None:
    """``"smtp"`` while the server has no SMTP server to send through (``STACKWATCH_SMTP_HOST`` unset): an e-mail
    channel then waits instead of failing, as on a fresh install whose default channel mails the administrators."""
    return None if settings.smtp_host else "smtp"


def build(config: dict[str, Any], settings: Settings) -> EmailChannel:
    if not settings.smtp_host:
        raise ChannelError("SMTP is not configured (STACKWATCH_SMTP_HOST)", permanent=True)
    if not config.get("to"):
        raise ChannelError("no recipients: the channel has no addresses and there is no administrator", permanent=True)
    return EmailChannel(list(config["to"]), settings)
