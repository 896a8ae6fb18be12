// The Logs page: every layer's log by name (GET /api/logs/sources), fetched on demand and
// bounded: the last N lines, more on request, a text filter, follow mode while the source
// still grows, and a download of what is shown.

import {request} from "./api.js";
import {$, el, replace, saveFile, showRefusal} from "./dom.js";

const FOLLOW_MS = 3000;
let sources = null; // name -> {label, group, previous}, once loaded
let shown = null; // the last answer: {source, label, previous, lines, live, note}
let following = null; // the follow timer
let fetching = false;

export function bind(app, actions) {
  $("#logs-form").addEventListener("submit", (event) => {
    event.preventDefault();
    stopFollowing();
    show(actions);
  });
  $("#log-source").addEventListener("change", previousOffered);
  $("#log-filter").addEventListener("input", display);
  $("#log-more").addEventListener("click", () => {
    const select = $("#log-lines");
    select.selectedIndex = Math.min(select.selectedIndex + 1, select.options.length - 1);
    show(actions);
  });
  $("#log-follow").addEventListener("change", () => {
    if ($("#log-follow").checked) following = setInterval(() => show(actions), FOLLOW_MS);
    else stopFollowing();
  });
  $("#log-download").addEventListener("click", () => {
    const name = `${shown.source}${shown.previous ? "-previous" : ""}.log`;
    saveFile(new Blob([`${visible().join("\n")}\n`], {type: "text/plain"}), name);
  });
}

// The sources are fetched once; the choice survives every later render.
export async function render(app, actions) {
  if (sources) return;
  const answer = await actions.load("/api/logs/sources");
  if (!answer || sources) return;
  sources = Object.fromEntries(answer.sources.map((s) => [s.name, s]));
  const groups = new Map();
  for (const source of answer.sources) {
    if (!groups.has(source.group)) groups.set(source.group, []);
    groups.get(source.group).push(el("option", {value: source.name}, source.label));
  }
  replace($("#log-source"), [...groups].map(([group, options]) =>
    el("optgroup", {label: group}, options)));
  previousOffered();
}

// A previous container exists only for a component's or a Flux controller's log.
function previousOffered() {
  const source = sources && sources[$("#log-source").value];
  const offered = Boolean(source && source.previous);
  $("#log-previous").disabled = !offered;
  if (!offered) $("#log-previous").checked = false;
}

async function show(actions) {
  if (fetching) return; // a slow answer is not asked for twice by follow mode
  fetching = true;
  const query = new URLSearchParams({source: $("#log-source").value,
    lines: $("#log-lines").value, previous: $("#log-previous").checked});
  try {
    const answer = await request("GET", `/api/logs?${query}`);
    $("#logs-error").hidden = true;
    const output = $("#log-output");
    const atEnd = output.scrollTop + output.clientHeight >= output.scrollHeight - 4;
    const wasFollowing = following !== null;
    shown = answer;
    if (wasFollowing && !answer.live) stopFollowing();
    display();
    if (atEnd || !wasFollowing) output.scrollTop = output.scrollHeight;
    if (wasFollowing && !answer.live) {
      note(`stopped following: ${answer.note || "this log is no longer live"}`);
    }
  } catch (error) {
    stopFollowing();
    showRefusal(error, "#logs-error", actions);
  } finally {
    fetching = false;
  }
}

function stopFollowing() {
  clearInterval(following);
  following = null;
  $("#log-follow").checked = false;
}

// The API's notes are clauses ("the phase is not running ..."): shown as a sentence.
function note(text) {
  $("#log-note").hidden = !text;
  $("#log-note").textContent = text ? `${text[0].toUpperCase()}${text.slice(1)}.` : "";
}

// The lines that pass the filter (any case).
function visible() {
  const filter = $("#log-filter").value.toLowerCase();
  return filter ? shown.lines.filter((line) => line.toLowerCase().includes(filter))
    : shown.lines;
}

function display() {
  if (!shown) return;
  const lines = visible();
  $("#log-tools").hidden = false;
  $("#log-follow").disabled = !shown.live && !following;
  $("#log-more").disabled = shown.lines.length < Number($("#log-lines").value) ||
    $("#log-lines").selectedIndex === $("#log-lines").options.length - 1;
  if (!following) note(shown.note);
  $("#log-output").textContent = lines.join("\n") ||
    (shown.lines.length ? "(no line matches the filter)" : "(nothing logged yet)");
  const filtered = $("#log-filter").value ? `, ${lines.length} match the filter` : "";
  $("#log-shown").hidden = false;
  const count = shown.lines.length === 1 ? "the last line" : `the last ${shown.lines.length} lines`;
  $("#log-shown").textContent = `${shown.label}${shown.previous ? ", previous container" : ""}: ` +
    `${count}${filtered}.`;
}
