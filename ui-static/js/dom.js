// Small DOM helpers. Every value from the API goes in as text, never as HTML.

import {ApiError} from "./api.js";

export const $ = (selector, scope = document) => scope.querySelector(selector);
export const $$ = (selector, scope = document) => [...scope.querySelectorAll(selector)];

// el("td", {class: "x"}, "text", child) builds an element; null children are skipped.
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== null && value !== undefined && value !== false) node.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) {
      node.append(child instanceof Node ? child : String(child));
    }
  }
  return node;
}

export function replace(target, ...children) {
  target.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
}

// A state shown as symbol + word + colour: never colour alone.
const BADGES = {
  pass: ["pass", "✓"], succeeded: ["pass", "✓"], ready: ["pass", "✓"],
  warn: ["warn", "!"], skipped: ["info", "–"], pending: ["info", "…"], degraded: ["warn", "!"],
  running: ["info", "▶"], fail: ["fail", "✗"], failed: ["fail", "✗"], "not ready": ["fail", "✗"],
  critical: ["fail", "✗"], warning: ["warn", "!"], unknown: ["info", "?"],
  waiting: ["info", "…"], failing: ["fail", "✗"], "not-run": ["info", "–"],
};

export function badge(word, label = word) {
  const [tone, symbol] = BADGES[word] || ["info", "•"];
  return el("span", {class: `badge ${tone}`}, `${symbol} ${label}`);
}

export function table(headings, rows, empty) {
  if (!rows.length) return el("p", {class: "muted"}, empty);
  return el("div", {class: "table-wrap"}, el("table", {},
    el("thead", {}, el("tr", {}, headings.map((h) => el("th", {scope: "col"}, h)))),
    // Each cell names its column: on a narrow screen the rows stack (app.css).
    el("tbody", {}, rows.map((cells) => el("tr", {}, cells.map((c, i) =>
      el("td", {"data-label": headings[i]}, c)))))));
}

export function facts(target, pairs) {
  replace(target, pairs.flatMap(([term, value]) => [el("dt", {}, term), el("dd", {}, value)]));
}

// A size in bytes as people read it: the largest unit that keeps it at 1 or more.
export function size(bytes) {
  const units = ["KiB", "MiB", "GiB", "TiB"];
  if (bytes < 1024) return `${bytes} bytes`;
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

// "2026-11-27T10:00:05Z" in the browser's local time, or "–".
export function when(timestamp) {
  if (!timestamp) return "–";
  const date = new Date(timestamp);
  return Number.isNaN(date.getTime()) ? timestamp : date.toLocaleString();
}

// A span of seconds as the appliance says it (host/core/elapsed.py words): 45 s,
// 3 min 20 s, 12 min, 1 h 05 min, 2 d 3 h.
export function duration(seconds) {
  const whole = Math.max(0, Math.floor(seconds));
  if (whole < 60) return `${whole} s`;
  if (whole < 600) {
    const rest = whole % 60;
    return `${Math.floor(whole / 60)} min${rest ? ` ${rest} s` : ""}`;
  }
  if (whole < 3600) return `${Math.floor(whole / 60)} min`;
  if (whole < 86400) {
    return `${Math.floor(whole / 3600)} h ${String(Math.floor((whole % 3600) / 60)).padStart(2, "0")} min`;
  }
  return `${Math.floor(whole / 86400)} d ${Math.floor((whole % 86400) / 3600)} h`;
}

// The one way a moment shows: "2 min ago", counted from the appliance's clock `now` (the
// browser's may be off), with the exact local time on hover. A moment the appliance's
// clock has not reached (it was set back since) shows as the exact time.
export function ago(timestamp, now) {
  const exact = when(timestamp);
  const seconds = (Date.parse(now) - Date.parse(timestamp)) / 1000;
  let text = exact;
  if (seconds >= -5 && seconds < 10) text = "just now";
  else if (seconds >= 10) text = `${duration(seconds)} ago`;
  return el("time", {datetime: timestamp, title: exact}, text);
}

// A request the appliance has not picked up (GET's `waiting`, from host/core/spool.py):
// its message in `box`, hidden while none waits that long.
export function pickup(box, waiting) {
  const late = Boolean(waiting && waiting.not_picked_up);
  $(box).hidden = !late;
  $(box).textContent = late ? waiting.message : "";
}

// Hands a fetched file to the browser as a download named `name`.
export function saveFile(blob, name) {
  const address = URL.createObjectURL(blob);
  const link = el("a", {href: address, download: name, hidden: ""});
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(address), 60000);
}

// The one way to show an API refusal: its message in `box`, beside what asked (true). Anything
// else (no network, the token, the rate limit) goes to the page-wide handling (false).
export function showRefusal(error, box, actions) {
  if (!(error instanceof ApiError)) {
    actions.failed(error);
    return false;
  }
  $(box).hidden = false;
  $(box).textContent = error.message;
  return true;
}
