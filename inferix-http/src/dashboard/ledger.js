// The ledger page (operators): the network's totals, each account's
// balance, and the latest transactions with their postings.

import { api } from "./api.js";
import { el, credits, dateTime, shortenIds, card, emptyRow } from "./util.js";
import { failed } from "./app.js";

// Transactions listed: the latest, as the manager sends them (up to 50).
const SHOWN = 20;

export function ledgerPage(signal) {
  const problem = el("div");
  const totals = el("div", { class: "stats stats-wide", id: "ledger-totals" });
  const balances = el("tbody", { id: "balances-body" });
  const recent = el("tbody", { id: "transactions-body" });
  const refresh = el("button", { class: "btn", type: "button", onclick: () => load() }, "Refresh");
  const root = el("div", { class: "page" },
    el("div", { class: "page-head" }, el("h1", {}, "Ledger"), refresh),
    problem,
    card("Totals", null, totals),
    el("div", { class: "columns" },
      card("Account balances", null, el("div", { class: "table-wrap" }, el("table", { class: "table", id: "balances" },
        el("thead", {}, el("tr", {}, el("th", {}, "Account"), el("th", { class: "num" }, "Balance (credits)"))),
        balances))),
      card("Recent transactions", null, el("div", { class: "table-wrap" }, el("table", { class: "table", id: "transactions" },
        el("thead", {}, el("tr", {}, el("th", {}, "When"), el("th", {}, "What"), el("th", {}, "Postings"))),
        recent)))));

  function total(label, micro, hint) {
    return el("div", { class: "stat" },
      el("div", { class: "stat-label" }, label),
      el("div", { class: "stat-value" }, credits(micro), el("small", {}, " cr")),
      el("div", { class: "stat-hint" }, hint));
  }

  function postings(tx) {
    return el("ul", { class: "postings" }, tx.postings.map((p) =>
      el("li", {}, el("span", { class: "mono", title: p.account }, shortenIds(p.account)),
        el("span", { class: "amount " + (p.amount < 0 ? "neg" : "pos") }, (p.amount > 0 ? "+" : "") + credits(p.amount)))));
  }

  async function load() {
    try {
      const l = await api("/api/ledger", { signal });
      totals.replaceChildren(
        total("Deposited", l.deposited, "ever paid into accounts"),
        total("Account balances", l.account_balances, "held by accounts now"),
        total("Escrow", l.escrow, "held for unfinished jobs"),
        total("Penalty pool", l.penalty_pool, "slashed, not yet paid out"));
      balances.replaceChildren(...(l.accounts.length
        ? l.accounts.map((a) => el("tr", {}, el("td", {}, a.account),
          el("td", { class: "num" + (a.balance < 0 ? " neg" : "") }, credits(a.balance))))
        : [emptyRow(2, "No accounts.")]));
      recent.replaceChildren(...(l.recent.length
        ? l.recent.slice(0, SHOWN).map((tx) => el("tr", {},
          el("td", { class: "muted nowrap" }, dateTime(tx.at_ms)),
          el("td", { title: tx.memo }, shortenIds(tx.memo), el("div", { class: "mono muted small", title: tx.id }, shortenIds(tx.id))),
          el("td", {}, postings(tx))))
        : [emptyRow(3, "No transactions yet.")]));
      problem.replaceChildren();
    } catch (e) {
      failed(problem, e);
    }
  }

  load();
  return root;
}
