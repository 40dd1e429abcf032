"""The built-in stack trace rules of grouping version 2, in the format of a project's stack trace rules.

In ``BUILTIN_STACK_RULES`` ``-app`` is a guess made only for frames whose SDK did not say (``in_app`` missing);
``-group`` drops a frame from grouping whatever the SDK said. ``BUILTIN_FIXED_RULES`` hold whatever the SDK said:
frames that are never a project's own code, where an SDK is known to flag them in-app. A project's own rules run
after both and win (docs/grouping.md). Every line is exercised by tests/test_grouping_v2.py.
"""

from __future__ import annotations

__all__ = ["BUILTIN_FIXED_RULES", "BUILTIN_STACK_RULES"]

BUILTIN_STACK_RULES = r"""
# --- JavaScript: frames one browser shows and another does not ---------------------------------------------
# Chrome's built-ins (``at Array.forEach (<anonymous>)``), Safari's ``forEach@[native code]``.
family:javascript path:"<anonymous>" -app -group
family:javascript path:"[native code]" -app -group
family:javascript path:native -app -group
family:javascript path:"native code" -app -group
# Node's ``at async Promise.all (index 0)``.
family:javascript path:"index *" function:"*Promise.*" -app -group
# Code run by eval: Chrome's ``eval``, Safari's ``eval code``, Firefox's ``app.js line 2 > eval``.
family:javascript function:eval -group
family:javascript function:"eval code" -group
family:javascript path:"** > eval" -group
family:javascript path:"** > Function" -group
# Browser extensions and the browser's own scripts.
family:javascript path:chrome-extension://** -app -group
family:javascript path:moz-extension://** -app -group
family:javascript path:safari-extension://** -app -group
family:javascript path:safari-web-extension://** -app -group
family:javascript path:webkit-masked-url://** -app -group
family:javascript path:chrome://** -app -group
family:javascript path:resource://** -app -group
# Polyfills and transpiler helpers: present in some browsers' stacks only, or wrapping every async call.
family:javascript path:**/core-js/** -app -group
family:javascript path:**/zone.js/** -app -group
family:javascript path:zone*.js -app -group
family:javascript path:polyfills*.js -app -group
family:javascript path:**/regenerator-runtime/** -app -group
family:javascript path:**/tslib/** -app -group
family:javascript path:tslib.* -app -group
family:javascript path:**/@babel/runtime/** -app -group
family:javascript function:__awaiter -group
family:javascript function:__generator -group
family:javascript function:asyncGeneratorStep -group
family:javascript function:_asyncToGenerator -group
# Dependencies and Node's own modules.
family:javascript path:**/node_modules/** -app
family:javascript path:node:** -app
family:javascript path:internal/** -app

# --- Python ------------------------------------------------------------------------------------------------
family:python path:**/site-packages/** -app
family:python path:**/dist-packages/** -app
family:python path:/usr/lib/python*/** -app
family:python path:/usr/local/lib/python*/** -app
family:python path:**/lib/python?.*/** -app

# --- JVM: the JDK, Android and the language runtimes -------------------------------------------------------
family:jvm module:java.* -app
family:jvm module:javax.* -app
family:jvm module:jdk.* -app
family:jvm module:sun.* -app
family:jvm module:com.sun.* -app
family:jvm module:android.* -app
family:jvm module:androidx.* -app
family:jvm module:com.android.* -app
family:jvm module:dalvik.* -app
family:jvm module:kotlin.* -app
family:jvm module:kotlinx.* -app
family:jvm module:scala.* -app

# --- .NET --------------------------------------------------------------------------------------------------
family:dotnet module:System -app
family:dotnet module:System.* -app
family:dotnet module:Microsoft.* -app

# --- Vendored dependencies, in any language (PHP's Composer, Ruby's bundle, Go's vendor/, C++ vendor trees) ---
path:**/vendor/** -app

# --- Ruby, Go, Rust: installed libraries and the standard library ------------------------------------------
family:ruby path:**/gems/** -app
family:ruby path:**/lib/ruby/** -app
family:go path:/usr/local/go/src/** -app
family:go path:/usr/lib/go*/src/** -app
family:rust,native path:**/.cargo/registry/** -app
family:rust,native path:/rustc/** -app
family:rust,native function:std::* -app
family:rust,native function:core::* -app
family:rust,native function:alloc::* -app

# --- Native: compiler glue ----------------------------------------------------------------------------------
# Swift thunks for closure types (``thunk for @escaping @callee_guaranteed () -> ()``) name no function.
family:native function:"*thunk for @*" -group
family:native function:"reabstraction thunk helper from @*" -group

# --- Native: system libraries (Linux, Android, Apple platforms, Windows) -----------------------------------
family:native package:/usr/lib/** -app
family:native package:/lib/** -app
family:native package:/lib64/** -app
family:native package:/usr/lib64/** -app
family:native package:/System/Library/** -app
family:native package:/Library/Apple/** -app
family:native package:/apex/** -app
family:native package:/system/** -app
family:native package:libsystem_* -app
family:native package:libc.so* -app
family:native package:libc++*.so* -app
family:native package:libpthread* -app
family:native package:libdispatch.dylib -app
family:native package:libobjc*.dylib -app
family:native package:?:/Windows/** -app
family:native package:ntdll.dll -app
family:native package:kernel32.dll -app
family:native package:kernelbase.dll -app
family:native package:ucrtbase.dll -app
family:native package:msvcrt.dll -app
"""

BUILTIN_FIXED_RULES = r"""
# sentry-go calls every frame outside GOROOT in-app, Go's module cache (the project's dependencies) included.
family:go path:**/go/pkg/mod/** -app
"""
