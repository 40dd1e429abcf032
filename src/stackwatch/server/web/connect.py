"""Connect an SDK, ``/projects/{slug}/connect``: copy-paste set-up for the project's real DSN.

The snippets are data (``SNIPPETS``): a title, what to install, and the code with ``{dsn}`` where the DSN goes; the
template escapes each as text and the copy button (``static/copy.js``, no inline script under the CSP) copies the
text of its ``<pre>``. The DSN is that of the project's first active key, as the server's start banner and the
settings page show it. Every reader of the project may see the page: a DSN is no secret of the project's data, it
is what every one of its SDKs carries (it only allows sending events).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from fastapi import APIRouter
from sqlalchemy import Connection, select
from starlette.requests import Request
from starlette.responses import Response

from stackwatch.server.storage import accounts
from stackwatch.server.storage.schema import project_keys
from stackwatch.server.web.context import WebRoute, web
from stackwatch.server.web.issues import project_for_page

__all__ = ["SNIPPETS", "Snippet", "build_connect_router", "curl_test_event"]


@dataclass(frozen=True, slots=True)
class Snippet:
    id: str  # the anchor and the element id of its code
    title: str
    note: str
    install: str
    code: str  # ``{dsn}`` is replaced by the project's DSN


SNIPPETS = (
    Snippet(
        "python",
        "Python: stackwatch.sdk",
        "sentry-sdk with safe defaults, the server's redaction before events leave, MeshHook's workflow context and "
        "an on-disk spool that survives outages (docs/sdk-python.md).",
        "pip install ./clients/python   # from a Stackwatch checkout",
        """import stackwatch.sdk

stackwatch.sdk.init(dsn="{dsn}", component="orchestrator")

# MeshHook: errors inside carry the workflow, the run and the step
with stackwatch.sdk.workflow_scope(run.workflow_id, run.id, step_id=step.id, step_type=step.kind):
    execute(step)
""",
    ),
    Snippet(
        "node",
        "Node.js: @stackwatch/sdk",
        "@sentry/node with the same safe defaults, redaction and spool, and MeshHook's workflow context "
        "(docs/sdk-js.md). Call init before the modules it should instrument are imported.",
        "npm install /path/to/stackwatch/clients/js @sentry/node",
        """import * as Stackwatch from "@stackwatch/sdk";

Stackwatch.init({ dsn: "{dsn}", component: "orchestrator" });

// MeshHook: each step's errors carry the workflow, the run and the step
bus.on("step.execute", Stackwatch.wrapJobHandler(executeStep, (job) => ({
  workflowId: job.workflowId, runId: job.runId, stepId: job.stepId,
})));
""",
    ),
    Snippet(
        "sveltekit",
        "SvelteKit: @stackwatch/sdk/sveltekit",
        "Each request in its own scope, tagged with its route; webhook routes never send their bodies or "
        "signatures (docs/sdk-js.md#sveltekit).",
        "npm install /path/to/stackwatch/clients/js @sentry/node",
        """// src/hooks.server.js
import * as Stackwatch from "@stackwatch/sdk/sveltekit";

Stackwatch.init({ dsn: "{dsn}", component: "api" });

export const handle = Stackwatch.handle(); // or sequence(Stackwatch.handle(), yourHandle)
export const handleError = Stackwatch.handleError(({ message }) => ({ message }));
""",
    ),
    Snippet(
        "sentry-python",
        "Python: sentry-sdk",
        "Any Sentry SDK works as it is; the server scrubs every event before it is stored.",
        "pip install sentry-sdk",
        """import sentry_sdk

sentry_sdk.init(dsn="{dsn}")
""",
    ),
    Snippet(
        "sentry-node",
        "Node.js: @sentry/node",
        "Any Sentry SDK works as it is; the server scrubs every event before it is stored.",
        "npm install @sentry/node",
        """import * as Sentry from "@sentry/node";

Sentry.init({ dsn: "{dsn}" });
""",
    ),
    Snippet(
        "sentry-browser",
        "Browser: @sentry/browser",
        "Browser SDKs are answered with CORS headers; the DSN in a page is public, as it is meant to be.",
        "npm install @sentry/browser",
        """import * as Sentry from "@sentry/browser";

Sentry.init({ dsn: "{dsn}" });
""",
    ),
)

_TEST_ENVELOPE = (
    '{}\\n{"type":"event"}\\n'
    '{"message":"Test event from curl: Stackwatch is connected","level":"error","platform":"other"}\\n'
)


def curl_test_event(base_url: str, project_id: int, public_key: str) -> str:
    """A shell line that sends one event to the project through the envelope endpoint, as SDKs do."""
    url = f"{base_url.rstrip('/')}/api/{project_id}/envelope/?sentry_key={public_key}&sentry_version=7"
    return (
        f"printf '{_TEST_ENVELOPE}' | curl -sS --data-binary @- "
        f"-H 'Content-Type: application/x-sentry-envelope' {shlex.quote(url)}"
    )


def _first_key(connection: Connection, project_id: int) -> str | None:
    """The public key of the project's first active key (the DSN ``accounts.project_dsn`` gives)."""
    key = connection.execute(
        select(project_keys.c.public_key)
        .where(project_keys.c.project_id == project_id, project_keys.c.active.is_(True))
        .order_by(project_keys.c.id)
    ).scalar()
    return None if key is None else str(key)


def _snippets(dsn: str) -> list[dict[str, str]]:
    return [
        {
            "id": s.id,
            "title": s.title,
            "note": s.note,
            "install": s.install,
            "code": s.code.replace("{dsn}", dsn),
        }
        for s in SNIPPETS
    ]


def build_connect_router() -> APIRouter:
    router = APIRouter(route_class=WebRoute, include_in_schema=False)

    @router.get("/projects/{slug}/connect")
    def connect(request: Request, slug: str) -> Response:
        context = web(request)
        with context.engine.connect() as connection:
            found = project_for_page(request, connection, slug)
            if isinstance(found, Response):
                return found
            user, project = found
            key = _first_key(connection, project.id)
        base = context.settings.base_url or str(request.base_url).rstrip("/")
        dsn = accounts.dsn(base, key, project.id) if key else None
        session = context.cookies.read(request)
        values = {
            "user": user,
            "csrf_token": session.csrf if session else "",
            "project": project,
            "section": "connect",
            "dsn": dsn,
            "snippets": _snippets(dsn) if dsn else [],
            "test_command": curl_test_event(base, project.id, key) if key else None,
        }
        return context.page("connect.html", values)

    return router
