// planrun dashboard: live updates for the page the server rendered. No framework,
// no build step. A run page follows its server-sent events, so does the runs list
// (/live/runs: the server reads the store once a second for all open lists).
"use strict";

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function duration(sec) {
  if (sec === null || sec === undefined) return "";
  if (sec < 60) return sec.toFixed(1) + "s";
  const m = Math.floor(sec / 60), s = Math.floor(sec % 60), h = Math.floor(m / 60);
  return h ? `${h}h${String(m % 60).padStart(2, "0")}m` : `${m}m${String(s).padStart(2, "0")}s`;
}

function stateBadge(state) {
  return el("span", "state state-" + state, state);
}

const RESUMABLE = new Set(["failed", "cancelled", "crashed"]);

function setBar(container, pct, state) {
  const bar = container.querySelector(".bar");
  if (!bar) return;
  bar.setAttribute("class", "bar state-" + state);
  bar.setAttribute("aria-valuenow", String(pct));
  bar.querySelector(".fill").style.width = pct + "%";
  bar.querySelector(".pct").textContent = pct + "%";
}

function updateRun(run) {
  const state = document.getElementById("run-state");
  if (state) state.replaceChildren(stateBadge(run.state));
  const dur = document.getElementById("run-duration");
  if (dur) dur.textContent = duration(run.duration_sec);
  const prog = document.getElementById("run-progress");
  if (prog) setBar(prog, run.progress_pct, run.state);
  const reason = document.getElementById("run-reason");
  if (reason) reason.textContent = run.reason || "";
  const cancel = document.getElementById("cancel-form");
  if (cancel) cancel.hidden = run.state !== "running";
  const resume = document.getElementById("resume-form");
  if (resume) resume.hidden = !RESUMABLE.has(run.state);
  document.body.dataset.runState = run.state;
}

function updateStep(step) {
  const id = CSS.escape(step.step_id);
  const node = document.querySelector(`svg.dag g.node[data-step="${id}"]`);
  if (node) {
    node.setAttribute("class", "node state-" + step.state);
    const title = node.querySelector("title");
    if (title) title.textContent = `${step.step_id} (${step.state})`;
  }
  const row = document.querySelector(`#steps tr.step[data-step="${id}"]`);
  if (!row) return;
  row.querySelector("td.st").replaceChildren(stateBadge(step.state));
  row.querySelector("td.code").textContent = step.exit_code === null ? "" : String(step.exit_code);
  row.querySelector("td.dur").textContent = duration(step.duration_sec);
  row.querySelector("td.why").textContent = step.reason || "";
  const attempts = row.querySelector("td.attempts");
  attempts.replaceChildren(...step.attempts.map((a) => {
    const code = a.exit_code === null ? "" : ` exit ${a.exit_code}`;
    const span = el("span", "attempt state-" + a.state,
      `#${a.attempt} ${a.state}${code} ${duration(a.duration_sec)}`);
    span.title = a.error || "";
    return span;
  }));
}

// The failing path, as graph_svg.py draws it: edges into a failed step, and from a
// failed step into the steps it kept from running.
const FAILED = new Set(["failed", "timed_out", "crashed"]);
const BLOCKED = new Set(["skipped", "cancelled"]);

function refreshEdges() {
  const states = {};
  document.querySelectorAll("svg.dag g.node").forEach((node) => {
    states[node.dataset.step] = node.getAttribute("class").replace("node state-", "");
  });
  document.querySelectorAll("svg.dag path.edge").forEach((edge) => {
    const from = states[edge.dataset.from], to = states[edge.dataset.to];
    const bad = FAILED.has(to) || (FAILED.has(from) && BLOCKED.has(to));
    edge.setAttribute("class", bad ? "edge fail-path" : "edge");
  });
}

// The Gantt chart is drawn by the server: fetch it again at most once a second.
let ganttTimer = null;
function refreshGantt(then) {
  if (document.getElementById("gantt").dataset.live !== "on") { if (then) then(); return; }
  if (ganttTimer) return;
  ganttTimer = setTimeout(async () => {
    const resp = await fetch(location.pathname + "/gantt.svg");
    if (resp.ok) document.getElementById("gantt").innerHTML = await resp.text();
    ganttTimer = null;
    if (then) then();
  }, 1000);
}

function followRun(url) {
  const source = new EventSource(url);
  source.addEventListener("update", (msg) => {
    const data = JSON.parse(msg.data);
    updateRun(data.run);
    data.steps.forEach(updateStep);
    if (data.steps.length) refreshEdges();
    if (data.run.state === "running") refreshGantt();
    document.dispatchEvent(new CustomEvent("planrun:update", { detail: data })); // scale.js
  });
  source.addEventListener("end", () => {
    source.close();
    clearTimeout(ganttTimer);
    ganttTimer = null;
    refreshGantt(() => { document.body.dataset.live = "ended"; });
  });
}

// A step's log tail, opened by a click. While its step runs it stays live: fetched
// again at most once a second, on an update for the step or on a 1 s timer that stops
// when the step ends or the panel closes (a retry's new attempt replaces the old one).
// The newest lines stay in view unless the reader scrolled up. Text only: textContent.
const TAIL_LINES = 200, TAIL_EVERY_MS = 1000;
const tails = new Map(); // step id -> {step, pre, running, timer, last, busy, again}

function closeTail(step) {
  const tail = tails.get(step);
  if (tail) clearTimeout(tail.timer);
  tails.delete(step);
}

function scheduleTail(tail) {
  if (tail.timer || !tail.pre.isConnected) return;
  const wait = Math.max(0, tail.last + TAIL_EVERY_MS - Date.now());
  tail.timer = setTimeout(() => loadTail(tail), wait);
}

function renderTail(pre, ok, data) {
  let text = data.error;
  if (ok) {
    const head = `attempt ${data.attempt ?? "-"}` + (data.truncated ? " (last lines)" : "");
    text = data.problem ? `${head}: ${data.problem}` : head + "\n" + data.lines.join("\n");
  }
  const attempt = String(data.attempt ?? "");
  if (pre.textContent === text && pre.dataset.attempt === attempt) return;
  const pinned = pre.dataset.attempt !== attempt
    || pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4; // at the bottom
  pre.textContent = text;
  pre.dataset.attempt = attempt;
  if (pinned) pre.scrollTop = pre.scrollHeight; // a tail: the newest lines in view
}

async function loadTail(tail) {
  tail.timer = null;
  if (tails.get(tail.step) !== tail || !tail.pre.isConnected) return;
  if (tail.busy) { tail.again = true; return; }
  tail.busy = true;
  tail.last = Date.now();
  try {
    const runId = location.pathname.split("/")[2];
    const resp = await fetch(
      `/api/runs/${runId}/steps/${encodeURIComponent(tail.step)}/log?tail=${TAIL_LINES}`);
    renderTail(tail.pre, resp.ok, await resp.json());
  } catch (err) { /* a dropped request: the next one tries again */ }
  tail.busy = false;
  if (tails.get(tail.step) !== tail || !tail.pre.isConnected) { closeTail(tail.step); return; }
  if (tail.again || tail.running) scheduleTail(tail);
  tail.again = false;
  tail.pre.dataset.live = tail.running ? "on" : "off";
}

function toggleLog(button) {
  const row = button.closest("tr");
  const step = button.dataset.step;
  const next = row.nextElementSibling;
  if (next && next.classList.contains("log-row")) { next.remove(); closeTail(step); return; }
  const logRow = el("tr", "log-row");
  const cell = el("td");
  cell.colSpan = row.children.length;
  const pre = el("pre", "log", "loading…");
  pre.dataset.step = step;
  cell.append(pre);
  logRow.append(cell);
  row.after(logRow);
  const badge = row.querySelector("td.st .state");
  closeTail(step);
  const tail = { step, pre, running: badge !== null && badge.textContent === "running",
    timer: null, last: 0, busy: false, again: false };
  tails.set(step, tail);
  loadTail(tail);
}

document.addEventListener("planrun:update", (e) => { // steps that changed: their tails
  e.detail.steps.forEach((step) => {
    const tail = tails.get(step.step_id);
    if (!tail) return;
    tail.running = step.state === "running";
    scheduleTail(tail);
  });
});

// A stored UTC time as people read it (pages.when's twin): the exact value on hover.
function when(iso) {
  if (!iso) return "-";
  const t = el("time", "", iso.length >= 19 ? iso.slice(0, 19).replace("T", " ") + " UTC" : iso);
  t.dateTime = iso;
  t.title = iso;
  return t;
}

function runsRow(run) {
  const tr = el("tr");
  tr.dataset.run = run.run_id;
  const link = el("a", "", run.run_id);
  link.href = "/runs/" + encodeURIComponent(run.run_id);
  const plan = el("a", "", run.plan_id); // its plan's page (ui/plan_page.py)
  plan.href = "/plans/" + encodeURIComponent(run.plan_id);
  const cells = [link, plan, stateBadge(run.state), null, when(run.started_at),
    duration(run.duration_sec), `${run.steps_done}/${run.step_count}`,
    run.trigger_summary || ""];
  cells.forEach((value, i) => {
    const td = el("td");
    if (i === 3) {
      td.innerHTML = '<div class="bar"><div class="fill"></div><span class="pct"></span></div>';
      setBar(td, run.progress_pct, run.state);
    } else if (value instanceof Node) td.append(value);
    else td.textContent = value;
    tr.append(td);
  });
  return tr;
}

function followRuns(url) {
  const body = document.getElementById("runs-body");
  const source = new EventSource(url);
  source.addEventListener("runs", (msg) => {
    const data = JSON.parse(msg.data);
    body.replaceChildren(...data.runs.map(runsRow));
    const empty = document.querySelector("p.empty");
    if (empty) empty.hidden = data.runs.length > 0;
    document.body.dataset.runsSeen = String(Number(document.body.dataset.runsSeen || 0) + 1);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const live = document.body.dataset.live;
  if (live && live.startsWith("/live/runs")) followRuns(live);
  else if (live && live.endsWith("/live")) followRun(live);
  document.addEventListener("click", (e) => { // (rows loaded later too: scale.js)
    const b = e.target.closest && e.target.closest("button.log-toggle");
    if (b) toggleLog(b);
  });
});
