"""The two Python distributions: ``stackwatch-sdk`` (clients/python) works on its own, the server's ``stackwatch``
ships the rest, and installed together (or apart) they make one working ``stackwatch`` package.

Both are built here from a copy of the checkout, offline; they are installed into fresh virtualenvs (without the
system's site-packages) with nothing but the wheels built here and those of sentry-sdk and its dependencies.
See ``docs/design/python-distributions.md``.
"""

from __future__ import annotations

import hashlib
import json
import socket
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from packaging.version import Version

import stackwatch
import stackwatch.scrub
import stackwatch.sdk
from tests.conftest import ROOT
from tests.dist_probe import CARD_TOKEN, TOKEN
from tests.dist_support import (
    build_sdist,
    build_wheel,
    copy_checkout,
    dependency_closure,
    new_venv,
    pip_install,
    pip_uninstall,
    repack,
    run,
    site_packages,
    wheel_metadata,
    wheel_names,
)

pytestmark = pytest.mark.slow

PROBE = ROOT / "tests" / "dist_probe.py"
SDK_PACKAGES = ("stackwatch/sdk/", "stackwatch/scrub/")
# Where setuptools writes while it builds (the server's metadata goes into src/, its default place).
BUILT = ("build/", "src/stackwatch.egg-info/", "clients/python/build/", "clients/python/stackwatch_sdk.egg-info/")


@dataclass(frozen=True)
class Built:
    sdk: Path  # the stackwatch-sdk wheel, built from the checkout's clients/python
    server: Path  # the stackwatch wheel
    sdist: Path  # the stackwatch-sdk sdist
    from_sdist: Path  # the stackwatch-sdk wheel built from that sdist
    links: Path  # the stackwatch-sdk wheel and its dependencies' wheels: all that an install may take
    sources: set[str]  # every file of src/stackwatch, relative to src/ (what the two wheels must share out)
    stray: set[str]  # files of the checkout that the builds wrote or changed, besides their build output


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    setuptools = Version(metadata.version("setuptools"))
    assert setuptools >= Version("77"), f"setuptools {setuptools}: the test extra's setuptools>=77 is missing (make)"
    base = tmp_path_factory.mktemp("dist")
    checkout = copy_checkout(base / "checkout")
    before = tree(checkout)
    links = base / "links"
    links.mkdir()
    sdk = build_wheel(checkout / "clients" / "python", links)
    for distribution in dependency_closure(wheel_metadata(sdk).get_all("Requires-Dist") or []):
        repack(distribution, links)
    sdist = build_sdist(checkout / "clients" / "python", base / "sdist")
    with tarfile.open(sdist) as archive:
        archive.extractall(base / "unpacked", filter="data")
    (unpacked,) = (base / "unpacked").iterdir()
    server = build_wheel(checkout, base / "server")
    after = tree(checkout)
    return Built(
        sdk=sdk,
        server=server,
        sdist=sdist,
        from_sdist=build_wheel(unpacked, base / "from-sdist"),
        links=links,
        sources={name.removeprefix("src/") for name in before if name.startswith("src/stackwatch/")},
        stray={name for name, digest in after.items() if before.get(name) != digest and not name.startswith(BUILT)},
    )


def tree(folder: Path) -> dict[str, str]:
    """Every file under ``folder``, by relative path, with a digest of its content."""
    files = (path for path in folder.rglob("*") if path.is_file())
    return {path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest() for path in files}


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses every connection: bound (so no one else takes it) but not listening."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]


def probe(python: Path, *arguments: str | Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(run(python, "-I", PROBE, *arguments))
    return result


# -- what each distribution holds -----------------------------------------------------------------------------------


def test_the_sdk_wheel_holds_sdk_and_scrub_and_nothing_else(built: Built) -> None:
    names = wheel_names(built.sdk)
    assert names == {name for name in built.sources if name.startswith(SDK_PACKAGES)}
    assert {"stackwatch/scrub/rules.json", "stackwatch/scrub/py.typed", "stackwatch/sdk/py.typed"} <= names
    meta = wheel_metadata(built.sdk)
    assert (meta["Name"], meta["Version"]) == ("stackwatch-sdk", stackwatch.__version__)
    assert meta.get_all("Requires-Dist") == ["sentry-sdk>=2.0"]
    assert (meta["License-Expression"], meta["License-File"]) == ("MIT", "LICENSE")


def test_the_server_wheel_holds_the_rest_and_depends_on_the_sdk_of_its_version(built: Built) -> None:
    names = wheel_names(built.server)
    assert names == {name for name in built.sources if not name.startswith(SDK_PACKAGES)}
    assert {"stackwatch/__init__.py", "stackwatch/server/app.py", "stackwatch/cli/__init__.py"} <= names
    meta = wheel_metadata(built.server)
    assert (meta["Name"], meta["Version"]) == ("stackwatch", stackwatch.__version__)
    assert f"stackwatch-sdk=={stackwatch.__version__}" in (meta.get_all("Requires-Dist") or [])


def test_the_sdist_is_whole_and_builds_the_same_wheel(built: Built) -> None:
    with tarfile.open(built.sdist) as archive:
        members = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert not [name for name in members if ".." in PurePosixPath(name).parts]
    assert {"src/stackwatch/sdk/__init__.py", "src/stackwatch/scrub/rules.json", "LICENSE", "PKG-INFO"} <= members
    assert wheel_names(built.from_sdist) == wheel_names(built.sdk)
    assert wheel_metadata(built.from_sdist)["Version"] == stackwatch.__version__


def test_building_writes_only_build_output(built: Built) -> None:
    assert built.stray == set()


def test_the_checkout_imports_sdk_and_scrub_from_src() -> None:
    for module in (stackwatch, stackwatch.sdk, stackwatch.scrub):
        assert Path(str(module.__file__)).resolve().is_relative_to((ROOT / "src").resolve())


# -- installed ------------------------------------------------------------------------------------------------------


def test_the_sdk_works_on_its_own(built: Built, tmp_path: Path, closed_port: int) -> None:
    python = new_venv(tmp_path / "venv")
    pip_install(python, "--find-links", built.links, "stackwatch-sdk")
    installed = site_packages(python)
    spool = tmp_path / "spool"

    report = probe(python, "standalone", spool, str(closed_port))

    assert report["stackwatch"] is None and report["version"] is None  # a namespace package: no server here
    for name in ("sdk", "scrub", "rules_file"):
        assert Path(report[name]).is_relative_to(installed)
    assert report["importable"] == []
    assert report["rules"] == len(stackwatch.scrub.RULES)
    assert report["scrubbed"] == "Authorization: Bearer [Filtered:bearer]"
    assert len(report["spooled"]) == 1 and report["spooled"][0].endswith("_error.envelope")
    # The child has exited, its flush at exit found no server: the envelope is still there, scrubbed.
    (envelope,) = spool.glob("*/*.envelope")
    text = envelope.read_text(encoding="utf-8")
    assert report["event_id"] in text and '"component":"standalone"' in text.replace(" ", "")
    assert TOKEN not in text and CARD_TOKEN not in text
    assert "[Filtered:github_token]" in text and "[Filtered]" in text


def test_installed_together_they_share_one_package(built: Built, tmp_path: Path) -> None:
    python = new_venv(tmp_path / "venv")
    pip_install(python, "--find-links", built.links, "stackwatch-sdk")
    pip_install(python, "--no-deps", built.server)  # the server's own dependencies are not needed for this
    installed = site_packages(python)

    together = probe(python, "layout")
    assert together["version"] == stackwatch.__version__
    folder = installed / "stackwatch"
    assert [Path(together[name]) for name in ("stackwatch", "sdk", "scrub")] == [
        folder / "__init__.py",
        folder / "sdk" / "__init__.py",
        folder / "scrub" / "__init__.py",
    ]

    pip_uninstall(python, "stackwatch")  # takes only its own files
    alone = probe(python, "layout")
    assert alone["stackwatch"] is None and Path(alone["sdk"]).is_relative_to(installed)


def test_installed_into_two_folders_they_still_share_one_package(built: Built, tmp_path: Path) -> None:
    python = new_venv(tmp_path / "venv")
    pip_install(python, "--find-links", built.links, "--no-deps", "stackwatch-sdk", "--target", tmp_path / "other")
    pip_install(python, "--find-links", built.links, "sentry-sdk")
    pip_install(python, "--no-deps", built.server)
    installed = site_packages(python)
    (installed / "other.pth").write_text(f"{tmp_path / 'other'}\n")  # a second folder on sys.path, after the first

    report = probe(python, "layout")

    assert Path(report["stackwatch"]).is_relative_to(installed)
    assert Path(report["sdk"]).is_relative_to(tmp_path / "other")
