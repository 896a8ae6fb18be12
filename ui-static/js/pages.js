// Logs (fetched on demand, bounded) and the release the appliance runs.

import {ApiError, request, token} from "./api.js";
import {$, badge, el, facts, replace, table, when} from "./dom.js";
import {ordered} from "./progress.js";

export function bind(app, actions) {
  $("#update-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const channel = $("#update-form").elements.update_channel.value;
    updateRequest(app, actions, {action: "check", channel});
  });
  $("#update-apply").addEventListener("click", () => {
    const button = $("#update-apply");
    if (button.dataset.needs && !$("#update-confirm").checked) {
      $("#update-error").hidden = false;
      $("#update-error").textContent = "Confirm first: tick the box above the button.";
      $("#update-confirm").focus();
      return;
    }
    updateRequest(app, actions, {action: "apply", channel: button.dataset.channel,
                                 confirmed: Boolean(button.dataset.needs)});
  });
  $("#bundle-create").addEventListener("click", async () => {
    $("#bundle-create").disabled = true;
    try {
      await request("POST", "/api/support-bundle");
      app.bundleAskedOver = app.bundleStatus; // until the status changes, it is the last one's
      actions.pollNow();
    } catch (error) {
      bundleError(error, actions);
    }
  });
  $("#logs-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const source = $("#log-source").value;
    const lines = $("#log-lines").value;
    $("#logs-error").hidden = true;
    try {
      const log = await request("GET", `/api/logs?source=${encodeURIComponent(source)}&lines=${lines}`);
      $("#log-output").textContent = log.lines.join("\n") || "(nothing logged yet)";
      $("#log-output").scrollTop = $("#log-output").scrollHeight;
    } catch (error) {
      showRefusal(error, "#logs-error", actions);
    }
  });
}

export function renderLogs(app) {
  const phases = app.install ? ordered(app.install).map(([name]) => name) : [];
  const sources = [...phases, "journal"];
  const select = $("#log-source");
  const offered = [...select.options].map((o) => o.value);
  if (offered.join() === sources.join()) return;
  const chosen = select.value;
  replace(select, sources.map((name) => el("option", {value: name, selected: name === chosen},
    name === "journal" ? "Appliance services (journal)" : `Phase: ${name}`)));
}

// Updates: check a channel, see what changes, confirm when needed, follow the apply, and
// the history. Requests go to a root unit; the history file says how each one went.
export async function renderUpdates(app, actions) {
  let updates;
  try {
    updates = await request("GET", "/api/updates");
  } catch (error) {
    actions.failed(error);
    return;
  }
  const current = updates.current;
  facts($("#release"), current ? [
    ["Channel", current.channel],
    ["Release", current.release_version],
    ["App version", current.app_version],
    ["Branch", current.repo_branch],
    ["Selected", when(current.selected_at)],
  ] : [["Release", "None yet: it is chosen during setup."]]);
  const form = $("#update-form");
  if (current && !form.elements.update_channel.value) {
    form.elements.update_channel.value = current.channel;
  }
  app.updateHistory = JSON.stringify(updates.history);
  const waiting = app.updateAskedOver !== undefined && app.updateHistory === app.updateAskedOver;
  if (!waiting) delete app.updateAskedOver;
  const newest = updates.history[0];
  const running = updates.history.find((e) => e.result === "running");
  app.updateRunning = waiting || Boolean(running);
  $("#update-check").disabled = app.updateRunning || Boolean(updates.busy);
  $("#update-busy").hidden = !(updates.busy || waiting);
  $("#update-busy").textContent = waiting ? "Waiting for the appliance to start it…"
    : updates.busy || "";
  $("#update-progress").hidden = !running;
  if (running) {
    $("#update-step").textContent = `Updating to ${running.to ? running.to.release_version : "?"}` +
      ` on ${running.channel}: ${running.step || "starting"}`;
  }
  plan(waiting ? null : updates.history.find((e) => e.action === "check"), newest, app);
  history(updates.history);
}

function plan(check, newest, app) {
  // The newest check's plan, until something newer (an apply) has been done after it.
  const shown = check && newest === check && !app.updateRunning ? check : null;
  $("#update-plan").hidden = !shown;
  $("#update-error").hidden = !(newest && newest.result === "failed" && newest.failure);
  if (newest && newest.failure) {
    $("#update-error").textContent = `${newest.action === "check" ? "The check" : "The update"}` +
      ` failed: ${newest.failure.suspected_cause} Next: ${newest.failure.next_step}`;
  }
  if (!shown) return;
  const key = JSON.stringify(shown);
  if ($("#update-plan").dataset.key === key) return; // keep the admin's checkbox and focus
  $("#update-plan").dataset.key = key;
  const changes = shown.changes;
  const upToDate = shown.result === "up_to_date";
  $("#update-summary").textContent = upToDate
    ? `Already up to date: ${shown.from.release_version} is the newest on ${shown.channel}.`
    : `${shown.from ? shown.from.release_version : "–"} (app ${shown.from ? shown.from.app_version : "–"})` +
      ` → ${shown.to.release_version} (app ${shown.to.app_version}) on ${shown.channel}` +
      (changes && changes.branch ? `; the branch changes from ${changes.branch.from} to ${changes.branch.to}` : "");
  replace($("#update-images"), upToDate || !changes ? null : table(
    ["Image", "Now", "After the update"],
    changes.images.map((i) => [i.name, i.from || "–", i.to || "–"]), "No image tags change."));
  const needs = Boolean(changes && changes.needs_confirmation);
  $("#update-warning").hidden = !needs;
  $("#update-warning").textContent = needs ? changes.confirmation_reason : "";
  $("#update-confirm-row").hidden = !needs;
  $("#update-confirm").checked = false;
  $("#update-confirm-label").textContent = changes && changes.backwards
    ? "I understand this goes back to an older version"
    : "I understand nightly is for testing, or that Alga support asked for it";
  $("#update-apply").hidden = upToDate;
  $("#update-apply").dataset.channel = shown.channel;
  $("#update-apply").dataset.needs = needs ? "yes" : "";
}

function history(entries) {
  const release = (side) => (side ? `${side.release_version} (${side.channel})` : "–");
  replace($("#update-history"), table(
    ["When", "Who", "What", "From", "To", "Result", "Took"],
    entries.map((e) => [when(e.started_at), e.who, e.action, release(e.from), release(e.to),
                        [badge(RESULT_WORDS[e.result], e.result.replaceAll("_", " ")),
                         e.failure ? ` ${e.failure.suspected_cause}` : null],
                        e.duration_s === null ? "–" : `${Math.round(e.duration_s)} s`]),
    "No checks or updates yet."));
}

const RESULT_WORDS = {up_to_date: "pass", update_available: "warn", running: "running",
                      succeeded: "succeeded", failed: "failed", interrupted: "warn"};

// The web-requested bundle's progress and the archives to download.
export async function renderSupport(app, actions) {
  let support;
  try {
    support = await request("GET", "/api/support-bundle");
  } catch (error) {
    actions.failed(error);
    return;
  }
  app.bundleStatus = JSON.stringify(support.status);
  const waiting = app.bundleAskedOver !== undefined && app.bundleStatus === app.bundleAskedOver;
  if (!waiting) delete app.bundleAskedOver;
  const status = waiting ? null : support.status;
  app.bundleRunning = waiting || Boolean(status && status.state === "running");
  $("#bundle-create").disabled = app.bundleRunning;
  $("#bundle-progress").hidden = !app.bundleRunning;
  if (app.bundleRunning) {
    $("#bundle-step").textContent = !status ? "Waiting for the host to start the bundle…"
      : status.total ? `Making the bundle: ${status.step} (${status.done} of ${status.total})`
        : "Starting…";
    $("#bundle-bar").max = Math.max(1, status ? status.total : 1);
    $("#bundle-bar").value = status ? status.done : 0;
  }
  $("#bundle-error").hidden = !(status && status.state === "failed");
  if (status && status.state === "failed") {
    $("#bundle-error").textContent = `The last bundle failed: ${status.error}`;
  }
  const mib = (bytes) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
  replace($("#bundles"), table(["Bundle", "Size", "Made", ""], support.bundles.map((b) => {
    const button = el("button", {type: "button", class: "secondary"}, "Download");
    button.addEventListener("click", () => download(b.name, actions));
    return [b.name, mib(b.size_bytes), when(b.created_at), button];
  }), "None yet."));
}

// The download needs the token, so it is fetched, then handed to the browser as a file.
async function download(name, actions) {
  const response = await fetch(`/api/support-bundle/download?name=${encodeURIComponent(name)}`,
                               {headers: {Authorization: `Bearer ${token.get() || ""}`},
                                cache: "no-store"});
  if (!response.ok) {
    bundleError(new ApiError(response.status, await response.json().catch(() => null)), actions);
    return;
  }
  const address = URL.createObjectURL(await response.blob());
  const link = el("a", {href: address, download: name, hidden: ""});
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(address), 60000);
}

function bundleError(error, actions) {
  $("#bundle-create").disabled = false;
  showRefusal(error, "#bundle-error", actions);
}

// The API's refusal (its message) shows beside what asked; anything else (no network, the
// token, the rate limit) goes to the page-wide handling.
function showRefusal(error, box, actions) {
  if (!(error instanceof ApiError)) {
    actions.failed(error);
    return;
  }
  $(box).hidden = false;
  $(box).textContent = error.message;
}

async function updateRequest(app, actions, body) {
  try {
    await request("POST", "/api/updates", body);
    app.updateAskedOver = app.updateHistory; // until the history changes, it is the old one
    actions.pollNow();
  } catch (error) {
    showRefusal(error, "#update-error", actions);
  }
}
