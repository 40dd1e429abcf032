"""Stackwatch: self-hosted, Sentry-protocol-compatible error tracking."""

__version__ = "0.1.0"
