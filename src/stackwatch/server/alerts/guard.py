"""The connection guard: each connection a channel makes while delivering is checked on the address it is made to.

Why here, and why this way: a target checked when a channel is saved can resolve elsewhere when a message is sent
(DNS rebinding), and an Apprise URL does not always say which server its plugin will contact (``mailto://``
takes its SMTP server from a parameter, most services have their own fixed host). So the check that protects is
made when the socket connects, on the very address passed to ``connect`` or ``sendto``, whatever library made
the call: httpx and httpcore for the Slack and webhook channels, requests and urllib3, smtplib or a raw socket
inside an Apprise plugin.

Python's audit hooks (PEP 578) are the one place every such call passes: ``socket.connect``, ``socket.sendto``,
``socket.sendmsg`` and ``socket.getaddrinfo`` are audit events, raised before the operation, and an exception
raised by the hook aborts it. The hook is installed once per process and does nothing unless the current context
holds a :class:`Guard`: only code running inside :func:`connections` is checked, and a context variable (not a
global) keeps every other thread of the server out of it. Apprise runs a plugin in a worker thread with a copy
of the caller's context, so the guard goes with it. Audit hooks are not a sandbox against hostile Python code;
here the code is trusted and only its input (the URL) is not.

A refused connection raises :class:`Refused`, an ``OSError``, so every library reports it as a failed connection
and cleans up as it would; the channel then reads :attr:`Guard.refused` to say why, as a permanent error.

:func:`probing` is the other mode, used when an Apprise channel is saved: the plugin is run with a message that
cannot leave, every host name it looks up (and every address it connects to) is recorded and the operation
stopped before any packet is sent; commands and syslog writes are stopped as well. What was recorded is where
the plugin would deliver, checked like a webhook URL.
"""

from __future__ import annotations

import errno
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, NoReturn

from stackwatch.server.alerts.targets import Reach, is_metadata_name, refusal, resolve, verdict

__all__ = ["Guard", "Probe", "Refused", "connections", "is_probing", "probing"]

_PRIVATE_SETTING = "STACKWATCH_ALERTS_ALLOW_PRIVATE_TARGETS is off"
_LOOKUPS = frozenset({"socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex"})
_SENDS = frozenset({"socket.connect", "socket.sendto", "socket.sendmsg"})
# What a plugin may do on the machine itself rather than over the network; stopped while probing.
_LOCAL_EFFECTS = frozenset(
    {
        "subprocess.Popen",
        "os.system",
        "os.exec",
        "os.posix_spawn",
        "os.spawn",
        "os.fork",
        "os.forkpty",
        "os.startfile",
        "syslog.openlog",
        "syslog.syslog",
        "webbrowser.open",
    }
)


class Refused(PermissionError):
    """A connection the guard stopped (an ``OSError``, so that libraries treat it as a failed connection)."""


class _NotLookedUp(socket.gaierror):
    """A name lookup stopped while probing (a ``gaierror``: to libraries, a name that did not resolve)."""


def _text(value: Any) -> str:
    return value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)


class Guard:
    """The rules for the connections of one delivery; :attr:`refused` holds the first refusal, if any."""

    def __init__(self, *, allow_private: bool) -> None:
        self.allow_private = allow_private
        self.refused: str | None = None

    def _refuse(self, reason: str) -> NoReturn:
        if self.refused is None:
            self.refused = reason
        raise Refused(errno.EACCES, f"connection refused by Stackwatch: {reason}")

    def on_event(self, event: str, args: tuple[Any, ...]) -> None:
        if event in _LOOKUPS:
            if isinstance(args[0], str | bytes) and is_metadata_name(_text(args[0])):
                self._refuse(f"{_text(args[0])} is a cloud metadata name, which alert channels never reach")
        elif event in _SENDS and len(args) >= 2 and args[1] is not None:  # sendmsg on a connected socket: None
            self._check(getattr(args[0], "family", None), args[1])

    def _check(self, family: Any, address: Any) -> None:
        if family not in (socket.AF_INET, socket.AF_INET6) or not isinstance(address, tuple):
            if not self.allow_private:
                self._refuse(f"a local (non-IP) socket cannot be checked ({_PRIVATE_SETTING})")
            return
        host, port = _text(address[0]), address[1]
        reach = verdict(host)
        if reach is None:
            reach = self._by_name(host, port)
        reason = refusal(reach, allow_private=self.allow_private)
        if reason is not None:
            self._refuse(f"{host} is {reason}")

    def _by_name(self, host: str, port: Any) -> Reach:
        """The socket was given a name, which it resolves itself, out of sight (only raw-socket plugins do this:
        the HTTP libraries resolve first and connect to an address)."""
        if not self.allow_private:
            self._refuse(f"{host}: a connection by name cannot be checked ({_PRIVATE_SETTING})")
        # Private targets allowed: only "never" addresses matter; resolve the name here as well (best effort).
        try:
            found = [verdict(address) for address in resolve(host, int(port))]
        except (OSError, ValueError):
            return Reach.PUBLIC  # the socket's own lookup will fail the same way
        return max((Reach.PRIVATE if reach is None else reach for reach in found), default=Reach.PUBLIC)


class Probe:
    """What a plugin tried to reach while probing: ``targets`` (host, port) and ``local`` effects."""

    def __init__(self) -> None:
        self.targets: list[tuple[str, int]] = []
        self.local: list[str] = []

    def on_event(self, event: str, args: tuple[Any, ...]) -> None:
        if event in _LOOKUPS:
            port = args[1] if event == "socket.getaddrinfo" else None
            self._record(args[0], port)
            raise _NotLookedUp(socket.EAI_NONAME, "not looked up: Stackwatch is checking where this URL delivers")
        if event in _SENDS and len(args) >= 2 and isinstance(args[1], tuple):
            self._record(args[1][0], args[1][1])
            raise Refused(errno.EACCES, "not connected: Stackwatch is checking where this URL delivers")
        if event in _LOCAL_EFFECTS:
            self.local.append(event)
            raise Refused(errno.EACCES, f"{event} stopped: Stackwatch is checking where this URL delivers")

    def _record(self, host: Any, port: Any) -> None:
        if isinstance(host, str | bytes) and host:
            number = int(port) if isinstance(port, int) or (isinstance(port, str) and port.isdigit()) else 0
            self.targets.append((_text(host), number))


_current: ContextVar[Guard | Probe | None] = ContextVar("stackwatch_alert_connections", default=None)
_install_lock = threading.Lock()
_installed = False


def _audit(event: str, args: tuple[Any, ...]) -> None:
    scope = _current.get()
    if scope is not None:
        scope.on_event(event, args)


def _install() -> None:
    global _installed
    with _install_lock:
        if not _installed:
            sys.addaudithook(_audit)  # for the life of the process: audit hooks cannot be removed
            _installed = True


@contextmanager
def connections(*, allow_private: bool) -> Iterator[Guard]:
    """Check every connection made in this context (and in workers given a copy of it) until the block ends."""
    _install()
    guard = Guard(allow_private=allow_private)
    token = _current.set(guard)
    try:
        yield guard
    finally:
        _current.reset(token)


@contextmanager
def probing() -> Iterator[Probe]:
    """Record and stop every lookup, connection and local effect made in this context until the block ends."""
    _install()
    probe = Probe()
    token = _current.set(probe)
    try:
        yield probe
    finally:
        _current.reset(token)


def is_probing() -> bool:
    """Whether the current context is probing (log records of a probe are noise: nothing was sent)."""
    return isinstance(_current.get(), Probe)
