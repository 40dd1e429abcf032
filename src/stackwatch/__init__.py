"""Stackwatch: self-hosted, Sentry-protocol-compatible error tracking.

Two distributions share this package: ``stackwatch`` (the server, the CLI, the demo and this file) and
``stackwatch-sdk`` (``stackwatch.sdk`` and ``stackwatch.scrub``; ``clients/python``).  Installed by pip they share
one folder; where they end up in two (a user site and a virtualenv, say), ``extend_path`` lets this package find
the other one's subpackages too.  See ``docs/design/python-distributions.md``.
"""

from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)

# The version of both distributions: read by pyproject.toml and by clients/python/setup.py.
__version__ = "0.1.0"
