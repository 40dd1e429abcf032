"""The redaction rule table: data only, no logic.

Three kinds of rule:

* ``key`` -- the pattern is a literal substring of the *normalized* key (lower-cased, camelCase split with ``_``,
  ``-``/space/``.`` turned into ``_``); the whole value under the key is replaced with ``[Filtered]``.
* ``key_part`` -- the pattern must equal one whole ``_``-separated part of the normalized key (``pwd`` matches
  ``old_pwd`` and ``oldPwd`` but not ``cwd``).
* ``value`` -- the pattern is a regular expression searched in every string; the named group ``v`` (or the whole
  match when there is none) is replaced with the rule's label.  An optional validator (see ``validators.py``)
  confirms or trims each candidate.  ``hints`` are lower-case literals of which at least one must occur in the
  lower-cased text before the regex runs at all (a cheap pre-check); an empty tuple means "always run".
  ``trigger`` is a second, optional pre-check for what hints cannot say (case, runs of digits, a quote after
  ``=``): a regular expression searched in the text itself that matches within every match the rule keeps --
  usually a piece of the pattern without its look-arounds (a prefix, or one part of a sequence); a comment says
  why where it is not.  Triggers only decide whether the pattern is worth running, so a mirror of this table may
  leave them out; a trigger that missed a match the rule would keep would be a bug.  No inline flags in triggers:
  some are joined into one regex.

Value rules are listed in priority order: when two candidates overlap, the one starting first wins, and at equal
starts the earlier rule wins.  Replacement values never match any value rule again (they start with ``[``, which
every value class excludes), which is what makes scrubbing idempotent.

The same table is meant to be mirrored by the JavaScript SDK; ``tests/vectors/scrub.json`` is the shared contract.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["ALLOWED_KEYS", "OPTIONAL_RULES", "RULES", "Rule"]

RuleKind = Literal["key", "key_part", "value"]


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    kind: RuleKind
    pattern: str
    label: str = "[Filtered]"
    validator: str | None = None
    hints: tuple[str, ...] = ()
    trigger: str | None = None


def _key(name: str, pattern: str | None = None) -> Rule:
    return Rule(name=name, kind="key", pattern=pattern or name)


def _part(name: str) -> Rule:
    return Rule(name=name, kind="key_part", pattern=name)


def _value(
    name: str,
    pattern: str,
    *,
    validator: str | None = None,
    hints: tuple[str, ...] = (),
    trigger: str | None = None,
) -> Rule:
    label = f"[Filtered:{name}]"
    return Rule(
        name=name, kind="value", pattern=pattern, label=label, validator=validator, hints=hints, trigger=trigger
    )


# Keys (exact, after lower-casing) that are never scrubbed, neither by key rules nor by value patterns.  They carry
# identifiers the dashboard groups and links by.  "author"/"authority" are here because "auth" is a substring rule.
ALLOWED_KEYS: frozenset[str] = frozenset(
    {
        "workflow_id",
        "run_id",
        "step_id",
        "tenant",
        "component",
        "event_id",
        "trace_id",
        "span_id",
        "parent_span_id",
        "author",
        "authors",
        "authority",
    }
)

_SECRET_PARAM_NAMES = (
    "access_token|refresh_token|id_token|auth_token|client_secret|api_key|apikey|api-key|private_token|"
    "x-amz-signature|x-amz-security-token|x-goog-signature|signature|secret|password|passwd|pwd|token|key|sig"
)

RULES: tuple[Rule, ...] = (
    _key("password"),
    _key("passwd"),
    _key("passphrase"),
    _part("pwd"),
    _key("secret"),
    _key("token"),
    _key("api_key"),
    _key("apikey"),
    _key("access_key"),
    _key("auth"),
    _key("credential"),
    _key("private_key"),
    _key("privatekey"),
    _key("session"),
    _key("cookie"),
    _key("csrf"),
    _key("xsrf"),
    _key("signature"),
    _part("sig"),
    _key("cardnumber"),
    _part("cvv"),
    _part("cvc"),
    _value(
        "pem_private_key",
        r"(?s)-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----.*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|\Z)",
        hints=("private key-----",),
    ),
    _value(
        "jwt",
        r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*",
        hints=("eyj",),
        trigger=r"eyJ[A-Za-z0-9_-]{5,}\.eyJ",
    ),
    _value("bearer", r"(?i)\bbearer\s+(?P<v>[A-Za-z0-9\-._~+/]{8,}=*)", validator="tokenish", hints=("bearer",)),
    _value(
        "authorization_header",
        r"(?i)\bauthorization[\"']?\s*[:=]\s*[\"']?(?:(?:basic|bearer|token|digest|apikey)\s+)?(?P<v>(?!(?:basic|bearer|token|digest|apikey)\s)[^\s\"',;\[][^\s\"',;]{3,})",
        hints=("authorization",),
    ),
    _value(
        "url_credentials",
        r"[A-Za-z][A-Za-z0-9+.-]*://[^\s:/?#@\[\]]+:(?P<v>[^\s/?#@\[\]]+)@",
        hints=("://",),
        trigger=r"://[^\s:/?#@\[\]]+:",
    ),
    _value(
        "secret_param",
        rf"(?i)(?<![A-Za-z0-9_.-])(?:{_SECRET_PARAM_NAMES})=(?P<v>[^\s&#\"'\[\]<>,;)]+)",
        hints=("=",),
        # The last letter of every name, the "=" and the value's first character.  Under (?i) only i, k and s also
        # match non-ASCII letters (ı, İ, K, ſ), and no name ends in one of them.
        trigger=r"[dDeEgGnNtTyY]=[^\s&#\"'\[\]<>,;)]",
    ),
    _value(
        "secret_assignment",
        r"(?i)(?<![A-Za-z0-9_])[A-Za-z0-9_]*(?:password|passwd|pwd|secret|token|api_?key|private_key|credential)"
        r"[A-Za-z0-9_]*[\"']?\s*[:=]\s*(?P<q>[\"'])(?P<v>[^\"'\[\n][^\"'\n]*)(?P=q)",
        hints=("pass", "pwd", "secret", "token", "key", "credential"),
        trigger=r"[:=]\s*[\"']",
    ),
    _value(
        "aws_access_key",
        r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA)[A-Z0-9]{16}\b",
        hints=("akia", "asia", "abia", "acca", "agpa", "aida", "aipa", "anpa", "anva", "aroa", "apka"),
        trigger=r"AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA",
    ),
    _value(
        "github_token",
        r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b",
        hints=("gh",),
        trigger=r"gh[pousr]_|github_pat_",
    ),
    _value("slack_token", r"\bxox[abposre]-[A-Za-z0-9-]{10,}", hints=("xox",), trigger=r"xox[abposre]-"),
    _value(
        "slack_webhook",
        r"hooks\.slack\.com/(?:services|workflows)/(?P<v>[A-Za-z0-9/]{20,})",
        hints=("hooks.slack.com",),
    ),
    _value(
        "stripe_key",
        r"\b(?:(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,}|whsec_[A-Za-z0-9]{20,})\b",
        hints=("sk_", "rk_", "whsec_"),
        trigger=r"(?:sk|rk)_(?:live|test)_|whsec_",
    ),
    _value("google_api_key", r"\bAIza[0-9A-Za-z_-]{35}(?![0-9A-Za-z_-])", hints=("aiza",), trigger=r"AIza"),
    # Vendor-neutral "key_XXXXXX" / Mailgun "key-<32 hex>": a lower-case prefix followed by an upper-case/digit
    # body.  Snake-case identifiers (key_name, token_count) stay because their body is lower-case.
    _value(
        "prefixed_key",
        r"\b(?:(?:key|secret|token|apikey|api_key)_[A-Z0-9]{6,}|key-[0-9a-f]{32})\b",
        hints=("key", "secret", "token"),
        trigger=r"(?:key|secret|token)_[A-Z0-9]|key-[0-9a-f]",  # "apikey_" and "api_key_" end in "key_"
    ),
    _value(
        "card_number",
        r"(?<![A-Za-z0-9_.])[2-6]\d{3}(?:[ -]?\d){9,15}(?![A-Za-z0-9_]|[.-]\d)",
        validator="card",
        trigger=r"[2-6]\d{3}(?:[ -]?\d){9}",
    ),
    _value(
        "iban",
        r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,34}(?![A-Za-z0-9])",
        validator="iban",
        trigger=r"[A-Z][A-Z]\d\d(?: ?[A-Z0-9]){11}",
    ),
)

# Rules applied only when the matching ScrubOptions flag is set; keyed by option name.
OPTIONAL_RULES: dict[str, tuple[Rule, ...]] = {
    "scrub_emails": (
        _value(
            "email",
            r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![A-Za-z0-9-])",
            hints=("@",),
            trigger=r"[A-Za-z0-9._%+-]@[A-Za-z0-9-]",
        ),
    ),
    "scrub_ips": (
        _value(
            "ipv4",
            r"(?<![0-9A-Za-z.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
            r"(?![0-9A-Za-z]|\.\d)",
            hints=(".",),
            trigger=r"\d\.\d{1,3}\.\d{1,3}\.\d",  # the last digit of the first octet to the first of the last
        ),
        _value(
            "ipv6",
            r"(?<![0-9A-Za-z:.])[0-9A-Fa-f:]{2,39}(?![0-9A-Za-z:])",
            validator="ipv6",
            hints=(":",),
            trigger=r":[0-9A-Fa-f]*:",  # the validator wants two colons, with only hex digits between them
        ),
    ),
}
