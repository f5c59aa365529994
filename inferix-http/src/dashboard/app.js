// The dashboard's shell: logging in with an API key, the navigation, and
// client-side routing on hash URLs (#/jobs, #/jobs/ID, #/nodes, #/ledger),
// so that the server only ever serves one page.

import { api, apiKey, setApiKey, clearApiKey, ApiError } from "./api.js";
import { el } from "./util.js";
import { jobsPage } from "./jobs.js";
import { jobPage } from "./job.js";
import { nodesPage } from "./nodes.js";
import { ledgerPage } from "./ledger.js";

const view = document.getElementById("view");
const OPERATOR = "inferix.operator";

// What the current page runs (event streams, timers) stops with it.
let current = null;

// Whether the key is an operator's: only operators may list the nodes.
async function probeOperator() {
  try {
    await api("/api/nodes");
    return true;
  } catch (e) {
    if (e instanceof ApiError && e.status === 403) return false;
    throw e;
  }
}

export function isOperator() {
  return sessionStorage.getItem(OPERATOR) === "1";
}

export function toast(message, kind) {
  const t = document.getElementById("toast");
  t.textContent = message;
  t.className = "toast toast-" + (kind || "info");
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 5000);
}

function showChrome(loggedIn) {
  document.getElementById("nav").hidden = !loggedIn;
  document.getElementById("session").hidden = !loggedIn;
  for (const a of document.querySelectorAll("[data-operator]")) a.hidden = !isOperator();
  const key = apiKey() || "";
  document.getElementById("who").textContent = isOperator() ? "operator" : "";
  document.getElementById("who").title = key ? "key " + key.slice(0, 12) + "…" : "";
}

function loginPage() {
  const input = el("input", {
    id: "api-key", type: "password", name: "api-key", autocomplete: "off", spellcheck: "false",
    placeholder: "ifx_…", required: true,
  });
  const error = el("p", { class: "form-error", id: "login-error", hidden: true });
  const submit = el("button", { class: "btn btn-primary btn-block", type: "submit", id: "login" }, "Log in");
  const form = el("form", { class: "login-form", onsubmit: async (ev) => {
    ev.preventDefault();
    submit.disabled = true;
    error.hidden = true;
    setApiKey(input.value.trim());
    try {
      await api("/api/jobs");
      sessionStorage.setItem(OPERATOR, (await probeOperator()) ? "1" : "0");
      location.hash = "#/jobs";
      route();
    } catch (e) {
      clearApiKey();
      error.textContent = e instanceof ApiError && e.status === 401
        ? "This API key was not accepted." : "Could not reach the manager: " + e.message;
      error.hidden = false;
    } finally {
      submit.disabled = false;
    }
  } },
  el("label", { for: "api-key" }, "API key"),
  input,
  error,
  submit);
  return el("div", { class: "login" },
    el("div", { class: "login-card card" },
      el("h1", {}, "Sign in to the dashboard"),
      el("p", { class: "muted" },
        "Use an account's API key (",
        el("code", {}, "inferix account create"),
        " prints one). It is kept in this tab only."),
      form));
}

// Shows the page the hash names.
export function route() {
  if (current) current.abort();
  current = new AbortController();
  const signal = current.signal;
  const hash = location.hash.replace(/^#\/?/, "");
  const parts = hash.split("/").filter(Boolean).map(decodeURIComponent);
  if (!apiKey()) {
    showChrome(false);
    view.replaceChildren(loginPage());
    document.getElementById("api-key").focus();
    return;
  }
  showChrome(true);
  const page = parts[0] || "jobs";
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("active", a.dataset.page === page);
  }
  let content;
  if (page === "jobs" && parts[1]) content = jobPage(parts[1], signal);
  else if (page === "nodes") content = nodesPage(signal);
  else if (page === "ledger") content = ledgerPage(signal);
  else content = jobsPage(signal);
  view.replaceChildren(content);
}

// A failure shown where the page's content goes; an unknown key sends
// back to the login.
export function failed(container, e) {
  if (e && e.name === "AbortError") return;
  if (e instanceof ApiError && e.status === 401) {
    clearApiKey();
    route();
    return;
  }
  container.replaceChildren(el("div", { class: "alert alert-error" }, e.message || String(e)));
}

document.getElementById("logout").addEventListener("click", () => {
  clearApiKey();
  sessionStorage.removeItem(OPERATOR);
  location.hash = "#/";
  route();
});
window.addEventListener("hashchange", route);
route();
