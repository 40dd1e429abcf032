"""Project grouping rules: stack trace rules and fingerprint rules, parsed from text.

Stack trace rules (``path:**/vendor/** -app``, ``function:std::* -group``) say which frames are in-app and which
count for grouping; fingerprint rules (``error.type:DatabaseUnavailable -> database-down``) give matching events
a fingerprint. Both are lines of text a project keeps in its settings; ``ProjectRules.parse`` reads them once per
text and raises ``RuleError`` (with the 1-based line) for a line it cannot read.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

__all__ = ["ProjectRules", "RuleError"]


class RuleError(ValueError):
    def __init__(self, kind: str, line: int, message: str) -> None:
        super().__init__(f"{kind} rules, line {line}: {message}")
        self.kind = kind
        self.line = line
        self.message = message


@dataclass(frozen=True, slots=True)
class ProjectRules:
    stack_text: str = ""
    fingerprint_text: str = ""

    @staticmethod
    def parse(stack_text: str | None, fingerprint_text: str | None) -> ProjectRules:
        return _parse(stack_text or "", fingerprint_text or "")


@lru_cache(maxsize=256)
def _parse(stack_text: str, fingerprint_text: str) -> ProjectRules:
    for kind, text in (("stack trace", stack_text), ("fingerprint", fingerprint_text)):
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip() and not line.lstrip().startswith("#"):
                raise RuleError(kind, number, "rules are not read yet")
    return ProjectRules(stack_text, fingerprint_text)


EMPTY = ProjectRules()
