// The nodes page (operators): the connected workers and verifiers, and the
// operator's controls over each: drain (finish the current task, take no
// new one) and disable (disconnect and refuse), and their undoing.

import { api } from "./api.js";
import { el, badge, credits, ago, shortId, plural, card, emptyRow } from "./util.js";
import { failed, toast } from "./app.js";

const REFRESH_MS = 5000;

export function nodesPage(signal) {
  const problem = el("div");
  const workers = el("tbody", { id: "workers-body" });
  const verifiers = el("tbody", { id: "verifiers-body" });
  const summary = el("div", { class: "status-line", id: "nodes-status" });
  const root = el("div", { class: "page" },
    el("div", { class: "page-head" }, el("h1", {}, "Nodes"), summary),
    problem,
    card("Workers", null, el("div", { class: "table-wrap" }, el("table", { class: "table", id: "workers" },
      el("thead", {}, el("tr", {},
        el("th", {}, "Node"), el("th", {}, "State"), el("th", { class: "num", title: "measured / declared" }, "IB (measured / declared)"),
        el("th", { class: "num" }, "Reputation"), el("th", { class: "num" }, "Stake (credits)"),
        el("th", {}, "Current task"), el("th", {}, "Formats / tags"), el("th", { class: "num" }, "Last seen"),
        el("th", { class: "num" }, "Actions"))),
      workers))),
    card("Verifiers", null, el("div", { class: "table-wrap" }, el("table", { class: "table", id: "verifiers" },
      el("thead", {}, el("tr", {},
        el("th", {}, "Node"), el("th", {}, "State"), el("th", { class: "num" }, "Reputation"),
        el("th", { class: "num" }, "Pending checks"), el("th", {}, "Formats / tags"),
        el("th", { class: "num" }, "Last seen"), el("th", { class: "num" }, "Actions"))),
      verifiers))));

  async function control(node, action) {
    try {
      await api("/api/nodes/" + encodeURIComponent(node) + "/" + action, { method: "POST", body: {}, signal });
      toast("Node " + shortId(node) + ": " + action + " done.", "ok");
      load();
    } catch (e) {
      if (e.name !== "AbortError") toast(e.message, "error");
    }
  }

  function buttons(n) {
    const drained = n.state === "drained";
    return el("div", { class: "row-actions" },
      el("button", { class: "btn btn-small", type: "button", dataset: { action: drained ? "undrain" : "drain" },
        onclick: () => control(n.node, drained ? "undrain" : "drain") }, drained ? "Undrain" : "Drain"),
      el("button", { class: "btn btn-small btn-danger-outline", type: "button", dataset: { action: "disable" },
        onclick: () => control(n.node, "disable") }, "Disable"));
  }

  function traits(n) {
    return el("div", { class: "chips" }, n.formats.map((f) => el("span", { class: "chip" }, f)),
      n.tags.map((t) => el("span", { class: "chip chip-tag" }, t)));
  }

  function nodeCell(n) {
    return el("td", { class: "mono", title: n.node }, shortId(n.node));
  }

  function workerRow(n) {
    return el("tr", { dataset: { node: n.node, role: n.role } },
      nodeCell(n), el("td", {}, badge(n.state)),
      el("td", { class: "num", title: "measured / declared" },
        (n.measured_ib == null ? "—" : n.measured_ib.toFixed(1)) + " / " + n.declared_ib.toFixed(1)),
      el("td", { class: "num" }, reputation(n.reputation)),
      el("td", { class: "num" }, credits(n.stake)),
      el("td", { class: "mono" }, n.task || "—"),
      el("td", {}, traits(n)),
      el("td", { class: "num muted" }, ago(n.last_seen_ms)),
      el("td", { class: "num" }, buttons(n)));
  }

  function verifierRow(n) {
    return el("tr", { dataset: { node: n.node, role: n.role } },
      nodeCell(n), el("td", {}, badge(n.state)),
      el("td", { class: "num" }, reputation(n.reputation)),
      el("td", { class: "num" }, n.pending_verifications),
      el("td", {}, traits(n)),
      el("td", { class: "num muted" }, ago(n.last_seen_ms)),
      el("td", { class: "num" }, buttons(n)));
  }

  async function load() {
    try {
      const nodes = await api("/api/nodes", { signal });
      const w = nodes.filter((n) => n.role === "worker");
      const v = nodes.filter((n) => n.role === "verifier");
      workers.replaceChildren(...(w.length ? w.map(workerRow) : [emptyRow(9, "No worker connected.")]));
      verifiers.replaceChildren(...(v.length ? v.map(verifierRow) : [emptyRow(7, "No verifier connected.")]));
      summary.textContent = plural(w.length, "worker") + ", " + plural(v.length, "verifier");
      problem.replaceChildren();
    } catch (e) {
      failed(problem, e);
    }
  }

  const timer = setInterval(load, REFRESH_MS);
  signal.addEventListener("abort", () => clearInterval(timer));
  load();
  return root;
}

function reputation(r) {
  const pct = Math.max(0, Math.min(1, r));
  return el("span", { class: "rep", title: r.toFixed(3) },
    el("span", { class: "rep-bar" }, el("span", { class: "rep-fill", style: { width: pct * 100 + "%" } })),
    r.toFixed(2));
}
