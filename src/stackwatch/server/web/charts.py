"""Chart data for the dashboard's pages, drawn in the browser by ``static/stackwatch.js`` with uPlot.

A page marks a chart with ``<figure class="chart" data-chart="{{ chart }}">``: the attribute holds the JSON this
module builds (numbers and fixed labels only, never event data), HTML-escaped like every other value. The same
numbers are always on the page as text too (a table or a list), so the page says everything without scripts.
Sparklines are small inline SVG drawn on the server (``sparkline``): no script, cheap for a list of rows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

__all__ = ["Series", "chart", "sparkline"]

Series = tuple[str, Sequence[float]]
KINDS = frozenset({"bars", "lines", "stacked"})


def chart(x: Sequence[int], series: Sequence[Series], *, kind: str = "bars", step: int = 3600) -> str:
    """The ``data-chart`` JSON: ``x`` are epoch seconds (each the start of a bucket of ``step`` seconds); each
    series a label and one value per ``x``."""
    if kind not in KINDS:
        raise ValueError(f"unknown chart kind {kind!r}")
    for label, values in series:
        if len(values) != len(x):
            raise ValueError(f"series {label!r} has {len(values)} values for {len(x)} points")
    data = {
        "kind": kind,
        "step": step,
        "x": list(x),
        "series": [{"label": label, "values": list(values)} for label, values in series],
    }
    return json.dumps(data, separators=(",", ":"))


def sparkline(values: Sequence[float], *, width: int = 96, height: int = 20) -> str:
    """The ``points`` of an SVG polyline drawing ``values`` left to right, highest at the top."""
    if not values:
        return ""
    top = max(values) or 1
    last = max(len(values) - 1, 1)
    return " ".join(
        f"{round(i * width / last, 1):g},{round(height - value * (height - 2) / top - 1, 1):g}"
        for i, value in enumerate(values)
    )
