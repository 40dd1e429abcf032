"""Cost of sealing inbox bodies: ``Sealer.seal`` (ingest's writer) and ``Sealer.open`` (the digest) per envelope.

Each figure is the best of several ``timeit`` repeats, in microseconds per call, for random bodies of 1 kB,
4 kB (a typical event) and 1 MB (a large attachment). Random bytes, because the cipher's cost does not depend on
the contents.

    python -m bench.seal_cost          # ~3 s: table on stderr, one JSON line on stdout
"""

from __future__ import annotations

import json
import os
import platform
import sys
import timeit

from stackwatch.server.storage.sealing import Sealer

__all__ = ["main", "measure"]

SIZES = {"1 kB": 1 << 10, "4 kB": 4 << 10, "1 MB": 1 << 20}


def measure(size: int, *, repeat: int = 7) -> tuple[float, float]:
    """Microseconds per seal and per open of a body of ``size`` bytes."""
    sealer = Sealer("bench-" + os.urandom(16).hex())
    body = os.urandom(size)
    sealed = sealer.seal(body, 1)
    number = max(10, 20_000_000 // max(size, 1000))
    seal = min(timeit.repeat(lambda: sealer.seal(body, 1), number=number, repeat=repeat)) / number
    opened = min(timeit.repeat(lambda: sealer.open(sealed, 1), number=number, repeat=repeat)) / number
    return seal * 1e6, opened * 1e6


def main() -> None:
    results = {}
    print(f"{'body':>6}  {'seal µs':>9}  {'open µs':>9}", file=sys.stderr)
    for label, size in SIZES.items():
        seal, opened = measure(size)
        results[label] = {"seal_us": round(seal, 2), "open_us": round(opened, 2)}
        print(f"{label:>6}  {seal:9.1f}  {opened:9.1f}", file=sys.stderr)
    print(json.dumps({"bench": "seal_cost", "python": platform.python_version(), "results": results}))


if __name__ == "__main__":
    main()
