"""The captured SDK requests in ``shared/fixtures/sdk-envelopes``, ready to replay."""

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


def load(directory: Path) -> list[Captured]:
    captured = []
    for meta_path in sorted(directory.glob("*.req.json")):
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
