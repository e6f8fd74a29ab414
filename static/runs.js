// A training run's page: while the run is queued or running, poll its JSON every 2 s, show the
// status and progress, and reload the page when it has finished (to show metrics and buttons).
(function () {
  "use strict";
  var root = document.getElementById("run");
  if (!root || root.getAttribute("data-active") !== "true" || !window.fetch) return;
  var url = root.getAttribute("data-poll-url");
  var words = JSON.parse(root.getAttribute("data-statuses") || "{}");  // in the page's language
  var badges = {
    queued: "secondary", running: "primary", succeeded: "success", failed: "danger",
    cancelled: "warning",
  };

  function text(id, value) {
    var node = document.getElementById(id);
    if (node) node.textContent = value;
  }

  function show(run) {
    var status = document.getElementById("run-status");
    if (status) {
      status.textContent = words[run.status] || run.status;
      status.className = "badge text-bg-" + (badges[run.status] || "light");
    }
    text("run-progress", run.progress || "");
    if (run.heartbeat_at) {
      text("run-heartbeat", run.heartbeat_at.replace("T", " ").slice(0, 19));
    }
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (response.redirected || response.status === 403) {
          window.location.reload();  // logged out meanwhile: let the page send us to the login
          return null;
        }
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (run) {
        if (!run) return;
        show(run);
        if (!run.active) {
          window.location.reload();  // finished: the full page shows metrics and buttons
          return;
        }
        window.setTimeout(poll, 2000);
      })
      .catch(function () {
        window.setTimeout(poll, 2000);  // a restart or a network blip: keep trying
      });
  }

  window.setTimeout(poll, 2000);
})();
