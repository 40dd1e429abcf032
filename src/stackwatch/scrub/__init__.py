"""Redaction engine: removes secrets from events before they are stored or shown.

No server or web dependencies (stdlib only), so the SDK and the server share it.

What is replaced, and with what:

* A value under a key matched by a *key rule* (``password``, ``token``, ``auth``, ``session``, ... matched
  case-insensitively by substring, after look-alike letters are folded; see ``rules.py``) becomes ``[Filtered]``.
  Every string or number below such a key is filtered, containers keep their shape.  ``_meta`` records
  ``{"": {"rem": [[rule, "x"]], "len": n}}`` (``len`` only for strings).  Keys in ``ALLOWED_KEYS`` (``run_id``,
  ``trace_id``, ...) are exempt from key rules only: their values still get every value rule.  Trade-off:
  substring matching also filters harmless keys such as ``session_count`` or ``tokens``; ``author`` and
  ``authority`` are allow-listed explicitly.
* A secret found *inside* a string by a *value rule* (Bearer tokens, JWTs, PEM keys, URL passwords, secret query
  parameters, vendor token formats, Luhn-valid card numbers, mod-97-valid IBANs; emails and IPs by option) is
  replaced with ``[Filtered:<rule>]``.  For URL passwords, query parameters and ``Bearer`` only the secret part is
  replaced (``https://user:[Filtered:url_credentials]@host``).  ``_meta`` records
  ``{"": {"rem": [[rule, "s", start, end], ...], "len": original_length}}``; ``start``/``end`` are offsets of the
  label in the *new* string.

* A key in which a value rule finds a secret (a token used as a dict key or a tag key) is replaced by its scrubbed
  form, made distinct within its object (`` #2``, ...); ``_meta`` records ``[rule, "k", start, end]`` at the new
  key's path, and the value under it is filtered too.

Scrubbing is idempotent: labels never match a rule again, and ``[Filtered]`` under a key rule is left alone.
An existing ``_meta`` (e.g. the SDK's own ``!config`` remarks) is kept and extended, but only its well-formed
remarks at paths without secrets: a client's ``_meta`` is not trusted.
"""

from stackwatch.scrub.event import FILTERED, key_rule, scrub_event
from stackwatch.scrub.rules import ALLOWED_KEYS, RULES, Rule
from stackwatch.scrub.text import Remark, ScrubOptions, scrub_text

__all__ = [
    "ALLOWED_KEYS",
    "FILTERED",
    "RULES",
    "Remark",
    "Rule",
    "ScrubOptions",
    "key_rule",
    "scrub_event",
    "scrub_text",
]
