// The Support page: the web-requested bundle's progress and the archives to download.

import {download, request} from "./api.js";
import {$, ago, el, pickup, replace, saveFile, showRefusal, size, table} from "./dom.js";

// The id of the request this page made, until the bundle status carries it (until then the
// status is the previous bundle's).
let asked = null;

export function bind(app, actions) {
  $("#bundle-create").addEventListener("click", async () => {
    $("#bundle-create").disabled = true;
    try {
      asked = (await request("POST", "/api/support-bundle")).request_id;
      actions.pollNow();
    } catch (error) {
      bundleError(error, actions);
    }
  });
}

export async function render(app, actions) {
  const support = await actions.load("/api/support-bundle");
  if (!support) return;
  pickup("#bundle-waiting", support.waiting);
  const waiting = asked !== null && !(support.status && support.status.request_id === asked);
  if (!waiting) asked = null;
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
  replace($("#bundles"), table(["Bundle", "Size", "Made", ""], support.bundles.map((b) => {
    const button = el("button", {type: "button", class: "secondary"}, "Download");
    button.addEventListener("click", () => fetchBundle(b.name, actions));
    return [b.name, size(b.size_bytes), ago(b.created_at, app.now()), button];
  }), "None yet."));
}

// The download needs the token, so it is fetched, then handed to the browser as a file.
async function fetchBundle(name, actions) {
  try {
    saveFile(await download(`/api/support-bundle/download?name=${encodeURIComponent(name)}`),
             name);
  } catch (error) {
    bundleError(error, actions);
  }
}

function bundleError(error, actions) {
  $("#bundle-create").disabled = false;
  showRefusal(error, "#bundle-error", actions);
}
