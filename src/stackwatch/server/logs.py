"""Logging of the server processes: one format, quiet third-party loggers, and a redacting filter on every handler.

An alert channel's URL is its credential (a Slack webhook's path, a webhook's ``user:password@`` or ``?token=``,
an Apprise URL as a whole), so no log line may carry one. Two layers:

* At the source: the libraries that write request lines or URLs (httpx at info; httpcore, urllib3, Apprise,
  requests-oauthlib at debug) are held at ``warning`` whatever ``STACKWATCH_LOG_LEVEL`` says, and Stackwatch's
  own messages name a channel by kind and host at most (``webhook.public_url``).
* Before a record is written: :class:`RedactingFilter`, on every handler (the root's and uvicorn's), replaces what
  the redaction engine (``stackwatch.scrub``) finds — bearer tokens, ``user:password@``, secret query
  parameters, vendor tokens — and cuts every URL down to its scheme and host (``https://hooks.slack.com/…``;
  other schemes, whose host part is often a token, to ``discord://…``) and the path of a request line to
  ``/…``, in the message, the traceback and the stack.
"""

from __future__ import annotations

import logging
import re

from stackwatch.scrub import scrub_text

__all__ = ["FORMAT", "QUIET_LOGGERS", "RedactingFilter", "configure", "protect_handlers", "redact"]

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Libraries that log request lines, URLs, headers or SQL parameters below warning.
QUIET_LOGGERS = (
    "alembic",
    "apprise",
    "httpcore",
    "httpx",
    "oauthlib",
    "requests",
    "requests_oauthlib",
    "sqlalchemy",
    "urllib3",
)
# A path on its own, as urllib3 logs a request line ("POST /api/webhooks/1/token HTTP/1.1") and an error
# ("Max retries exceeded with url: /api/webhooks/1/token"): cut to "/…".
_PATH = re.compile(r"(?:\b(?:GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) |\burl: )(?P<path>/[^\s\"'<>`()]+)")
_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<rest>[^\s\"'<>`]*)")
_WEB_SCHEMES = frozenset({"http", "https", "ws", "wss"})
_HOST = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]*)(?::\d{1,5})?")


def _shorten(match: re.Match[str]) -> str:
    scheme, rest = match["scheme"], match["rest"]
    if scheme.lower() not in _WEB_SCHEMES:
        return f"{scheme}://…" if rest else match[0]
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    host = authority.rpartition("@")[2]  # user info, with or without a password, is dropped
    kept = _HOST.match(host)
    shown = kept[0] if kept else ""
    whole = rest in (shown, f"{shown}/")
    return f"{scheme}://{shown}{'' if whole else '/…'}"


def redact(text: str) -> str:
    """``text`` with every URL cut to scheme and host and every secret the redaction engine knows replaced."""
    shortened = _PATH.sub(lambda m: m[0][: m.start("path") - m.start()] + "/…", _URL.sub(_shorten, text))
    return scrub_text(shortened)[0]


class RedactingFilter(logging.Filter):
    """Redacts a record in place before any handler formats it (so every handler writes the redacted text)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: the handler reports it, without the arguments
            record.msg, record.args = redact(str(record.msg)), ()
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
            record.__dict__.pop("color_message", None)  # uvicorn's coloured copy of the unredacted message
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


_FILTER = RedactingFilter()


def protect_handlers() -> None:
    """Put the redacting filter on every handler configured so far: the root's and those of named loggers
    (uvicorn configures its own when its ``Config`` is made)."""
    loggers: list[logging.Logger] = [logging.getLogger()]
    loggers += [item for item in logging.Logger.manager.loggerDict.values() if isinstance(item, logging.Logger)]
    for logger in loggers:
        for handler in logger.handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(_FILTER)


def configure(level: str) -> None:
    """Logging for a server process (``stackwatch serve`` and its digest child) at ``level``."""
    logging.basicConfig(level=level.upper(), format=FORMAT)
    floor = max(logging.WARNING, logging.getLogger().getEffectiveLevel())
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(floor)
    protect_handlers()
    logging.getLogger("stackwatch").debug(
        "logging at %s; %s held at %s", level, ", ".join(QUIET_LOGGERS), logging.getLevelName(floor).lower()
    )
