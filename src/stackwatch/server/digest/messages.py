"""Log messages as Sentry shows them: a template filled in with the parameters the SDK sent beside it.

Logging integrations send ``logentry {"message": "charge %s failed after %d tries", "params": ["ord_1", 3]}``:
the template is what grouping looks at (every order's failure is one issue), the filled-in text is what a
person reads in the title. Three families of templates occur in practice:

* printf style (Python's ``logging``, PHP, C): ``%s %d %i %u %f %e %g %r %a %x %o %%`` with the usual flags,
  width and precision, positional with a list of params or ``%(name)s`` with a dict;
* curly braces with a dict (``{name}``: Python's ``str.format``, structured loggers);
* curly braces with a list (``{}``: SLF4J/Logback, Rust; ``{0}``: .NET, Java's ``MessageFormat``). A format spec
  after the field (``{0:N2}``, ``{0,8}``, ``{name!r}``) is accepted and not applied.

Params that do not fit the template (too few, a name that is missing, a list where names are wanted, a ``%d``
given a word) leave it unformatted: a title is never guessed at, and formatting never fails. Params beyond
what the template uses are ignored (SLF4J passes the exception as a trailing param). Sizes are bounded: a width
or precision above :data:`MAX_WIDTH` does not fit either, so ``%999999999s`` cannot blow up memory.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

__all__ = ["MAX_MESSAGE", "MAX_WIDTH", "format_message"]

MAX_MESSAGE = 8192  # characters of a template or of the formatted message that are kept
MAX_WIDTH = 100

# One printf conversion: %, an optional (name), flags, width, precision, a length modifier C code may carry (h, l,
# ll, L, z, j, t: Python ignores them too), and the conversion character.
_PRINTF = re.compile(
    r"%(?:\((?P<key>[^)]*)\))?(?P<flags>[-+ #0]*)(?P<width>\d+)?(?:\.(?P<precision>\d+))?"
    r"(?:hh|h|ll|l|L|q|j|z|t)?(?P<conversion>.?)",
    re.DOTALL,
)
# One curly-brace field, or an escaped brace. A field is empty (the next param), a number or a name, optionally
# followed by a conversion (!r), an alignment (,8) or a format spec (:N2); any other braced text is left as it is.
_CURLY = re.compile(r"\{\{|\}\}|\{(?P<field>[^{}]*)\}")
_FIELD = re.compile(r"^\s*(?P<name>\d+|[A-Za-z_][A-Za-z0-9_]*)?\s*(?:[!:,].*)?$", re.DOTALL)
_NUMBER = re.compile(r"^\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$")


class _DoesNotFit(Exception):
    """The params do not fit the template: it is shown as it is."""


def format_message(template: str, params: Any) -> str | None:
    """The template filled in with ``params`` (a list or a dict), or ``None`` when they do not fit it."""
    if not isinstance(params, (list, dict)) or not params:
        return None
    for applies, style in (("%", _printf), ("{", _curly)):
        if applies in template:
            try:
                return style(template, params)[:MAX_MESSAGE]
            except (_DoesNotFit, ValueError, TypeError, OverflowError):
                continue  # "100% of {}" is not printf, but may still be curly
    return None


# --- printf ---------------------------------------------------------------------------------------------------


def _printf(template: str, params: list[Any] | dict[str, Any]) -> str:
    replacements: list[str] = []
    position, used = 0, 0
    for match in _PRINTF.finditer(template):
        conversion, key = match["conversion"], match["key"]
        if conversion == "%" and key is None:
            replacements.append("%")
            continue
        if key is not None:
            value = _by_name(params, key)
        else:
            value = _by_position(params, position)
            position += 1
        used += 1
        replacements.append(_convert(match, value))
    if not used:
        raise _DoesNotFit("no conversion takes a param")
    return _splice(template, _PRINTF, replacements)


def _splice(template: str, pattern: re.Pattern[str], replacements: list[str]) -> str:
    """``template`` with each match of ``pattern``, in order, replaced by the next of ``replacements``."""
    pieces = iter(replacements)
    return pattern.sub(lambda _: next(pieces), template)


def _by_name(params: list[Any] | dict[str, Any], key: str) -> Any:
    if not isinstance(params, dict) or key not in params:
        raise _DoesNotFit(f"no param named {key!r}")
    return params[key]


def _by_position(params: list[Any] | dict[str, Any], index: int) -> Any:
    if not isinstance(params, list) or index >= len(params):
        raise _DoesNotFit(f"no param {index}")
    return params[index]


def _number(value: Any, kind: Callable[[Any], Any]) -> Any:
    """A param as the number a numeric conversion wants: numbers as they are, numeric strings read leniently
    (loggers of other languages stringify their arguments), anything else does not fit."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)):
        return kind(value) if kind is int else value
    if isinstance(value, str) and _NUMBER.match(value):
        number = float(value)
        return int(number) if kind is int else number
    raise _DoesNotFit(f"{value!r} is not a number")


def _integer(value: Any) -> int:
    number = _number(value, int)
    if isinstance(number, float):
        if not number.is_integer():
            raise _DoesNotFit(f"{value!r} is not a whole number")
        return int(number)
    return int(number)


_CONVERSIONS: dict[str, Callable[[Any], Any]] = {
    **dict.fromkeys("s", lambda value: as_text(value)),
    **dict.fromkeys("r", repr),
    **dict.fromkeys("a", ascii),
    **dict.fromkeys("diu", lambda value: _number(value, int)),
    **dict.fromkeys("fFeEgG", lambda value: float(_number(value, float))),
    **dict.fromkeys("xXo", _integer),
}


def _convert(match: re.Match[str], value: Any) -> str:
    conversion = match["conversion"]
    if conversion not in _CONVERSIONS:
        raise _DoesNotFit(f"unsupported conversion %{conversion}")
    width, precision = match["width"], match["precision"]
    if int(width or 0) > MAX_WIDTH or int(precision or 0) > MAX_WIDTH:
        raise _DoesNotFit("width or precision too large")
    spec = "%" + match["flags"] + (width or "") + ("." + precision if precision is not None else "")
    converted = _CONVERSIONS[conversion](value)
    if conversion in "ra":
        return str(spec + "s") % (converted,)
    return str(spec + ("d" if conversion in "iu" else conversion)) % (converted,)


def as_text(value: Any) -> str:
    """A param as ``%s`` and ``{}`` show it: strings as they are, anything else as Python's ``str`` does."""
    return value if isinstance(value, str) else str(value)


# --- curly braces ---------------------------------------------------------------------------------------------


def _curly(template: str, params: list[Any] | dict[str, Any]) -> str:
    replacements: list[str] = []
    auto, used = 0, 0
    for match in _CURLY.finditer(template):
        whole, field = match.group(0), match["field"]
        if field is None:
            replacements.append(whole[0])  # {{ or }}
            continue
        spec = _FIELD.match(field)
        if spec is None:
            replacements.append(whole)  # braced text that is not a field: {"a": 1}
            continue
        name = spec["name"]
        if name is None:
            value = _by_position(params, auto)
            auto += 1
        elif name.isdigit():
            value = _by_position(params, int(name))
        else:
            value = _by_name(params, name)
        used += 1
        replacements.append(as_text(value))
    if not used:
        raise _DoesNotFit("no field takes a param")
    return _splice(template, _CURLY, replacements)
