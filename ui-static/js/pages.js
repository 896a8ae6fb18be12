// Logs (fetched on demand, bounded) and the release the appliance runs.

import {request} from "./api.js";
import {$, el, facts, replace, when} from "./dom.js";
import {ordered} from "./progress.js";

export function bind(app, actions) {
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
