"""Run inside a fresh virtualenv by ``tests/test_python_dist.py`` (``python -I``): says, as JSON, what is installed.

``layout``: where ``stackwatch``, ``stackwatch.sdk`` and ``stackwatch.scrub`` come from.
``standalone SPOOL PORT``: also which server dependencies are importable, what the redaction engine makes of a
secret, and a real capture through ``stackwatch.sdk.init`` with the DSN at PORT (where nothing answers) and the
spool at SPOOL.  It imports nothing from the checkout, which is not on ``sys.path``.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from importlib import resources
from pathlib import Path
from typing import Any

# A GitHub token (a value rule finds it in any string) and a value under a secret-looking name (a key rule).
TOKEN = "ghp_" + "R7d1xWq0Lm3Vb8Kc2Zt5Yh9Nf4Jp6Gs1Ae0U"
CARD_TOKEN = "tok-4e1f0a9b7c3d"
SERVER_MODULES = ("fastapi", "sqlalchemy", "uvicorn", "alembic", "psycopg", "stackwatch.server", "stackwatch.cli")


def layout() -> dict[str, Any]:
    import stackwatch
    import stackwatch.scrub
    import stackwatch.sdk

    return {
        "stackwatch": getattr(stackwatch, "__file__", None),
        "version": getattr(stackwatch, "__version__", None),
        "sdk": stackwatch.sdk.__file__,
        "scrub": stackwatch.scrub.__file__,
    }


def _charge(card_token: str) -> None:
    raise RuntimeError(f"charging failed: GitHub answered 401 for {TOKEN}")


def standalone(spool: str, port: str) -> dict[str, Any]:
    import stackwatch.sdk
    from stackwatch.scrub import RULES, scrub_text

    report = layout()
    report["importable"] = [name for name in SERVER_MODULES if importlib.util.find_spec(name) is not None]
    report["rules"] = len(RULES)
    report["rules_file"] = str(resources.files("stackwatch.scrub").joinpath("rules.json"))
    report["scrubbed"] = scrub_text(f"Authorization: Bearer {TOKEN}")[0]
    stackwatch.sdk.init(
        f"http://0123456789abcdef@127.0.0.1:{port}/7", component="standalone", spool_dir=spool, shutdown_timeout=0.5
    )
    try:
        _charge(CARD_TOKEN)
    except RuntimeError as error:
        report["event_id"] = stackwatch.sdk.capture_exception(error)
    # On disk when capture_exception returns: before any attempt to send has had a chance to end.
    report["spooled"] = sorted(path.name for path in Path(spool).glob("*/*.envelope"))
    return report


if __name__ == "__main__":
    command, *arguments = sys.argv[1:]
    print(json.dumps(layout() if command == "layout" else standalone(*arguments)))
