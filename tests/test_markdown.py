"""Comment Markdown (``web/markdown.py``) against a hostile corpus: what renders stays markup we chose, and every
way out of text into script, foreign elements, event handlers or a dangerous link is closed."""

from __future__ import annotations

import html
import re
import time
from html.parser import HTMLParser

import pytest
from markupsafe import Markup

from stackwatch.server.web.markdown import render

# The elements and attributes the renderer may write for CommonMark without images or raw HTML.
ALLOWED = {
    "p": set(),
    "br": set(),
    "em": set(),
    "strong": set(),
    "code": {"class"},
    "pre": set(),
    "blockquote": set(),
    "ul": set(),
    "ol": {"start"},
    "li": set(),
    "h1": set(),
    "h2": set(),
    "h3": set(),
    "h4": set(),
    "h5": set(),
    "h6": set(),
    "hr": set(),
    "a": {"href", "rel"},
}


class _Markup(HTMLParser):
    """Every start tag with its attributes, as a browser's tokenizer would see them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag


def tags(markup: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Markup()
    parser.feed(markup)
    parser.close()
    return parser.tags


def assert_safe(markup: str) -> None:
    for tag, attrs in tags(markup):
        assert tag in ALLOWED, (tag, markup)
        assert set(attrs) <= ALLOWED[tag], (tag, attrs, markup)
        if tag == "a":
            href = attrs["href"] or ""
            assert re.match(r"(https?://[^/\s]|mailto:)", href), href
            assert attrs["rel"] == "nofollow noopener noreferrer"


HOSTILE = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    "<img src=x onerror=alert(1)>",
    '<a href="javascript:alert(1)">x</a>',
    "<svg onload=alert(1)>",
    "<iframe src=//evil.example></iframe>",
    "<style>body{display:none}</style>",
    '<div style="background:url(javascript:alert(1))">x</div>',
    "<details open ontoggle=alert(1)>",
    "[x](javascript:alert(1))",
    "[x](JAVASCRIPT:alert(1))",
    "[x]( javascript:alert(1) )",
    "[x](java\tscript:alert(1))",
    "[x](&#106;avascript:alert(1))",
    "[x](&#x6A;avascript&colon;alert(1))",
    "[x](%6Aavascript:alert(1))",
    "[x](vbscript:msgbox(1))",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[x](file:///etc/passwd)",
    "[x](//evil.example)",
    "[x](/logout)",
    '[x](https://example.com "title" onmouseover="alert(1)")',
    '[x](https://example.com"onmouseover="alert(1))',
    "[x][ref]\n\n[ref]: javascript:alert(1)",
    "<javascript:alert(1)>",
    "<data:text/html,<script>alert(1)</script>>",
    "![x](https://example.com/a.png)",
    "![x](javascript:alert(1))",
    "![x](data:image/svg+xml,<svg onload=alert(1)>)",
    '```js" onmouseover="alert(1)\ncode\n```',
    "`<script>alert(1)</script>`",
    "    <script>alert(1)</script>",
    "> <script>alert(1)</script>\n> > [x](javascript:alert(1))",
    "**<img src=x onerror=alert(1)>**",
    "*[x](javascript:alert(1))*",
    "[**x**](javascript:alert(1))",
    "[<img src=x onerror=alert(1)>](https://example.com)",
    "&lt;script&gt;alert(1)&lt;/script&gt; &#60;script&#62; &amp;lt;",
    "<!-- comment --><![CDATA[x]]><?php echo 1; ?>",
    "{{7*7}} ${7*7} {% raw %}",
    "\u202e<script>\u202c",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_markdown_renders_only_safe_markup(text: str) -> None:
    rendered = render(text)
    assert isinstance(rendered, Markup)
    assert_safe(str(rendered))
    raw = str(rendered).lower()
    assert "<script" not in raw and "<img" not in raw and "<svg" not in raw and "<iframe" not in raw
    if "<script>" in text.lower():  # shown as text, not dropped: a reader sees what was written
        assert "<script>" in html.unescape(raw)


def test_what_markdown_is_for_still_renders() -> None:
    rendered = str(
        render(
            "**Fixed** in `2.0`, see [the PR](https://example.com/pr/1?a=1&b=2) and <https://example.com/x>.\n"
            "Next line\n\n- one\n- two\n\n```python\nprint('<b>')\n```\n\nmail [me](mailto:ops@example.com)"
        )
    )
    assert "<strong>Fixed</strong>" in rendered and "<code>2.0</code>" in rendered
    assert '<a href="https://example.com/pr/1?a=1&amp;b=2" rel="nofollow noopener noreferrer">the PR</a>' in rendered
    assert '<a href="https://example.com/x" rel="nofollow noopener noreferrer">https://example.com/x</a>' in rendered
    assert "Next line" in rendered and "<br" in rendered  # a new line is a line break, as typed in the form
    assert "<li>one</li>" in rendered
    assert '<pre><code class="language-python">print(&#x27;&lt;b&gt;&#x27;)' in rendered or (
        "print(&#39;&lt;b&gt;&#39;)" in rendered or "print('&lt;b&gt;')" in rendered
    )
    assert '<a href="mailto:ops@example.com"' in rendered
    assert_safe(rendered)


def test_an_image_is_a_link_at_most() -> None:
    rendered = str(render("![diagram](https://example.com/a.png)"))
    assert "<img" not in rendered
    assert '<a href="https://example.com/a.png" rel="nofollow noopener noreferrer">diagram</a>' in rendered
    assert "<a" not in str(render("![x](javascript:alert(1))"))


@pytest.mark.parametrize(
    "text",
    [
        "[" * 10_000,
        "*a" * 5_000,
        ">" * 10_000,
        "- " * 5_000,
        "`" * 10_000,
        "[a](" * 2_500,
        "<" * 10_000,
        "&#" * 5_000,
        "\\" * 10_000,
        "a" * 10_000,
        ("[x](https://example.com) " * 400)[:10_000],
    ],
)
def test_very_long_and_deeply_nested_input_renders_quickly_and_safely(text: str) -> None:
    started = time.perf_counter()
    rendered = render(text)
    assert time.perf_counter() - started < 2.0
    assert_safe(str(rendered))
