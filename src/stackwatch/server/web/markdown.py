"""Comment Markdown to HTML, safely: the one place where text someone wrote becomes markup on the dashboard.

Comments are attacker-controlled (anyone with a dashboard account or an API token writes them), so the HTML is
safe by construction, not by cleaning afterwards:

* CommonMark through markdown-it-py with raw HTML off — the HTML block and inline rules are disabled, so ``<script>``
  or ``<img onerror=…>`` is text, escaped like all text by the renderer;
* links only to ``http:``, ``https:`` and ``mailto:`` addresses (``javascript:``, ``data:``, ``vbscript:``,
  relative and protocol-relative links stay text), opened with ``rel="nofollow noopener noreferrer"``;
* no images: the image rule is off, so ``![alt](url)`` is a ``!`` and a link to the address (when allowed), and a
  comment cannot make the browser load anything;
* every attribute the renderer writes (``href``, a code block's ``class``) is escaped by it.

``render`` returns ``Markup``, the only value of a comment that templates do not escape again.
"""

from __future__ import annotations

from functools import cache
from urllib.parse import urlsplit

from markdown_it import MarkdownIt
from markupsafe import Markup

__all__ = ["ALLOWED_SCHEMES", "render"]

ALLOWED_SCHEMES = frozenset({"http", "https", "mailto"})
LINK_REL = "nofollow noopener noreferrer"


def _allowed_link(url: str) -> bool:
    """An absolute http, https or mailto address (as markdown-it normalized it: entities decoded, encoded again)."""
    if any(ord(char) < 0x21 for char in url):  # white space or controls that browsers skip inside a scheme
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if parts.scheme.lower() not in ALLOWED_SCHEMES:
        return False
    return parts.scheme.lower() == "mailto" or bool(parts.netloc)


@cache
def _parser() -> MarkdownIt:
    parser = MarkdownIt("commonmark", {"html": False, "breaks": True, "linkify": False})
    parser.disable(["html_block", "html_inline", "image"])
    parser.validateLink = _allowed_link  # type: ignore[method-assign]
    return parser


def render(text: str) -> Markup:
    """The comment as HTML (see the module doc for what it may contain)."""
    parser = _parser()
    tokens = parser.parse(text)
    for token in tokens:
        for child in token.children or []:
            if child.type == "link_open":
                child.attrSet("rel", LINK_REL)
    return Markup(parser.renderer.render(tokens, parser.options, {}))
