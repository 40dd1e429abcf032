"""What one demo process left behind."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DemoResult"]


@dataclass(frozen=True)
class DemoResult:
    component: str
    returncode: int
    output: str
