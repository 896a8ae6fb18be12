// Logs (fetched on demand, bounded) and the release the appliance runs.

import {ApiError, request, token} from "./api.js";
import {$, el, facts, replace, table, when} from "./dom.js";
import {ordered} from "./progress.js";

export function bind(app, actions) {
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
      if (error.status) {
        $("#logs-error").hidden = false;
        $("#logs-error").textContent = error.message;
      } else {
        actions.failed(error);
      }
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

export async function renderUpdates(app, actions) {
  try {
    const {release} = await request("GET", "/api/release");
    facts($("#release"), release ? [
      ["Channel", release.channel],
      ["Release", release.release_version],
      ["App version", release.app_version],
      ["Repository", `${release.repo_url} (${release.repo_branch})`],
      ["Selected", when(release.selected_at)],
    ] : [["Release", "None yet: it is chosen during setup."]]);
  } catch (error) {
    actions.failed(error);
  }
}

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
  if (!(error instanceof ApiError)) {
    actions.failed(error);
    return;
  }
  $("#bundle-error").hidden = false;
  $("#bundle-error").textContent = error.message;
}
