"""Grouping, version 2: version 1's precedence, with frames read per platform family so equal errors merge.

In order of precedence, as in version 1:

1. A fingerprint: the SDK's, else the first matching project fingerprint rule's
   (``fingerprints.effective_fingerprint``); ``{{ default }}`` in it stands for the hash the steps below compute.
2. The stack traces of every exception in the chain, each exception's type included. Frames are read by family
   (grouping/families.py): names go through the rewrite table (grouping/frames.py), and the built-in and project
   stack trace rules (grouping/builtin.py, rules.py) decide which frames are in-app and which count at all.
   Then, as in version 1, only the in-app frames count when there are any, otherwise all frames, except that
   frames the rules (not the SDK) put out of the app, and native system frames, go while frames nobody ruled on
   remain. Native frames without a name count only when no native frame has one, by their offset in their image.
   A crash handler's made-up (``synthetic``) exception type does not count.
3. Without frames that count: exception types and parameterized values (and an NSError's code).
4. For messages: the log template, or the message with its variable parts replaced by placeholders.

What a frame contributes depends on its family (``_STYLES``): never its line number. A Python event with the
SDK's ``in_app`` flags hashes as it did under version 1.
"""

from __future__ import annotations

import hashlib
from typing import Any

from stackwatch.server.digest.grouping.builtin import BUILTIN_FIXED_RULES, BUILTIN_STACK_RULES
from stackwatch.server.digest.grouping.fingerprints import effective_fingerprint, is_default_marker
from stackwatch.server.digest.grouping.frames import FrameView, view_of
from stackwatch.server.digest.grouping.parameterize import parameterize
from stackwatch.server.digest.grouping.rules import EMPTY, ProjectRules, apply_stack_rules
from stackwatch.server.digest.normalize import NormalizedEvent

__all__ = ["VERSION", "default_components", "grouping_hash", "in_app"]

VERSION = 2
BUILTIN = ProjectRules.parse(BUILTIN_STACK_RULES, "")
BUILTIN_FIXED = ProjectRules.parse(BUILTIN_FIXED_RULES, "")
_NATIVE = frozenset({"native", "rust"})
# Per family: what says where the frame is besides its function (``module``: the module, else the file's base
# name; ``file``: the file's base name; ``none``), and when its source line counts.
# Native code is grouped on the function alone: the same function is built from other paths on other machines.
# JavaScript's source line counts only for a frame without a function, and only if short: a minified line or
# one browser's missing name must not split an issue. Ruby by file: sentry-ruby sets ``module`` only from Ruby
# 3.4's ``Class#method`` labels, so the same frame has a module on one Ruby and none on the next.
_STYLES: dict[str, tuple[str, str]] = {
    "python": ("module", "always"),
    "javascript": ("module", "without-function"),
    "native": ("none", "never"),
    "rust": ("none", "never"),
    "ruby": ("file", "never"),
}
_DEFAULT_STYLE = ("module", "never")
_MAX_SOURCE_LINE = 120


def in_app(frame: dict[str, Any], platform: str, rules: ProjectRules = EMPTY) -> bool | None:
    """Whether the frame is the project's own code: the SDK's flag, else the built-in guess, then project rules.

    ``None``: nobody knows (the SDK did not say and no rule matched).
    """
    return apply_stack_rules(view_of(frame, platform), BUILTIN, rules, BUILTIN_FIXED)[0]


class _Frame:
    __slots__ = ("in_app", "ruled_out", "view")

    def __init__(self, view: FrameView, flag: bool | None) -> None:
        self.view = view
        self.in_app = flag
        # Not in-app by a rule's guess rather than the SDK's word, or a native system frame: such frames go when
        # frames nobody ruled on remain (Android's framework below the app's code, libc below a crash).
        self.ruled_out = flag is False and (view.sdk_in_app is not False or view.family in _NATIVE)


def _counted_frames(exception: dict[str, Any], platform: str, rules: ProjectRules) -> list[_Frame]:
    stacktrace = exception.get("stacktrace")
    frames = stacktrace["frames"] if isinstance(stacktrace, dict) else []
    counted = []
    for frame in frames:
        view = view_of(frame, platform)
        flag, group = apply_stack_rules(view, BUILTIN, rules, BUILTIN_FIXED)
        if group:
            counted.append(_Frame(view, flag))
    return counted


def _select_in_app(chains: list[list[_Frame]]) -> list[list[_Frame]]:
    """Version 1's choice (in-app frames when there are any, else all), less the frames rules put out."""
    every = [frame for frames in chains for frame in frames]
    if any(frame.in_app is True for frame in every):
        return [[frame for frame in frames if frame.in_app is True] for frames in chains]
    if not any(frame.in_app is None for frame in every):
        return chains
    return [[frame for frame in frames if not frame.ruled_out] for frames in chains]


def _select_symbolicated(chains: list[list[_Frame]]) -> list[list[_Frame]]:
    """Native frames without a name count only when no native frame has one, and then by their image offset."""
    native = [frame for frames in chains for frame in frames if frame.view.family in _NATIVE]
    named = any(frame.view.symbolicated for frame in native)

    def keep(frame: _Frame) -> bool:
        if frame.view.family not in _NATIVE or frame.view.symbolicated:
            return True
        return not named and _image_offset(frame.view) is not None

    return [[frame for frame in frames if keep(frame)] for frames in chains]


def _address(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value, 16) if value.lower().startswith("0x") else int(value)
        except ValueError:
            return None
    return None


def _image_offset(view: FrameView) -> str | None:
    """``Shop+0x3f21c``: where an unsymbolicated frame is in its image, the same whatever address it loaded at."""
    instruction, image = _address(view.frame.get("instruction_addr")), _address(view.frame.get("image_addr"))
    if instruction is None or image is None or instruction < image:
        return None
    return f"{view.package.rsplit('/', 1)[-1]}+{instruction - image:#x}"


def _frame_component(view: FrameView) -> str:
    place, source = _STYLES.get(view.family, _DEFAULT_STYLE)
    if view.family in _NATIVE and not view.symbolicated:
        return f"frame:{_image_offset(view)}"
    parts = [] if place == "none" else [view.place(by_module=place == "module")]
    parts.append(view.function)
    line = view.frame.get("context_line")
    if source != "never" and isinstance(line, str) and line.strip():
        line = line.strip()
        if source == "always":
            parts.append(line[:300])
        elif not view.function and len(line) <= _MAX_SOURCE_LINE:
            parts.append(line)
    return "frame:" + "|".join(parts)


def _type(exception: dict[str, Any]) -> str:
    """The exception's type, unless a crash handler made it up (``synthetic``: a signal name, not the error)."""
    mechanism = exception.get("mechanism")
    if isinstance(mechanism, dict) and mechanism.get("synthetic") is True:
        return "<synthetic>"
    return str(exception.get("type") or "")


def _stack_components(event: NormalizedEvent, rules: ProjectRules) -> list[str] | None:
    counted = [_counted_frames(exception, event.platform, rules) for exception in event.exceptions]
    chains = _select_symbolicated(_select_in_app(counted))
    if not any(chains):
        return None
    components = []
    for exception, frames in zip(event.exceptions, chains, strict=True):
        components.append(f"type:{_type(exception)}")
        components.extend(_frame_component(frame.view) for frame in frames)
    return components


def _exception_components(event: NormalizedEvent) -> list[str] | None:
    if not event.exceptions:
        return None
    return [
        f"type:{exception.get('type') or ''}|value:{parameterize(str(exception.get('value') or ''))}{_code(exception)}"
        for exception in event.exceptions
    ]


def _code(exception: dict[str, Any]) -> str:
    """An NSError's code: its value (``Code: -1001``) is parameterized away, yet the code is what the error is."""
    mechanism = exception.get("mechanism")
    meta = mechanism.get("meta") if isinstance(mechanism, dict) else None
    ns_error = meta.get("ns_error") if isinstance(meta, dict) else None
    code = ns_error.get("code") if isinstance(ns_error, dict) else None
    return f"|code:{code}" if isinstance(code, (int, str)) and not isinstance(code, bool) else ""


def _message_components(event: NormalizedEvent) -> list[str]:
    logentry = event.data.get("logentry") or {}
    return [f"message:{parameterize(logentry.get('message') or '')}"]


def default_components(event: NormalizedEvent, rules: ProjectRules = EMPTY) -> list[str]:
    return _stack_components(event, rules) or _exception_components(event) or _message_components(event)


def _digest(components: list[str]) -> str:
    return hashlib.sha256("\n".join(components).encode("utf-8", "surrogatepass")).hexdigest()[:32]


def grouping_hash(event: NormalizedEvent, rules: ProjectRules = EMPTY) -> str:
    fingerprint = effective_fingerprint(event, rules)
    if not fingerprint:
        return _digest(default_components(event, rules))
    default: str | None = None
    parts = []
    for part in fingerprint:
        if is_default_marker(part):
            default = default or _digest(default_components(event, rules))
            parts.append(f"default:{default}")
        else:
            parts.append(f"fingerprint:{part}")
    return _digest(parts)
