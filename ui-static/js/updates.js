// The Updates page: check a channel, see what changes, confirm when needed, follow the
// apply, and the history. Requests go to a root unit; the history file says how each one went.

import {request} from "./api.js";
import {checkedText} from "./dashboard.js";
import {$, ago, badge, facts, pickup, replace, showRefusal, table} from "./dom.js";

// The id of the request this page made, until the history has an entry that answers it.
let asked = null;

export function bind(app, actions) {
  $("#update-form").addEventListener("submit", (event) => {
    event.preventDefault();
    // No channel chosen: the appliance checks the installed one.
    const channel = $("#update-form").elements.update_channel.value;
    updateRequest(actions, channel ? {action: "check", channel} : {action: "check"});
  });
  $("#update-apply").addEventListener("click", () => {
    const button = $("#update-apply");
    if (button.dataset.needs && !$("#update-confirm").checked) {
      $("#update-error").hidden = false;
      $("#update-error").textContent = "Confirm first: tick the box above the button.";
      $("#update-confirm").focus();
      return;
    }
    // The reviewed plan's release artifact: the appliance applies that one or refuses.
    const digest = button.dataset.digest ? {digest: button.dataset.digest} : {};
    updateRequest(actions, {action: "apply", channel: button.dataset.channel,
                            confirmed: Boolean(button.dataset.needs), ...digest});
  });
}

export async function render(app, actions) {
  const updates = await actions.load("/api/updates");
  if (!updates) return;
  pickup("#update-waiting", updates.waiting);
  const current = updates.current;
  facts($("#release"), current ? [
    ["Channel", current.channel],
    ["Release", current.release_version],
    ["App version", current.app_version],
    ["Source", current.source === "oci"
      ? `oci://${current.registry}/${current.repository}` : current.repo_url],
    current.source === "oci" ? ["Digest", current.manifest_digest] : ["Branch", current.repo_branch],
    ["Selected", ago(current.selected_at, app.now())],
  ] : [["Release", "None yet: it is chosen during setup."]]);
  const notice = updates.notice;
  $("#update-daily").hidden = !notice;
  replace($("#update-daily"), notice
    ? [`${notice.headline || `No newer release on ${notice.channel}.`} `,
       checkedText(notice, app.now())] : null);
  const form = $("#update-form");
  if (current && !form.elements.update_channel.value) {
    form.elements.update_channel.value = current.channel;
  }
  const waiting = asked !== null && !updates.history.some((e) => e.request_id === asked);
  if (!waiting) asked = null;
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
  history(updates.history, app.now());
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
  const warned = newest && newest.result === "succeeded" && newest.warnings;
  $("#update-background").hidden = !warned;
  $("#update-background").textContent = warned
    ? `The update succeeded and login works; background services need attention: ${newest.warnings.join("; ")}`
    : "";
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
      ` from ${shown.to.location || shown.to.source}` +
      (changes && changes.source ? `; the release source changes from ${changes.source.from} to ${changes.source.to}` : "") +
      (changes && changes.branch ? `; the branch changes from ${changes.branch.from || "–"} to ${changes.branch.to || "–"}` : "") +
      (changes && changes.values_profile ? `; the values profile changes from ${changes.values_profile.from || "–"} to ${changes.values_profile.to}` : "") +
      (changes && changes.config_digest ? `; the config bundle changes to ${changes.config_digest.to}` : "");
  replace($("#update-images"), upToDate || !changes ? null : table(
    ["Image", "Now", "After the update"],
    [...changes.images, ...(changes.charts || []).map((c) => ({...c, name: `chart ${c.name}`}))]
      .map((i) => [i.name, i.from || "–", i.to || "–"]), "No image tags or chart versions change."));
  const needs = Boolean(changes && changes.needs_confirmation);
  $("#update-warning").hidden = !needs;
  $("#update-warning").textContent = needs ? changes.confirmation_reason : "";
  $("#update-confirm-row").hidden = !needs;
  $("#update-confirm").checked = false;
  $("#update-confirm-label").textContent = changes && changes.backwards
    ? "I understand this goes back to an older version"
    : changes && changes.source ? "I understand the release source changes, as support asked"
    : "I understand nightly is for testing, or that Alga support asked for it";
  $("#update-apply").hidden = upToDate;
  $("#update-apply").dataset.channel = shown.channel;
  $("#update-apply").dataset.digest = (shown.to && shown.to.manifest_digest) || "";
  $("#update-apply").dataset.needs = needs ? "yes" : "";
}

function history(entries, now) {
  const release = (side) => (side ? `${side.release_version} (${side.channel})` : "–");
  replace($("#update-history"), table(
    ["When", "Who", "What", "From", "To", "Result", "Took"],
    entries.map((e) => [ago(e.started_at, now), e.who, e.action, release(e.from), release(e.to),
                        [badge(RESULT_WORDS[e.result], e.result.replaceAll("_", " ")),
                         e.failure ? ` ${e.failure.suspected_cause}` : null,
                         e.warnings ? ` (background: ${e.warnings[0]})` : null],
                        e.duration_s === null ? "–" : `${Math.round(e.duration_s)} s`]),
    "No checks or updates yet."));
}

const RESULT_WORDS = {up_to_date: "pass", update_available: "warn", running: "running",
                      succeeded: "succeeded", failed: "failed", interrupted: "warn"};

async function updateRequest(actions, body) {
  try {
    asked = (await request("POST", "/api/updates", body)).request_id;
    actions.pollNow();
  } catch (error) {
    showRefusal(error, "#update-error", actions);
  }
}
