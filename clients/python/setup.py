"""Where the build of stackwatch-sdk finds its sources and its version (the rest is in pyproject.toml).

The packages ``stackwatch.sdk`` and ``stackwatch.scrub`` live once, in the repository's ``src/stackwatch/``, where
the server and the test suite use them.  A build from the checkout (``pip install ./clients/python``, ``pip wheel``)
reads them there; an sdist carries a copy of them under its own ``src/``, written when the sdist is made, so a
build from the sdist needs nothing outside it.  The version is Stackwatch's one ``__version__`` in
``src/stackwatch/__init__.py`` (in an sdist, its ``PKG-INFO``).  ``stackwatch`` itself is not shipped here: it
belongs to the server distribution, and without it ``stackwatch`` is a namespace package
(``docs/design/python-distributions.md``).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.sdist import sdist

HERE = Path(__file__).resolve().parent
PACKAGES = ["stackwatch.sdk", "stackwatch.scrub"]
PACKAGE_DATA = {"stackwatch.sdk": ["py.typed"], "stackwatch.scrub": ["py.typed", "rules.json"]}


def _source_root() -> str:
    """``src`` in an unpacked sdist, else the repository's ``src`` (relative, as setuptools wants it)."""
    if (HERE / "PKG-INFO").is_file():
        return "src"
    return "../../src"


def _version() -> str:
    if (HERE / "PKG-INFO").is_file():
        found = re.search(r"^Version: (\S+)$", (HERE / "PKG-INFO").read_text(encoding="utf-8"), re.M)
    else:
        text = (HERE / _source_root() / "stackwatch" / "__init__.py").read_text(encoding="utf-8")
        found = re.search(r'^__version__ = "([^"]+)"$', text, re.M)
    if found is None:
        raise RuntimeError("stackwatch-sdk: no version found (src/stackwatch/__init__.py, __version__)")
    return found.group(1)


class SdistWithSources(sdist):  # type: ignore[misc]
    """An sdist whose packages' sources are under its own ``src/``, copied from the checkout's.

    setuptools lists them as ``../../src/...``; written as they are, they would land outside the sdist's folder
    (in ``clients/src/``), and the sdist would lack them.
    """

    def make_release_tree(self, base_dir: str, files: list[str]) -> None:
        outside = [name for name in files if name.startswith("../")]
        super().make_release_tree(base_dir, [name for name in files if name not in outside])
        prefix = _source_root() + "/"
        for name in outside:
            if not name.startswith(prefix):
                raise RuntimeError(f"stackwatch-sdk: {name} is outside the sources and the project")
            target = Path(base_dir, "src", name.removeprefix(prefix))
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(HERE / name, target)


setup(
    version=_version(),
    packages=PACKAGES,
    package_dir={"": _source_root()},
    package_data=PACKAGE_DATA,
    cmdclass={"sdist": SdistWithSources},
    # The metadata folder goes beside this file, not into the repository's src/ (setuptools' default place).
    options={"egg_info": {"egg_base": "."}},
)
