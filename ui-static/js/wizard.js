// The setup wizard: one step per decision. Each "Next" asks the API's validation (the same
// code the submission and the console use) and shows its messages beside the fields.

import {ApiError, request} from "./api.js";
import {$, $$, el, facts, showRefusal} from "./dom.js";

const STEPS = ["channel", "app", "dns", "proxy", "admin", "review"];
const STEP_OF_FIELD = {channel: "channel", app_url: "app", dns_mode: "dns", dns_servers: "dns",
                       proxy_url: "proxy", proxy_user: "proxy", proxy_password: "proxy",
                       no_proxy: "proxy", admin_password: "admin",
                       admin_password_confirm: "admin", ssh_authorized_keys: "admin",
                       ssh_password_login: "admin", release_source: "review",
                       branch: "review"};
let step = 0;
let filled = false;

export function bind(app, actions) {
  const form = $("#wizard");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    next(app, actions);
  });
  $("#wizard-back").addEventListener("click", () => showStep(step - 1));
  form.addEventListener("change", toggles);
}

// Back to the wizard with the answers of the last request (after a failed run).
export async function editAnswers(actions) {
  fill(await actions.refreshContext(), true);
  showStep(0);
  actions.go("setup");
}

export function render(app) {
  if (!filled && app.context) {
    fill(app.context, false);
    const found = app.context.resolvers;
    $("#detected-resolvers").textContent = found.length
      ? `Detected: ${found.join(", ")}`
      : "None detected yet: check the network settings if DNS preflight fails.";
    showStep(0, false);
  }
}

// From GET /api/setup: the last answers when `editing` (after a failed run), else those
// or the defaults. The proxy and admin passwords are never sent to the browser: only
// whether one is stored, which an empty password field keeps.
function fill(context, editing) {
  filled = true;
  const answers = editing ? context.answers : context.answers || context.defaults;
  const form = $("#wizard");
  form.reset();
  for (const input of $$("input[type=radio]", form)) {
    input.checked = answers[input.name] === input.value;
  }
  for (const name of ["app_url", "dns_servers", "proxy_url", "proxy_user", "no_proxy",
                      "release_source", "branch", "ssh_authorized_keys"]) {
    form.elements[name].value = answers[name] || "";
  }
  $("#use-proxy").checked = Boolean(answers.proxy_url);
  $("#ssh_password_login").checked = answers.ssh_password_login === true;
  $("#proxy_password-hint").hidden = !context.proxy_password_stored;
  $("#admin_password-hint").hidden = !context.admin_password_stored;
  $("#admin_password-rule").textContent = `The rule: ${context.password_rule}.`;
  $("#admin-user").textContent = context.admin_user;
  $("#advanced").open = Boolean(answers.release_source || answers.branch);
  toggles();
}

function toggles() {
  const form = $("#wizard");
  $("#dns-custom-fields").hidden = form.elements.dns_mode.value !== "custom";
  $("#proxy-fields").hidden = !$("#use-proxy").checked;
  $("#nightly-warning").hidden = form.elements.channel.value !== "nightly";
  $("#ssh_password_login-warning").hidden = !$("#ssh_password_login").checked;
}

// The answers as the API takes them: only what the chosen options use.
function answers() {
  const value = (name) => $("#wizard").elements[name].value.trim();
  const chosen = {channel: value("channel"), app_url: value("app_url"),
                  dns_mode: value("dns_mode")};
  if (chosen.dns_mode === "custom") chosen.dns_servers = value("dns_servers");
  if ($("#use-proxy").checked) {
    chosen.proxy_url = value("proxy_url");
    if (value("proxy_user")) chosen.proxy_user = value("proxy_user");
    // As typed: spaces may be part of a password.
    const password = $("#wizard").elements.proxy_password.value;
    if (password) chosen.proxy_password = password;
    if (value("no_proxy")) chosen.no_proxy = value("no_proxy");
  }
  // As typed, like the proxy password; an empty one keeps the stored password.
  for (const name of ["admin_password", "admin_password_confirm"]) {
    const typed = $("#wizard").elements[name].value;
    if (typed) chosen[name] = typed;
  }
  if (value("ssh_authorized_keys")) chosen.ssh_authorized_keys = value("ssh_authorized_keys");
  chosen.ssh_password_login = $("#ssh_password_login").checked;
  for (const name of ["release_source", "branch"]) if (value(name)) chosen[name] = value(name);
  return chosen;
}

function showStep(index, focus = true) {
  step = Math.max(0, Math.min(STEPS.length - 1, index));
  for (const fieldset of $$("#wizard .step")) {
    fieldset.hidden = fieldset.dataset.step !== STEPS[step];
  }
  $$("#step-list li").forEach((item, i) => {
    item.classList.toggle("done", i < step);
    if (i === step) item.setAttribute("aria-current", "step");
    else item.removeAttribute("aria-current");
  });
  $("#wizard-back").hidden = step === 0;
  $("#wizard-next").textContent = STEPS[step] === "review" ? "Start setup" : "Next";
  $("#wizard-error").hidden = true;
  if (focus) $(`#wizard .step[data-step="${STEPS[step]}"] h2`).focus();
}

function clearErrors() {
  for (const message of $$("#wizard [data-error-for]")) {
    message.hidden = true;
    message.textContent = "";
  }
  for (const input of $$("#wizard input, #wizard textarea")) {
    input.removeAttribute("aria-invalid");
  }
}

function showErrors(fields) {
  for (const {field, message} of fields) {
    const target = $(`#wizard [data-error-for="${field}"]`);
    if (target) {
      target.hidden = false;
      target.textContent = message;
    }
    const input = $("#wizard").elements[field];
    if (input && input.setAttribute) input.setAttribute("aria-invalid", "true");
  }
  const first = $("#wizard [aria-invalid=true]:not([type=radio])");
  if (first) first.focus();
}

// Once the host has them (the admin password hashed at once), the page keeps no copy.
function forgetPasswords() {
  for (const name of ["proxy_password", "admin_password", "admin_password_confirm"]) {
    $("#wizard").elements[name].value = "";
  }
}

async function next(app, actions) {
  clearErrors();
  const button = $("#wizard-next");
  button.disabled = true;
  try {
    if (STEPS[step] === "review") {
      actions.submitted(await request("POST", "/api/setup", answers()));
      forgetPasswords();
      return;
    }
    const validated = await request("POST", "/api/setup/validate", answers());
    if (STEPS[step + 1] === "review") review(validated, app);
    showStep(step + 1);
  } catch (error) {
    handle(error, actions);
  } finally {
    button.disabled = false;
  }
}

function handle(error, actions) {
  if (error instanceof ApiError && error.status === 422) {
    // Errors on this step stay here; an error on an earlier step sends the admin back to it.
    const steps = error.fields.map((f) => STEPS.indexOf(STEP_OF_FIELD[f.field] || "review"));
    const target = Math.min(...steps);
    if (target <= step) {
      showStep(target, false);
      if (STEPS[target] === "review") $("#advanced").open = true;
      showErrors(error.fields.filter((f) => (STEP_OF_FIELD[f.field] || "review") === STEPS[target]));
      return;
    }
    showStep(step + 1); // the errors belong to later steps: they show when reached
    return;
  }
  if (!showRefusal(error, "#wizard-error", actions)) return;
  if (error.status === 409) {
    const link = el("a", {href: "/progress"}, "See the setup progress");
    link.addEventListener("click", (event) => {
      event.preventDefault();
      actions.go("progress");
    });
    $("#wizard-error").append(". ", link, ".");
  }
}

function review({inputs, ssh_keys: keys}, app) {
  const dns = inputs.dns.mode === "custom"
    ? `Custom servers: ${inputs.dns.servers.join(", ")}`
    : `This network's resolvers (${app.context.resolvers.join(", ") || "none detected"})`;
  const proxy = inputs.proxy
    ? `${inputs.proxy.url}${inputs.proxy.user ? ` as ${inputs.proxy.user} (password hidden)` : ""}` +
      ` (bypassed for: ${inputs.proxy.no_proxy.join(", ")})`
    : "None: direct connection";
  const overrides = Object.entries(inputs.overrides).map(([key, value]) => `${key}: ${value}`);
  facts($("#review"), [
    ["Channel", inputs.channel === "nightly" ? "nightly (testing)" : "stable"],
    ["App address", inputs.app_url],
    ["DNS", dns],
    ["Proxy", proxy],
    ["Admin account", `${app.context.admin_user}, admin password: set`],
    ["SSH keys", keys.length ? keys.join("\n") : "None"],
    ["SSH password login", inputs.admin.ssh_password_login ? "Allowed (keys and password)"
      : "Off (keys only)"],
    ["Release source", inputs.overrides.release_source || `${app.context.release_source.reference}` +
      ` (${app.context.release_source.origin})`],
    ["Support overrides", overrides.join(", ") || "None"],
  ]);
}
