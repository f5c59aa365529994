// The jobs page: the caller's jobs (every account's, for operators who ask)
// with their progress, kept live by the jobs' event streams.

import { api, followEvents } from "./api.js";
import { el, badge, credits, progressBar, eta, duration, ago, shortId, plural, isFinished, card, emptyRow } from "./util.js";
import { isOperator, failed } from "./app.js";

// Event streams held at once: a browser keeps about six connections to a
// server over HTTP/1.1, and the page's other requests need some of them.
const MAX_STREAMS = 3;
// The listing is read again this often, for jobs without a stream.
const REFRESH_MS = 5000;

export function jobsPage(signal) {
  const all = el("input", { type: "checkbox", id: "all-jobs" });
  const body = el("tbody", { id: "jobs-body" });
  const operator = isOperator();
  const table = el("table", { class: "table", id: "jobs" },
    el("thead", {}, el("tr", {},
      el("th", {}, "Job"),
      operator ? el("th", {}, "Owner") : null,
      el("th", {}, "State"),
      el("th", { class: "col-progress" }, "Progress"),
      el("th", { class: "num" }, "Frames"),
      el("th", { class: "num" }, "ETA"),
      el("th", { class: "num" }, "Cost (credits)"),
      el("th", { class: "num" }, "Submitted"))),
    body);
  const filter = operator
    ? el("label", { class: "toggle" }, all, " All accounts")
    : null;
  const status = el("div", { class: "status-line", id: "jobs-status" });
  const problem = el("div");
  const root = el("div", { class: "page" },
    el("div", { class: "page-head" }, el("h1", {}, "Jobs"), status),
    problem,
    card("Render jobs", filter, el("div", { class: "table-wrap" }, table)));

  const streams = new Map();
  let jobs = [];

  function row(job) {
    const left = eta(job);
    return el("tr", { dataset: { job: job.id, state: job.state } },
      el("td", {}, el("a", { href: "#/jobs/" + encodeURIComponent(job.id), class: "mono", title: job.id }, shortId(job.id))),
      operator ? el("td", {}, job.owner || "—") : null,
      el("td", {}, badge(job.state)),
      el("td", { class: "col-progress" }, progressBar(job.frames_accepted, job.frames_total)),
      el("td", { class: "num frames" }, job.frames_accepted + " / " + job.frames_total),
      el("td", { class: "num" }, left === null ? "—" : duration(left)),
      el("td", { class: "num" }, credits(job.quoted_price)),
      el("td", { class: "num muted", title: new Date(job.created_ms).toISOString() }, ago(job.created_ms)));
  }

  function render() {
    body.replaceChildren(...(jobs.length ? jobs.map(row) : [emptyRow(operator ? 8 : 7, "No jobs yet.")]));
    const active = jobs.filter((j) => !isFinished(j.state)).length;
    status.textContent = plural(jobs.length, "job") + ", " + active + " unfinished";
  }

  // Streams the events of the newest unfinished jobs; each accepted task
  // moves its job's bar at once, and the end of a job reloads the list.
  function follow() {
    for (const job of jobs) {
      if (streams.size >= MAX_STREAMS) break;
      if (isFinished(job.state) || streams.has(job.id)) continue;
      const ctl = new AbortController();
      signal.addEventListener("abort", () => ctl.abort());
      streams.set(job.id, ctl);
      followEvents("/api/jobs/" + encodeURIComponent(job.id) + "/events", (kind, data) => {
        const j = jobs.find((x) => x.id === job.id);
        if (!j) return;
        if (kind === "task_accepted") {
          j.frames_accepted = data.task_accepted.accepted_frames;
          render();
        } else if (kind === "completed" || kind === "failed" || kind === "cancelled") {
          load();
        }
      }, ctl.signal).catch(() => {}).finally(() => streams.delete(job.id));
    }
  }

  async function load() {
    try {
      jobs = await api("/api/jobs" + (all.checked ? "?all=true" : ""), { signal });
      problem.replaceChildren();
      render();
      follow();
    } catch (e) {
      failed(problem, e);
    }
  }

  all.addEventListener("change", load);
  const timer = setInterval(load, REFRESH_MS);
  signal.addEventListener("abort", () => clearInterval(timer));
  load();
  return root;
}
