// Small helpers shared by the pages: building DOM nodes (text is always
// set as text, never parsed as HTML) and formatting numbers and times.

// Makes an element: `el("a", {href: "#/"}, "text", child)`. Attributes
// starting with "on" are event listeners; `style` is an object of CSS
// properties.
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    // Through the CSSOM: the page's policy refuses style attributes.
    else if (name === "style") Object.assign(node.style, value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export const MICRO = 1000000;

// Micro-credits as credits: cents for a credit or more, every digit below.
export function credits(micro) {
  const value = Number(micro) / MICRO;
  const digits = Math.abs(value) >= 1 || value === 0 ? 2 : 6;
  return value.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

// A duration in milliseconds, as people say it: "420 ms", "4.2 s", "3 min",
// "2 h 5 min".
export function duration(ms) {
  if (ms < 1000) return Math.max(0, Math.round(ms)) + " ms";
  if (ms < 10000) return (ms / 1000).toFixed(1) + " s";
  const s = Math.round(ms / 1000);
  if (s < 60) return s + " s";
  const m = Math.round(s / 60);
  if (m < 60) return m + " min";
  const h = Math.floor(m / 60);
  return h + " h " + (m % 60) + " min";
}

// How long ago a time (ms since the epoch) was.
export function ago(ms) {
  if (!ms) return "never";
  const d = Date.now() - ms;
  return d < 5000 ? "just now" : duration(d) + " ago";
}

export function dateTime(ms) {
  return new Date(ms).toLocaleString("en-GB", {
    year: "numeric", month: "short", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
}

// An id shortened for tables; the full id stays in the title.
export function shortId(id) {
  const text = String(id || "");
  return text.length > 14 ? text.slice(0, 8) + "…" + text.slice(-4) : text;
}

export function badge(state) {
  return el("span", { class: "badge badge-" + state }, state);
}

export function progressBar(done, total) {
  const pct = total > 0 ? Math.floor((100 * done) / total) : 0;
  return el("div", { class: "progress", role: "progressbar", "aria-valuenow": pct, "aria-valuemin": 0, "aria-valuemax": 100 },
    el("div", { class: "progress-fill" + (pct >= 100 ? " done" : ""), style: { width: pct + "%" } }),
    el("span", { class: "progress-label" }, pct + " %"));
}

// The expected time left of a job from its pace so far, or null when it
// cannot be told yet (nothing accepted, or finished).
export function eta(job) {
  if (job.state !== "active" || !job.frames_accepted || job.frames_accepted >= job.frames_total) return null;
  const spent = Date.now() - job.created_ms;
  return (spent / job.frames_accepted) * (job.frames_total - job.frames_accepted);
}

export function isFinished(state) {
  return state === "completed" || state === "failed" || state === "cancelled";
}

// A card with a title, optional actions on the right, and content.
export function card(title, actions, ...content) {
  return el("section", { class: "card" },
    el("div", { class: "card-head" }, el("h2", {}, title), el("div", { class: "card-actions" }, actions || [])),
    content);
}

export function emptyRow(columns, text) {
  return el("tr", { class: "empty" }, el("td", { colspan: columns }, text));
}

// Long hexadecimal ids (jobs, nodes) inside a text, shortened like
// shortId; the full text belongs in a title.
export function shortenIds(text) {
  return String(text).replace(/([0-9a-f]{8})[0-9a-f]{16,}([0-9a-f]{4})/g, "$1…$2");
}

export function plural(n, word) {
  return n + " " + word + (n === 1 ? "" : "s");
}
