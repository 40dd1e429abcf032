"""MeshHook workflow context on sentry-sdk scopes: ``workflow_scope`` and ``step_scope``.

A workflow scope forks sentry-sdk's *isolation scope* (``sentry_sdk.isolation_scope()``), which lives in a
``contextvars`` variable.  Every thread and every asyncio task therefore sees only the scopes it entered itself:
two tasks running different workflow runs never see each other's tags, breadcrumbs or user.  sentry-sdk's threading
integration copies the scope of the starting thread into a new thread, so work handed to a thread keeps its run.

What a scope sets (values that are ``None`` are left out, or inherited from an enclosing workflow scope):

* tags ``workflow_id``, ``workflow_version``, ``run_id``, ``step_id``, ``step_type``, ``attempt``, ``tenant``
  (all strings);
* the context ``workflow`` with the same keys plus ``queue`` and ``job_id``;
* a breadcrumb (category ``workflow``) when a step starts: ``step fetch-orders (http) attempt 2 started``.

An exception that escapes the scope carries the scope's workflow context with it: whoever reports it further up
(``sys.excepthook``, ``logger.exception`` in the orchestrator's retry loop, the threading or asyncio integration)
reports it with the workflow tags of the innermost scope it escaped from, although that scope has ended.  With
``capture_errors=True`` the scope also reports the exception itself, inside the scope (mechanism ``workflow``,
unhandled), before re-raising it; the same exception object is then not reported a second time further up (see
``hooks.py``).
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractContextManager
from contextvars import ContextVar
from types import TracebackType
from typing import Any, ParamSpec, TypeVar, cast

import sentry_sdk
from sentry_sdk.utils import event_from_exception

__all__ = [
    "EXCEPTION_ATTRIBUTE",
    "TAG_KEYS",
    "WORKFLOW_KEYS",
    "WorkflowValue",
    "current_workflow",
    "step_scope",
    "workflow_of_exception",
    "workflow_scope",
]

_log = logging.getLogger("stackwatch.sdk")

P = ParamSpec("P")
R = TypeVar("R")

#: A static value, or (decorator form only) a callable receiving the call's bound arguments by parameter name.
WorkflowValue = str | int | Callable[[dict[str, Any]], object] | None

# Order of the keys in the ``workflow`` context; the first seven are also tags.
TAG_KEYS = ("workflow_id", "workflow_version", "run_id", "step_id", "step_type", "attempt", "tenant")
WORKFLOW_KEYS = (*TAG_KEYS, "queue", "job_id")
# Keys that describe one step: a scope that names a new step does not inherit them from the enclosing scope.
_STEP_KEYS = frozenset({"step_id", "step_type", "attempt"})
# The attribute an escaping exception carries its workflow context in.
EXCEPTION_ATTRIBUTE = "__stackwatch_workflow__"
# How far along ``__cause__``/``__context__`` to look for that attribute (an engine may wrap the step's error).
_CHAIN_LIMIT = 10


def current_workflow() -> dict[str, Any]:
    """The ``workflow`` context active here (empty outside any workflow scope)."""
    # sentry-sdk has no public getter for a scope's contexts; read the attribute defensively so a future
    # sentry-sdk that renames it degrades to "no enclosing workflow" instead of failing.
    contexts = getattr(sentry_sdk.get_isolation_scope(), "_contexts", None)
    value = contexts.get("workflow") if isinstance(contexts, Mapping) else None
    return dict(value) if isinstance(value, Mapping) else {}


def workflow_of_exception(exc: BaseException) -> dict[str, Any]:
    """The workflow context ``exc`` (or an exception it was raised from) escaped a workflow scope with."""
    seen: set[int] = set()
    current: BaseException | None = exc
    for _ in range(_CHAIN_LIMIT):
        if current is None or id(current) in seen:
            break
        seen.add(id(current))
        value = getattr(current, EXCEPTION_ATTRIBUTE, None)
        if isinstance(value, dict):
            return dict(value)
        current = current.__cause__ or current.__context__
    return {}


class workflow_scope:  # lower case: used like a function, ``with workflow_scope(...)``, ``@workflow_scope(...)``
    """Attach MeshHook workflow context to every event captured inside.

    Usable as ``with``, ``async with``, and as a decorator on sync and async functions::

        with workflow_scope("wf_orders", run.id, step_id="fetch-orders", step_type="http", attempt=2):
            ...

        @workflow_scope(workflow_id=lambda a: a["run"].workflow_id, run_id=lambda a: a["run"].id)
        async def execute(run, step): ...

    In the decorator form a value may be a callable: it receives the call's arguments bound to parameter names
    (defaults applied) and returns the value.  A callable that raises is logged and its value left out; it never
    breaks the decorated call.  ``workflow_id`` and ``run_id`` may be omitted in a nested scope, which inherits
    them (and ``tenant``, ``queue``, ...) from the enclosing one; a nested scope that names a ``step_id`` starts
    a new step, so ``step_type`` and ``attempt`` are not inherited.  ``capture_errors=True`` reports an exception
    escaping the scope right there (see the module documentation).
    """

    def __init__(
        self,
        workflow_id: WorkflowValue = None,
        run_id: WorkflowValue = None,
        *,
        step_id: WorkflowValue = None,
        step_type: WorkflowValue = None,
        attempt: WorkflowValue = None,
        tenant: WorkflowValue = None,
        workflow_version: WorkflowValue = None,
        queue: WorkflowValue = None,
        job_id: WorkflowValue = None,
        capture_errors: bool = False,
    ) -> None:
        self._values: dict[str, WorkflowValue] = {
            "workflow_id": workflow_id,
            "workflow_version": workflow_version,
            "run_id": run_id,
            "step_id": step_id,
            "step_type": step_type,
            "attempt": attempt,
            "tenant": tenant,
            "queue": queue,
            "job_id": job_id,
        }
        self._capture_errors = capture_errors

    # -- context manager forms -------------------------------------------------------------------------------------

    def __enter__(self) -> dict[str, Any]:
        entered = _Entered(self._resolve(None), self._capture_errors)
        # Kept per context, not on the instance: one instance may be entered by several threads or tasks at once.
        _ENTERED.set((*_ENTERED.get(), (self, entered)))
        return entered.workflow

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        entered = _ENTERED.get()
        for index in range(len(entered) - 1, -1, -1):
            if entered[index][0] is self:
                _ENTERED.set(entered[:index] + entered[index + 1 :])
                entered[index][1].exit(exc_type, exc, tb)
                return

    async def __aenter__(self) -> dict[str, Any]:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    # -- decorator form --------------------------------------------------------------------------------------------

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        signature = inspect.signature(func)
        if inspect.iscoroutinefunction(func):
            async_func = cast(Callable[..., Awaitable[Any]], func)

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with self._scope_for_call(signature, args, kwargs):
                    return await async_func(*args, **kwargs)

            return cast(Callable[P, R], async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            with self._scope_for_call(signature, args, kwargs):
                return func(*args, **kwargs)

        return wrapper

    def _scope_for_call(
        self, signature: inspect.Signature, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> AbstractContextManager[Any]:
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError:
            # The call itself is wrong; let the function raise its own TypeError, outside any scope.
            return _NoScope()
        bound.apply_defaults()
        return _CallScope(self._resolve(dict(bound.arguments)), self._capture_errors)

    def _resolve(self, arguments: dict[str, Any] | None) -> dict[str, Any]:
        resolved: dict[str, Any] = {}
        for key, given in self._values.items():
            value: object = given
            if callable(given):
                if arguments is None:
                    raise TypeError(f"workflow_scope: {key} is a callable, which only the decorator form can call")
                try:
                    value = given(arguments)
                except Exception:
                    _log.warning("workflow_scope: the callable for %s raised; leaving it out", key, exc_info=True)
                    continue
            if value is not None:
                resolved[key] = value
        return resolved


# The scopes entered with ``with``/``async with`` in this context, innermost last, with the object entered.
_ENTERED: ContextVar[tuple[tuple[workflow_scope, _Entered], ...]] = ContextVar("stackwatch_workflow_scopes", default=())


def step_scope(
    step_id: WorkflowValue, step_type: WorkflowValue = None, attempt: WorkflowValue = None
) -> workflow_scope:
    """A nested ``workflow_scope`` for one step: inherits workflow, run and tenant from the enclosing scope."""
    return workflow_scope(step_id=step_id, step_type=step_type, attempt=attempt)


class _Entered:
    """One entered workflow scope: the forked isolation scope and what was set on it."""

    workflow: dict[str, Any]

    def __init__(self, values: dict[str, Any], capture_errors: bool) -> None:
        self._capture_errors = capture_errors
        parent = sentry_sdk.get_isolation_scope()
        inherited = current_workflow()
        self.workflow = _merge(inherited, values)
        crumb = _step_breadcrumb(values, self.workflow)
        same_run = bool(inherited) and inherited.get("run_id") == self.workflow.get("run_id")
        if crumb is not None and same_run:
            # Added to the run's scope, so an error in a later step still shows the trail of earlier steps.
            _safely(parent.add_breadcrumb, crumb)
        self._manager = sentry_sdk.isolation_scope()
        scope = self._manager.__enter__()
        _safely(_apply, scope, self.workflow)
        if crumb is not None and not same_run:
            _safely(scope.add_breadcrumb, crumb)

    def exit(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            if isinstance(exc, Exception) and exc_type is not None:
                _safely(_annotate, exc, self.workflow)
                if self._capture_errors:
                    _safely(_capture, exc_type, exc, tb)
        finally:
            # The isolation scope only restores context variables; the exception (if any) propagates from the
            # caller's ``with`` statement, not from here.
            self._manager.__exit__(None, None, None)


class _CallScope:
    """The context manager a decorated call runs in (a fresh ``_Entered`` per call, so calls never share state)."""

    def __init__(self, values: dict[str, Any], capture_errors: bool) -> None:
        self._values = values
        self._capture_errors = capture_errors
        self._entered: _Entered | None = None

    def __enter__(self) -> dict[str, Any]:
        self._entered = _Entered(self._values, self._capture_errors)
        return self._entered.workflow

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._entered is not None:
            self._entered.exit(exc_type, exc, tb)


class _NoScope:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _merge(inherited: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    new_step = "step_id" in values
    merged = {k: v for k, v in inherited.items() if not (new_step and k in _STEP_KEYS)}
    merged.update(values)
    return {key: _context_value(merged[key]) for key in WORKFLOW_KEYS if merged.get(key) is not None}


def _apply(scope: sentry_sdk.Scope, workflow: dict[str, Any]) -> None:
    for key in TAG_KEYS:
        if key in workflow:
            scope.set_tag(key, str(workflow[key]))
        else:
            scope.remove_tag(key)  # e.g. the enclosing step's ``step_type`` when a new step has none
    scope.set_context("workflow", dict(workflow))


def _context_value(value: object) -> object:
    return value if isinstance(value, str | int) and not isinstance(value, bool) else str(value)


def _step_breadcrumb(values: Mapping[str, Any], workflow: Mapping[str, Any]) -> dict[str, Any] | None:
    if "step_id" not in values:
        return None
    message = f"step {workflow['step_id']}"
    if "step_type" in workflow:
        message += f" ({workflow['step_type']})"
    if "attempt" in workflow:
        message += f" attempt {workflow['attempt']}"
    data = {k: str(workflow[k]) for k in ("workflow_id", "run_id", "step_id", "step_type", "attempt") if k in workflow}
    return {"category": "workflow", "type": "default", "level": "info", "message": f"{message} started", "data": data}


def _annotate(exc: BaseException, workflow: dict[str, Any]) -> None:
    # The innermost scope wins: outer scopes the exception also escapes from leave the annotation alone.
    if not isinstance(getattr(exc, EXCEPTION_ATTRIBUTE, None), dict):
        setattr(exc, EXCEPTION_ATTRIBUTE, dict(workflow))


def _capture(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    client = sentry_sdk.get_client()
    if not client.is_active():
        return
    event, hint = event_from_exception(
        (exc_type, exc, tb), client_options=client.options, mechanism={"type": "workflow", "handled": False}
    )
    sentry_sdk.capture_event(event, hint=hint)


def _safely(func: Callable[..., object], *args: Any) -> None:
    """Run ``func``; log instead of raising, because reporting must never break the workflow it reports on."""
    try:
        func(*args)
    except Exception:
        _log.warning("%s failed", getattr(func, "__name__", func), exc_info=True)
