"""Helpers for the distribution tests: build wheels and an sdist offline, and install them into fresh virtualenvs.

Everything runs without an index: the builds use this environment's setuptools (``--no-build-isolation``), and
the wheels of stackwatch-sdk's dependencies (sentry-sdk and what it needs) are packed again from the files this
environment has installed, exactly as their RECORD lists them.
"""

from __future__ import annotations

import base64
import csv
import email
import email.message
import hashlib
import io
import os
import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import ROOT

# What a build of either distribution reads from the checkout.
PROJECT_FILES = ("pyproject.toml", "README.md", "LICENSE", "src", "clients/python")
_NOT_SOURCES = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
_BUILT = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist", "stackwatch_sdk-*")
_PIP_WHEEL = ("-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "--no-cache-dir")
# Files of an installed distribution that belong to the installation, not to its wheel.
_INSTALL_ONLY = {"INSTALLER", "REQUESTED", "RECORD", "direct_url.json"}


def clean_env() -> dict[str, str]:
    """This environment without what would leak the checkout or pip's settings into a child."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") and k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONDONTWRITEBYTECODE="1")
    return env


def run(*command: str | Path, cwd: Path | None = None) -> str:
    done = subprocess.run(
        [str(part) for part in command], cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def copy_checkout(target: Path) -> Path:
    """The files a build reads, copied without build leftovers (so neither the checkout nor a stale build/ counts)."""
    target.mkdir(parents=True)
    for name in PROJECT_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=_BUILT if name == "clients/python" else _NOT_SOURCES)
        else:
            shutil.copy2(source, target / name)
    return target


def build_wheel(project: Path, out: Path) -> Path:
    run(sys.executable, *_PIP_WHEEL, "-w", out, project)
    (wheel,) = out.glob("*.whl")
    return wheel


def build_sdist(project: Path, out: Path) -> Path:
    """The sdist, made by the build backend's PEP 517 hook (as ``python -m build --sdist`` calls it)."""
    run(sys.executable, "-c", f"from setuptools import build_meta; build_meta.build_sdist({str(out)!r})", cwd=project)
    (sdist,) = out.glob("*.tar.gz")
    return sdist


def wheel_names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return {name for name in archive.namelist() if ".dist-info/" not in name}


def wheel_metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.message_from_bytes(archive.read(name))


def dependency_closure(requirements: list[str]) -> list[metadata.Distribution]:
    """The installed distributions that ``requirements`` need, transitively (markers evaluated, no extras)."""
    found: dict[str, metadata.Distribution] = {}
    pending = [Requirement(text) for text in requirements]
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        if name in found or (requirement.marker is not None and not requirement.marker.evaluate({"extra": ""})):
            continue
        found[name] = distribution = metadata.distribution(name)
        pending += [Requirement(text) for text in distribution.requires or ()]
    return list(found.values())


def repack(distribution: metadata.Distribution, out: Path) -> Path:
    """A wheel of a pure-Python distribution, made from its installed files (RECORD written anew)."""
    wheel_info = distribution.read_text("WHEEL") or ""
    assert "Root-Is-Purelib: true" in wheel_info, f"{distribution.metadata['Name']} is not pure Python"
    tag = next(line.split(": ", 1)[1] for line in wheel_info.splitlines() if line.startswith("Tag: "))
    name, version = distribution.metadata["Name"].replace("-", "_"), distribution.version
    info = f"{name}-{version}.dist-info"
    files = [
        path
        for path in distribution.files or ()
        if not path.parts[0].startswith("..")
        and path.suffix != ".pyc"
        and "__pycache__" not in path.parts
        and not (path.parts[0].endswith(".dist-info") and path.name in _INSTALL_ONLY)
    ]
    wheel = out / f"{name}-{version}-{tag}.whl"
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            data = Path(path.locate()).read_bytes()
            target = "/".join((info, *path.parts[1:])) if path.parts[0].endswith(".dist-info") else path.as_posix()
            archive.writestr(target, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            writer.writerow([target, f"sha256={digest}", len(data)])
        writer.writerow([f"{info}/RECORD", "", ""])
        archive.writestr(f"{info}/RECORD", record.getvalue())
    return wheel


def new_venv(path: Path) -> Path:
    """A virtualenv without pip and without the system's site-packages; its interpreter."""
    run(sys.executable, "-m", "venv", "--without-pip", path)
    return path / "bin" / "python"


def pip_install(python: Path, *arguments: str | Path) -> str:
    """This environment's pip installing into the virtualenv of ``python``, offline."""
    return run(sys.executable, "-m", "pip", "--python", python, "install", "--no-index", "--no-cache-dir", *arguments)


def pip_uninstall(python: Path, name: str) -> str:
    return run(sys.executable, "-m", "pip", "--python", python, "uninstall", "--yes", name)


def site_packages(python: Path) -> Path:
    return Path(run(python, "-I", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").strip())
