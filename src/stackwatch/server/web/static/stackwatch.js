// The dashboard's own script: charts, live-update courtesy and select-all. Loaded after htmx, its SSE extension
// and uPlot (all deferred, in order). The pages work without it; it only adds to them.
(function () {
  "use strict";

  var LEVEL_COLOURS = {
    fatal: "#7f1d1d", error: "#dc2626", warning: "#d97706", info: "#2563eb", debug: "#6b7280", events: "#dc2626",
  };
  var PALETTE = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#6b7280"];

  function colour(label, index) {
    return LEVEL_COLOURS[label] || PALETTE[index % PALETTE.length];
  }

  // Axis labels in UTC, 24-hour: "14:00" for hourly buckets, "11-28" for daily ones.
  function ticks(step) {
    return function (u, splits) {
      return splits.map(function (seconds) {
        var iso = new Date(seconds * 1000).toISOString();
        return step >= 86400 ? iso.slice(5, 10) : iso.slice(11, 16);
      });
    };
  }

  function utc(seconds) {
    return uPlot.tzDate(new Date(seconds * 1000), "Etc/UTC");
  }

  // Stacked charts draw running totals, the largest first, so every band shows its own part; the legend and
  // the tooltip still show each series' own value.
  function plotData(spec) {
    var own = spec.series.map(function (s) { return s.values; });
    if (spec.kind !== "stacked") return { own: own, drawn: own, order: own.map(function (_, i) { return i; }) };
    var totals = spec.x.map(function () { return 0; });
    var running = own.map(function (values) {
      totals = totals.map(function (sum, i) { return sum + values[i]; });
      return totals.slice();
    });
    var order = own.map(function (_, i) { return own.length - 1 - i; });
    return { own: own, drawn: order.map(function (i) { return running[i]; }), order: order };
  }

  function draw(figure) {
    if (figure._chart) { figure._chart.destroy(); figure._chart = null; }
    var spec;
    try { spec = JSON.parse(figure.getAttribute("data-chart")); } catch (e) { return; }
    var data = plotData(spec);
    var width = Math.max(figure.clientWidth || 600, 240);
    var bars = spec.kind !== "lines" ? uPlot.paths.bars({ size: [0.8, 40] }) : undefined;
    var series = [{ value: spec.step >= 86400 ? "{YYYY}-{MM}-{DD}" : "{YYYY}-{MM}-{DD} {HH}:{mm}" }];
    data.order.forEach(function (index) {
      var label = spec.series[index].label;
      series.push({
        label: label,
        stroke: colour(label, index),
        fill: spec.kind === "lines" ? undefined : colour(label, index),
        width: spec.kind === "lines" ? 2 : 1,
        paths: bars,
        points: { show: false },
        value: function (u, v, s, i) { return i == null ? "–" : String(data.own[index][i]); },
      });
    });
    var options = {
      width: width,
      height: 200,
      tzDate: utc,
      series: series,
      scales: { x: { time: true }, y: { range: function (u, min, max) { return [0, Math.max(1, max)]; } } },
      axes: [{ values: ticks(spec.step) }, { size: 48 }],
      legend: { show: true },
    };
    figure._chart = new uPlot(options, [spec.x].concat(data.drawn), figure);
  }

  function drawAll(root) {
    if (typeof uPlot === "undefined") return;
    var figures = root.querySelectorAll ? root.querySelectorAll("figure.chart[data-chart]") : [];
    Array.prototype.forEach.call(figures, draw);
    if (root.matches && root.matches("figure.chart[data-chart]")) draw(root);
  }

  // Live updates redraw the issue list's rows; while issues are ticked for a bulk action they wait, so a
  // redraw never clears a selection.
  function selected(form) {
    return form && form.querySelector("input[name=issue_id]:checked") !== null;
  }

  function noteSelection(form) {
    var note = form && form.querySelector(".live-note");
    if (note) note.hidden = !selected(form);
  }

  document.addEventListener("htmx:beforeRequest", function (event) {
    var target = event.detail.elt;
    if (target && target.classList && target.classList.contains("pause-when-selected")) {
      var form = target.closest("form");
      if (selected(form)) {
        event.preventDefault();
        target.setAttribute("data-missed-update", "1");
      }
    }
  });

  document.addEventListener("change", function (event) {
    var input = event.target;
    var form = input.closest && input.closest("form.bulk");
    if (!form) return;
    if (input.classList.contains("select-all")) {
      form.querySelectorAll("input[name=issue_id]").forEach(function (box) { box.checked = input.checked; });
    }
    noteSelection(form);
    var rows = form.querySelector(".pause-when-selected[data-missed-update]");
    if (rows && !selected(form) && typeof htmx !== "undefined") {
      rows.removeAttribute("data-missed-update");
      htmx.trigger(rows, "sse:changed");
    }
  });

  function ready() {
    document.querySelectorAll("input.select-all").forEach(function (box) { box.hidden = false; });
    if (typeof htmx !== "undefined") {
      htmx.onLoad(drawAll);  // the page, and every fragment htmx swaps in
    } else {
      drawAll(document);
    }
    var width = window.innerWidth;
    window.addEventListener("resize", function () {
      if (Math.abs(window.innerWidth - width) > 40) { width = window.innerWidth; drawAll(document); }
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", ready);
  else ready();
})();
