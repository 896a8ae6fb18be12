// The Logs page: a phase's log or the services' journal, fetched on demand and bounded.

import {request} from "./api.js";
import {$, el, replace, showRefusal} from "./dom.js";
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
      showRefusal(error, "#logs-error", actions);
    }
  });
}

// The sources offered follow the install's phases; the choice survives a rebuild.
export function render(app) {
  const phases = app.install ? ordered(app.install, app.context.phases).map(([name]) => name)
    : [];
  const sources = [...phases, "journal"];
  const select = $("#log-source");
  const offered = [...select.options].map((o) => o.value);
  if (offered.join() === sources.join()) return;
  const chosen = select.value;
  replace(select, sources.map((name) => el("option", {value: name, selected: name === chosen},
    name === "journal" ? "Appliance services (journal)" : `Phase: ${name}`)));
}
