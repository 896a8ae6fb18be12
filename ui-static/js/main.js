// The page shell: sign-in, which page shows, navigation, and the one poller that keeps
// install state and status fresh for every page.

import {ApiError, Poller, RateLimited, Unauthorized, request, takeTokenFromAddress, token}
  from "./api.js";
import * as dashboard from "./dashboard.js";
import * as diagnostics from "./diagnostics.js";
import {$, $$} from "./dom.js";
import * as logs from "./logs.js";
import * as progress from "./progress.js";
import * as selfUpdate from "./selfupdate.js";
import * as support from "./support.js";
import * as updates from "./updates.js";
import * as wizard from "./wizard.js";

const PAGES = ["login", "loading", "setup", "progress", "status", "logs", "updates", "support"];
const FAST = 2000; // while setup runs or is about to
const SLOW = 10000; // once it has settled
const SUBMITTED_KEY = "alga-appliance-submitted";
const HTTPS_PORT = "8443"; // host/core/paths.py WEB_TLS_PORT (the UI test holds them equal)

// The state the pages share: every property any module reads or writes is declared here,
// and no module adds its own (a page keeps what only it uses in its module).
const app = {
  context: null, // GET /api/setup: node_ip, phases, answers, defaults, resolvers (refreshContext)
  install: null, // GET /api/install .install: the setup run's state, null before any run
  preflight: null, // GET /api/install .preflight: the last preflight's checks
  refused: null, // GET /api/install .refused: the last setup request the appliance refused
  credentials: null, // GET /api/install .credentials: what setting the admin's credentials did
  timing: null, // GET /api/install .timing: step n of m, each step's times, the estimate
  setupWaiting: null, // GET /api/install .waiting: a setup request the host has not taken yet
  // Why this tab's setup request was refused when the appliance took it up (the busy rule
  // asked again there), until the tab submits another.
  refusal: null,
  status: null, // GET /api/status .status: the collector's snapshot, null before the first
  updateNotice: null, // GET /api/status .update_notice: a newer release on the installed channel
  page: null, // the page shown, one of PAGES
  // The id of the setup request this tab submitted, until the install state carries it
  // (until then the install state is the previous run's).
  submitted: sessionStorage.getItem(SUBMITTED_KEY),
  bundleRunning: false, // support.js: a support bundle is asked for or being made
  updateRunning: false, // updates.js: an update request is waiting or running
  selfUpdateRunning: false, // selfupdate.js: a self-update request is asked for or running
  diagnosticsRunning: false, // diagnostics.js: network checks are asked for or running
  // Whether this tab's setup request has not been picked up yet (see `submitted`).
  waiting() {
    return this.submitted !== null && !this.refusedMine() &&
      (!this.install || this.install.request_id !== this.submitted);
  },
  // The appliance's clock at the last poll (the browser's may be off): moments read
  // "2 min ago" from it (dom.js ago), or as the exact time while it is unknown.
  now() {
    return this.timing ? this.timing.now : null;
  },
  refusedMine() {
    return this.submitted !== null && Boolean(this.refused) &&
      this.refused.request_id === this.submitted;
  },
};

// What a page may ask of the shell (and of another page): the only calls passed around.
const actions = {
  go(page, {focus = true} = {}) {
    const path = `/${page}`;
    if (window.location.pathname !== path) history.pushState({}, "", path);
    show(page, focus);
  },
  submitted(response) {
    app.submitted = response.request_id;
    app.refusal = null;
    sessionStorage.setItem(SUBMITTED_KEY, app.submitted);
    actions.go("progress");
    poller.now();
  },
  pollNow() {
    poller.now(); // a request was just made: follow it at the fast rate from now
  },
  async refreshContext() {
    app.context = await request("GET", "/api/setup");
    return app.context;
  },
  // A page's GET: its answer, or null once a failure has gone to `failed`.
  async load(path) {
    try {
      return await request("GET", path);
    } catch (error) {
      actions.failed(error);
      return null;
    }
  },
  editAnswers: () => wizard.editAnswers(actions), // from the failure view: back to the wizard
  retry: () => progress.retry(actions), // from the failure view: the same answers again
  resume: () => progress.resume(actions), // from an interrupted run's failure view
  // Only a 401 signs out (the token presented was wrong). A 429 never does, nor clears the
  // stored token: the right token is never refused with 429, so it means wrong tokens from
  // this address, perhaps someone else's; polling goes on, backing off.
  failed(error) {
    if (error instanceof Unauthorized) signOut("The token was not accepted. Enter it again.");
    else if (error instanceof RateLimited) notice(rateLimited(error));
    else notice(`Something went wrong: ${error.message}`);
  },
};

const poller = new Poller(refresh, {
  interval: FAST,
  onError(error, delay) {
    if (error instanceof Unauthorized || error instanceof RateLimited) {
      actions.failed(error);
      return;
    }
    if (error instanceof ApiError) { // it answered: say what it said
      notice(error.message);
      return;
    }
    // No answer while a self-update applies: the restart that is part of it, said so.
    notice(selfUpdate.lostContact(error) ||
      `Lost contact with the appliance (${error.message}). Retrying in ${Math.round(delay / 1000)} s.`);
  },
});

// A broken state file (an ApiError naming its file) is reported and the pages stay up, so
// the Support page can still make the bundle support needs.
async function orBroken(call, broken) {
  try {
    return await call;
  } catch (error) {
    if (!(error instanceof ApiError && error.file)) throw error;
    broken.push(error.message);
    return {};
  }
}

async function refresh() {
  const broken = [];
  const [install, status] = await Promise.all([
    orBroken(request("GET", "/api/install"), broken),
    orBroken(request("GET", "/api/status"), broken)]);
  const previous = app.install && app.install.status;
  Object.assign(app, {install: install.install || null, preflight: install.preflight || null,
                      refused: install.refused || null,
                      credentials: install.credentials || null, timing: install.timing || null,
                      setupWaiting: install.waiting || null, status: status.status || null,
                      updateNotice: status.update_notice || null});
  if (app.refusedMine()) app.refusal = app.refused.reason;
  if (app.submitted !== null && !app.waiting()) {
    sessionStorage.removeItem(SUBMITTED_KEY);
    app.submitted = null;
  }
  if (app.install && app.install.status !== previous && previous !== undefined) {
    await actions.refreshContext(); // the inputs may have changed with the new run
  }
  notice(broken.length ? broken.join(" ") : null);
  updateNav();
  await render(); // a page may ask for the fast rate (a bundle being made)
  const settled = !app.waiting() && app.install &&
    ["succeeded", "failed"].includes(app.install.status) &&
    app.status && app.status.rollup.state === "fully_healthy";
  if (app.bundleRunning || app.updateRunning || app.diagnosticsRunning ||
      app.selfUpdateRunning) return FAST;
  return settled || (!app.install && !app.waiting()) ? SLOW : FAST;
}

// The page an address names; "/" picks the one that fits the install's state.
function pageFor(path) {
  const named = path.replace(/^\/+|\/+$/g, "");
  if (PAGES.includes(named) && !["login", "loading"].includes(named)) {
    if (named === "setup" && setupDone()) return "status";
    return named;
  }
  if (app.waiting()) return "progress";
  if (!app.install) return "setup";
  const followed = app.install.status !== "succeeded" || progress.appStageRunning(app.timing);
  return followed ? "progress" : "status";
}

function setupDone() {
  return Boolean(app.install) && app.install.status === "succeeded" && !app.waiting();
}

function show(page, focus) {
  app.page = page;
  for (const name of PAGES) $(`#page-${name}`).hidden = name !== page;
  for (const link of $$("#nav a")) {
    if (link.dataset.page === page) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const title = $(`#page-${page} h1`);
  document.title = `${title ? title.textContent : "Alga appliance"} · Alga appliance`;
  render();
  if (focus) $("#main").focus();
}

function render() {
  const renderers = {setup: wizard.render, progress: progress.render, status: statusPage,
                     logs: logs.render, updates: updatesPage, support: support.render};
  return renderers[app.page] ? renderers[app.page](app, actions) : undefined;
}

// The Status page: the snapshot, then the network diagnostics (which fetch their own).
function statusPage() {
  dashboard.render(app, actions);
  return diagnostics.render(app, actions);
}

// The Updates page: the app's updates, then the appliance software's (which fetch their own).
function updatesPage() {
  return Promise.all([updates.render(app, actions), selfUpdate.render(app, actions)]);
}

function updateNav() {
  const installed = setupDone();
  const visible = {
    setup: !installed && !app.waiting() && !(app.install && app.install.status === "running"),
    progress: Boolean(app.install) || app.waiting(),
    status: true, logs: true, updates: installed, support: true,
  };
  for (const link of $$("#nav a")) link.hidden = !visible[link.dataset.page];
  $("#nav").hidden = false;
  $("#node-ip").textContent = app.context ? app.context.node_ip : "";
}

function notice(text) {
  $("#connection").hidden = !text;
  $("#connection").textContent = text || "";
}

// Over plain HTTP, say so and link to the same service over HTTPS (the token is sent with
// every poll). Both stay served: HTTP is the address the console first gives.
function showTransport() {
  if (window.location.protocol === "https:") return;
  const secure = new URL("/", window.location.href);
  secure.protocol = "https:";
  secure.port = HTTPS_PORT;
  $("#https-link").href = secure.href;
  $("#https-link").textContent = secure.href;
  $("#not-https").hidden = false;
}

function rateLimited(error) {
  return `Too many wrong tokens from this address: the appliance refuses a wrong one for ${error.seconds} s. The right token still works.`;
}

function signOut(message) {
  token.clear();
  showLogin(message);
}

// The sign-in page, keeping the stored token (signOut clears it).
function showLogin(message) {
  poller.stop();
  $("#nav").hidden = true;
  $("#token-error").hidden = !message;
  $("#token-error").textContent = message || "";
  $("#token").setAttribute("aria-invalid", message ? "true" : "false");
  show("login", false);
  $("#token").focus();
}

async function start() {
  show("loading", false);
  try {
    await actions.refreshContext();
    await refresh();
  } catch (error) {
    if (error instanceof Unauthorized) {
      actions.failed(error);
      return;
    }
    if (error instanceof RateLimited) { // the token entered is wrong; the form stays open
      showLogin(rateLimited(error));
      return;
    }
    notice(error instanceof ApiError ? error.message
      : `The appliance did not answer (${error.message}). Retrying…`);
  }
  show(pageFor(window.location.pathname), false);
  poller.start();
}

function bindShell() {
  $("#login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("#token").value.trim();
    // Only what a token is written with: anything else (a fullwidth digit pasted from a
    // chat) could not even go into the request's header.
    const problem = !value ? "Enter the token shown on the console."
      : /^[A-Za-z0-9 -]+$/.test(value) ? null
        : "The token has only letters, digits and dashes (XXXX-XXXX-…). Enter it again.";
    if (problem) {
      $("#token-error").hidden = false;
      $("#token-error").textContent = problem;
      $("#token").setAttribute("aria-invalid", "true");
      return;
    }
    token.set(value);
    $("#token").value = "";
    start();
  });
  $("#sign-out").addEventListener("click", () => signOut(null));
  $("#nav").addEventListener("click", (event) => {
    const link = event.target.closest("a[data-page]");
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey) return;
    event.preventDefault();
    actions.go(link.dataset.page);
  });
  window.addEventListener("popstate", () => show(pageFor(window.location.pathname), true));
  for (const page of [wizard, dashboard, diagnostics, logs, updates, selfUpdate, support]) {
    page.bind(app, actions);
  }
}

bindShell();
showTransport();
takeTokenFromAddress();
if (token.get()) start();
else signOut(null);
