// The JSON API, called with the API key the user logged in with as a
// bearer token. The key lives in sessionStorage: it goes with the tab and
// is never put in a URL (where logs and history would keep it).

const KEY = "inferix.apiKey";

export function apiKey() {
  return sessionStorage.getItem(KEY);
}

export function setApiKey(key) {
  sessionStorage.setItem(KEY, key);
}

export function clearApiKey() {
  sessionStorage.removeItem(KEY);
}

// An error answer of the API: its HTTP status, kind and message.
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function headers(extra) {
  return Object.assign({ Authorization: "Bearer " + (apiKey() || "") }, extra || {});
}

async function failure(r) {
  let code = "http_" + r.status;
  let message = r.statusText || "request failed";
  try {
    const body = await r.json();
    code = body.error.code;
    message = body.error.message;
  } catch (_) {
    // Not the API's error document (a proxy's page): keep the status.
  }
  return new ApiError(r.status, code, message);
}

// Calls `path` and answers its JSON document; an error answer throws an
// ApiError.
export async function api(path, options) {
  const opts = options || {};
  const init = { method: opts.method || "GET", headers: headers(), signal: opts.signal };
  if (opts.body !== undefined) {
    init.headers = headers({ "Content-Type": "application/json" });
    init.body = JSON.stringify(opts.body);
  }
  const r = await fetch(path, init);
  if (!r.ok) throw await failure(r);
  return r.json();
}

// Fetches an image the API serves (frames need the key, which an <img>
// cannot send) and answers an object URL for it.
export async function imageUrl(path, signal) {
  const r = await fetch(path, { headers: headers(), signal });
  if (!r.ok) throw await failure(r);
  return URL.createObjectURL(await r.blob());
}

// Follows a Server-Sent Events stream of the API, calling `onEvent(kind,
// data)` for each event, until the stream ends or `signal` aborts. It reads
// the stream with fetch() rather than EventSource, which cannot send the
// Authorization header. Resolves when the stream ends.
export async function followEvents(path, onEvent, signal) {
  const r = await fetch(path, { headers: headers({ Accept: "text/event-stream" }), signal });
  if (!r.ok) throw await failure(r);
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      dispatch(block, onEvent);
    }
  }
}

function dispatch(block, onEvent) {
  let kind = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) continue; // keep-alive comment
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") kind = value;
    else if (field === "data") data.push(value);
  }
  if (data.length === 0) return;
  let parsed = null;
  try {
    parsed = JSON.parse(data.join("\n"));
  } catch (_) {
    parsed = data.join("\n");
  }
  onEvent(kind, parsed);
}
