"""The redaction rule table: data only, no logic.

Three kinds of rule:

* ``key`` -- the pattern is a literal substring of the *normalized* key (lower-cased, camelCase split with ``_``,
  ``-``/space/``.`` turned into ``_``); the whole value under the key is replaced with ``[Filtered]``.
* ``key_part`` -- the pattern must equal one whole ``_``-separated part of the normalized key (``pwd`` matches
  ``old_pwd`` and ``oldPwd`` but not ``cwd``).

  Before either kind is matched, a key that is not plain ASCII is folded: NFKC (full-width letters), combining
  marks and invisible format characters removed, and the Cyrillic and Greek letters that look like Latin ones
  mapped to them (``CONFUSABLES``), so ``pаssword`` with a Cyrillic ``а`` is ``password``.
* ``value`` -- the pattern is a regular expression searched in every string; the named group ``v`` (or the whole
  match when there is none) is replaced with the rule's label.  An optional validator (see ``validators.py``)
  confirms or trims each candidate.  ``hints`` are lower-case literals of which at least one must occur in the
  lower-cased text before the regex runs at all (a cheap pre-check); an empty tuple means "always run".
  ``trigger`` is a second, optional pre-check for what hints cannot say (case, runs of digits, a quote after
  ``=``): a regular expression searched in the text itself that matches within every match the rule keeps --
  usually a piece of the pattern without its look-arounds (a prefix, or one part of a sequence); a comment says
  why where it is not.  Triggers only decide whether the pattern is worth running, so a mirror of this table may
  leave them out; a trigger that missed a match the rule would keep would be a bug.  No inline flags in triggers:
  some are joined into one regex.  ``mixed_case`` says that every match the rule keeps has both an upper- and a
  lower-case letter, so the rule is skipped for a text without both (a third pre-check, for hex ids and paths).
  Rules with the same pattern share one search for it (each still validates the matches on its own).

Value rules apply to every string, under any key (the allow-list only exempts key rules), and to every key: a key
that holds a secret is replaced (see ``event.py``).

Value rules are listed in priority order: when two candidates overlap, the one starting first wins, and at equal
starts the earlier rule wins.  Replacement values never match any value rule again (they start with ``[``, which
every value class excludes), which is what makes scrubbing idempotent.

The same table is meant to be mirrored by the JavaScript SDK; ``tests/vectors/scrub.json`` is the shared contract.
Every pattern is written in the subset of regular expression syntax that Python and JavaScript (with the ``u``
flag) read alike: no possessive quantifiers or atomic groups, no ``(?P=name)`` backreferences, look-behinds of
bounded length only, no escapes of characters that need none (a double quote is ``\\x22``: ``\\"`` is an error in
JavaScript), named groups as ``(?P<v>...)`` (JavaScript spells it ``(?<v>...)``, a mechanical rewrite), and
a leading ``(?i)`` or ``(?s)`` (a flag in JavaScript).  Two need a mechanical rewrite: ``secret_assignment``,
whose closing quote is a backreference to the opening one, ``(?P=q)`` (JavaScript: ``\\k<q>``), and
``pem_private_key``, which ends at ``\\Z`` for a truncated key (JavaScript: ``$`` without the ``m`` flag).
Validators (``card``, ``iban``, ``tokenish``, ``ipv6``, ``basic_credentials``, ``base64_secret``, ``opaque_token``)
are code, described in ``validators.py``, and must be ported with the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["ALLOWED_KEYS", "CONFUSABLES", "OPTIONAL_RULES", "RULES", "Rule"]

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
    mixed_case: bool = False


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
    mixed_case: bool = False,
) -> Rule:
    label = f"[Filtered:{name}]"
    return Rule(
        name=name,
        kind="value",
        pattern=pattern,
        label=label,
        validator=validator,
        hints=hints,
        trigger=trigger,
        mixed_case=mixed_case,
    )


# Keys (exact, after lower-casing) that no key rule filters, and that end a key rule above them.  They carry
# identifiers the dashboard groups and links by.  "author"/"authority" are here because "auth" is a substring rule.
# Their values still go through every value rule: a secret under ``trace_id`` is removed like anywhere else.
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


def _escape(ch: str) -> str:
    # Only what is special outside a character class: JavaScript's u flag rejects escapes such as "\-" there.
    return "\\" + ch if ch in "\\.^$*+?()[]{}|/" else ch


def _names(words: str) -> str:
    """``a|b|...`` as a trie after a look-ahead on the first letters (``(?=[ab])(?:a...|b...)``): Python's regex
    engine tries a case-insensitive alternation word by word at every position otherwise, which is slow.  Matches
    exactly the same names; the result is plain regular expression text like the rest of the table."""
    trie: dict[str, Any] = {}
    for word in words.split("|"):
        node = trie
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: dict[str, Any]) -> str:
        branches = [_escape(ch) + emit(child) for ch, child in sorted(node.items()) if ch]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        if "" in node:  # a word ends here, longer ones go on
            return body + "?" if len(branches) == 1 and len(body) == 2 else f"(?:{body})?"
        return body

    first = "".join(sorted({word[0] for word in words.split("|")}))
    return f"(?=[{first}])" + emit(trie) if len(first) > 1 else emit(trie)


_SECRET_PARAM_NAMES = _names(
    "access_token|refresh_token|id_token|auth_token|session_token|client_secret|client_assertion|api_key|apikey|"
    "api-key|private_token|access_key|secret_key|x-amz-signature|x-amz-security-token|x-amz-credential|"
    "x-goog-signature|x-goog-credential|x-goog-security-token|oauth_token|oauth_verifier|oauth_signature|"
    "credentials|credential|signature|secret|password|passwd|passphrase|pwd|token|key|sig|session_id|sessionid"
)
# Parameters that are secrets only in a query string or a URL fragment (after ``?``, ``&`` or ``#``): an OAuth
# authorization code, ``auth=``, one-time codes.  In free text ``code=500`` or ``auth=basic`` are not.
_QUERY_ONLY_PARAM_NAMES = _names("code|auth|otp|ticket|assertion|samlresponse|saml_response")
# Names whose value a plain ``NAME=value`` or ``name: value`` sets (environment files, config dumps, log lines).
_SETTING_NAMES = _names(
    "password|passwd|passphrase|pwd|private_key|private-key|privatekey|secret|signature|ssh_key|ssh-key|sshkey|"
    "token|api_key|api-key|apikey|access_key|access-key|accesskey|credential"
)
# Lower-case literals one of which occurs wherever a name above does.
_SETTING_HINTS = (
    "pass", "pwd", "secret", "token", "api_key", "api-key", "apikey", "access_key", "access-key", "accesskey",
    "private_key", "private-key", "privatekey", "ssh_key", "ssh-key", "sshkey", "credential", "signature",
)  # fmt: skip
# The candidates of both rules for runs of the base64 alphabet: whole runs of 16 or more, with their padding, not
# after "$" (Swift symbol names such as $s10Foundation..., shell and template variables).  One pattern for both, so
# that the engine looks for it once; their validators want both cases and their own minimum length.
_BASE64_RUN = r"(?<![A-Za-z0-9+/_$-])[A-Za-z0-9+/_-]{16,}={0,2}(?![A-Za-z0-9+/=_-])"
# Triggers of the two rules: a run of 32 for opaque tokens; for base64 of text a run of 16 whose characters 1, 5
# and 9 are ones that the top six bits of an ASCII byte encode to (the validator wants the same: text that starts
# with ASCII).  Identifiers of 16 to 31 characters (``SourceFileLoader``) then skip both rules at the pre-check.
_TEXT_RUN16 = (
    r"(?<![A-Za-z0-9+/_$-])[CDI-Za-f][A-Za-z0-9+/_-]{3}[CDI-Za-f][A-Za-z0-9+/_-]{3}[CDI-Za-f][A-Za-z0-9+/_-]{7}"
)
_RUN32 = r"(?<![A-Za-z0-9+/_$-])[A-Za-z0-9+/_-]{32}"
# AWS access key ids that have a secret access key: long-term (AKIA) and temporary (ASIA).
_AWS_SECRET_OWNERS = "AKIA|ASIA"

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
    _key("sshkey"),
    _part("pin"),
    _part("otp"),
    _part("totp"),
    _part("hotp"),
    _part("creds"),
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
        r"(?i)\bauthorization[\x22']?\s*[:=]\s*[\x22']?(?:(?:basic|bearer|token|digest|apikey)\s+)?(?P<v>(?!(?:basic|bearer|token|digest|apikey)\s)[^\s\x22',;\[][^\s\x22',;]{3,})",
        hints=("authorization",),
    ),
    # The user may be empty (``redis://:pw@host``) and the password may hold ``@``: the value runs to the last ``@``
    # before the host (``/``, ``?``, ``#`` and spaces end it, so ``https://host:443/@scope/pkg`` is no password).
    _value(
        "url_credentials",
        r"[A-Za-z][A-Za-z0-9+.-]*://[^\s:/?#@\[\]]*:(?P<v>[^\s/?#\[\]]+)@",
        hints=("://",),
        trigger=r"://[^\s:/?#@\[\]]*:",
    ),
    # ``curl -u user:password``, ``--user``, ``--proxy-user``, ``-U``: the part after the first colon.
    _value(
        "cli_credentials",
        r"(?<![A-Za-z0-9_-])(?:-u|-U|--user|--proxy-user)(?:\s+|=)?[\x22']?[^\s:\x22'\[]*:(?P<v>[^\s\x22'\[][^\s\x22']*)",
        hints=("-u",),
    ),
    _value(
        "secret_param",
        rf"(?i)(?<![A-Za-z0-9_.-]){_SECRET_PARAM_NAMES}=(?P<v>[^\s&#\x22'\[\]<>,;)]+)",
        hints=("=",),
        # The last letter of every name, the "=" and the value's first character.  Under (?i) the letters i, k and
        # s also match non-ASCII ones (ı, İ, K, ſ); s ends a name ("credentials"), so ſ is in the class too.
        trigger=r"[dDeEgGhHlLnNrRsStTyYſ]=[^\s&#\x22'\[\]<>,;)]",
    ),
    _value(
        "oauth_param",
        rf"(?i)[?&#]{_QUERY_ONLY_PARAM_NAMES}=(?P<v>[^\s&#\x22'\[\]<>,;)]+)",
        hints=("code=", "auth=", "otp=", "ticket=", "assertion=", "response="),
    ),
    _value(
        "secret_assignment",
        # The name may have any prefix (``db_password``); it is left out of the pattern, which then starts at the
        # secret word itself instead of trying every prefix length at every word.
        r"(?i)(?=[pstac])(?:p(?:ass(?:word|wd)|wd|rivate_key)|secret|token|api_?key|credential)"
        r"[A-Za-z0-9_]{0,40}[\x22']?\s*[:=]\s*(?P<q>[\x22'])(?P<v>[^\x22'\[\n][^\x22'\n]*)(?P=q)",
        hints=("pass", "pwd", "secret", "token", "api_key", "apikey", "private_key", "credential"),
        trigger=r"[:=]\s*[\x22']",
    ),
    # The unquoted form: ``DB_PASSWORD=hunter2``, ``aws_secret_access_key: ...``, ``password: hunter2`` in a log
    # line, ``X-Hub-Signature-256: sha256=...``.  The value runs to the next space, quote or ``;`` (``,`` is part
    # of it: ``X-Signature: t=...,v1=...``); an authentication scheme word (``Bearer``, ``Basic``) before it is
    # skipped, so the credential itself goes.
    _value(
        "secret_setting",
        rf"(?i){_SETTING_NAMES}[A-Za-z0-9_.-]{{0,40}}[\x22']?"
        r"[ \t]*[:=][ \t]*(?:(?:bearer|basic|token|digest)[ \t]+)?"
        r"(?P<v>(?!(?:bearer|basic|token|digest)[ \t])[^\s\x22'\[,;][^\s\x22';]*)",
        hints=_SETTING_HINTS,
        trigger=r"[:=]",
    ),
    _value(
        "aws_access_key",
        r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA)[A-Z0-9]{16}\b",
        hints=("akia", "asia", "abia", "acca", "agpa", "aida", "aipa", "anpa", "anva", "aroa", "apka"),
        trigger=r"AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA",
    ),
    # The pairing rule: 40 characters of the secret access key alphabet shortly after an access key id that has
    # one (``AKIA... wJalr...``, ``['AKIA...', '...']``, ``"AccessKeyId": "ASIA...", "SecretAccessKey": "..."``),
    # whatever they look like.  Lists of separate strings are paired in ``event.py``.
    _value(
        "aws_secret_key",
        rf"\b(?:{_AWS_SECRET_OWNERS})[A-Z0-9]{{16}}\b[\s\x22',:;=|/(){{}}]{{1,8}}"
        r"(?:[A-Za-z_]{1,40}[\s\x22',:;=|(){}]{1,6})?(?P<v>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])",
        hints=("akia", "asia"),
        trigger=_AWS_SECRET_OWNERS,
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
        r"(?<![A-Za-z0-9_.])[2-6]\d{3}(?:[ .-]?\d){9,15}(?![A-Za-z0-9_]|[.-]\d)",
        validator="card",
        trigger=r"[2-6]\d{3}(?:[ .-]?\d){9}",
    ),
    _value(
        "iban",
        r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,34}(?![A-Za-z0-9])",
        validator="iban",
        trigger=r"[A-Z][A-Z]\d\d(?: ?[A-Z0-9]){11}",
    ),
    # ``Basic <base64>`` without an ``Authorization`` name before it, when it decodes to ``user:password``.
    _value(
        "basic_auth",
        r"(?i)\bbasic[ \t]+(?P<v>[A-Za-z0-9+/]{6,}={0,2})(?![A-Za-z0-9+/=])",
        validator="basic_credentials",
        hints=("basic",),
    ),
    # Base64 (standard or URL-safe) of text that holds a secret: ``password=...``, a PEM key, a token.  The
    # validator decodes it and runs these rules on the text.
    _value("base64_secret", _BASE64_RUN, validator="base64_secret", trigger=_TEXT_RUN16, mixed_case=True),
    # Long opaque tokens with no name or prefix to go by (an AWS secret access key in a list, a session token in a
    # log line).  The validator (32 characters at least) is calibrated on a large corpus of what is not a secret
    # (docs/redaction.md).
    _value(
        "high_entropy",
        _BASE64_RUN,
        validator="opaque_token",
        trigger=_RUN32,
        mixed_case=True,
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

# Letters that look like Latin ones, folded to them before key rules are matched (after NFKC, which already maps
# full-width and other compatibility forms).  Cyrillic and Greek, upper and lower case; a subset of Unicode's
# confusables list chosen for what a key name can be made to look like.
CONFUSABLES: dict[str, str] = {
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c",
    "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i", "ј": "j", "ԁ": "d", "ԛ": "q", "ԝ": "w",
    "ɡ": "g", "һ": "h", "ӏ": "l", "ո": "n", "ս": "u",
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C", "Т": "T",
    "У": "Y", "Х": "X", "Ѕ": "S", "І": "I", "Ј": "J", "Ԛ": "Q", "Ԝ": "W",
    # Greek
    "α": "a", "ο": "o", "ρ": "p", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "τ": "t", "υ": "u", "χ": "x",
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O",
    "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
}  # fmt: skip
