"""The documentation keeps up with the code: a setting or command missing from the docs fails here."""

from __future__ import annotations

import tomllib
from dataclasses import fields

import click

from stackwatch.cli import main
from stackwatch.server.config import Settings
from tests.conftest import ROOT


def _commands(group: click.Group, prefix: str = "stackwatch") -> list[str]:
    names = []
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            names += _commands(command, f"{prefix} {name}")
        else:
            names.append(f"{prefix} {name}")
    return names


def test_every_setting_is_documented() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    missing = [f.name for f in fields(Settings) if f"`STACKWATCH_{f.name.upper()}`" not in text]
    assert missing == []


def test_every_command_is_documented() -> None:
    text = (ROOT / "docs" / "cli.md").read_text()
    missing = [name for name in _commands(main) if f"`{name}" not in text]
    assert missing == []


def test_readme_opens_with_the_two_commands() -> None:
    head = "\n".join((ROOT / "README.md").read_text().splitlines()[:15])
    assert "make run" in head and "make test" in head


def test_the_sdk_distribution_and_its_install_are_documented() -> None:
    name = tomllib.loads((ROOT / "clients" / "python" / "pyproject.toml").read_text())["project"]["name"]
    install = (ROOT / "docs" / "sdk-python.md").read_text().split("\n## Install\n", 1)[1].split("\n## ", 1)[0]
    assert f"pip install {name}" in install and "pip install ./clients/python" in install
    assert (ROOT / "clients" / "python" / "README.md").is_file() and (ROOT / "clients" / "python" / "LICENSE").is_file()
