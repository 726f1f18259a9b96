// planrun dashboard, big runs: a graph collapsed by level (click a level for its
// steps, drawn by the server) kept live, and a step table that loads as you scroll.
// Fed by dashboard.js's "planrun:update" events (one stream per page).
"use strict";

(() => {
  const GRAPH_EVERY_MS = 2000; // the collapsed graph is redrawn at most this often
  let graphTimer = null;
  let openLevel = null;

  function base() { return location.pathname.replace(/\/$/, ""); }

  async function fetchText(url) {
    const resp = await fetch(url);
    return resp.ok ? resp.text() : null;
  }

  async function showLevel(level) {
    const box = document.getElementById("level-detail");
    if (!box) return;
    if (openLevel === level) { openLevel = null; box.replaceChildren(); markOpen(); return; }
    openLevel = level;
    markOpen();
    const svg = await fetchText(`${base()}/graph.svg?level=${level}`);
    if (svg === null || openLevel !== level) return;
    const head = document.createElement("h3");
    head.textContent = `level ${level}: its steps (click the level again to close)`;
    const holder = document.createElement("div");
    holder.innerHTML = svg; // drawn and escaped by the server (graph_levels.py)
    box.replaceChildren(head, holder);
    box.dataset.level = String(level);
    box.scrollIntoView({ block: "nearest" });
  }

  function markOpen() {
    document.querySelectorAll("svg.levels g.level").forEach((g) => {
      g.classList.toggle("open", g.dataset.level === String(openLevel));
    });
  }

  function redrawGraph() {
    const svg = document.querySelector("svg.levels");
    if (!svg || graphTimer) return;
    graphTimer = setTimeout(async () => {
      const text = await fetchText(`${base()}/graph.svg`);
      graphTimer = null;
      if (text === null) return;
      const holder = document.createElement("div");
      holder.innerHTML = text;
      const fresh = holder.querySelector("svg.levels");
      const now = document.querySelector("svg.levels");
      if (fresh && now) { now.replaceWith(fresh); markOpen(); }
      if (openLevel !== null) {
        const level = openLevel;
        const detail = await fetchText(`${base()}/graph.svg?level=${level}`);
        const box = document.querySelector("#level-detail div");
        if (detail !== null && box && openLevel === level) box.innerHTML = detail;
      }
      document.body.dataset.graphRedrawn = String(Date.now());
    }, GRAPH_EVERY_MS);
  }

  async function loadMore(row, observer) {
    observer.unobserve(row);
    const tbody = row.parentElement;
    const html = await fetchText(`${base()}/steps?offset=${row.dataset.next}`);
    if (html === null) { observer.observe(row); return; }
    const t = document.createElement("template");
    t.innerHTML = `<table><tbody>${html}</tbody></table>`;
    const rows = [...t.content.querySelectorAll("tbody > tr")];
    rows.forEach((tr) => {
      if (!tr.dataset.step) return;
      const pinned = tbody.querySelector(`tr.pinned[data-step="${CSS.escape(tr.dataset.step)}"]`);
      if (pinned) pinned.remove(); // it was shown early (failed or running): now in order
    });
    row.replaceWith(...rows);
    const next = document.getElementById("steps-more");
    if (next) observer.observe(next);
  }

  async function olderEvents(button) {
    button.disabled = true;
    const html = await fetchText(`${base()}/events?before=${button.dataset.before}`);
    button.disabled = false;
    if (html === null) return;
    const list = document.querySelector("ol.events");
    list.insertAdjacentHTML("afterbegin", html); // drawn and escaped by the server
    const first = list.querySelector("li");
    const seq = first ? Number(first.dataset.seq) : 1;
    if (seq <= 1) button.remove(); else button.dataset.before = String(seq);
  }

  document.addEventListener("DOMContentLoaded", () => {
    const older = document.getElementById("events-more");
    if (older) older.addEventListener("click", () => olderEvents(older));
    const graph = document.querySelector(".graph");
    const detail = document.getElementById("level-detail");
    if (graph && detail) graph.after(detail); // below the levels' scroll box, in view
    if (graph) {
      graph.addEventListener("click", (e) => {
        const g = e.target.closest && e.target.closest("svg.levels g.level");
        if (g) showLevel(Number(g.dataset.level));
      });
      graph.addEventListener("keydown", (e) => {
        const g = e.target.closest && e.target.closest("svg.levels g.level");
        if (g && (e.key === "Enter" || e.key === " ")) { e.preventDefault(); showLevel(Number(g.dataset.level)); }
      });
    }
    const more = document.getElementById("steps-more");
    if (more && "IntersectionObserver" in window) {
      const observer = new IntersectionObserver((entries) => {
        entries.forEach((entry) => { if (entry.isIntersecting) loadMore(entry.target, observer); });
      }, { rootMargin: "400px" });
      observer.observe(more);
    }
  });

  document.addEventListener("planrun:update", (e) => {
    if (e.detail.steps.length) redrawGraph();
  });
})();
