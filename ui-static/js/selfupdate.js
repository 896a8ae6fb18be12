// The Updates page's "Appliance software": the installed version, a check of the pinned
// repository, the newer versions with their release notes, an apply the admin confirms,
// its progress (through the web service's own restart, which is part of it), the outcome
// and the history. Requests go to a root unit; the maintenance record says how each went.

import {ApiError, RateLimited, Unauthorized, request} from "./api.js";
import {$, ago, badge, el, facts, pickup, replace, showRefusal, table} from "./dom.js";

// What this tab asked ({action, version, before: the newest history entry then}), until the
// history has a newer entry: between the unit taking the request and its journal (or the
// check's entry) there is nothing else to follow it by.
let asked = null;
// A self-update was applying at the last answer: a poll that fails now is its restart.
let applying = false;
let installed = null; // the version the last answer named
let newestSeen = null; // the newest history entry the last answer had
let confirming = null; // the version the confirmation asks about

const RESTARTING = "The appliance service is restarting as part of the software update; " +
  "this page reconnects by itself.";
// The journal's steps (host/update/self_update.py) in words.
const STEPS = {
  snapshot: "saving the settings as they are", install: "installing it beside the running version",
  switch: "switching to it", migrate: "updating the settings files to its format",
  restart: "restarting the appliance service", health: "checking that it works",
  commit: "finishing", rollback: "it failed: going back",
};
const OUTCOMES = {"up-to-date": "pass", available: "warn", applied: "succeeded",
                  refused: "failed", "rolled-back": "warn", failed: "failed"};

export function bind(app, actions) {
  $("#self-update-check").addEventListener("click", () => ask(app, actions, {action: "check"}));
  $("#self-update-offer").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-version]");
    if (!button) return;
    confirming = button.dataset.version;
    $("#self-update-confirm-text").textContent =
      `Replace the appliance software ${installed || "installed now"} with ${confirming}? ` +
      "It is installed beside the running version, the appliance service restarts (this " +
      `page reconnects by itself) and the new version is checked; if it does not work, the ` +
      `appliance goes back to ${installed || "the version it has"} by itself.`;
    $("#self-update-yes").textContent = `Update ${installed || "–"} → ${confirming}`;
    $("#self-update-confirm").hidden = false;
    $("#self-update-yes").focus();
  });
  $("#self-update-cancel").addEventListener("click", () => {
    confirming = null;
    $("#self-update-confirm").hidden = true;
  });
  $("#self-update-yes").addEventListener("click", () => {
    const version = confirming;
    confirming = null;
    $("#self-update-confirm").hidden = true;
    ask(app, actions, {action: "apply", version});
  });
}

// A poll that got no answer while a self-update applies: the restart it makes, said so (the
// message for the page-wide notice), or null when it is no such failure (an answer, even a
// refusal, is not).
export function lostContact(error) {
  const answered = [ApiError, Unauthorized, RateLimited].some((kind) => error instanceof kind);
  if (!applying || answered) return null;
  $("#self-update-progress").hidden = false;
  $("#self-update-step").textContent = RESTARTING;
  return RESTARTING;
}

export async function render(app, actions) {
  let shown;
  try {
    shown = await request("GET", "/api/self-update");
  } catch (error) {
    if (!lostContact(error)) actions.failed(error);
    return;
  }
  const running = shown.running;
  // Mid-apply `current` may already name the new version: the one being left is the one
  // running until the update is settled.
  installed = running ? running.from_version : shown.installed;
  const newest = shown.history[0] || null;
  newestSeen = newest;
  if (asked && JSON.stringify(newest) !== asked.before) asked = null;
  applying = Boolean(running) || Boolean(asked && asked.action === "apply");
  app.selfUpdateRunning = Boolean(running || asked);
  facts($("#self-update-facts"), [
    ["Installed", running ? `${installed}, being updated to ${running.to_version}`
      : installed || "not installed as versions (a development copy)"],
    ["Last check", shown.offer ? ago(shown.offer.checked_at, app.now()) : "never"],
  ]);
  pickup("#self-update-waiting", shown.waiting);
  const busy = !app.selfUpdateRunning && shown.busy;
  $("#self-update-check").disabled = app.selfUpdateRunning || Boolean(busy);
  $("#self-update-busy").hidden = !busy;
  $("#self-update-busy").textContent = busy || "";
  progress(running, shown.waiting);
  outcome(newest, app.now());
  offer(shown.offer, Boolean(running), app.selfUpdateRunning || Boolean(busy),
        app.now());
  history(shown.history, app.now());
}

function progress(running, waiting) {
  const step = running
    ? `Updating from ${running.from_version} to ${running.to_version}: ${STEPS[running.step]}` +
      (running.step === "rollback" ? ` to ${running.from_version} (${running.reason})` : "") + "…"
    : !asked ? null
      : waiting ? "Waiting for the appliance to start it…"
        : asked.action === "check" ? "Checking the repository this appliance pins…"
          : `Downloading ${asked.version} and checking its signature and files…`;
  $("#self-update-progress").hidden = !step;
  $("#self-update-step").textContent = step || "";
}

// How the newest check or apply went, when it went wrong or applied something.
function outcome(newest, now) {
  const box = $("#self-update-outcome");
  const said = newest && !asked ? words(newest) : null;
  box.hidden = !said;
  box.className = `notice ${newest && newest.outcome === "applied" ? "pass" : "fail"}`;
  replace(box, said ? [said, " (", ago(newest.at, now), ")"] : null);
}

function words(entry) {
  const to = entry.to_version;
  if (entry.action === "check") {
    return entry.outcome === "failed" ? `The check failed: ${entry.reason}` : null;
  }
  return {
    applied: `The appliance software was updated from ${entry.from_version} to ${to}; ` +
      "reload this page to use the new version's web UI",
    refused: `The update to ${to} was refused, nothing changed: ${entry.reason}`,
    "rolled-back": `The update to ${to} was rolled back to ${entry.from_version}: ` +
      entry.reason,
    failed: `The update to ${to} failed: ${entry.reason}`,
  }[entry.outcome];
}

function offer(found, running, locked, now) {
  const target = $("#self-update-offer");
  if (running) {
    replace(target, el("p", {class: "muted"},
      "An update is under way: the versions on offer show again once it has finished."));
    return;
  }
  if (!found) {
    replace(target, el("p", {class: "muted"},
      "Not checked yet: Check for appliance updates asks the repository this appliance pins."));
    return;
  }
  if (!found.available.length) {
    replace(target, el("p", {class: "notice pass"},
      `Up to date: no version newer than ${installed || "the installed one"} was offered.`));
    return;
  }
  replace(target, found.available.map((release) => el("article", {class: "offer"},
    el("h4", {}, `Version ${release.version}`,
       release.created ? el("span", {class: "hint"}, " published ", ago(release.created, now))
         : null),
    el("p", {class: "notes"}, release.notes || "No release notes."),
    el("div", {class: "buttons"}, el("button", {
      type: "button", "data-version": release.version, disabled: locked ? "" : null,
    }, `Apply ${release.version}…`)))));
}

function history(entries, now) {
  replace($("#self-update-history"), table(
    ["When", "What", "From", "To", "Result", "Signed by", "Took"],
    entries.map((e) => [ago(e.at, now), e.action, e.from_version || "–", e.to_version || "–",
                        // One element: a stacked row's cell is a grid of label and value.
                        el("span", {}, badge(OUTCOMES[e.outcome], e.outcome.replaceAll("-", " ")),
                           e.reason ? ` ${e.reason}` : null),
                        e.signer || "–", `${Math.round(e.duration_s)} s`]),
    "No checks or updates yet."));
}

async function ask(app, actions, body) {
  $("#self-update-error").hidden = true;
  const before = JSON.stringify(newestSeen);
  try {
    await request("POST", "/api/self-update", body);
    asked = {...body, before};
    app.selfUpdateRunning = true;
    actions.pollNow();
  } catch (error) {
    showRefusal(error, "#self-update-error", actions);
  }
}
