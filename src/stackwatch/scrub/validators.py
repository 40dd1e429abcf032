"""Validators that confirm (or trim) a value-rule candidate.

A validator gets the candidate text and returns how many leading characters of it are the secret, or ``None`` to
reject it.  Trimming lets a greedy regex over-match (an IBAN followed by ``EUR``) and still find the real value.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

__all__ = ["VALIDATORS", "iban_ok", "luhn_ok"]

Validator = Callable[[str], int | None]

_TOKEN_PUNCT = frozenset("-._~+/=")

# Card brands by prefix (inclusive ranges on the leading digits) and the lengths they issue.
_CARD_BRANDS: tuple[tuple[int, int, int, frozenset[int]], ...] = (
    (1, 4, 4, frozenset({13, 16, 19})),  # Visa
    (2, 51, 55, frozenset({16})),  # Mastercard
    (4, 2221, 2720, frozenset({16})),  # Mastercard 2-series
    (2, 34, 34, frozenset({15})),  # Amex
    (2, 37, 37, frozenset({15})),
    (4, 6011, 6011, frozenset(range(16, 20))),  # Discover
    (2, 65, 65, frozenset(range(16, 20))),
    (3, 644, 649, frozenset(range(16, 20))),
    (4, 3528, 3589, frozenset(range(16, 20))),  # JCB
    (2, 36, 36, frozenset(range(14, 20))),  # Diners
    (3, 300, 305, frozenset(range(14, 20))),
    (2, 38, 39, frozenset(range(14, 20))),
    (2, 62, 62, frozenset(range(16, 20))),  # UnionPay
)

_IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AT": 20, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29, "CH": 21, "CY": 28,
    "CZ": 24, "DE": 22, "DK": 18, "EE": 20, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GI": 23,
    "GL": 18, "GR": 27, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IS": 26, "IT": 27, "KW": 30, "KZ": 20,
    "LB": 28, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "ME": 22, "MK": 19, "MT": 31, "MU": 30,
    "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SE": 24,
    "SI": 19, "SK": 24, "SM": 27, "TN": 24, "TR": 26, "UA": 29,
}  # fmt: skip


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


VALIDATORS: dict[str, Validator] = {"card": _card, "iban": _iban, "tokenish": _tokenish, "ipv6": _ipv6}
