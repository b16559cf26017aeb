// Report charts: each <canvas data-chart="NAME" data-source="ID"> is drawn from the JSON in
// the element with that id (Django's json_script), with the vendored Chart.js. No CDN.
(function () {
  "use strict";
  var palette = { opens: "#2f5bea", clicks: "#1a7f4b", machine: "#9aa3b5", bars: "#2f5bea" };
  var colours = ["#2f5bea", "#1a7f4b", "#b35c00", "#b3261e", "#6b3fd4", "#0f8a9d", "#9aa3b5", "#c2185b"];

  function common() {
    return { responsive: true, maintainAspectRatio: false, animation: false,
             plugins: { legend: { position: "bottom" } } };
  }

  var builders = {
    funnel: function (data) {
      var options = common();
      options.indexAxis = "y";
      options.plugins.legend = { display: false };
      return { type: "bar", options: options, data: { labels: data.funnel.labels,
        datasets: [{ data: data.funnel.values, backgroundColor: palette.bars }] } };
    },
    timeline: function (data) {
      var t = data.timeline, options = common();
      options.scales = { x: { title: { display: true, text: t.labels.x } }, y: { beginAtZero: true } };
      return { type: "line", options: options, data: { labels: t.hours, datasets: [
        { label: t.labels.opens, data: t.opens, borderColor: palette.opens, backgroundColor: palette.opens, tension: 0.2 },
        { label: t.labels.clicks, data: t.clicks, borderColor: palette.clicks, backgroundColor: palette.clicks, tension: 0.2 },
        { label: t.labels.opens_machine, data: t.opens_machine, borderColor: palette.machine, borderDash: [4, 4], pointRadius: 0 },
        { label: t.labels.clicks_machine, data: t.clicks_machine, borderColor: palette.machine, borderDash: [1, 3], pointRadius: 0 }
      ] } };
    },
    clients: function (data) {
      return { type: "doughnut", options: common(), data: { labels: data.clients.labels,
        datasets: [{ data: data.clients.values, backgroundColor: colours }] } };
    },
    trends: function (data) {
      var options = common();
      options.scales = { y: { beginAtZero: true, ticks: { callback: function (v) { return v + "%"; } } } };
      var names = ["open_rate", "click_rate", "bounce_rate", "unsubscribe_rate"].map(function (key) {
        return [key, data.names[key]];
      });
      return { type: "line", options: options, data: { labels: data.labels,
        datasets: names.map(function (pair, i) {
          return { label: pair[1], data: data[pair[0]], borderColor: colours[i], backgroundColor: colours[i], tension: 0.2 };
        }) } };
    }
  };

  function draw() {
    if (typeof window.Chart === "undefined") { return; }
    document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      var source = document.getElementById(canvas.getAttribute("data-source"));
      var build = builders[canvas.getAttribute("data-chart")];
      if (!source || !build) { return; }
      var chart = new window.Chart(canvas, build(JSON.parse(source.textContent)));
      canvas.setAttribute("data-rendered", String(chart.data.datasets.reduce(function (n, d) {
        return n + d.data.reduce(function (a, b) { return a + (Number(b) || 0); }, 0);
      }, 0)));
    });
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", draw); }
  else { draw(); }
})();
