// The Status page's network diagnostics: preflight's network checks run again on the host
// (read-only) when asked, their progress, then the report as the Progress page shows
// preflight's.

import {request} from "./api.js";
import {$, ago, badge, el, replace, showRefusal} from "./dom.js";
import {checkItems, rootCauses} from "./progress.js";

// The id of the request this page made, until the status carries it (until then the
// status is the previous run's).
let asked = null;

export function bind(app, actions) {
  $("#diagnostics-run").addEventListener("click", async () => {
    $("#diagnostics-run").disabled = true;
    $("#diagnostics-error").hidden = true;
    try {
      asked = (await request("POST", "/api/network-diagnostics")).request_id;
      app.diagnosticsRunning = true;
      showProgress("Waiting for the host to start the checks…");
      actions.pollNow();
    } catch (error) {
      $("#diagnostics-run").disabled = false;
      showRefusal(error, "#diagnostics-error", actions);
    }
  });
}

export async function render(app, actions) {
  const answer = await actions.load("/api/network-diagnostics");
  if (!answer) return;
  const waiting = asked !== null && !(answer.status && answer.status.request_id === asked);
  if (!waiting) asked = null;
  const status = waiting ? null : answer.status;
  app.diagnosticsRunning = waiting || Boolean(status && status.state === "running");
  $("#diagnostics-run").disabled = app.diagnosticsRunning;
  $("#diagnostics-progress").hidden = !app.diagnosticsRunning;
  if (app.diagnosticsRunning) {
    showProgress(!status ? "Waiting for the host to start the checks…"
      : status.last_check ? `Running the checks (${status.checks_done} done; last: ` +
        `${status.last_check})…`
        : "Running the checks: DNS, proxy, release source, registries, downloads, clock " +
          "(up to a minute)…");
  }
  const failed = Boolean(status && status.state === "failed");
  if (failed) {
    $("#diagnostics-error").hidden = false;
    $("#diagnostics-error").textContent = `The checks could not run: ${status.error}`;
  }
  report(status, answer.report, app.now());
}

function showProgress(text) {
  $("#diagnostics-progress").hidden = false;
  $("#diagnostics-step").textContent = text;
}

// The last report, kept in view while a new run goes on (it says when it was made).
function report(status, found, now) {
  const box = $("#diagnostics-report");
  if (!found) {
    replace(box, el("p", {class: "muted"}, "Not run yet."));
    return;
  }
  const words = {pass: "every check passed", warn: "passed with warnings",
                 fail: "a check failed"};
  replace(box,
    el("p", {}, badge(found.outcome), " ", "Checked ", ago(found.generated_at, now), ": ",
       words[found.outcome], status ? ` (with the ${status.inputs})` : ""),
    status && status.setup_running ? el("p", {class: "notice warn"},
      `While these ran: ${status.setup_running}. The checks only read, so they did not ` +
      "disturb it, but its changes in progress may show here.") : null,
    found.causes.length ? rootCauses(found.causes) : null,
    el("ul", {class: "checklist"}, checkItems(found.checks)));
}
