"""Calibration of the opaque-token detector (``high_entropy``) and of ``base64_secret``.

Negatives: tens of thousands of strings that are not secrets and look most like them -- UUIDs, git SHAs, hex and
image digests, SRI hashes, timestamps, order numbers, base64 of ordinary text and JSON, URLs, identifiers in every
case style, and the paths, module names, qualified function names and docstrings of the Python standard library
(real prose and real identifiers, not made up for the test).  Not one may be taken for a token.

Positives: random tokens of the shapes secrets have -- AWS secret access keys, base62, base64 and base64url of
32 to 64 characters, alone and inside text -- must be caught at the rate docs/redaction.md states; hex tokens are
only caught with a name before them, and that at every try.

The figures the docs quote are printed by ``python -m tests.test_scrub_entropy``.
"""

from __future__ import annotations

import ast
import base64
import datetime as dt
import hashlib
import random
import string
import sysconfig
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from stackwatch.scrub import scrub_text

DETECTORS = ("high_entropy", "base64_secret")
# What docs/redaction.md claims for random tokens of 32-64 characters; the measured rates are above it.
CLAIMED_RATE = 0.995

_WORD_LIST = """order payment worker session account customer invoice request response handler service manager factory
builder client server router message queue event stream buffer reader writer parser config setting value result
error status record table column index cache store proxy adapter controller model view template render update
delete create insert select filter mapper reducer action state context scope thread process signal socket
connection transaction commit rollback timeout retry backoff limit quota tenant workflow step run webhook notify
alert digest issue project release deploy build test check lint format schema migration version shipping refund
"""
WORDS = _WORD_LIST.split()
B62 = string.ascii_letters + string.digits
B64 = B62 + "+/"


def _stdlib(limit: int = 180) -> tuple[list[str], list[str], list[str], list[str]]:
    """Paths, module paths, qualified names and docstrings of (part of) the standard library."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.rglob("*.py") if not {"test", "tests", "site-packages"} & set(p.parts))
    paths: list[str] = []
    modules: list[str] = []
    names: list[str] = []
    prose: list[str] = []
    for path in files[:: max(1, len(files) // limit)]:
        relative = path.relative_to(root)
        module = ".".join(relative.with_suffix("").parts)
        paths += [str(path), f"/srv/app/.venv/lib/python3.11/site-packages/{relative}", f"C:\\Lib\\{relative}"]
        modules += [module, module.replace(".", "/")]
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names += [node.name, f"{module}.{node.name}", f"{node.name} ({path}:{node.lineno})"]
                doc = ast.get_docstring(node)
                if doc:
                    prose.append(doc)
    return paths, modules, names, prose


def negatives(seed: int = 7) -> dict[str, list[str]]:
    rnd = random.Random(seed)

    def uid() -> uuid.UUID:
        return uuid.UUID(int=rnd.getrandbits(128))

    def words(low: int, high: int) -> list[str]:
        return rnd.sample(WORDS, rnd.randint(low, high))

    start = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    stamps = [
        start + dt.timedelta(seconds=rnd.randrange(10**9), microseconds=rnd.randrange(10**6)) for _ in range(3000)
    ]
    paths, modules, names, prose = _stdlib()
    return {
        "uuid": [str(uid()) for _ in range(3000)]
        + [uid().hex for _ in range(1000)]
        + [str(uid()).upper() for _ in range(500)],
        "git sha": [hashlib.sha1(rnd.randbytes(16)).hexdigest() for _ in range(3000)],
        "sha256": [hashlib.sha256(rnd.randbytes(16)).hexdigest() for _ in range(3000)],
        "sha512": [hashlib.sha512(rnd.randbytes(16)).hexdigest() for _ in range(500)],
        "image digest": [f"ghcr.io/acme/app@sha256:{hashlib.sha256(rnd.randbytes(8)).hexdigest()}" for _ in range(500)],
        "sri": [f"sha384-{base64.b64encode(hashlib.sha384(rnd.randbytes(8)).digest()).decode()}" for _ in range(500)],
        "timestamp": [s.isoformat() for s in stamps[:1000]]
        + [s.strftime("%Y-%m-%dT%H:%M:%S.%fZ") for s in stamps[1000:2000]]
        + [f"{s.timestamp():.6f}" for s in stamps[2000:]],
        "order number": [f"ORD-{rnd.randrange(2020, 2030)}-{rnd.randrange(10**6):06d}" for _ in range(1000)]
        + [f"INV{rnd.randrange(10**12)}" for _ in range(1000)],
        "camelCase": [(lambda w: w[0] + "".join(x.capitalize() for x in w[1:]))(words(4, 9)) for _ in range(3000)],
        "PascalCase": ["".join(x.capitalize() for x in words(4, 9)) for _ in range(3000)],
        "snake_case": ["_".join(words(4, 8)) for _ in range(1000)],
        "base64 of text": [base64.b64encode(" ".join(words(6, 20)).encode()).decode() for _ in range(1000)],
        "base64 of json": [
            base64.b64encode(f'{{"user": "{rnd.choice(WORDS)}", "step": {rnd.randrange(99)}}}'.encode()).decode()
            for _ in range(500)
        ],
        "url": [
            f"https://{rnd.choice(WORDS)}.example.com/{rnd.choice(WORDS)}/{uid()}/{rnd.choice(WORDS)}"
            f"?page={rnd.randrange(9)}&sort={rnd.choice(WORDS)}&ts={s.isoformat()}"
            for s in stamps[:1000]
        ],
        "stdlib path": paths,
        "stdlib module": modules,
        "stdlib function": names,
        "stdlib docstring": prose,
    }


def positives(seed: int = 11) -> dict[str, list[str]]:
    rnd = random.Random(seed)

    def pick(alphabet: str, n: int) -> str:
        return "".join(rnd.choice(alphabet) for _ in range(n))

    def context(token: str) -> str:
        return rnd.choice(["{}", "session {} expired", "['{}']", '{{"v": "{}"}}', "retry with {} now"]).format(token)

    return {
        "AWS secret access key": [context(pick(B64, 40)) for _ in range(2000)],
        "base62 32-64": [context(pick(B62, rnd.randint(32, 64))) for _ in range(2000)],
        "base64 24-48 bytes": [
            context(base64.b64encode(rnd.randbytes(rnd.randint(24, 48))).decode()) for _ in range(2000)
        ],
        "base64url 24-48 bytes": [
            context(base64.urlsafe_b64encode(rnd.randbytes(rnd.randint(24, 48))).decode().rstrip("="))
            for _ in range(2000)
        ],
    }


def hex_with_context(seed: int = 13) -> list[str]:
    rnd = random.Random(seed)
    forms = [
        "api_key={}",
        "API_KEY={}",
        "secret: {}",
        "X-Api-Key: {}",
        "token={}",
        '"client_secret": "{}"',
        "password={}",
    ]
    return [
        rnd.choice(forms).format("".join(rnd.choice("0123456789abcdef") for _ in range(rnd.randint(32, 64))))
        for _ in range(1000)
    ]


def _detected(text: str) -> bool:
    return any(remark.rule in DETECTORS for remark in scrub_text(text)[1])


def _rates(corpus: dict[str, list[str]], hit: Callable[[str], bool]) -> dict[str, tuple[int, int]]:
    return {kind: (sum(hit(text) for text in texts), len(texts)) for kind, texts in corpus.items()}


def test_no_negative_is_taken_for_a_token() -> None:
    corpus = negatives()
    assert sum(len(texts) for texts in corpus.values()) > 30_000
    hits = {kind: [t for t in texts if _detected(t)][:5] for kind, texts in corpus.items()}
    assert {kind: found for kind, found in hits.items() if found} == {}


@pytest.mark.parametrize("kind", list(positives()))
def test_random_tokens_are_caught_at_the_claimed_rate(kind: str) -> None:
    texts = positives()[kind]
    caught = sum(_detected(text) for text in texts)
    assert caught / len(texts) >= CLAIMED_RATE, f"{kind}: {caught}/{len(texts)}"


def test_hex_tokens_with_a_name_are_always_caught() -> None:
    texts = hex_with_context()
    missed = [text for text in texts if scrub_text(text)[0] == text]
    assert missed == []


def test_hex_tokens_alone_are_left_alone() -> None:
    """A bare hex string is an id, a digest or a token: without a name before it the detector leaves it."""
    rnd = random.Random(17)
    texts = ["".join(rnd.choice("0123456789abcdef") for _ in range(rnd.randint(32, 64))) for _ in range(1000)]
    assert [t for t in texts if scrub_text(t)[0] != t] == []


def main() -> None:
    for title, corpus in (("negatives", negatives()), ("positives", positives())):
        print(title)
        for kind, (hits, total) in _rates(corpus, _detected).items():
            print(f"  {kind:24s} {hits:6d} / {total:6d}  {hits / total:.4%}")
    texts = hex_with_context()
    print(f"hex with a name: {sum(scrub_text(t)[0] != t for t in texts)} / {len(texts)}")


if __name__ == "__main__":
    main()
