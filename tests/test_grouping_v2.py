"""Grouping version 2: the same error from every browser, build and runtime is one issue; other errors stay apart.

The events are written the way each SDK sends them (frames outermost call first; the browser SDK's ``?`` for an
anonymous function), with the decorations each browser, compiler or runtime adds.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from stackwatch.server.digest.grouping import CURRENT, STRATEGIES, grouping_hash, in_app, v1, v2
from stackwatch.server.digest.grouping.builtin import BUILTIN_FIXED_RULES, BUILTIN_STACK_RULES
from stackwatch.server.digest.grouping.families import FAMILIES, family_of
from stackwatch.server.digest.grouping.frames import REWRITES, rewrite, view_of
from stackwatch.server.digest.grouping.rules import ProjectRules
from tests.support import exception_event, frame, message_event, new_id, normalized


def v2_hash(raw: dict[str, Any], rules: ProjectRules | None = None) -> str:
    return grouping_hash(normalized(raw), 2, rules or ProjectRules())


def error(platform: str, kind: str, value: str, frames: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": new_id(),
        "platform": platform,
        "level": "error",
        "exception": {"values": [{"type": kind, "value": value, "stacktrace": {"frames": frames}}]},
    }
    event.update(fields)
    return event


def test_version_2_is_registered_and_current() -> None:
    assert STRATEGIES[2] is v2.grouping_hash
    assert CURRENT == v2.VERSION == 2
    assert set(STRATEGIES) == {1, 2}


# --- the rewrite table: an example for every row ------------------------------------------------------------

REWRITE_EXAMPLES: list[tuple[str, str, str, str]] = [
    # (family, field, as sent, as read)
    ("javascript", "function", "Generator.prototype.<computed> [as next]", "next"),
    ("javascript", "function", "Object.loadUser [as load]", "loadUser"),
    ("javascript", "function", "async UserCard.render", "render"),
    ("javascript", "function", "new Widget", "Widget"),
    ("javascript", "function", "global code", ""),
    ("javascript", "function", "Anonymous function", ""),
    ("javascript", "function", "onLoad/<", ""),
    ("javascript", "function", "setup/save<", "save"),
    ("javascript", "function", "Store</this.commit", "commit"),
    ("javascript", "function", "@handler", "handler"),
    ("javascript", "function", "HTMLButtonElement.onclick", "onclick"),
    ("javascript", "function", "UserCard.prototype.render", "render"),
    ("javascript", "function", "Object.<anonymous>", ""),
    ("javascript", "function", "?", ""),
    ("javascript", "path", "https://app.example.com/assets/app.js?v=3#top", "assets/app.js"),
    ("javascript", "path", "webpack://shop/./src/cart.js", "src/cart.js"),
    ("javascript", "path", "webpack-internal:///./src/cart.js", "src/cart.js"),
    ("javascript", "path", "app:///main.jsbundle", "main.jsbundle"),
    ("javascript", "path", "~/assets/cart.js", "assets/cart.js"),
    ("javascript", "path", "https://cdn.example.net/static/1.4.2/js/cart.js", "static/js/cart.js"),
    ("javascript", "path", "https://cdn.example.net/v2/cart.js", "cart.js"),
    ("javascript", "path", "https://cdn.jsdelivr.net/npm/lodash@4.17.21/lodash.min.js", "npm/lodash/lodash.min.js"),
    ("javascript", "path", "/vendor/jquery-3.5.1.min.js", "vendor/jquery.min.js"),
    ("javascript", "path", "/static/js/main.3f2a1c9e.chunk.js", "static/js/main.chunk.js"),
    ("javascript", "path", "/assets/index-B2x_9kQd.js", "assets/index.js"),
    ("javascript", "path", "/assets/index-DiwrgTda.js", "assets/index.js"),
    ("javascript", "path", "/assets/app-settings.js", "assets/app-settings.js"),
    ("javascript", "path", "./src/cart.js", "src/cart.js"),
    ("native", "function", "__38-[MYFeedController reload]_block_invoke_2", "-[MYFeedController reload]_block_invoke"),
    ("native", "function", "-[NSObject(Tracking) track:with:]", "-[NSObject track:with:]"),
    ("native", "function", "@objc MyApp.FeedController.tapped(_:) -> ()", "MyApp.FeedController.tapped"),
    ("native", "function", "partial apply forwarder for MyApp.Feed.load() -> ()", "MyApp.Feed.load"),
    ("native", "function", "generic specialization <Swift.Int> of MyApp.sum<A>(A) -> A", "MyApp.sum"),
    (
        "native",
        "function",
        "closure #2 (Swift.Result<MyApp.Feed, Swift.Error>) -> () in MyApp.FeedController.load() -> ()",
        "MyApp.FeedController.load",
    ),
    ("native", "function", "(anonymous namespace)::flush(int)", "flush"),
    ("native", "function", "`anonymous namespace'::flush", "flush"),
    ("native", "function", "myapp::run::h5f3b2a1c9d8e7f60", "myapp::run"),
    ("native", "function", "<myapp::Job as core::ops::drop::Drop>::drop", "myapp::Job::drop"),
    ("native", "function", "std::vector<int, std::allocator<int> >::at(unsigned long)", "std::vector::at"),
    ("native", "function", "std::operator<<(std::ostream&, Point const&)", "std::operator<<"),
    ("native", "function", "Canvas::operator()(int) const", "Canvas::operator()"),
    ("native", "function", "Buffer::data() &&", "Buffer::data"),
    ("native", "function", "MyApp.Feed.title() -> Swift.String", "MyApp.Feed.title"),
    ("native", "function", "static void __cdecl Engine::tick(float)", "Engine::tick"),
    ("rust", "function", "myapp::jobs::run::h0123456789abcdef", "myapp::jobs::run"),
    ("go", "function", "(*Server).serve.func3", "(*Server).serve.func"),
    ("go", "function", "main.handle.gowrap1", "main.handle.gowrap"),
    ("go", "function", "slices.Map[...]", "slices.Map"),
    ("jvm", "module", "com.example.OrderService$$Lambda$1234/0x0000000800c0b448", "com.example.OrderService$$Lambda"),
    ("jvm", "module", "com.example.OrderService$$Lambda/0x000001f0a1c4b2d8", "com.example.OrderService$$Lambda"),
    (
        "jvm",
        "module",
        "com.example.MainActivity$$ExternalSyntheticLambda3",
        "com.example.MainActivity$$ExternalSyntheticLambda",
    ),
    (
        "jvm",
        "module",
        "com.example.Billing$$EnhancerBySpringCGLIB$$8e1b3c2a",
        "com.example.Billing$$CGLIB",
    ),
    ("jvm", "module", "com.example.Billing$$SpringCGLIB$$0", "com.example.Billing$$CGLIB"),
    ("jvm", "module", "com.example.Order$$HibernateProxy$$x1Y2z3", "com.example.Order$$HibernateProxy$$"),
    ("jvm", "module", "com.sun.proxy.$Proxy87", "com.sun.proxy.$Proxy"),
    ("jvm", "module", "jdk.proxy2.Handler", "jdk.proxy.Handler"),
    (
        "jvm",
        "module",
        "jdk.internal.reflect.GeneratedMethodAccessor123",
        "jdk.internal.reflect.GeneratedMethodAccessor",
    ),
    ("jvm", "module", "com.example.Poller$1", "com.example.Poller$"),
    ("jvm", "function", "lambda$process$0", "lambda$process$"),
    ("jvm", "function", "load$lambda-1", "load$lambda"),
    ("jvm", "function", "access$000", "access$"),
    ("dotnet", "module", "Shop.OrderService+<>c__DisplayClass5_0", "Shop.OrderService+<>c"),
    ("dotnet", "function", "<PlaceOrderAsync>b__0_1", "<PlaceOrderAsync>b__"),
    ("dotnet", "module", "Shop.OrderService+<SaveAsync>d__4", "Shop.OrderService+<SaveAsync>d__"),
    ("dotnet", "function", "<Run>g__Local|3_0", "<Run>g__Local"),
    ("dotnet", "module", "<>f__AnonymousType0`2", "<>f__AnonymousType`2"),
    ("ruby", "function", "block (2 levels) in process", "block in process"),
    ("ruby", "function", "block in Checkout#call", "block in call"),
    ("ruby", "function", "Shop::Cart.build", "build"),
    (
        "ruby",
        "function",
        "_app_views_users_show_html_erb__4169152711183254848_70259872",
        "_app_views_users_show_html_erb",
    ),
    ("php", "function", "{closure:App\\Jobs\\Sync::handle():42}", "{closure}"),
    ("php", "function", "App\\Jobs\\{closure}", "{closure}"),
    ("php", "module", "class@anonymous/app/src/Job.php:12$0", "class@anonymous"),
    ("python", "function", "handler at 0x7f00aa12", "handler at"),
    ("python", "function", "  handle ", "handle"),
    ("python", "function", "async handle", "handle"),
    ("python", "function", "?", "<anonymous>"),
    ("python", "function", "<lambda>.<locals>.inner", "<lambda>"),
    ("python", "path", "C:\\app\\jobs.py", "C:/app/jobs.py"),
]


@pytest.mark.parametrize(("family", "field", "text", "expected"), REWRITE_EXAMPLES)
def test_rewrite(family: str, field: str, text: str, expected: str) -> None:
    assert rewrite(family, field, text) == expected


def _rows_used(family: str, field: str, text: str) -> set[int]:
    """Indexes of the REWRITES rows that match ``text`` on its way through, in the order rewrite() runs them."""
    fields = {"function": ("function", "symbol"), "module": ("module", "symbol"), "path": ("path",)}[field]
    order = [i for i, row in enumerate(REWRITES) if row[0] != "*" and family in row[0].split("|")]
    order += [i for i, row in enumerate(REWRITES) if row[0] == "*"]
    used = set()
    for index in order:
        _, row_field, pattern, replacement = REWRITES[index]
        if row_field in fields:
            for _ in range(8):
                text, count = re.subn(pattern, replacement, text)
                if not count:
                    break
                used.add(index)
    return used


def test_every_rewrite_row_has_an_example() -> None:
    used = set().union(*(_rows_used(family, field, text) for family, field, text, _ in REWRITE_EXAMPLES))
    unused = [REWRITES[i] for i in range(len(REWRITES)) if i not in used]
    assert not unused


def test_every_rewrite_row_names_known_families_and_fields() -> None:
    for families, field, pattern, _ in REWRITES:
        assert families == "*" or set(families.split("|")) <= FAMILIES
        assert field in ("function", "module", "path", "symbol")
        re.compile(pattern)


# --- families -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame_fields", "platform", "family"),
    [
        ({}, "node", "javascript"),
        ({}, "javascript", "javascript"),
        ({"platform": "javascript"}, "cocoa", "javascript"),  # React Native: a JavaScript frame in an iOS event
        ({"instruction_addr": "0x1000"}, "cocoa", "native"),
        ({"function": "-[A b]"}, "cocoa", "native"),
        ({"filename": "Feed.swift"}, "cocoa", "native"),
        ({}, "cocoa", "other"),
        ({}, "cpp", "native"),
        ({}, "kotlin", "jvm"),
        ({}, "android", "jvm"),
        ({}, "csharp", "dotnet"),
        ({}, "elixir", "other"),
        ({"platform": "RUST"}, "native", "rust"),
    ],
)
def test_family_of_a_frame(frame_fields: dict[str, Any], platform: str, family: str) -> None:
    assert family_of(frame_fields, platform) == family


# --- built-in rules: every line ---------------------------------------------------------------------------

# (frame, event platform, in_app it gets when the SDK did not say, whether it counts for grouping)
BUILTIN_EXAMPLES: list[tuple[dict[str, Any], str, bool | None, bool]] = [
    ({"function": "Array.forEach", "filename": "<anonymous>"}, "javascript", False, False),
    ({"function": "forEach", "filename": "[native code]"}, "javascript", False, False),
    ({"function": "forEach", "filename": "native"}, "javascript", False, False),
    ({"function": "Array.prototype.forEach", "filename": "native code"}, "javascript", False, False),
    ({"function": "async Promise.all", "filename": "index 0"}, "node", False, False),
    ({"function": "eval", "filename": "https://a.example/app.js"}, "javascript", None, False),
    ({"function": "eval code", "filename": "https://a.example/app.js"}, "javascript", None, False),
    ({"function": "?", "filename": "https://a.example/app.js line 2 > eval"}, "javascript", None, False),
    ({"function": "?", "filename": "https://a.example/app.js line 9 > Function"}, "javascript", None, False),
    ({"function": "inject", "filename": "chrome-extension://abcdef/content.js"}, "javascript", False, False),
    ({"function": "inject", "filename": "moz-extension://1234/content.js"}, "javascript", False, False),
    ({"function": "inject", "filename": "safari-extension://com.x/content.js"}, "javascript", False, False),
    ({"function": "inject", "filename": "safari-web-extension://1234/content.js"}, "javascript", False, False),
    ({"function": "inject", "filename": "webkit-masked-url://hidden/"}, "javascript", False, False),
    ({"function": "observe", "filename": "chrome://global/content/x.js"}, "javascript", False, False),
    ({"function": "observe", "filename": "resource://gre/modules/x.js"}, "javascript", False, False),
    (
        {"function": "then", "filename": "webpack:///./node_modules/core-js/internals/perform.js"},
        "javascript",
        False,
        False,
    ),
    ({"function": "invoke", "filename": "/node_modules/zone.js/dist/zone.js"}, "javascript", False, False),
    ({"function": "invokeTask", "filename": "https://a.example/zone-evergreen.js"}, "javascript", False, False),
    ({"function": "run", "filename": "https://a.example/polyfills.3f2a1c9e.js"}, "javascript", False, False),
    ({"function": "tryCatch", "filename": "/node_modules/regenerator-runtime/runtime.js"}, "javascript", False, False),
    ({"function": "step", "filename": "/node_modules/tslib/tslib.es6.js"}, "javascript", False, False),
    ({"function": "step", "filename": "https://a.example/tslib.es6.js"}, "javascript", False, False),
    (
        {"function": "_next", "filename": "/node_modules/@babel/runtime/helpers/asyncToGenerator.js"},
        "javascript",
        False,
        False,
    ),
    ({"function": "__awaiter", "filename": "https://a.example/app.js"}, "javascript", None, False),
    ({"function": "__generator", "filename": "https://a.example/app.js"}, "javascript", None, False),
    ({"function": "asyncGeneratorStep", "filename": "https://a.example/app.js"}, "javascript", None, False),
    ({"function": "_asyncToGenerator", "filename": "https://a.example/app.js"}, "javascript", None, False),
    ({"function": "handle", "filename": "/srv/app/node_modules/express/lib/router/layer.js"}, "node", False, True),
    ({"function": "processTicksAndRejections", "filename": "node:internal/process/task_queues"}, "node", False, True),
    ({"function": "processTicksAndRejections", "filename": "internal/process/task_queues.js"}, "node", False, True),
    ({"function": "get", "abs_path": "/srv/venv/lib/python3.12/site-packages/requests/api.py"}, "python", False, True),
    ({"function": "get", "abs_path": "/usr/lib/python3/dist-packages/requests/api.py"}, "python", False, True),
    ({"function": "loads", "abs_path": "/usr/lib/python3.11/json/__init__.py"}, "python", False, True),
    ({"function": "loads", "abs_path": "/usr/local/lib/python3.12/json/__init__.py"}, "python", False, True),
    ({"function": "loads", "abs_path": "/opt/py/lib/python3.12/json/__init__.py"}, "python", False, True),
    ({"function": "run", "module": "java.lang.Thread"}, "java", False, True),
    ({"function": "doFilter", "module": "javax.servlet.FilterChain"}, "java", False, True),
    ({"function": "invoke", "module": "jdk.internal.reflect.DirectMethodHandleAccessor"}, "java", False, True),
    ({"function": "invoke", "module": "sun.reflect.NativeMethodAccessorImpl"}, "java", False, True),
    ({"function": "run", "module": "com.sun.net.httpserver.Filter$Chain"}, "java", False, True),
    ({"function": "dispatchMessage", "module": "android.os.Handler"}, "android", False, True),
    ({"function": "onCreate", "module": "androidx.fragment.app.Fragment"}, "android", False, True),
    ({"function": "run", "module": "com.android.internal.os.ZygoteInit"}, "android", False, True),
    ({"function": "invoke", "module": "dalvik.system.NativeStart"}, "android", False, True),
    ({"function": "invoke", "module": "kotlin.jvm.internal.Lambda"}, "kotlin", False, True),
    ({"function": "resumeWith", "module": "kotlinx.coroutines.DispatchedTask"}, "kotlin", False, True),
    ({"function": "apply", "module": "scala.Function1"}, "scala", False, True),
    ({"function": "ThrowIfNull", "module": "System"}, "csharp", False, True),
    ({"function": "InnerInvoke", "module": "System.Threading.Tasks.Task"}, "csharp", False, True),
    ({"function": "Invoke", "module": "Microsoft.AspNetCore.Routing.EndpointMiddleware"}, "csharp", False, True),
    ({"function": "call", "abs_path": "/usr/local/bundle/gems/rack-3.0.8/lib/rack/head.rb"}, "ruby", False, True),
    ({"function": "call", "abs_path": "/app/vendor/bundle/ruby/3.2.0/x.rb"}, "ruby", False, True),
    ({"function": "parse", "abs_path": "/usr/local/lib/ruby/3.2.0/json/common.rb"}, "ruby", False, True),
    ({"function": "handle", "abs_path": "/var/www/vendor/laravel/framework/src/Pipeline.php"}, "php", False, True),
    ({"function": "ServeHTTP", "abs_path": "/root/go/pkg/mod/github.com/go-chi/chi@v5/mux.go"}, "go", False, True),
    ({"function": "(*Client).Do", "abs_path": "/build/vendor/github.com/acme/http/client.go"}, "go", False, True),
    ({"function": "(*conn).serve", "abs_path": "/usr/local/go/src/net/http/server.go"}, "go", False, True),
    ({"function": "(*conn).serve", "abs_path": "/usr/lib/go-1.22/src/net/http/server.go"}, "go", False, True),
    ({"function": "tokio::run", "abs_path": "/home/u/.cargo/registry/src/tokio-1.0/src/rt.rs"}, "rust", False, True),
    ({"function": "std::rt::lang_start", "abs_path": "/rustc/90b35a623/library/std/src/rt.rs"}, "rust", False, True),
    ({"function": "std::panicking::begin_panic"}, "rust", False, True),
    ({"function": "core::panicking::panic"}, "native", False, True),
    ({"function": "alloc::raw_vec::finish_grow"}, "native", False, True),
    ({"function": "thunk for @escaping @callee_guaranteed () -> ()", "instruction_addr": "0x1"}, "cocoa", None, False),
    (
        {"function": "reabstraction thunk helper from @callee_guaranteed ()", "instruction_addr": "0x1"},
        "cocoa",
        None,
        False,
    ),
    ({"function": "abort", "package": "/usr/lib/system/libsystem_c.dylib"}, "native", False, True),
    ({"function": "raise", "package": "/lib/x86_64-linux-gnu/libc.so.6"}, "native", False, True),
    ({"function": "raise", "package": "/lib64/libc.so.6"}, "native", False, True),
    ({"function": "g_main", "package": "/usr/lib64/libglib-2.0.so.0"}, "native", False, True),
    (
        {
            "function": "UIApplicationMain",
            "package": "/System/Library/Frameworks/UIKit.framework/UIKit",
            "instruction_addr": "0x1",
        },
        "cocoa",
        False,
        True,
    ),
    ({"function": "x", "package": "/Library/Apple/System/Library/Frameworks/X.framework/X"}, "native", False, True),
    ({"function": "abort", "package": "/apex/com.android.runtime/lib64/bionic/libc.so"}, "native", False, True),
    ({"function": "android_main", "package": "/system/lib64/libandroid_runtime.so"}, "native", False, True),
    ({"function": "__pthread_kill", "package": "libsystem_kernel.dylib"}, "native", False, True),
    ({"function": "abort", "package": "libc.so.6"}, "native", False, True),
    ({"function": "std::terminate", "package": "libc++abi.so.1"}, "native", False, True),
    ({"function": "start_thread", "package": "libpthread.so.0"}, "native", False, True),
    ({"function": "_dispatch_call_block_and_release", "package": "libdispatch.dylib"}, "native", False, True),
    ({"function": "objc_exception_throw", "package": "libobjc.A.dylib"}, "native", False, True),
    ({"function": "RaiseException", "package": "C:\\WINDOWS\\System32\\KERNELBASE.dll"}, "native", False, True),
    ({"function": "RtlUserThreadStart", "package": "ntdll.dll"}, "native", False, True),
    ({"function": "BaseThreadInitThunk", "package": "kernel32.dll"}, "native", False, True),
    ({"function": "RaiseException", "package": "kernelbase.dll"}, "native", False, True),
    ({"function": "abort", "package": "ucrtbase.dll"}, "native", False, True),
    ({"function": "abort", "package": "msvcrt.dll"}, "native", False, True),
]


@pytest.mark.parametrize(("frame_fields", "platform", "flag", "grouped"), BUILTIN_EXAMPLES)
def test_builtin_rule(frame_fields: dict[str, Any], platform: str, flag: bool | None, grouped: bool) -> None:
    from stackwatch.server.digest.grouping.rules import apply_stack_rules

    assert in_app(frame_fields, platform) is flag
    assert (
        apply_stack_rules(view_of(frame_fields, platform), v2.BUILTIN, ProjectRules(), v2.BUILTIN_FIXED)[1] is grouped
    )


@pytest.mark.parametrize(
    ("text", "parsed"), [(BUILTIN_STACK_RULES, v2.BUILTIN), (BUILTIN_FIXED_RULES, v2.BUILTIN_FIXED)]
)
def test_every_builtin_rule_has_an_example(text: str, parsed: ProjectRules) -> None:
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    assert len(lines) == len(parsed.stack_rules)
    views = [view_of(f, platform) for f, platform, _, _ in BUILTIN_EXAMPLES]
    unmatched = [
        line
        for line, rule in zip(lines, parsed.stack_rules, strict=True)
        if not any(rule.matches(view, None) for view in views)
    ]
    assert not unmatched


def test_fixed_rules_hold_whatever_the_sdk_said() -> None:
    dependency = {"function": "(*Conn).Exec", "abs_path": "/root/go/pkg/mod/github.com/jackc/pgx/v5@v5.7.1/conn.go"}
    assert in_app({**dependency, "in_app": True}, "go") is False
    assert in_app({**dependency, "in_app": True}, "go", ProjectRules.parse("path:**/pgx/** +app", "")) is True
    # A guess, by contrast, gives way to the SDK.
    assert in_app({"function": "run", "module": "java.lang.Thread", "in_app": True}, "java") is True


@pytest.mark.parametrize(
    ("frame_fields", "platform"),
    [
        ({"function": "render", "filename": "https://a.example/app.js"}, "javascript"),
        ({"function": "handle", "abs_path": "/srv/app/jobs/worker.py"}, "python"),
        ({"function": "total", "module": "com.example.PriceCalculator"}, "java"),
        ({"function": "Apply", "module": "Shop.PriceRules"}, "csharp"),
        ({"function": "main", "package": "/opt/shop/bin/shop"}, "native"),
        ({"function": "call", "abs_path": "/app/app/models/user.rb"}, "ruby"),
        ({"function": "handle", "abs_path": "/var/www/src/Jobs/Sync.php"}, "php"),
        ({"function": "main.run", "abs_path": "/src/shop/main.go"}, "go"),
    ],
)
def test_own_code_is_not_guessed_away(frame_fields: dict[str, Any], platform: str) -> None:
    assert in_app(frame_fields, platform) is None


def test_the_sdks_in_app_flag_wins_over_the_builtin_guess() -> None:
    vendored = {"function": "get", "abs_path": "/srv/venv/lib/python3.12/site-packages/shop/api.py"}
    assert in_app({**vendored, "in_app": True}, "python") is True
    assert in_app({"function": "run", "module": "com.example.Job", "in_app": False}, "java") is False


# --- JavaScript: one TypeError, four browsers ---------------------------------------------------------------

APP = "https://shop.example.com/assets/app.4f3c2a1b.js"


def js(frames: list[tuple[str, str]], value: str, **fields: Any) -> dict[str, Any]:
    stack = [{"function": f, "filename": file, "lineno": 10, "colno": 5, "in_app": True} for f, file in frames]
    return error("javascript", "TypeError", value, stack, **fields)


CHROME = js(
    [
        ("HTMLButtonElement.<anonymous>", APP),
        ("async onLoad", APP),
        ("Array.forEach", "<anonymous>"),
        ("?", APP),
        ("UserCard.render", APP),
    ],
    "Cannot read properties of undefined (reading 'toUpperCase')",
)
FIREFOX = js(
    [("?", APP), ("onLoad", APP), ("onLoad/<", APP), ("render", APP)],
    'can\'t access property "toUpperCase", user.name is undefined',
)
SAFARI = js(
    [
        ("?", APP + "?v=20261204"),
        ("onLoad", APP),
        ("forEach", "[native code]"),
        ("then", "https://shop.example.com/node_modules/core-js/internals/perform.js"),
        ("?", APP),
        ("render", APP),
    ],
    "undefined is not an object (evaluating 'user.name.toUpperCase')",
)
EDGE_LEGACY = js(
    [
        ("Anonymous function", "https://cdn.example.net/assets/app.9a8b7c6d.js"),
        ("onLoad", APP),
        ("Array.prototype.forEach", "native code"),
        ("Anonymous function", APP),
        ("UserCard.prototype.render", APP),
    ],
    "Unable to get property 'toUpperCase' of undefined or null reference",
)
EDGE = js(
    [
        ("HTMLButtonElement.<anonymous>", APP),
        ("onLoad", APP),
        ("Array.forEach", "<anonymous>"),
        ("?", APP),
        ("UserCard.render", APP),
    ],
    "Cannot read properties of undefined (reading 'toUpperCase')",
)


def test_the_same_browser_error_is_one_issue_in_every_browser() -> None:
    hashes = {
        name: v2_hash(event)
        for name, event in [
            ("chrome", CHROME),
            ("firefox", FIREFOX),
            ("safari", SAFARI),
            ("edge", EDGE),
            ("edge-legacy", EDGE_LEGACY),
        ]
    }
    assert len(set(hashes.values())) == 1, hashes
    # Version 1 split them: that is what version 2 is for.
    assert len({grouping_hash(normalized(e), 1) for e in (CHROME, FIREFOX, SAFARI, EDGE_LEGACY)}) == 4


def test_other_browser_errors_stay_apart() -> None:
    other_function = copy.deepcopy(CHROME)
    other_function["exception"]["values"][0]["stacktrace"]["frames"][-1]["function"] = "UserCard.renderAvatar"
    other_type = copy.deepcopy(FIREFOX)
    other_type["exception"]["values"][0]["type"] = "RangeError"
    other_file = copy.deepcopy(SAFARI)
    other_file["exception"]["values"][0]["stacktrace"]["frames"][-1]["filename"] = "https://shop.example.com/cart.js"
    base = v2_hash(CHROME)
    assert len({base, v2_hash(other_function), v2_hash(other_type), v2_hash(other_file)}) == 4


def test_javascript_source_line_counts_only_without_a_function_and_when_short() -> None:
    def one(function: str, line: str) -> str:
        stack = [{"function": function, "filename": APP, "context_line": line, "in_app": True}]
        return v2_hash(error("javascript", "TypeError", "x", stack))

    assert one("render", "  return user.name;") == one("render", "  return user.name.trim();")
    assert one("?", "  return user.name;") != one("?", "  return user.name.trim();")
    minified = "!function(e){" + "var a=e.b;" * 20 + "}"
    assert one("?", minified) == one("?", minified.replace("e.b", "e.c"))


def test_a_stack_of_only_browser_internals_groups_by_type_and_value() -> None:
    internal = [{"function": "forEach", "filename": "[native code]", "in_app": True}]
    assert v2_hash(js([("forEach", "[native code]")], "x is not a function")) == v2_hash(
        error("javascript", "TypeError", "x is not a function", internal)
    )
    assert v2_hash(js([("forEach", "[native code]")], "x is not a function")) != v2_hash(
        js([("forEach", "[native code]")], "y is undefined")
    )


# --- native: with and without system frames ------------------------------------------------------------------

LIBC = "/lib/x86_64-linux-gnu/libc.so.6"
SHOP = "/opt/shop/bin/shop"


def native(frames: list[dict[str, Any]], value: str = "SIGABRT") -> dict[str, Any]:
    return error("native", "SIGABRT", value, frames)


def nframe(function: str, package: str, **fields: Any) -> dict[str, Any]:
    return {"function": function, "package": package, "instruction_addr": "0x7f3a2b1c0000", **fields}


CRASH_FULL = native(
    [
        nframe("__libc_start_main", LIBC),
        nframe("main", SHOP, filename="/home/ci/build/src/main.cpp", lineno=12),
        nframe("shop::Worker::run(std::vector<int, std::allocator<int> > const&)", SHOP, filename="/home/ci/src/w.cpp"),
        nframe("0x000055d1c3a4b2f0", SHOP),
        nframe("", SHOP),
        nframe("shop::Ledger::post(shop::Entry const&) const", SHOP),
        nframe("raise", LIBC),
        nframe("abort", LIBC),
    ]
)
CRASH_BARE = native(
    [
        nframe("main", "C:\\build\\shop.exe", filename="C:\\agent\\_work\\src\\main.cpp", lineno=14),
        nframe("shop::Worker::run(std::vector<int> const&)", "C:\\build\\shop.exe"),
        nframe("shop::Ledger::post(shop::Entry const&)", "C:\\build\\shop.exe"),
        nframe("RaiseException", "C:\\Windows\\System32\\KERNELBASE.dll"),
    ],
    "EXCEPTION_ACCESS_VIOLATION_READ at 0x0",
)


def test_a_native_crash_with_and_without_system_and_unsymbolicated_frames_is_one_issue() -> None:
    bare_unix = native(
        [f for f in CRASH_FULL["exception"]["values"][0]["stacktrace"]["frames"] if f["package"] == SHOP]
    )
    assert v2_hash(CRASH_FULL) == v2_hash(bare_unix) == v2_hash(CRASH_BARE)


def test_a_native_crash_with_in_app_flags_counts_only_in_app_symbolicated_frames() -> None:
    flagged = copy.deepcopy(CRASH_FULL)
    for f in flagged["exception"]["values"][0]["stacktrace"]["frames"]:
        f["in_app"] = f["package"] == SHOP
    assert v2_hash(flagged) == v2_hash(CRASH_FULL)


def test_other_native_crashes_stay_apart() -> None:
    other = copy.deepcopy(CRASH_BARE)
    other["exception"]["values"][0]["stacktrace"]["frames"][2]["function"] = "shop::Ledger::void(shop::Entry const&)"
    assert v2_hash(other) != v2_hash(CRASH_BARE)
    only_system = native([nframe("raise", LIBC), nframe("abort", LIBC)])
    assert v2_hash(only_system) != v2_hash(native([nframe("pthread_kill", LIBC), nframe("abort", LIBC)]))


def test_an_unsymbolicated_native_crash_groups_by_type_and_value() -> None:
    one = native([nframe("0x1000", SHOP), nframe("", SHOP)], "KERN_INVALID_ADDRESS at 0x10")
    two = native([nframe("0x2000", SHOP)], "KERN_INVALID_ADDRESS at 0x28")
    assert v2_hash(one) == v2_hash(two)
    assert v2_hash(one) != v2_hash(native([nframe("0x1000", SHOP)], "KERN_PROTECTION_FAILURE at 0x10"))


# --- Cocoa: Objective-C selectors and Swift ------------------------------------------------------------------


def cocoa(functions: list[str], kind: str = "NSInvalidArgumentException") -> dict[str, Any]:
    frames = [
        {
            "function": "UIApplicationMain",
            "package": "/System/Library/Frameworks/UIKit.framework/UIKit",
            "instruction_addr": "0x18f2a1000",
            "in_app": False,
        },
        *(
            {
                "function": f,
                "package": "/private/var/containers/Bundle/Application/X/Shop.app/Shop",
                "instruction_addr": "0x100a2b3c4",
                "in_app": True,
            }
            for f in functions
        ),
    ]
    return error("cocoa", kind, "-[__NSArrayM objectAtIndex:]: index 3 beyond bounds", frames)


def test_cocoa_selectors_categories_and_blocks_merge() -> None:
    one = cocoa(["-[SHFeedController(Analytics) reload]", "__38-[SHFeedController reload]_block_invoke_2"])
    two = cocoa(["-[SHFeedController reload]", "__40-[SHFeedController reload]_block_invoke"])
    assert v2_hash(one) == v2_hash(two)


def test_swift_closures_and_thunks_merge() -> None:
    one = cocoa(
        [
            "closure #1 (Swift.Result<Shop.Feed, Swift.Error>) -> () in Shop.FeedController.load() -> ()",
            "thunk for @escaping @callee_guaranteed () -> ()",
            "Shop.Feed.title() -> Swift.String",
        ]
    )
    two = cocoa(["closure #3 () -> () in Shop.FeedController.load() -> ()", "Shop.Feed.title() -> Swift.String"])
    assert v2_hash(one) == v2_hash(two)


def test_other_selectors_stay_apart() -> None:
    base = v2_hash(cocoa(["-[SHFeedController reload]"]))
    assert base != v2_hash(cocoa(["+[SHFeedController reload]"]))
    assert base != v2_hash(cocoa(["-[SHFeedController reload:]"]))
    assert base != v2_hash(cocoa(["-[SHCartController reload]"]))
    assert base != v2_hash(cocoa(["-[SHFeedController reload]"], kind="NSRangeException"))


# --- JVM: lambdas, anonymous classes, proxies ---------------------------------------------------------------


def java(lambda_class: str, lambda_body: str, proxy: str = "jdk.proxy2.$Proxy12") -> dict[str, Any]:
    frames = [
        {"module": "java.lang.Thread", "function": "run", "filename": "Thread.java", "lineno": 1583},
        {"module": "java.util.concurrent.ThreadPoolExecutor$Worker", "function": "run", "lineno": 642},
        {"module": proxy, "function": "process"},
        {"module": "jdk.internal.reflect.GeneratedMethodAccessor88", "function": "invoke"},
        {"module": "com.example.orders.OrderService", "function": "process", "filename": "OrderService.java"},
        {"module": "java.util.stream.ReferencePipeline$3$1", "function": "accept", "lineno": 197},
        {"module": lambda_class, "function": "apply"},
        {"module": "com.example.orders.OrderService", "function": lambda_body, "filename": "OrderService.java"},
        {"module": "com.example.orders.PriceCalculator", "function": "total", "lineno": 41},
    ]
    return error("java", "NullPointerException", 'Cannot invoke "Price.amount()" because "p" is null', frames)


def test_java_lambdas_with_other_generated_numbers_are_one_issue() -> None:
    one = java("com.example.orders.OrderService$$Lambda$1234/0x0000000800c0b448", "lambda$process$0")
    two = java(
        "com.example.orders.OrderService$$Lambda$87/0x00000008001a2c40", "lambda$process$3", "jdk.proxy3.$Proxy7"
    )
    three = java("com.example.orders.OrderService$$Lambda/0x000001f0a1c4b2d8", "lambda$process$1")
    assert v2_hash(one) == v2_hash(two) == v2_hash(three)
    assert grouping_hash(normalized(one), 1) != grouping_hash(normalized(two), 1)


def test_other_java_errors_stay_apart() -> None:
    base = java("com.example.orders.OrderService$$Lambda$1234/0x0000000800c0b448", "lambda$process$0")
    other = java("com.example.orders.OrderService$$Lambda$1234/0x0000000800c0b448", "lambda$refund$0")
    assert v2_hash(base) != v2_hash(other)
    other_type = copy.deepcopy(base)
    other_type["exception"]["values"][0]["type"] = "IllegalStateException"
    assert v2_hash(base) != v2_hash(other_type)


# --- .NET: display classes and state machines ---------------------------------------------------------------


def dotnet(display: str, lambda_name: str, machine: str) -> dict[str, Any]:
    frames = [
        {"module": "System.Threading.ExecutionContext", "function": "RunInternal", "in_app": False},
        {"module": f"Shop.Orders.OrderService+{machine}", "function": "MoveNext", "in_app": True},
        {"module": f"Shop.Orders.OrderService+{display}", "function": lambda_name, "in_app": True},
        {"module": "Shop.Orders.PriceRules", "function": "Apply", "in_app": True},
    ]
    return error("csharp", "System.NullReferenceException", "Object reference not set to an instance", frames)


def test_dotnet_display_classes_and_state_machines_are_one_issue() -> None:
    one = dotnet("<>c__DisplayClass5_0", "<PlaceOrderAsync>b__0", "<PlaceOrderAsync>d__4")
    two = dotnet("<>c__DisplayClass7_1", "<PlaceOrderAsync>b__2_0", "<PlaceOrderAsync>d__6")
    three = dotnet("<>c", "<PlaceOrderAsync>b__1", "<PlaceOrderAsync>d__4")
    assert v2_hash(one) == v2_hash(two) == v2_hash(three)
    assert v2_hash(one) != v2_hash(dotnet("<>c__DisplayClass5_0", "<CancelAsync>b__0", "<PlaceOrderAsync>d__4"))


# --- messages and exceptions without frames ------------------------------------------------------------------


def test_messages_group_as_in_version_1() -> None:
    for one, two in [("run 12 failed", "run 99 failed"), ("peer 10.0.0.1 gone", "peer 10.0.0.9 gone")]:
        assert v2_hash(message_event(one)) == v2_hash(message_event(two))
    assert v2_hash(message_event("run 1 failed")) != v2_hash(message_event("run 1 cancelled"))


def test_python_events_keep_their_version_1_hash() -> None:
    """With the SDK's flags, Python frames read exactly as in version 1: moving to version 2 splits nothing."""
    library = frame("dispatch", "    return fn()", module="framework.core", in_app=False)
    for event in (
        exception_event(),
        exception_event(frames=[library, frame("handle", "    go()")]),
        message_event("user 7 missing"),
        exception_event(fingerprint=["{{ default }}", "acme"]),
    ):
        assert grouping_hash(normalized(event), 2) == grouping_hash(normalized(event), 1)


# Version 1 is frozen: these hashes were computed before version 2 existed and must never change.
def _v1_pinned() -> list[tuple[str, dict[str, Any], str]]:
    library = frame("dispatch", "    return fn()", module="framework.core", in_app=False)
    return [
        ("python", exception_event(), "a9cde2c6550a59522807e9f3ab1c050f"),
        (
            "python library",
            exception_event(frames=[library, frame("handle", "    go()")]),
            "571c7d1e13a17bd2d38f85275412625e",
        ),
        ("chrome", CHROME, "9ad148da9d9d92e3e67976cee5cc5e33"),
        ("native", CRASH_FULL, "1d7dc314307fb2b42303caffe277f494"),
        ("java", java("a.B$$Lambda$1/0x1", "lambda$b$0"), "c4e308b976b7cc640939fbce467b940f"),
        ("message", message_event("user 42 not found"), "710ff688099ba1d62e19576dd38d79a6"),
        ("fingerprint", exception_event(fingerprint=["{{ default }}", "acme"]), "b27c24f4872fb40ba0281c350e6c368c"),
    ]


def test_version_1_output_is_unchanged() -> None:
    for name, event, expected in _v1_pinned():
        assert v1.grouping_hash(normalized(event)) == expected, name


# --- what the per-platform corpus showed ------------------------------------------------------------------


def test_frames_guessed_out_of_the_app_go_when_unknown_frames_remain() -> None:
    """Android without ``inAppIncludes``: no frame is flagged; the framework below the app code differs by version."""

    def android(framework: list[str]) -> dict[str, Any]:
        frames = [{"module": module, "function": function} for module, function in (f.split("#") for f in framework)]
        frames += [{"module": "com.shop.CheckoutViewModel", "function": "placeOrder"}]
        return error("java", "NullPointerException", "x", frames)

    android_14 = android(["android.os.Looper#loop", "android.os.Looper#loopOnce", "android.os.Handler#dispatchMessage"])
    android_11 = android(["android.os.Looper#loop", "android.os.Handler#dispatchMessage"])
    assert v2_hash(android_14) == v2_hash(android_11)
    # The SDK's own "not in-app" is not a guess: with no in-app frame at all, every frame counts (as in version 1).
    flagged = copy.deepcopy(android_14)
    flagged["exception"]["values"][0]["stacktrace"]["frames"][1]["in_app"] = False
    assert v2_hash(flagged) != v2_hash(android_11)


def test_unsymbolicated_native_frames_count_by_image_offset_when_nothing_has_a_name() -> None:
    def crash(
        image: int, offsets: list[int], package: str = "/private/var/containers/Bundle/Application/A/Shop.app/Shop"
    ):
        frames = [
            {"instruction_addr": hex(image + o), "image_addr": hex(image), "package": package, "in_app": True}
            for o in offsets
        ]
        return error("cocoa", "EXC_BAD_ACCESS", "Attempted to dereference null pointer.", frames)

    launch_one = crash(0x10004C000, [0x3F21C, 0x3F988])
    launch_two = crash(0x1001D8000, [0x3F21C, 0x3F988], "/private/var/containers/Bundle/Application/B/Shop.app/Shop")
    assert v2_hash(launch_one) == v2_hash(launch_two)
    assert v2_hash(launch_one) != v2_hash(crash(0x10004C000, [0x3F21C, 0x40000]))
    # One named frame among them: names win, the offsets go (a partly symbolicated report of the same crash).
    named = crash(0x10004C000, [0x3F21C, 0x3F988])
    named["exception"]["values"][0]["stacktrace"]["frames"][0]["function"] = "-[SHCart checkout]"
    renamed = crash(0x1001D8000, [0x11111, 0x3F988])
    renamed["exception"]["values"][0]["stacktrace"]["frames"][0]["function"] = "-[SHCart checkout]"
    assert v2_hash(named) == v2_hash(renamed)


def test_a_synthetic_exception_type_does_not_split_a_crash() -> None:
    def signal(name: str, synthetic: bool) -> dict[str, Any]:
        event = native([nframe("render::Loader::parse", SHOP)], name)
        event["exception"]["values"][0].update(type=name, mechanism={"type": "signalhandler", "synthetic": synthetic})
        return event

    assert v2_hash(signal("SIGSEGV", True)) == v2_hash(signal("SIGBUS", True))
    assert v2_hash(signal("SIGSEGV", False)) != v2_hash(signal("SIGBUS", False))


def test_nserror_codes_keep_errors_apart() -> None:
    def ns_error(code: int) -> dict[str, Any]:
        mechanism = {"type": "NSError", "meta": {"ns_error": {"code": code, "domain": "NSURLErrorDomain"}}}
        value = {"type": "NSURLErrorDomain", "value": f"Code: {code}", "mechanism": mechanism}
        return {"event_id": new_id(), "platform": "cocoa", "exception": {"values": [value]}}

    assert v2_hash(ns_error(-1001)) == v2_hash(ns_error(-1001))
    assert v2_hash(ns_error(-1001)) != v2_hash(ns_error(-1009))


def test_ruby_frames_count_by_file_whether_or_not_the_sdk_set_a_module() -> None:
    """sentry-ruby sets ``module`` only from Ruby 3.4's ``Checkout#call`` labels."""

    def ruby(with_module: bool) -> dict[str, Any]:
        frames = [
            {"abs_path": "/rails/app/services/checkout.rb", "function": "call", "in_app": True},
            {"abs_path": "/rails/app/services/checkout.rb", "function": "block in Checkout#call", "in_app": True},
        ]
        if with_module:
            frames[0]["module"] = "Checkout"
        return error("ruby", "NoMethodError", "undefined method 'stock' for nil", frames)

    assert v2_hash(ruby(True)) == v2_hash(ruby(False))
    other = ruby(False)
    other["exception"]["values"][0]["stacktrace"]["frames"][0]["abs_path"] = "/rails/app/services/refund.rb"
    assert v2_hash(other) != v2_hash(ruby(False))


@pytest.mark.parametrize("junk", [None, 7, 3.5, True, [], {}, "", "0x", "\u0000", "((((", "<<<<", "x" * 5000])
def test_any_json_in_a_frame_is_read_without_failing(junk: Any) -> None:
    fields = (
        "function",
        "raw_function",
        "module",
        "filename",
        "abs_path",
        "package",
        "platform",
        "instruction_addr",
        "image_addr",
        "context_line",
        "in_app",
    )
    frames = [{name: junk for name in fields}, {**{name: junk for name in fields}, "function": "render"}]
    for platform in ("javascript", "native", "cocoa", "java", "csharp", "python", "ruby", "php", "go", "rust", "x"):
        event = error(platform, "Error", "boom", frames)
        event["exception"]["values"][0]["mechanism"] = {"synthetic": junk, "meta": {"ns_error": junk}}
        project = ProjectRules.parse("path:** -app\nfunction:* +group", "error.type:* -> {{ function }} {{ module }}")
        assert len(v2_hash(event)) == len(v2_hash(event, project)) == 32
