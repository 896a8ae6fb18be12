// Setup progress: step n of m with the time spent and an estimate of what remains, the
// preflight checklist, the host phases, then the app stage until login works, the current
// phase's log tail, and the failure view with its next step. Steps, titles and times come
// from GET /api/install's `timing` (host/setup/timing.py); this page only shows them.

import {request} from "./api.js";
import {$, ago, badge, duration, el, facts, pickup, replace, when} from "./dom.js";

const TAIL_LINES = 40;

// Setup again with the answers of the failed run.
export async function retry(actions) {
  const context = await actions.refreshContext();
  try {
    actions.submitted(await request("POST", "/api/setup", context.answers));
  } catch (error) {
    actions.failed(error);
  }
}

// Continue the interrupted run from the phase that stopped, with the recorded answers.
export async function resume(actions) {
  try {
    actions.submitted(await request("POST", "/api/setup/resume"));
  } catch (error) {
    actions.failed(error);
  }
}

export function render(app, actions) {
  const install = app.waiting() ? null : app.install;
  const chain = app.context.phases;
  const timing = install && app.timing;
  summary(app, install, chain);
  pickup("#setup-waiting", app.setupWaiting);
  headline(timing);
  credentials(install && app.credentials);
  checklist(app, install);
  failureView(install, chain, actions, app.preflight);
  phases(install, chain, timing);
  appStage(timing);
  tail(install, chain);
}

// Whether the app stage is under way: the progress page, not the status page, follows it.
export function appStageRunning(timing) {
  return Boolean(timing) && timing.steps.some((s) => s.stage === "app" && s.state === "running");
}

// Step 3 of 9 · 4 min 10 s elapsed · about 14 min left.
function headline(timing) {
  const box = $("#progress-time");
  box.hidden = !timing;
  if (!timing) return;
  const left = timing.remaining_seconds === null ? "stopped"
    : timing.done === timing.of ? "done"
      : timing.remaining_seconds ? `about ${duration(timing.remaining_seconds)} left`
        : "taking longer than usual";
  replace(box, el("strong", {}, `Step ${timing.step} of ${timing.of}`),
          ` · ${duration(timing.elapsed_seconds)} elapsed · ${left}`);
}

// A step's times: when it started (relative, exact on hover), and what it took, or how
// long it has run against what it usually takes.
function stepTimes(step, now) {
  if (!step || !step.started_at || step.state === "pending" || step.state === "skipped") {
    return [];
  }
  const took = step.elapsed_seconds === null ? null : duration(step.elapsed_seconds);
  const usual = `${step.expected_from === "this appliance" ? "on this appliance" : "usually"} ` +
    duration(step.expected_seconds);
  const parts = ["started ", ago(step.started_at, now)];
  if (step.state === "running") {
    parts.push(took ? `, running for ${took} (${usual})` : ` (${usual})`);
    if (step.overdue) parts.push(" – taking longer than usual");
  } else if (took) {
    parts.push(`, took ${took}`);
  }
  return parts;
}

// The app stage after the host phases: its steps from status.json's readiness tiers.
function appStage(timing) {
  const steps = timing ? timing.steps.filter((s) => s.stage === "app") : [];
  const note = $("#app-stage-behind");
  note.hidden = !(timing && timing.status_behind);
  note.textContent = (timing && timing.status_behind) || "";
  if (!steps.length) {
    replace($("#app-steps"), el("li", {class: "muted"}, "Starts after the host steps."));
    return;
  }
  replace($("#app-steps"), steps.map((step) => {
    const current = step.state === "running";
    return el("li", {class: current ? "current" : null, "aria-current": current ? "step" : null},
      badge(step.state), " ", el("span", {class: "title"}, step.title),
      el("span", {class: "detail"}, stepTimes(step, timing.now).length
        ? stepTimes(step, timing.now)
        : step.state === "pending" ? `usually ${duration(step.expected_seconds)}` : null));
  }));
}

// The phase's title, as GET /api/setup names it (an unknown one stands for itself).
function title(chain, name) {
  const phase = chain.find((p) => p.name === name);
  return phase ? phase.title : name;
}

function summary(app, install, chain) {
  const target = $("#progress-summary");
  let text = "Setup has not started. Complete the setup wizard first.";
  let tone = "";
  if (app.waiting()) text = "Setup request sent. Waiting for the appliance to start it…";
  else if (app.refusal) {
    text = `The appliance did not start setup: ${app.refusal}`;
    tone = "fail";
  } else if (install && install.status === "running") {
    const phase = install.phases[install.current_phase];
    text = `Running: ${title(chain, install.current_phase)}` +
      (phase && phase.last_action ? ` (${phase.last_action})` : "");
  } else if (install && install.status === "failed") {
    text = "Setup stopped because a step failed. See below for what to do.";
    tone = "fail";
  } else if (install && install.status === "succeeded") {
    const loggedIn = app.timing && app.timing.done === app.timing.of;
    text = loggedIn ? "Alga is installed: you can log in. The Status page has the address " +
      "and every detail."
      : "The host steps are done. Flux is now installing the Alga app: the app stage below " +
        "shows how far it has got, and this page says when you can log in.";
    tone = "pass";
  }
  target.className = `notice ${tone}`;
  target.textContent = text;
}

function checklist(app, install) {
  const list = $("#preflight");
  const phase = install && install.phases.preflight;
  if (!phase || phase.state === "pending" || phase.state === "running" || !app.preflight) {
    replace(list, el("li", {class: "muted"},
                     phase && phase.state === "running" ? "Running the checks…" : "Not run yet."));
    return;
  }
  replace(list, checkItems(app.preflight.checks));
}

// A preflight report's checks as list items (the network diagnostics show theirs so too).
// A failed check's fix is said once, with its root cause; a check not run has none.
export function checkItems(checks) {
  return checks.map((check) => el("li", {},
    badge(check.status, check.status === "not-run" ? "not run" : check.status), " ",
    el("span", {class: "title"}, check.id),
    el("span", {class: "detail"}, check.message),
    check.status === "warn" && check.remediation
      ? el("span", {class: "fix"}, el("strong", {}, "Fix: "), check.remediation) : null));
}

// What each root cause of a failed preflight is, in the words the failure view uses.
const CAUSES = {
  "no-route": "The network: no route", proxy: "The proxy", dns: "DNS", clock: "The clock",
  tls: "TLS (certificates)", http: "An unexpected answer", release: "The release source",
  disk: "Disk space", ports: "Ports in use", unclassified: "A failed check",
};

// The failed checks grouped by root cause, the root first, each with its one fix.
export function rootCauses(causes) {
  return el("ol", {class: "causes"}, causes.map((group, index) => el("li", {},
    el("h3", {}, index === 0 ? `Root cause: ${CAUSES[group.cause] || group.cause}`
                             : `Also: ${CAUSES[group.cause] || group.cause}`),
    el("p", {}, group.summary),
    group.remediation ? el("p", {class: "fix"}, el("strong", {}, "Fix: "), group.remediation)
                      : null,
    el("p", {class: "muted"}, `Failed checks: ${group.checks.join(", ")}`))));
}

// What setting the admin's password and SSH keys did for this run: a failure says why and
// what to do, and that setup goes on without them.
function credentials(outcome) {
  const box = $("#credentials");
  box.hidden = !outcome;
  if (!outcome) return;
  const failed = outcome.result === "failed";
  box.className = `notice ${failed ? "fail" : "pass"}`;
  box.setAttribute("role", failed ? "alert" : "status");
  box.textContent = failed
    ? `The admin password could not be set: ${outcome.message}. Setup goes on: the app ` +
      "does not need it."
    : "✓ The admin password and SSH keys are set.";
}

// Phases in the order the chain runs them (the state file keeps them by name).
export function ordered(install, chain) {
  const rank = (name) => {
    const known = chain.findIndex((p) => p.name === name);
    return known === -1 ? Infinity : known;
  };
  return Object.entries(install.phases).sort(([a], [b]) => rank(a) - rank(b));
}

function failedPhase(install, chain) {
  if (!install) return null;
  const entry = ordered(install, chain).find(([, phase]) => phase.state === "failed");
  return entry ? {name: entry[0], ...entry[1]} : null;
}

function failureView(install, chain, actions, preflight) {
  const box = $("#failure");
  const phase = failedPhase(install, chain);
  box.hidden = !phase || !phase.failure;
  // Rebuilt only when the failure changes, so polling never moves keyboard focus.
  const causes = phase && phase.name === "preflight" && preflight ? preflight.causes : [];
  const key = box.hidden ? "" : JSON.stringify([phase, causes]);
  if (box.hidden || box.dataset.key === key) return;
  box.dataset.key = key;
  const failure = phase.failure;
  const details = el("dl", {class: "facts"});
  facts(details, [
    ["Failed step", title(chain, phase.name)],
    ["Category", failure.category],
    ["Last action", failure.last_action],
    ["Suspected cause", failure.suspected_cause],
    ["Next step", failure.next_step],
    ["Retry", "Safe: retrying repeats only what did not finish."],
    ...(failure.interrupted
      ? [["Interrupted", `${title(chain, failure.interrupted.phase)}, last progress ` +
                         when(failure.interrupted.at)]] : []),
  ]);
  const buttons = el("div", {class: "buttons"});
  const edit = el("button", {type: "button", class: "secondary"}, "Edit answers");
  edit.addEventListener("click", () => actions.editAnswers());
  const retry = el("button", {type: "button", id: "retry"}, "Retry with the same answers");
  retry.addEventListener("click", () => actions.retry());
  buttons.append(edit, retry);
  if (failure.interrupted) {
    const resume = el("button", {type: "button", id: "resume"}, "Resume");
    resume.addEventListener("click", () => actions.resume());
    buttons.prepend(resume);
  }
  const support = el("button", {type: "button", class: "secondary"}, "Get a support bundle");
  support.addEventListener("click", () => actions.go("support"));
  buttons.append(support);
  replace(box, el("div", {class: "failure", role: "alert"},
    el("h2", {}, `✗ ${title(chain, phase.name)} failed`),
    phase.name === "preflight"
      ? el("p", {class: "notice pass"}, "Nothing else on this machine has been changed: " +
           "preflight stops setup before any change but the admin account's password and " +
           "SSH keys. Fix the root cause, then retry.")
      : null,
    causes.length ? rootCauses(causes) : null,
    details,
    failure.log_excerpt ? el("pre", {class: "log", tabindex: "0"}, failure.log_excerpt) : null,
    buttons));
}

function phases(install, chain, timing) {
  const list = $("#phases");
  if (!install) {
    replace(list, el("li", {class: "muted"}, "No phase has started."));
    return;
  }
  const steps = timing ? timing.steps.filter((s) => s.stage === "host") : [];
  replace(list, ordered(install, chain).map(([name, phase]) => {
    const current = name === install.current_phase;
    const times = timing ? stepTimes(steps.find((s) => s.name === name), timing.now) : [];
    const action = phase.last_action ? [times.length ? " · " : "", phase.last_action] : [];
    return el("li", {class: current ? "current" : null, "aria-current": current ? "step" : null},
      badge(phase.state), " ", el("span", {class: "title"}, title(chain, name)),
      el("span", {class: "detail"}, times, action));
  }));
}

// The live log of the phase that runs now, or of the one that failed or ran last.
async function tail(install, chain) {
  const names = install ? ordered(install, chain).map(([name]) => name) : [];
  const failed = failedPhase(install, chain);
  const started = names.filter((name) => install.phases[name].started_at);
  const source = install && (install.current_phase || (failed && failed.name) ||
                             started[started.length - 1]);
  $("#tail-source").textContent = source ? title(chain, source) : "none yet";
  if (!source) {
    $("#tail").textContent = "(no phase has logged yet)";
    return;
  }
  try {
    const log = await request("GET", `/api/logs?source=phase-${encodeURIComponent(source)}&lines=${TAIL_LINES}`);
    const box = $("#tail");
    const atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
    box.textContent = log.lines.join("\n") || "(nothing logged yet)";
    if (atBottom) box.scrollTop = box.scrollHeight;
  } catch (error) {
    $("#tail").textContent = `The log could not be read: ${error.message}`;
  }
}
