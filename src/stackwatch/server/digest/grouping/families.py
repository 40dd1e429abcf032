"""Platform families: which rules of grouping version 2 (and which project rules) apply to a frame.

A frame's family comes from its own ``platform`` when the SDK set one (a React Native event mixes JavaScript and
native frames), else from the event's. Cocoa frames are native code when they carry an instruction address;
without one they are from the SDK's own reporting and count as ``other``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FAMILIES", "family_of"]

# Platform name (as SDKs send it) -> family.
_PLATFORM_FAMILY: dict[str, str] = {
    "javascript": "javascript",
    "node": "javascript",
    "native": "native",
    "c": "native",
    "cpp": "native",
    "objc": "native",
    "swift": "native",
    "java": "jvm",
    "kotlin": "jvm",
    "android": "jvm",
    "scala": "jvm",
    "clojure": "jvm",
    "groovy": "jvm",
    "csharp": "dotnet",
    "python": "python",
    "ruby": "ruby",
    "php": "php",
    "go": "go",
    "rust": "rust",
}
FAMILIES = frozenset({*_PLATFORM_FAMILY.values(), "other"})


def family_of(frame: dict[str, Any], platform: str) -> str:
    own = frame.get("platform")
    name = (own if isinstance(own, str) and own else platform).lower()
    if name == "cocoa":
        return "native" if frame.get("instruction_addr") or _is_objc_or_swift(frame) else "other"
    return _PLATFORM_FAMILY.get(name, "other")


def _is_objc_or_swift(frame: dict[str, Any]) -> bool:
    function = frame.get("function")
    if isinstance(function, str) and function[:2] in ("-[", "+["):
        return True
    path = frame.get("filename") or frame.get("abs_path")
    return isinstance(path, str) and path.endswith((".swift", ".m", ".mm"))
