"""The dashboard's static files: the vendored libraries are the published files, with their licences, and every
script and style sheet the pages load is served."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from stackwatch.server.web.context import STATIC_DIR
from tests.conftest import Stack

VENDOR = STATIC_DIR / "vendor"
TEMPLATES = STATIC_DIR.parent / "templates"


def _listed_sums() -> dict[str, str]:
    readme = (VENDOR / "README.md").read_text()
    block = re.search(r"```\n(.*?)```", readme, re.S)
    assert block, "vendor/README.md lists no checksums"
    return {name: digest for digest, name in (line.split() for line in block.group(1).strip().splitlines())}


def test_vendored_files_are_the_published_ones_with_their_licences() -> None:
    sums = _listed_sums()
    assert {name.split("/")[0] for name in sums} == {"htmx", "htmx-ext-sse", "uplot"}
    for name, digest in sums.items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == digest, name
    for folder in ("htmx", "htmx-ext-sse", "uplot"):
        licence = (VENDOR / folder / "LICENSE").read_text()
        assert "Permission" in licence or "permission" in licence, folder
    shipped = {str(path.relative_to(VENDOR)) for path in VENDOR.rglob("*") if path.suffix in (".js", ".css")}
    assert shipped == set(sums)  # nothing vendored that is not listed


def test_every_file_the_pages_load_is_served(stack: Stack) -> None:
    base = (TEMPLATES / "base.html").read_text()
    paths = re.findall(r'(?:src|href)="(/static/[^"]+)"', base)
    assert len(paths) >= 6
    for path in paths:
        response = stack.client.get(path)
        assert response.status_code == 200, path
        assert Path(path).suffix in (".js", ".css", ".svg")
        kind = {".js": "javascript", ".css": "text/css", ".svg": "image/svg+xml"}[Path(path).suffix]
        assert kind in response.headers["content-type"], (path, response.headers["content-type"])
