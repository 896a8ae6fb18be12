// The JSON API: the token, requests and downloads (one way to call it), and polling with
// back-off.

const TOKEN_KEY = "alga-appliance-token";

export class Unauthorized extends Error {}
export class RateLimited extends Error {
  constructor(seconds) { super(`too many attempts; wait ${seconds} s`); this.seconds = seconds; }
}
// A refusal: its message, with the file and the next step when a state file is broken (503
// {error, file, next_step}), so every page that shows a refusal shows how to recover.
export class ApiError extends Error {
  constructor(status, body) {
    const message = body && body.error ? body.error : `HTTP ${status}`;
    super(body && body.file ? `${message} (${body.file}). Next step: ${body.next_step}`
      : message);
    this.status = status;
    this.fields = (body && body.fields) || [];
    this.file = (body && body.file) || null;
  }
}

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

// A console link carries ?token=...: keep it for this tab, then drop it from the address
// bar and history, so it is not left in bookmarks, screenshots or shoulder-surfing range.
export function takeTokenFromAddress() {
  const address = new URL(window.location.href);
  const presented = address.searchParams.get("token");
  if (presented === null) return;
  if (presented) token.set(presented.trim());
  address.searchParams.delete("token");
  history.replaceState(history.state, "", address.pathname + address.search + address.hash);
}

// Every call to the API goes through here: the token, the status codes the whole UI
// handles alike (401, 429) and the API's refusals (its JSON {error, fields}).
async function send(method, path, body) {
  const headers = {};
  if (token.get()) headers.Authorization = `Bearer ${token.get()}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method, headers, cache: "no-store",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.ok) return response;
  const payload = await response.json().catch(() => null);
  if (response.status === 401) throw new Unauthorized();
  if (response.status === 429) {
    throw new RateLimited(Number(response.headers.get("Retry-After")) || 60);
  }
  throw new ApiError(response.status, payload);
}

// A JSON call: the parsed answer (null when the body is not JSON).
export async function request(method, path, body) {
  const response = await send(method, path, body);
  return response.json().catch(() => null);
}

// A file behind the token (a support bundle): its contents as a Blob.
export async function download(path) {
  const response = await send("GET", path);
  return response.blob();
}

// Calls `tick` every `interval` ms while the tab is visible. `tick` returns the next
// interval it wants (or nothing for the base one); failures back off up to `max` ms.
export class Poller {
  constructor(tick, {interval = 2000, max = 60000, onError = () => {}} = {}) {
    Object.assign(this, {tick, interval, max, onError, delay: interval, timer: null,
                         running: false});
    this.onVisibility = () => (document.hidden ? this.pause() : this.now());
  }

  start() {
    if (this.running) return;
    this.running = true;
    document.addEventListener("visibilitychange", this.onVisibility);
    this.now();
  }

  stop() {
    this.running = false;
    document.removeEventListener("visibilitychange", this.onVisibility);
    this.pause();
  }

  pause() { clearTimeout(this.timer); this.timer = null; }

  now() {
    this.pause();
    if (this.running && !document.hidden) this.run();
  }

  async run() {
    try {
      const wanted = await this.tick();
      this.delay = wanted || this.interval;
    } catch (error) {
      this.delay = Math.min(this.max, Math.max(this.interval, this.delay * 2));
      this.onError(error, this.delay);
    }
    if (this.running && !document.hidden) {
      this.pause();
      this.timer = setTimeout(() => this.run(), this.delay);
    }
  }
}
