// Draws the report charts from the JSON the page carries (#chart-data); Chart.js is
// loaded before this file. No inline script, so the page's CSP allows 'self' only.
(function () {
  "use strict";

  function bar(id, labels, datasets, stacked) {
    const canvas = document.getElementById(id);
    if (!canvas) return;
    new Chart(canvas, {
      type: "bar",
      data: { labels: labels, datasets: datasets },
      options: {
        animation: false,
        maintainAspectRatio: false,
        scales: { x: { stacked: stacked }, y: { stacked: stacked, beginAtZero: true } },
      },
    });
  }

  function draw() {
    const source = document.getElementById("chart-data");
    if (!source) return;
    const data = JSON.parse(source.textContent);
    bar("chart-days", data.days.labels, [
      { label: "answered", data: data.days.answered, backgroundColor: "#2f7d4f" },
      { label: "not answered", data: data.days.unanswered, backgroundColor: "#c8a13a" },
    ], true);
    bar("chart-hours", data.hours.labels, [
      { label: "calls", data: data.hours.calls, backgroundColor: "#2d5f9a" },
    ], false);
    bar("chart-sites", data.sites.labels, [
      { label: "answer rate %", data: data.sites.asr, backgroundColor: "#2f7d4f" },
      { label: "average talk s", data: data.sites.acd, backgroundColor: "#2d5f9a" },
    ], false);
    document.body.dataset.chartsDrawn = "true";
  }

  document.addEventListener("DOMContentLoaded", draw);
})();
