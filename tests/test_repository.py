"""The repository tests from a clone with nothing beside it: captures inside, no path leading out of it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.captures import NODE_DIR, PYTHON_DIR, MissingCaptures, load
from tests.conftest import FIXTURES, ROOT

# A relative path that climbs out of the checkout, or a sibling folder of it that a clone does not have.
_OUTSIDE = re.compile(r"\.\./|\.\.\\|parent\.parent\.parent|\bshared/fixtures\b|ROOT\.parent\b")


def test_the_captures_live_in_the_repository() -> None:
    assert FIXTURES.resolve().is_relative_to(ROOT.resolve())
    assert len(load(PYTHON_DIR)) == 14
    assert len(load(NODE_DIR)) == 7
    for directory in (PYTHON_DIR, NODE_DIR):
        assert list(directory.glob("GENERATOR.*")), f"{directory} lost the program that made its captures"
    assert (FIXTURES / "README.md").is_file()


@pytest.mark.parametrize("make", [lambda tmp: tmp / "absent", lambda tmp: tmp])
def test_a_missing_or_empty_capture_folder_fails_loudly(tmp_path: Path, make: object) -> None:
    directory = make(tmp_path)  # type: ignore[operator]
    with pytest.raises(MissingCaptures, match="tests/fixtures"):
        load(directory)


def _checked_files() -> list[Path]:
    files = [ROOT / "Makefile", *sorted((ROOT / ".ci").iterdir())]
    files += [
        p
        for p in sorted((ROOT / "tests").rglob("*"))
        if p.is_file() and p.suffix in (".py", ".mjs", ".js", ".json", ".sh")
    ]
    return [p for p in files if "node_modules" not in p.parts and "fixtures" not in p.parts and p != Path(__file__)]


def test_nothing_in_tests_ci_or_the_makefile_points_outside_the_repository() -> None:
    offenders = []
    for path in _checked_files():
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if _OUTSIDE.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []
