"""``stackwatch.sdk``: sentry-sdk for a MeshHook component, safe and lossless with one call.

::

    import stackwatch.sdk

    stackwatch.sdk.init(component="orchestrator")          # DSN from STACKWATCH_DSN or SENTRY_DSN

    with stackwatch.sdk.workflow_scope(run.workflow_id, run.id, step_id=step.id, step_type=step.kind):
        execute(step)

``init`` calls ``sentry_sdk.init`` with privacy-safe defaults, the Stackwatch redaction engine in ``before_send``
(and for transactions, breadcrumbs, logs and metrics), the ``component`` tag on every event, and a durable on-disk
spool as the transport.  Everything sentry-sdk offers stays available: any ``sentry_sdk.init`` option can be passed
and wins over the defaults.  See ``docs/sdk-python.md``.

This package imports nothing from ``stackwatch.server``: only the standard library, sentry-sdk and
``stackwatch.scrub``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import sentry_sdk
from sentry_sdk import capture_exception, capture_message
from sentry_sdk.integrations import Integration
from sentry_sdk.integrations.asyncio import AsyncioIntegration, enable_asyncio_integration
from sentry_sdk.integrations.logging import ignore_logger

from stackwatch.scrub import ScrubOptions
from stackwatch.sdk.hooks import Hooks
from stackwatch.sdk.scope import current_workflow, step_scope, workflow_scope

__all__ = [
    "capture_exception",
    "capture_message",
    "current_workflow",
    "flush",
    "init",
    "instrument_asyncio",
    "step_scope",
    "workflow_scope",
]

_log = logging.getLogger("stackwatch.sdk")

# The defaults ``init`` passes to sentry-sdk unless the caller passes the option.  ``send_default_pii`` is not
# among them on purpose: left unset it is off, and setting it explicitly makes sentry-sdk 2.x warn that the option
# is deprecated (in favour of ``data_collection``).
DEFAULTS: dict[str, object] = {
    "include_local_variables": True,
    "max_request_body_size": "never",
}
# The hooks ``init`` installs, each wrapping the caller's own callback of the same name.
_HOOK_OPTIONS = ("before_send", "before_send_transaction", "before_breadcrumb", "before_send_log", "before_send_metric")
_warned_no_dsn = False


def init(
    dsn: str | None = None,
    *,
    component: str,
    environment: str | None = None,
    release: str | None = None,
    spool_dir: str | os.PathLike[str] | None = None,
    spool_max_bytes: int | None = None,
    scrub_emails: bool = False,
    scrub_ips: bool = False,
    keep_request_details: bool = False,
    **sentry_options: Any,
) -> None:
    """Start error reporting for one MeshHook component (``api``, ``orchestrator``, ``http-executor``, ...).

    ``dsn`` defaults to ``$STACKWATCH_DSN``, then ``$SENTRY_DSN``.  Without any, reporting is disabled (as in
    sentry-sdk) and a warning is logged once.  ``component`` becomes the ``component`` tag of every event.
    ``spool_dir``/``spool_max_bytes`` configure the durable transport (defaults: ``$STACKWATCH_SPOOL_DIR`` or a
    per-user directory; ``$STACKWATCH_SPOOL_MAX_BYTES`` or 100 MB).  ``scrub_emails``/``scrub_ips`` add those
    rules to redaction.  ``keep_request_details=True`` keeps ``request.data``, ``cookies`` and ``headers`` (still
    scrubbed), which are otherwise removed.  Every other keyword is a ``sentry_sdk.init`` option and overrides the
    defaults; a ``before_send`` (or other hook) passed here runs before Stackwatch's own.
    """
    if not isinstance(component, str) or not component.strip():
        raise ValueError("stackwatch.sdk.init: component must be a non-empty string (e.g. 'orchestrator')")
    dsn = _resolve_dsn(dsn)
    ignore_logger("stackwatch.sdk")
    ignore_logger("stackwatch.sdk.*")
    hooks = Hooks(
        component=component,
        scrub_options=ScrubOptions(scrub_emails=scrub_emails, scrub_ips=scrub_ips),
        keep_request_details=keep_request_details,
        **{f"user_{name}": _take_hook(sentry_options, name) for name in _HOOK_OPTIONS},
    )
    options: dict[str, Any] = {**DEFAULTS, **sentry_options}
    for name in _HOOK_OPTIONS:
        options[name] = getattr(hooks, name)
    options["integrations"] = _integrations(options)
    if environment is not None:
        options["environment"] = environment
    if release is not None:
        options["release"] = release
    if dsn is None:
        _warn_no_dsn()
        options["dsn"] = ""  # not None: sentry-sdk would read SENTRY_DSN again
    else:
        options["dsn"] = dsn
        if "transport" not in options:
            options["transport"] = _spool_transport(options, spool_dir, spool_max_bytes)
    try:
        sentry_sdk.init(**options)
    except Exception:
        # E.g. an unknown option: stop the sender thread of the transport built above, then let the caller know.
        if not sentry_options.get("transport") and hasattr(options.get("transport"), "kill"):
            options["transport"].kill()
        raise
    sentry_sdk.get_global_scope().set_tag("component", component)


def flush(timeout: float | None = None) -> None:
    """Wait up to ``timeout`` seconds (the ``shutdown_timeout`` option when ``None``) until what was captured so far
    is delivered.  With the spool transport it is on disk already: what is not delivered in time is sent later, by
    this process or the next one using the same spool."""
    sentry_sdk.flush(timeout=timeout)


def instrument_asyncio() -> bool:
    """Report exceptions of asyncio tasks (with the scope of the task) for the running event loop.

    ``init`` does this itself when it is called inside a running loop.  When ``init`` runs before the loop starts
    (the usual ``init(); asyncio.run(main())``), call this first thing in ``main()``.  Idempotent.  Returns whether
    the loop is now instrumented (``False`` outside a running loop or when reporting is disabled).  Without it,
    exceptions that no one retrieves still arrive, through the loop's exception handler and the ``asyncio`` logger.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        _log.warning("stackwatch.sdk.instrument_asyncio() must be called inside a running event loop")
        return False
    if not sentry_sdk.get_client().is_active():
        return False
    try:
        enable_asyncio_integration()
    except Exception:
        _log.warning("could not instrument the asyncio loop", exc_info=True)
        return False
    return True


def _take_hook(options: dict[str, Any], name: str) -> Any:
    """Remove and return the caller's hook ``name``; older sentry-sdk releases took some under ``_experiments``."""
    hook = options.pop(name, None)
    experiments = options.get("_experiments")
    if hook is None and isinstance(experiments, dict) and name in experiments:
        options["_experiments"] = experiments = dict(experiments)
        hook = experiments.pop(name)
    return hook


def _resolve_dsn(dsn: str | None) -> str | None:
    for candidate in (dsn, os.environ.get("STACKWATCH_DSN"), os.environ.get("SENTRY_DSN")):
        if candidate and candidate.strip():
            return candidate.strip()
    return None


def _warn_no_dsn() -> None:
    global _warned_no_dsn
    if not _warned_no_dsn:
        _warned_no_dsn = True
        _log.warning("no DSN (argument, STACKWATCH_DSN or SENTRY_DSN); error reporting is disabled")


def _integrations(options: dict[str, Any]) -> list[Integration]:
    integrations = list(options.get("integrations") or ())
    disabled = options.get("disabled_integrations") or ()
    wanted = not any(_is(i, AsyncioIntegration) for i in [*integrations, *disabled])
    if wanted and _loop_running():
        integrations.append(AsyncioIntegration())
    return integrations


def _is(integration: object, kind: type[Integration]) -> bool:
    return integration is kind or isinstance(integration, kind)


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _spool_transport(
    options: dict[str, Any], spool_dir: str | os.PathLike[str] | None, spool_max_bytes: int | None
) -> object:
    # Imported here so that ``import stackwatch.sdk`` stays cheap and the transport is only built when used.
    from sentry_sdk.consts import DEFAULT_OPTIONS

    from stackwatch.sdk.transport import SpoolTransport, resolve_spool_dir

    # A transport instance is built before the client, so it gets the client's options the way sentry-sdk would
    # give them to a transport class: every default, overridden by what the caller passed.
    transport_options: dict[str, Any] = {**DEFAULT_OPTIONS, **options}
    return SpoolTransport(
        transport_options,
        spool_dir=resolve_spool_dir(spool_dir),
        max_bytes=spool_max_bytes,
        retry_max_seconds=None,
    )
