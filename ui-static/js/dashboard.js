// The status dashboard: everything in the collector's status.json snapshot, in its own
// words (labels, tier titles, reasons and next steps come from host/core/words.py through the
// snapshot; the console's status view shows the same), with the Kubernetes detail one click
// away.

import {request, token} from "./api.js";
import {$, ago, badge, duration, el, facts, replace, showRefusal, size, table} from "./dom.js";

// Each rollup state's colour (its words are the snapshot's).
const TONE = {
  setup_required: "",
  installing: "",
  failed_action_required: "fail",
  ready_to_log_in: "pass",
  ready_with_background_issues: "warn",
  fully_healthy: "pass",
};
// The ladder's order (state.json's keys are sorted); titles and meanings are the snapshot's.
const LADDER = ["platform", "core", "bootstrap", "login", "background", "fully_healthy"];

export function render(app) {
  updateNotice(app.updateNotice, app.now());
  const status = app.status;
  if (!status) {
    replace($("#rollup"), el("span", {class: "state"}, "No status yet"),
            "The status collector runs every minute after setup starts.");
    for (const id of ["tiers", "blockers", "workloads", "pods", "flux", "events"]) replace($(`#${id}`));
    $("#open-app-row").hidden = true;
    return;
  }
  rollup(status, app);
  ladder(status.tiers, app.now());
  replace($("#blockers"), table(
    ["Severity", "Component", "Problem", "Next step", "Blocks login"],
    status.blockers.map((b) => [badge(b.severity), b.label, [b.reason, kubernetesDetail(b)],
                                b.next_action, b.blocks_login ? "yes" : "no"]),
    "No blockers."));
  replace($("#workloads"), table(
    ["Kind", "Name", "Ready", "Restarts", "Images"],
    status.components.workloads.map((w) => [w.kind, w.name, `${w.ready}/${w.desired}`,
                                            w.restarts, w.images.join(", ")]),
    "No workloads yet."));
  replace($("#pods"), table(
    ["Pod", "Component", "Phase", "Restarts", "Reasons", "Last termination"],
    status.components.pods.map((p) => [p.name, p.component, p.phase, p.restarts,
                                       p.reasons.join(", ") || "–", p.last_termination || "–"]),
    "No pods yet."));
  replace($("#flux"), table(
    ["Kind", "Name", "Ready", "Reason", "Message", "Revision"],
    status.flux.map((f) => [f.kind, f.name,
                            badge(f.ready === null ? "unknown" : f.ready ? "ready" : "not ready"),
                            f.reason, f.message, f.revision || "–"]),
    "No Flux objects yet."));
  replace($("#events"), table(
    ["Time", "Object", "Reason", "Message"],
    status.events.map((e) => [ago(e.time, app.now()), e.object, e.reason, e.message]),
    "No recent warnings."));
  hostFacts(status, app.now());
}

// A blocker's Kubernetes object and what Kubernetes or Flux says of it, folded away.
function kubernetesDetail(blocker) {
  const detail = blocker.detail;
  if (!detail) return null;
  const list = el("dl", {class: "facts"});
  facts(list, [["Object", `${detail.kind} ${detail.name}`], ["Reason", detail.reason || "–"],
               ["Message", detail.message || "–"]]);
  return el("details", {class: "kube-detail"}, el("summary", {}, "Kubernetes detail"), list);
}

function rollup(status, app) {
  const box = $("#rollup");
  box.className = `rollup ${TONE[status.rollup.state]}`;
  const failure = status.app_failure;  // the app stage past its limits: what it waited for
  replace(box, el("span", {class: "state"}, status.rollup.label),
          el("span", {}, status.rollup.message),
          el("span", {class: "detail"}, el("strong", {}, "Next: "), status.rollup.next_action),
          failure ? el("span", {class: "detail"}, el("strong", {}, "Last action: "),
                       failure.last_action) : null,
          failure && failure.log_excerpt ? el("pre", {class: "log", id: "app-failure-log"},
                                              failure.log_excerpt) : null);
  const login = status.tiers.login.ready;
  const address = app.context && app.context.answers && app.context.answers.app_url;
  $("#open-app-row").hidden = !(login && address);
  $("#not-ready-note").hidden = login;
  if (address) $("#open-app").href = address;
}

// Whether the installed channel names a newer release, in the notice's own words (the
// console banner shows the same); a failed check only says when the last one succeeded.
function updateNotice(notice, now) {
  const available = Boolean(notice && notice.headline);
  const shown = available || Boolean(notice && notice.failure);
  $("#update-notice").hidden = !shown;
  if (!shown) return;
  $("#update-notice").className = `notice ${available ? "warn" : ""}`;
  replace($("#update-notice-headline"), available ? notice.headline
    : ["Updates could not be checked (", ago(notice.checked_at, now), ")."]);
  replace($("#update-notice-changes"), available
    ? notice.what_changes.map((line) => el("li", {}, line)) : null);
  $("#update-notice-next").textContent = available ? notice.next_step : "";
  $("#update-notice-command").textContent = available ? notice.command : "";
  $("#update-notice-command").parentElement.hidden = !available;
  replace($("#update-notice-checked"), checkedText(notice, now));
}

// When the installed channel was checked; after a failure, why and when it last worked.
export function checkedText(notice, now) {
  const last = notice.last_success_at ? ago(notice.last_success_at, now) : "never";
  const sentence = (text) => text.replace(/\.?$/, ".");
  return notice.failure
    ? [`The last check failed: ${sentence(notice.failure.suspected_cause)} Next: ` +
       `${sentence(notice.failure.next_step)} Last successful check: `, last, "."]
    : ["Checked ", ago(notice.checked_at, now), "."];
}

function ladder(tiers, now) {
  replace($("#tiers"), LADDER.map((key) => {
    const tier = tiers[key];
    const since = tier.since ? [" since ", ago(tier.since, now)] : null;
    return el("li", {}, badge(tier.state), " ", el("span", {class: "title"}, tier.title),
              el("span", {class: "muted"}, `(${tier.meaning})`),
              el("span", {class: "detail"}, tier.reason, since));
  }));
}

function hostFacts(status, now) {
  const host = status.host;
  const release = status.release;
  facts($("#host-facts"), [
    ["Node address", host.node_ip],
    ["Release", release ? `${release.release_version} (${release.channel}) from ${release.location}`
      : "none selected yet"],
    ["k3s", `${host.k3s_state || "unknown"}${host.k3s_version ? ` (${host.k3s_version})` : ""}`],
    ...host.disk.map((d) => [`Disk ${d.path}`, disk(d, host.disk_warn_percent)]),
    ["Memory", host.memory ? `${size(host.memory.available_bytes)} available of ` +
      `${size(host.memory.total_bytes)}` : "unknown"],
    ["Clock", {synchronized: "synchronized by NTP",
               "not synchronized": "not synchronized by NTP: allow NTP (UDP 123) or set the clock"}[
      host.time_sync] || "unknown whether NTP keeps it"],
    ["Up for", duration(host.uptime_seconds)],
  ]);
  replace($("#collected-at"), "Collected ", ago(status.collected_at, now), ".");
}

// A data path's use; over the threshold it is flagged (and a warning blocker above).
function disk(d, threshold) {
  const text = `${size(d.free_bytes)} free of ${size(d.total_bytes)}`;
  if (d.used_percent === undefined) return text; // a snapshot from before the percentage
  const used = `${Math.round(d.used_percent)} % used`;
  return d.used_percent > threshold
    ? el("span", {}, badge("warning", `${used}, over ${threshold} %`), ` ${text}`)
    : `${used}, ${text}`;
}

// Rotating the setup token (after setup; the API refuses before): confirmed first, then the
// new token is shown once and this tab goes on with it.
export function bind(app, actions) {
  $("#update-notice-link").addEventListener("click", (event) => {
    if (event.ctrlKey || event.metaKey || event.shiftKey) return;
    event.preventDefault();
    actions.go("updates");
  });
  const ask = (open) => {
    $("#token-rotate-confirm").hidden = !open;
    $("#token-rotate").hidden = open;
    if (open) $("#token-rotate-yes").focus();
  };
  $("#token-rotate").addEventListener("click", () => {
    $("#token-rotated").hidden = true;
    $("#token-rotate-error").hidden = true;
    ask(true);
  });
  $("#token-rotate-no").addEventListener("click", () => {
    ask(false);
    $("#token-rotate").focus();
  });
  $("#token-rotate-yes").addEventListener("click", async () => {
    ask(false);
    try {
      const answer = await request("POST", "/api/token/rotate");
      token.set(answer.token);
      $("#token-new").textContent = answer.token;
      $("#token-rotated").hidden = false;
    } catch (error) {
      showRefusal(error, "#token-rotate-error", actions);
    }
  });
}
