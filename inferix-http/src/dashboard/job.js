// A job's page: its progress, a grid of its frames coloured by state with
// thumbnails of the accepted ones, its tasks (worker, attempts, verdicts,
// payment), and the owner's actions: pause, resume, cancel, claim a frame.

import { api, imageUrl, followEvents, ApiError } from "./api.js";
import { el, badge, credits, progressBar, eta, duration, dateTime, shortId, isFinished, card, emptyRow } from "./util.js";
import { failed, toast } from "./app.js";

// While a job runs, its status is read again this often: the event stream
// tells of accepted and rejected tasks, not of leases and verifications.
const REFRESH_MS = 2000;

const FRAME_STATES = [
  ["queued", "Queued"],
  ["leased", "Rendering"],
  ["rendered", "Rendered"],
  ["verifying", "Verifying"],
  ["accepted", "Accepted"],
  ["rejected", "Rejected"],
  ["failed", "Failed"],
  ["cancelled", "Cancelled"],
];

export function jobPage(id, signal) {
  const path = "/api/jobs/" + encodeURIComponent(id);
  const thumbs = new Map(); // frame number -> object URL
  const problem = el("div");
  const head = el("div", { class: "page-head" });
  const summary = el("div");
  const frames = el("div");
  const tasks = el("div");
  const lightbox = el("div", { class: "lightbox", id: "lightbox", hidden: true });
  const root = el("div", { class: "page" }, head, problem, summary, frames, tasks, lightbox);
  let job = null;
  let confirming = false;
  let timer = null;
  let pending = null;

  signal.addEventListener("abort", () => {
    clearTimeout(timer);
    clearTimeout(pending);
    for (const url of thumbs.values()) URL.revokeObjectURL(url);
  });

  async function act(action) {
    try {
      await api(path + "/" + action, { method: "POST", body: {}, signal });
      toast("Job " + (action === "cancel" ? "cancelled" : action + "d") + ".", "ok");
      await load();
    } catch (e) {
      if (e.name !== "AbortError") toast(e.message, "error");
    }
  }

  function actions() {
    const state = job.state;
    // Whether the question is open outlives the re-render of each refresh.
    const confirm = el("span", { class: "confirm", hidden: !confirming },
      "Cancel this job? ",
      el("button", { class: "btn btn-danger", id: "confirm-cancel", type: "button", onclick: () => { confirming = false; act("cancel"); } }, "Yes, cancel"),
      el("button", { class: "btn btn-ghost", type: "button", onclick: () => { confirming = false; confirm.hidden = true; } }, "Keep"));
    return el("div", { class: "actions" },
      state === "active" ? el("button", { class: "btn", id: "btn-pause", type: "button", onclick: () => act("pause") }, "Pause") : null,
      state === "paused" ? el("button", { class: "btn", id: "btn-resume", type: "button", onclick: () => act("resume") }, "Resume") : null,
      job.frames.length ? el("button", { class: "btn", id: "btn-zip", type: "button", onclick: downloadZip }, "Download frames") : null,
      isFinished(state) ? null : el("button", { class: "btn btn-danger-outline", id: "btn-cancel", type: "button",
        onclick: () => { confirming = true; confirm.hidden = false; } }, "Cancel"),
      confirm);
  }

  async function downloadZip() {
    try {
      const url = await imageUrl(path + "/frames.zip", signal);
      const a = el("a", { href: url, download: job.id + ".zip" });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (e) {
      if (e.name !== "AbortError") toast(e.message, "error");
    }
  }

  function stat(label, value, id) {
    return el("div", { class: "stat" }, el("div", { class: "stat-label" }, label), el("div", { class: "stat-value", id }, value));
  }

  function renderSummary() {
    const left = eta(job);
    head.replaceChildren(
      el("div", {},
        el("a", { href: "#/jobs", class: "back" }, "← Jobs"),
        el("h1", {}, "Job ", el("span", { class: "mono", title: job.id }, shortId(job.id)), " ",
          el("span", { id: "job-state" }, badge(job.state)))),
      actions());
    summary.replaceChildren(card("Progress", null,
      el("div", { id: "job-progress" }, progressBar(job.frames_accepted, job.frames_total)),
      el("div", { class: "stats" },
        stat("Frames", job.frames_accepted + " / " + job.frames_total, "job-frames"),
        stat("ETA", left === null ? "—" : duration(left)),
        stat("Quoted", credits(job.quoted_price) + " cr"),
        stat("Paid", credits(job.paid) + " cr", "job-paid"),
        stat("Owner", job.owner || "—"),
        stat("Priority", job.priority),
        stat("Submitted", dateTime(job.created_ms))),
      job.waiting_reason ? el("div", { class: "alert alert-warn" }, "Waiting: " + job.waiting_reason) : null,
      job.warnings.length ? el("ul", { class: "warnings" }, job.warnings.map((w) => el("li", {}, w))) : null));
  }

  // Each frame's state: that of the task rendering it.
  function frameStates() {
    const states = new Map();
    for (const t of job.task_details) for (const f of t.frames) states.set(f, t.state);
    for (const f of job.frames) states.set(f.frame, "accepted");
    return [...states.entries()].sort((a, b) => a[0] - b[0]);
  }

  function frameCell(frame, state) {
    const cell = el("button", {
      class: "frame-cell frame-" + state, type: "button", title: "Frame " + frame + ": " + state,
      dataset: { frame, state }, disabled: state !== "accepted",
      onclick: () => openFrame(frame),
    }, el("span", { class: "frame-no" }, frame));
    if (state === "accepted") {
      const img = el("img", { alt: "Frame " + frame, class: "thumb" });
      cell.prepend(img);
      if (thumbs.has(frame)) img.src = thumbs.get(frame);
      else {
        imageUrl(path + "/frames/" + frame, signal).then((url) => {
          thumbs.set(frame, url);
          img.src = url;
        }).catch(() => {});
      }
    }
    return cell;
  }

  function renderFrames() {
    const list = frameStates();
    const counts = new Map();
    for (const [, s] of list) counts.set(s, (counts.get(s) || 0) + 1);
    const legend = el("div", { class: "legend" }, FRAME_STATES
      .filter(([s]) => counts.has(s) || ["queued", "leased", "verifying", "accepted"].includes(s))
      .map(([s, label]) => el("span", { class: "legend-item" }, el("i", { class: "swatch frame-" + s }), label + " " + (counts.get(s) || 0))));
    frames.replaceChildren(card("Frames", legend,
      el("div", { class: "frame-grid", id: "frame-grid" }, list.map(([f, s]) => frameCell(f, s)))));
  }

  function verdicts(t) {
    if (!t.verdicts.length) return "—";
    return el("ul", { class: "verdicts" }, t.verdicts.map((v) =>
      el("li", { title: dateTime(v.at_ms) }, badge(v.state), " ", v.note)));
  }

  function renderTasks() {
    const rows = job.task_details.map((t) => el("tr", { dataset: { task: t.index } },
      el("td", { class: "num" }, t.index),
      el("td", {}, frameList(t.frames)),
      el("td", {}, badge(t.state)),
      el("td", { class: "mono", title: t.worker || "" }, t.worker ? shortId(t.worker) : "—"),
      el("td", { class: "num" }, t.attempts),
      el("td", { class: "num" }, t.render_ms === null || t.render_ms === undefined ? "—" : duration(t.render_ms)),
      el("td", {}, verdicts(t)),
      el("td", { class: "num" }, t.paid ? credits(t.paid) : "—")));
    tasks.replaceChildren(card("Tasks", null, el("div", { class: "table-wrap" },
      el("table", { class: "table", id: "tasks" },
        el("thead", {}, el("tr", {},
          el("th", { class: "num" }, "Task"), el("th", {}, "Frames"), el("th", {}, "State"), el("th", {}, "Worker"),
          el("th", { class: "num" }, "Attempts"), el("th", { class: "num" }, "Render time"), el("th", {}, "Verdicts"),
          el("th", { class: "num" }, "Paid (credits)"))),
        el("tbody", {}, rows.length ? rows : emptyRow(8, "No task detail from this manager."))))));
  }

  function frameList(list) {
    if (list.length > 2 && list[list.length - 1] - list[0] === list.length - 1) return list[0] + "–" + list[list.length - 1];
    return list.join(", ");
  }

  // The full-size frame, with a form to claim it bad.
  async function openFrame(frame) {
    const close = () => { lightbox.hidden = true; lightbox.replaceChildren(); };
    const reason = el("input", { id: "claim-reason", type: "text", placeholder: "What is wrong with this frame?" });
    const claim = el("form", { class: "claim", onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        const r = await api(path + "/claims", { method: "POST", body: { frames: [frame], reason: reason.value.trim() || "bad frame" }, signal });
        toast("Claim " + r.claim + " filed for frame " + frame + ".", "ok");
        close();
      } catch (e) {
        if (e.name !== "AbortError") toast(e.message, "error");
      }
    } }, reason, el("button", { class: "btn", id: "btn-claim", type: "submit" }, "Claim frame"));
    const img = el("img", { id: "full-frame", alt: "Frame " + frame });
    if (thumbs.has(frame)) img.src = thumbs.get(frame);
    lightbox.replaceChildren(el("div", { class: "lightbox-panel", role: "dialog", "aria-label": "Frame " + frame },
      el("div", { class: "lightbox-head" },
        el("strong", {}, "Frame " + frame),
        el("button", { class: "btn btn-ghost", id: "lightbox-close", type: "button", onclick: close }, "Close")),
      el("div", { class: "lightbox-body" }, img),
      claim));
    lightbox.onclick = (ev) => { if (ev.target === lightbox) close(); };
    lightbox.hidden = false;
    if (!thumbs.has(frame)) {
      try {
        const url = await imageUrl(path + "/frames/" + frame, signal);
        thumbs.set(frame, url);
        img.src = url;
      } catch (e) {
        if (e.name !== "AbortError") toast(e.message, "error");
      }
    }
  }

  async function load() {
    clearTimeout(timer);
    try {
      job = await api(path, { signal });
      problem.replaceChildren();
      renderSummary();
      renderFrames();
      renderTasks();
      if (!isFinished(job.state)) timer = setTimeout(load, REFRESH_MS);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) {
        head.replaceChildren(el("h1", {}, "Job not found"));
      }
      failed(problem, e);
    }
  }

  // Events come in bursts (a task accepted, then the job completed): one
  // reload for each burst.
  function soon() {
    clearTimeout(pending);
    pending = setTimeout(load, 150);
  }

  document.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape" && !lightbox.hidden) { lightbox.hidden = true; lightbox.replaceChildren(); }
  }, { signal });

  load().then(() => {
    if (job && !isFinished(job.state)) {
      followEvents(path + "/events", soon, signal).catch(() => {});
    }
  });
  return root;
}
