// A file job's page: while the job is queued or running, poll its status every 2 s, move the
// progress bar and the row count, and reload the page when it has ended (summary or error).
(function () {
  "use strict";
  var root = document.getElementById("job");
  if (!root || root.getAttribute("data-active") !== "true" || !window.fetch) return;
  var url = root.getAttribute("data-poll-url");
  var words = JSON.parse(root.getAttribute("data-statuses") || "{}");  // in the page's language
  var rowsText = JSON.parse(root.getAttribute("data-rows") || "{}");
  var badges = { queued: "secondary", running: "primary", done: "success", failed: "danger" };

  function show(job) {
    var status = document.getElementById("job-status");
    if (status) {
      status.textContent = words[job.status] || job.status;
      status.className = "badge text-bg-" + (badges[job.status] || "light");
    }
    var bar = document.getElementById("job-progress");
    if (bar) bar.value = job.percent;
    var rows = document.getElementById("job-rows");
    if (rows) {
      var locale = rowsText.locale || "en";
      var text = job.rows_total ? rowsText.of : rowsText.done;
      rows.textContent = (text || "%(done)s rows scored")
        .replace("%(done)s", job.rows_done.toLocaleString(locale))
        .replace("%(total)s", job.rows_total ? job.rows_total.toLocaleString(locale) : "");
    }
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (response.redirected || response.status === 403 || response.status === 404) {
          window.location.reload();  // logged out or gone: let the page say so
          return null;
        }
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (job) {
        if (!job) return;
        show(job);
        if (!job.active) {
          window.location.reload();  // ended: the full page shows the summary or the error
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
