"""Validators that confirm (or trim) a value-rule candidate.

A validator gets the candidate text and returns how many leading characters of it are the secret, or ``None`` to
reject it.  Trimming lets a greedy regex over-match (an IBAN followed by ``EUR``) and still find the real value.
"""

from __future__ import annotations

import binascii
import ipaddress
import re
from collections.abc import Callable

from stackwatch.scrub.rules import VALIDATOR_DATA

__all__ = ["VALIDATORS", "base64_secret", "decoded_text", "iban_ok", "luhn_ok", "opaque_token"]

Validator = Callable[[str], int | None]

_TOKEN_PUNCT = frozenset("-._~+/=")
_TEXT_LEADS = frozenset("CDIJKLMNOPQRSTUVWXYZabcdef")

# Card brands by prefix (inclusive ranges on the leading digits) and the lengths they issue; IBAN lengths by
# country.  Both tables are data of rules.json, shared with the JavaScript engine.
_CARD_BRANDS: tuple[tuple[int, int, int, frozenset[int]], ...] = tuple(
    (brand["digits"], brand["low"], brand["high"], frozenset(brand["lengths"]))
    for brand in VALIDATOR_DATA["card_brands"]
)
_IBAN_LENGTHS: dict[str, int] = dict(VALIDATOR_DATA["iban_lengths"])


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(compact: str) -> bool:
    rearranged = compact[4:] + compact[:4]
    try:
        number = int("".join(str(int(ch, 36)) for ch in rearranged))
    except ValueError:
        return False
    return number % 97 == 1


def _card(candidate: str) -> int | None:
    digits = "".join(ch for ch in candidate if ch.isdigit())
    separators = {ch for ch in candidate if not ch.isdigit()}
    if len(separators) > 1 or not 13 <= len(digits) <= 19:
        return None
    if "." in separators:
        # Dots only as cards are printed, in groups of four (``4111.1111.1111.1111``), never a decimal number.
        groups = candidate.split(".")
        if len(groups) < 4 or any(len(g) != 4 for g in groups[:-1]) or not 1 <= len(groups[-1]) <= 4:
            return None
    for width, low, high, lengths in _CARD_BRANDS:
        if low <= int(digits[:width]) <= high and len(digits) in lengths:
            return len(candidate) if luhn_ok(digits) else None
    return None


def _iban(candidate: str) -> int | None:
    expected = _IBAN_LENGTHS.get(candidate[:2])
    compact_len = 0
    for end, ch in enumerate(candidate, start=1):
        if ch != " ":
            compact_len += 1
        if compact_len == expected:
            # Trim an over-match, but only at a boundary ("DE89 ... 00 EUR", not in the middle of a token).
            if end != len(candidate) and candidate[end] != " ":
                return None
            break
    else:
        end = len(candidate)
        if expected is not None or not 15 <= compact_len <= 34:
            return None
    return end if iban_ok(candidate[:end].replace(" ", "")) else None


def _tokenish(candidate: str) -> int | None:
    # "Bearer authentication" is prose; real tokens carry digits or punctuation.
    return len(candidate) if any(ch.isdigit() or ch in _TOKEN_PUNCT for ch in candidate) else None


def _ipv6(candidate: str) -> int | None:
    if candidate.count(":") < 2 or not any(ch != ":" for ch in candidate):
        return None
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return None
    return len(candidate)


def decoded_text(candidate: str) -> str | None:
    """The text ``candidate`` is the base64 (standard or URL-safe, padding optional) of, or None.

    Text means valid UTF-8 of printable characters and whitespace only: random bytes (what a token is) almost
    never decode so.
    """
    core = candidate.rstrip("=")
    if len(core) % 4 == 1:
        return None
    # The first character of every four encodes the top six bits of a byte: for ASCII text (0x08-0x7e) one of
    # these.  The first three must be (the text starts with ASCII) and most of the others, which rejects random
    # tokens and identifiers before any decoding.
    leads = core[::4]
    if not all(ch in _TEXT_LEADS for ch in leads[:3]) or sum(ch in _TEXT_LEADS for ch in leads) * 4 < len(leads) * 3:
        return None
    if "-" in core or "_" in core:
        if "+" in core or "/" in core:
            return None
        core = core.replace("-", "+").replace("_", "/")
    try:
        text = binascii.a2b_base64(core + "=" * (-len(core) % 4)).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    if not text or not all(ch.isprintable() or ch in "\t\n\r" for ch in text):
        return None
    return text


def _basic_credentials(candidate: str) -> int | None:
    # ``Basic <base64 of user:password>``; "Basic authentication" and other base64 are left alone.
    text = decoded_text(candidate)
    if text is None:
        return None
    colon = text.find(":")
    return len(candidate) if 0 <= colon < len(text) - 1 else None


def base64_secret(finds_secret: Callable[[str], bool]) -> Validator:
    """A validator for base64 that decodes to text in which ``finds_secret`` (the value rules) finds a secret."""

    def validate(candidate: str) -> int | None:
        if candidate.lower() == candidate or candidate.upper() == candidate:
            return None  # base64 of text mixes cases: skip the decoding for identifiers and hex
        text = decoded_text(candidate)
        return len(candidate) if text is not None and finds_secret(text) else None

    return validate


# -- the opaque-token detector -----------------------------------------------------------------------------------
#
# A candidate (a run of 32+ characters of the base64/base64url alphabet) is a token when
#   1. it has both upper- and lower-case letters (hex digests, UUIDs, git SHAs, single-case ids never qualify),
#   2. it is not an SRI digest (``sha384-...``), a mangled symbol name (``_ZN...``, ``_R...``) or an OpenSSH
#      public key (``AAAAC3NzaC1lZDI1NTE5...``),
#   3. it is not (nearly) all hex, not a path of words (``org/en-US/docs/Web/HTTP``) and not base64 of printable
#      text (ordinary data; ``base64_secret`` looks inside it), and
#   4. it reads as random: ``switches - 0.6 * wordy >= 0.2``, where ``switches`` is the share of neighbouring
#      characters of different classes (lower, upper, digit, other; about 0.62 for random base62, 0.2-0.38 for
#      camelCase and paths) and ``wordy`` the share of characters in word-like runs (four or more letters,
#      capitalised or lower-case or an upper-case acronym, with vowels and no four consonants in a row).
# The calibration test (tests/test_scrub_entropy.py) and docs/redaction.md give the measured rates.
_TOKEN_MIN = 32
_SCORE_MIN = 0.2
_WORDY_WEIGHT = 0.6
# SRI digests, Itanium and Rust symbol names, OpenSSH public keys (the base64 of "ssh-rsa", "ssh-ed25519", ...).
_EXEMPT_PREFIX = re.compile(r"sha(?:1|224|256|384|512)-|_Z|_R[A-Z]|AAAA[B-E][0-9A-Za-z]{2}zaC1|AAAAE2VjZHNh")
_WORD = re.compile(r"[A-Z]?[a-z]{3,}|[A-Z]{4,}(?![a-z])")
_CONSONANTS4 = re.compile(r"[^aeiouyAEIOUY]{4}")
_VOWELS = frozenset("aeiouyAEIOUY")
_HEX = frozenset("0123456789abcdefABCDEF")
_SEPARATORS = re.compile(r"[/_+=-]")


# Runs of one class of character: the number of class switches is one less than the number of runs.
_CLASS_RUNS = re.compile(r"[a-z]+|[A-Z]+|[0-9]+|[^a-zA-Z0-9]+")


def token_score(core: str) -> float:
    """How random ``core`` reads (see above): about 0.6 for a random token, below 0 for identifiers and paths."""
    switches = (len(_CLASS_RUNS.findall(core)) - 1) / (len(core) - 1)
    wordy = 0
    for match in _WORD.finditer(core):
        word = match.group()
        if len(word) >= 4 and sum(ch in _VOWELS for ch in word) * 4 >= len(word) and not _CONSONANTS4.search(word):
            wordy += len(word)
    return switches - _WORDY_WEIGHT * wordy / len(core)


def _reads_as_path(core: str) -> bool:
    """Three or more parts between separators, each a number, a short or acronym part, or a pronounceable word
    (``org/en-US/docs/Web/HTTP/Headers/X-Forwarded-For``); parts of a random token mix letters and digits."""
    parts = _SEPARATORS.split(core)
    if len(parts) < 3:
        return False
    for part in parts:
        if part.isdigit() or len(part) <= 3 or (part.isupper() and len(part) <= 6):
            continue
        if not part.isalpha() or not any(ch in _VOWELS for ch in part) or _CONSONANTS4.search(part):
            return False
    return True


def opaque_token(candidate: str) -> int | None:
    core = candidate.rstrip("=")
    if len(core) < _TOKEN_MIN or core.lower() == core or core.upper() == core:
        return None
    if sum(ch not in _HEX for ch in core) * 8 < len(core):
        return None  # hex with a letter or two around it: a Gerrit Change-Id (I + 40 hex), a prefixed digest
    if _EXEMPT_PREFIX.match(core) or _reads_as_path(core) or decoded_text(candidate) is not None:
        return None
    return len(candidate) if token_score(core) >= _SCORE_MIN else None


VALIDATORS: dict[str, Validator] = {
    "card": _card,
    "iban": _iban,
    "tokenish": _tokenish,
    "ipv6": _ipv6,
    "basic_credentials": _basic_credentials,
    "opaque_token": opaque_token,
}
