"""Frame names as grouping version 2 reads them: the per-family rewrites, kept as one table.

Each row is ``(families, field, pattern, replacement)``: for a frame of one of the ``families`` (``*`` for every
family, ``a|b`` for several), the ``pattern`` is replaced in the ``field`` (``function``, ``module``, ``path``, or
``symbol`` for both function and module) until it no longer matches. Rows run in order, a family's own rows before
the ``*`` rows. The aim of every row is the same: two events of one error must read the same however the browser,
the compiler or the runtime decorated the names this time. tests/test_grouping_v2.py has an example per row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from stackwatch.server.digest.grouping.families import FAMILIES, family_of
from stackwatch.server.digest.normalize import NormalizedEvent

__all__ = ["REWRITES", "FrameView", "event_views", "rewrite", "view_of"]

REWRITES: tuple[tuple[str, str, str, str], ...] = (
    # --- JavaScript function names -------------------------------------------------------------------------
    # Chrome: ``Generator.prototype.<computed> [as next]``: the alias is the only name there is.
    ("javascript", "function", r"^.*\.<computed> \[as ([^\]]*)\]$", r"\1"),
    # Chrome: ``Object.foo [as bar]``, the name it was called by; the other browsers print the function's own.
    ("javascript", "function", r"\s+\[as [^\]]*\]$", ""),
    # Chrome and Edge: ``async handler``, ``new Foo``; Firefox and Safari print the bare name.
    ("javascript", "function", r"^(?:async\*?|new)\s+", ""),
    # Safari's ``global code``, old Edge's ``Global code`` and ``Anonymous function``: no function.
    ("javascript", "function", r"(?i)^(?:global code|module code|anonymous function)$", ""),
    # Firefox: ``outer/<`` is an anonymous function inside ``outer``; Chrome and Safari give it no name.
    ("javascript", "function", r"^.*/<+$", ""),
    # Firefox: ``outer/inner<`` and ``Foo</this.bar``: the innermost name is the one Chrome prints.
    ("javascript", "function", r"<+$", ""),
    ("javascript", "function", r"^.*/", ""),
    # Safari: ``@`` before a name it could not resolve.
    ("javascript", "function", r"^@+", ""),
    # Chrome names the receiver (``Object.callback``, ``UserCard.render``, ``HTMLButtonElement.onclick``,
    # ``Foo.prototype.bar`` in old Edge); Firefox and Safari print ``callback``, ``render``: keep the last name.
    ("javascript", "function", r"^.*\.(?=[^.]*$)", ""),
    # Chrome: ``<anonymous>`` (what is left of ``Object.<anonymous>``): no function.
    ("javascript", "function", r"^(?:<anonymous>|anonymous|\?)$", ""),
    # --- JavaScript file names (read by path rules; the frame counts by the file's base name) -----------------
    # Query strings and fragments (``app.js?v=3``, cache busters).
    ("javascript", "path", r"[?#].*$", ""),
    # Webpack's source-map prefixes: ``webpack://app/./src/x.js``, ``webpack-internal:///./src/x.js``.
    ("javascript", "path", r"^webpack(?:-internal)?://[^/]*", ""),
    # React Native and Electron bundles: ``app:///main.jsbundle``.
    ("javascript", "path", r"^app:///", ""),
    # Sentry CLI's uploaded artifacts: ``~/assets/x.js``.
    ("javascript", "path", r"^~/", ""),
    # Scheme and host: the same file from another CDN or domain.
    ("javascript", "path", r"^[a-z][a-z0-9+.-]*://[^/]*", ""),
    # Version directories: ``/1.4.2/``, ``/v2/``, ``lodash@4.17.21/``.
    ("javascript", "path", r"(?:^|/)v?\d+(?:\.\d+)+/|(?:^|/)v\d+/", "/"),
    ("javascript", "path", r"@\d+(?:\.\d+)+(?:-[\w.]+)?(?=/)", ""),
    # Leading ``./`` and ``/`` left by the rows above.
    ("javascript", "path", r"^/?(?:\./)+", ""),
    ("javascript", "path", r"^/+", ""),
    # Versions in file names: ``jquery-3.5.1.min.js``.
    ("javascript", "path", r"[.-]v?\d+(?:\.\d+)+(?=\.)", ""),
    # Bundler content hashes: ``app.3f2a1c9e.js``, ``main-3f2a1c9e.chunk.js``; Vite's ``index-DiwrgTda.js``.
    # Vite's base64-like hashes need a digit or a capital beside small letters (``-settings.js`` stays).
    ("javascript", "path", r"(?i)[.-][0-9a-f]{6,}(?=\.)", ""),
    ("javascript", "path", r"-(?=[\w-]*[a-z])(?=[\w-]*[A-Z0-9])[\w-]{8}(?=\.m?js$)", ""),
    # --- Native (C, C++, Objective-C, Swift; Rust crashes arrive as native too) ------------------------------
    # Blocks: ``__29-[Foo bar:]_block_invoke_2`` is the block in ``-[Foo bar:]``.
    ("native", "function", r"^__\d+(?=[-+]\[)", ""),
    ("native", "function", r"_block_invoke(?:[._]\d+)+$", "_block_invoke"),
    # Objective-C categories: ``-[NSObject(Tracking) track]`` is ``-[NSObject track]``.
    ("native", "function", r"^([-+]\[[^\s(\]]+)\([^)]*\)", r"\1"),
    # Swift decorations: ``@objc``, ``merged``, ``specialized``, ``partial apply forwarder for``, ``thunk for``.
    (
        "native",
        "function",
        r"^(?:@objc |@nonobjc |merged |specialized |partial apply forwarder for "
        r"|(?:reabstraction )?thunk (?:helper )?for )",
        "",
    ),
    # Swift generic specializations: ``generic specialization <Swift.Int> of MyApp.sum(...)``.
    ("native", "function", r"^generic specialization <.*?> of ", ""),
    # Swift closures: ``closure #2 (Swift.Int) -> () in MyApp.Feed.load()`` is ``MyApp.Feed.load``.
    ("native", "function", r"^(?:implicit )?closure #\d+ (?:.*? )?in ", ""),
    # C++ anonymous namespaces, GCC/Clang and MSVC spellings.
    ("native", "function", r"\(anonymous namespace\)::|`anonymous namespace'::", ""),
    # Rust symbol hashes: ``myapp::run::h5f3b2a1c9d8e7f60``.
    ("native|rust", "function", r"::h[0-9a-f]{16}$", ""),
    # Rust trait impls: ``<myapp::Job as core::ops::Drop>::drop`` is ``myapp::Job::drop``.
    ("native|rust", "function", r"^<([^<>]+?) as [^<>]+>::", r"\1::"),
    # Template and generic arguments, innermost first (``operator<`` and ``operator<<`` are names, not templates).
    ("native|rust", "function", r"(?<!operator)(?<!operator<)<[^<>]*>", ""),
    # Parameter lists (``operator()`` keeps its own parentheses).
    ("native|rust", "function", r"(?<!operator)\([^()]*\)", ""),
    # Qualifiers after the parameter list: ``const``, ``&``, ``&&``, ``noexcept``.
    ("native", "function", r"\s*(?:\b(?:const|volatile|noexcept|override)\b|&{1,2})\s*$", ""),
    # Swift return types: ``MyApp.load() -> Swift.String``.
    ("native", "function", r"\s+->\s+.*$", ""),
    # C++ return types and calling conventions: ``static void __cdecl Foo::bar`` is ``Foo::bar``.
    ("native", "function", r"^(?![-+]\[)(?!.*\boperator\b).*\s(?=\S+$)", ""),
    # --- Go -------------------------------------------------------------------------------------------------
    # Closures and ``go`` statement wrappers: ``(*Server).serve.func3`` is ``(*Server).serve.func``.
    ("go", "function", r"\.(func|gowrap)\d+(?=\.|$)", r".\1"),
    # Generic instantiations: ``Map[...]``.
    ("go", "function", r"\[\.\.\.\]", ""),
    # --- JVM (Java, Kotlin, Scala, Android) -----------------------------------------------------------------
    # Lambdas: ``Foo$$Lambda$123/0x0000000800c0b448``, ``Foo$$Lambda/0x000001f0a1c4``, ``Foo$$Lambda$7``.
    ("jvm", "module", r"\$\$Lambda(?:\$\d+)?(?:/(?:0x)?[0-9a-f]+)?(?=$|\$)", "$$Lambda"),
    # D8/R8 lambdas: ``MainActivity$$ExternalSyntheticLambda3``.
    ("jvm", "module", r"-?\$\$ExternalSyntheticLambda\d+", "$$ExternalSyntheticLambda"),
    # Spring's CGLIB proxies, named ``$$EnhancerBySpringCGLIB$$8e1b3c`` before Spring 6, ``$$SpringCGLIB$$0`` since.
    ("jvm", "module", r"\$\$(?:EnhancerBy|FastClassBy)?(?:Spring)?CGLIB\$\$[\w$]*", "$$CGLIB"),
    # Other generated proxies and byte-code enhancers: ``$$HibernateProxy$$x1Y2``, ``$$MockitoMock$$123``.
    ("jvm", "module", r"\$\$([A-Za-z]+)\$\$[\w$]+", r"$$\1$$"),
    # JDK proxies: ``jdk.proxy2.$Proxy12``, ``com.sun.proxy.$Proxy7``.
    ("jvm", "module", r"\$Proxy\d+", "$Proxy"),
    ("jvm", "module", r"\bjdk\.proxy\d+\b", "jdk.proxy"),
    # Reflection accessors: ``GeneratedMethodAccessor123``, ``GeneratedConstructorAccessor9``.
    ("jvm", "module", r"(Generated\w*?Accessor)\d+", r"\1"),
    # Anonymous and local classes: ``Foo$1``, ``Foo$2$1``, Kotlin's ``Foo$bar$1``.
    ("jvm", "module", r"\$\d+(?=\$|$)", "$"),
    # Lambda bodies: ``lambda$main$0``; Kotlin's ``main$lambda$2`` and ``main$lambda-1``.
    ("jvm", "function", r"^lambda\$(.*?)\$\d+$", r"lambda$\1$"),
    ("jvm", "function", r"\$lambda[-$]\d+", "$lambda"),
    # Synthetic accessors: ``access$000``.
    ("jvm", "function", r"^access\$\d+$", "access$"),
    # --- .NET -----------------------------------------------------------------------------------------------
    # Closure classes: ``<>c__DisplayClass5_0`` (a lambda that captures) is the same place as ``<>c``.
    ("dotnet", "symbol", r"<>c__DisplayClass\d+_\d+", "<>c"),
    # Lambda bodies, async state machines, local functions: ``<Main>b__0_0``, ``<SaveAsync>d__4``,
    # ``<Run>g__Local|3_0``.
    ("dotnet", "symbol", r"<([^<>]*)>b__\d+(?:_\d+)?", r"<\1>b__"),
    ("dotnet", "symbol", r"<([^<>]*)>d__\d+", r"<\1>d__"),
    ("dotnet", "symbol", r"<([^<>]*)>g__([^|<>]*)\|\d+_\d+", r"<\1>g__\2"),
    # Anonymous types: ``<>f__AnonymousType0`2``.
    ("dotnet", "symbol", r"<>f__AnonymousType\d+", "<>f__AnonymousType"),
    # --- Ruby -----------------------------------------------------------------------------------------------
    # ``block (2 levels) in process`` is ``block in process``.
    ("ruby", "function", r" \(\d+ levels\)", ""),
    # Ruby 3.4 labels methods with their owner: ``Checkout#call``, ``block in Checkout#call``, ``Cart.build``.
    ("ruby", "function", r"(^|in )[A-Z][\w:]*[#.](?=\w)", r"\1"),
    # Compiled Rails templates: ``_app_views_users_show_html_erb__4169152711183254848_70259872``.
    ("ruby", "function", r"__-?\d+_-?\d+$", ""),
    # --- PHP ------------------------------------------------------------------------------------------------
    # PHP 8.4 closures carry their file and line: ``{closure:App\Jobs\Sync::handle():42}``.
    ("php", "function", r"\{closure:[^}]*\}", "{closure}"),
    # Before 8.4 a closure was named after its namespace: ``App\Jobs\{closure}``.
    ("php", "function", r"^.*\\\{closure\}$", "{closure}"),
    # Anonymous classes carry a path and a counter: ``class@anonymous/app/src/Job.php:12$0``.
    ("php", "symbol", r"class@anonymous[^:]*(?:\:\d+\$[0-9a-f]+)?", "class@anonymous"),
    # --- Every family (what version 1 did to every function name) -----------------------------------------
    # Memory addresses.
    ("*", "function", r"(?i)\b0x[0-9a-f]+\b", ""),
    ("*", "function", r"^\s+|\s+$", ""),
    ("*", "function", r"^async ", ""),
    ("*", "function", r"^(?:\?|<anonymous>|anonymous|<unknown>)$", "<anonymous>"),
    # Python lambdas and their locals: ``<lambda>.<locals>.inner``.
    ("*", "function", r"<lambda>.*", "<lambda>"),
    # Windows paths read like any other: rules are written with ``/``.
    ("*", "path", r"\\", "/"),
)

# A native frame without a real name: nothing, ``?``, an address, or a debugger's placeholder.
_UNSYMBOLICATED = re.compile(
    r"^(?:|\?+|<unknown>|<redacted>|(?:0x)?[0-9a-f]+|___lldb_unnamed_symbol\d+(?:\$\$.*)?|_?sub_[0-9a-f]+)$",
    re.IGNORECASE,
)
# Version 1's name for a content hash in a file name; version 2 keeps it for files outside JavaScript.
_HASHED_NAME = re.compile(r"[.-][0-9a-f]{6,}(?=\.)", re.IGNORECASE)
_FIELDS = {"function": ("function",), "module": ("module",), "path": ("path",), "symbol": ("function", "module")}


def _compile() -> dict[tuple[str, str], tuple[tuple[re.Pattern[str], str], ...]]:
    """Rows by (family, field): the family's own rows, then the ``*`` rows, each compiled once."""
    table: dict[tuple[str, str], list[tuple[re.Pattern[str], str]]] = {}
    for own in (True, False):
        for families, field, pattern, replacement in REWRITES:
            if (families == "*") == own:
                continue
            for family in FAMILIES if families == "*" else families.split("|"):
                for name in _FIELDS[field]:
                    table.setdefault((family, name), []).append((re.compile(pattern), replacement))
    return {key: tuple(rows) for key, rows in table.items()}


_TABLE = _compile()


@lru_cache(maxsize=32768)
def rewrite(family: str, field: str, text: str) -> str:
    """``text`` with every row of ``family`` and ``field`` applied, each until it no longer changes anything.

    Cached: the same names come back event after event, and the rows are most of what reading a frame costs.
    """
    for pattern, replacement in _TABLE.get((family, field), ()):
        for _ in range(8):  # nested templates and parameter lists peel off one level a pass
            text, count = pattern.subn(replacement, text)
            if not count:
                break
    return text


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


@dataclass(frozen=True, slots=True)
class FrameView:
    """One frame with its family and its names as version 2 and the rules read them."""

    frame: dict[str, Any]
    family: str
    raw_function: str
    function: str
    raw_module: str
    module: str
    paths: tuple[str, ...]  # abs_path and filename as sent (with ``/``), their normalized forms, their base names
    package: str
    symbolicated: bool
    # What path, function, module and package matchers read, each the values joined by newlines.
    texts: dict[str, str]

    @property
    def key(self) -> tuple[str, ...]:
        """Everything rules read of the frame besides ``in_app``: what their results can be remembered by."""
        return (self.family, self.raw_function, self.function, self.raw_module, self.module, self.package, *self.paths)

    @property
    def sdk_in_app(self) -> bool | None:
        flag = self.frame.get("in_app")
        return flag if isinstance(flag, bool) else None

    def place(self, *, by_module: bool = True) -> str:
        """The module, else the file's lower-cased base name: what says where the frame is, besides its name."""
        if self.module and by_module:
            return self.module
        for key in ("filename", "abs_path"):
            path = _text(self.frame.get(key))
            if path:
                if self.family == "javascript":
                    base = rewrite("javascript", "path", path.replace("\\", "/")).rsplit("/", 1)[-1]
                    return base.lower()
                base = re.split(r"[\\/]", path.split("?", 1)[0])[-1].lower()
                return _HASHED_NAME.sub("", base)
        return ""


def view_of(frame: dict[str, Any], platform: str) -> FrameView:
    family = family_of(frame, platform)
    raw_function = _text(frame.get("function")) or _text(frame.get("raw_function"))
    raw_module = _text(frame.get("module"))
    package = _text(frame.get("package"))
    names = _read(family, raw_function, raw_module, _text(frame.get("abs_path")), _text(frame.get("filename")), package)
    function, module, paths, package, symbolicated, texts = names
    return FrameView(frame, family, raw_function, function, raw_module, module, paths, package, symbolicated, texts)


@lru_cache(maxsize=32768)
def _read(
    family: str, raw_function: str, raw_module: str, abs_path: str, filename: str, package: str
) -> tuple[str, str, tuple[str, ...], str, bool, dict[str, str]]:
    """A frame's names as version 2 reads them, remembered: the same frames come back event after event."""
    raw_paths = [path for path in (abs_path, filename) if path]
    forward = [path.replace("\\", "/") for path in raw_paths]
    full = [*forward, *(rewrite(family, "path", path) for path in raw_paths)]
    paths = tuple(dict.fromkeys([*full, *(path.rsplit("/", 1)[-1] for path in full)]))
    function, module = rewrite(family, "function", raw_function), rewrite(family, "module", raw_module)
    package = package.replace("\\", "/")
    texts = {
        "path": "\n".join(paths),
        "function": f"{raw_function}\n{function}",
        "module": f"{raw_module}\n{module}",
        "package": f"{package}\n{package.rsplit('/', 1)[-1]}",
    }
    return function, module, paths, package, not _UNSYMBOLICATED.match(raw_function.strip()), texts


def event_views(event: NormalizedEvent) -> list[list[FrameView]]:
    """Every exception's frames, outermost call first as the SDKs send them."""
    views = []
    for exception in event.exceptions:
        stacktrace = exception.get("stacktrace")
        frames = stacktrace["frames"] if isinstance(stacktrace, dict) else []
        views.append([view_of(frame, event.platform) for frame in frames])
    return views
