// Mailcenter: small progressive enhancements, no framework.
(function () {
  "use strict";
  // Forms marked data-confirm ask before they submit (destructive or irreversible actions).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var message = form.getAttribute("data-confirm");
    if (message && !window.confirm(message)) { event.preventDefault(); }
  });
  // Elements with data-progress-url poll it and update their bar and counters.
  function poll(el) {
    var url = el.getAttribute("data-progress-url");
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) { return; }
        var bar = el.querySelector(".bar");
        if (bar) { bar.style.width = (data.percent || 0) + "%"; }
        Object.keys(data).forEach(function (key) {
          el.querySelectorAll("[data-field='" + key + "']").forEach(function (node) {
            node.textContent = data[key];
          });
        });
        var running = data.running !== undefined ? data.running
          : (data.status === "sending" || data.status === "queued" || data.status === "running");
        if (running) { setTimeout(function () { poll(el); }, 1000); }
        else if (el.hasAttribute("data-reload-when-done") && el.getAttribute("data-was-running") === "1") {
          window.location.reload();
        }
        el.setAttribute("data-was-running", running ? "1" : "0");
      })
      .catch(function () { setTimeout(function () { poll(el); }, 3000); });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-progress-url]").forEach(poll);
  });
})();
