"""The captured SDK requests in ``tests/fixtures/sdk-envelopes``, ready to replay.

A missing or empty capture folder fails loudly: a test that silently replays nothing would pass for the wrong
reason or fail with a misleading message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import FIXTURES, Stack

PYTHON_DIR = FIXTURES / "python-sentry-sdk-2.75.0"
NODE_DIR = FIXTURES / "node-sentry-11.12.0"
_HOP_BY_HOP = {"host", "content-length", "transfer-encoding", "connection"}


@dataclass(frozen=True)
class Captured:
    name: str
    path: str
    headers: dict[str, str]
    body: bytes


class MissingCaptures(RuntimeError):
    """The capture folder is not there or holds no requests."""


def load(directory: Path) -> list[Captured]:
    metas = sorted(directory.glob("*.req.json"))
    if not metas:
        state = "holds no *.req.json captures" if directory.is_dir() else "does not exist"
        raise MissingCaptures(f"SDK capture folder {directory} {state}; the repository must carry tests/fixtures/")
    captured = []
    for meta_path in metas:
        meta = json.loads(meta_path.read_text())
        headers = {k: v for k, v in meta["headers"].items() if k.lower() not in _HOP_BY_HOP}
        body = meta_path.with_name(meta_path.name.replace(".req.json", ".body")).read_bytes()
        captured.append(Captured(meta_path.name[:4], meta["path"], headers, body))
    return captured


def by_name(directory: Path, name: str) -> Captured:
    return next(c for c in load(directory) if c.name == name)


def replay_all(stack: Stack) -> None:
    """Every captured request, Python then Node, into ``stack`` (each must be accepted), then the digest."""
    for directory in (PYTHON_DIR, NODE_DIR):
        for captured in load(directory):
            response = stack.client.post(captured.path, content=captured.body, headers=captured.headers)
            assert response.status_code == 200, (captured.name, response.text)
    stack.digest()
