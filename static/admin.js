// Charts of the admin pages, drawn from the JSON the page embeds (Chart.js, vendored).
(function () {
  "use strict";
  function data(id) {
    var node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }
  function line(id, labels, sets, yMax) {
    var canvas = document.getElementById(id);
    if (!canvas) return;
    new Chart(canvas, {
      type: "line",
      data: { labels: labels, datasets: sets },
      options: { animation: false, spanGaps: true, scales: { y: { min: 0, max: yMax } } },
    });
  }
  function bars(id, labels, sets, stacked) {
    var canvas = document.getElementById(id);
    if (!canvas) return;
    new Chart(canvas, {
      type: "bar",
      data: { labels: labels, datasets: sets },
      options: { animation: false, scales: { x: { stacked: stacked }, y: { stacked: stacked } } },
    });
  }
  var names = data("chart-labels") || {};  // the series' names in the page's language
  function named(key) { return names[key] || key; }
  var dash = data("dashboard-data");
  if (dash) {
    var rows = dash.performance;
    var labels = rows.map(function (r) { return r.period + " " + r.model_version; });
    line("chart-metrics", labels, ["f1", "precision", "recall", "ap", "coverage"].map(function (key) {
      return { label: named(key), data: rows.map(function (r) { return r[key]; }) };
    }), 1);
    var dist = dash.distribution;
    bars("chart-scores", dist.edges.slice(0, -1).map(function (e) { return e.toFixed(2); }),
      ["genuine", "fraud", "unlabelled"].map(function (key) { return { label: named(key), data: dist[key] }; }), true);
    bars("chart-volume", dash.volume.map(function (v) { return v.day; }), [
      { label: named("scored"), data: dash.volume.map(function (v) { return v.scored; }) },
      { label: named("stored"), data: dash.volume.map(function (v) { return v.stored; }) },
    ], false);
  }
  var curve = data("threshold-data");
  if (curve) {
    line("chart-threshold", curve.thresholds.map(function (t) { return t.toFixed(2); }),
      ["precision", "recall", "f1"].map(function (key) { return { label: named(key), data: curve[key], pointRadius: 0 }; }), 1);
  }
})();
