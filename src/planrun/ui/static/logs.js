// planrun log view: the server rendered the tail; older lines load when the view is
// scrolled to its top (/log/window?before=OFFSET), a search runs on the server
// (/log/search?q=), a match opens the lines around it. Line HTML comes from the
// server, escaped there (links only for http/https); nothing here builds HTML.
"use strict";

const PAGE_LINES = 200;

function logEl(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function lineNodes(lines) {
  const tpl = document.createElement("template");
  // Each line's html was escaped by the server (ui/log_view.py linkify).
  tpl.innerHTML = lines.map((l) => `<div class="ln" data-offset="${Number(l.offset)}">${l.html}</div>`).join("");
  return tpl.content;
}

function setupLog(view) {
  const api = view.dataset.api;
  const attempt = view.dataset.attempt;
  const box = document.getElementById("log-lines");
  const older = document.getElementById("log-older");
  const status = document.getElementById("log-status");
  let start = Number(view.dataset.start);
  let atStart = view.dataset.atStart === "1";
  let end = Number(view.dataset.end);
  let atEnd = true; // the page opens at the tail
  let loading = false;

  function url(path, params) {
    const q = new URLSearchParams(params);
    if (attempt) q.set("attempt", attempt);
    return `${api}/${path}?${q}`;
  }

  async function loadOlder() {
    if (loading || atStart) return;
    loading = true;
    older.textContent = "loading older lines…";
    try {
      const resp = await fetch(url("window", { before: String(start), lines: String(PAGE_LINES) }));
      const data = await resp.json();
      if (!resp.ok || data.problem) { older.textContent = data.error || data.problem; return; }
      const before = view.scrollHeight;
      box.prepend(lineNodes(data.lines));
      view.scrollTop += view.scrollHeight - before; // keep the lines in view where they were
      start = data.start;
      atStart = data.at_start;
      older.textContent = atStart ? "(start of the log)" : "older lines…";
    } finally {
      loading = false;
    }
  }

  async function loadNewer() {
    if (loading || atEnd) return;
    loading = true;
    try {
      const resp = await fetch(url("window", { after: String(end), lines: String(PAGE_LINES) }));
      const data = await resp.json();
      if (!resp.ok || data.problem) return;
      box.append(lineNodes(data.lines));
      end = data.end;
      atEnd = data.end >= data.size;
    } finally {
      loading = false;
    }
  }

  async function openAt(match) {
    // The lines up to and including the match, then scroll it into view.
    const resp = await fetch(url("window", { before: String(match.end), lines: String(PAGE_LINES) }));
    const data = await resp.json();
    if (!resp.ok || data.problem) return;
    box.replaceChildren(lineNodes(data.lines));
    start = data.start;
    atStart = data.at_start;
    end = data.end;
    atEnd = data.end >= data.size;
    older.textContent = atStart ? "(start of the log)" : "older lines…";
    const hit = box.querySelector(`.ln[data-offset="${Number(match.offset)}"]`);
    if (hit) { hit.classList.add("hit"); hit.scrollIntoView({ block: "center" }); }
  }

  view.addEventListener("scroll", () => {
    if (view.scrollTop < 40) loadOlder();
    else if (view.scrollHeight - view.scrollTop - view.clientHeight < 40) loadNewer();
  });
  view.scrollTop = view.scrollHeight; // the tail first
  if (!atStart && view.scrollHeight <= view.clientHeight) loadOlder();

  document.getElementById("log-search").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const q = ev.target.elements.q.value;
    const list = document.getElementById("log-matches");
    if (!q) { list.replaceChildren(); status.textContent = ""; return; }
    status.textContent = "searching…";
    const resp = await fetch(url("search", { q }));
    const data = await resp.json();
    if (!resp.ok) { status.textContent = data.error; return; }
    status.textContent = `${data.matches.length}${data.truncated ? "+" : ""} matching lines`;
    list.replaceChildren(...data.matches.map((m) => {
      const li = logEl("li");
      const a = logEl("a", "match", `line ${m.line}: `);
      a.href = "#";
      a.append(logEl("code", "", m.text));
      a.addEventListener("click", (e) => { e.preventDefault(); openAt(m); });
      li.append(a);
      return li;
    }));
  });

  document.getElementById("log-copy").addEventListener("click", async () => {
    const text = Array.from(box.querySelectorAll(".ln"), (n) => n.textContent).join("\n");
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      const area = logEl("textarea");
      area.value = text;
      document.body.append(area);
      area.select();
      document.execCommand("copy");
      area.remove();
    }
    status.textContent = `copied ${box.childElementCount} lines`;
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const view = document.getElementById("log");
  if (view) setupLog(view);
});
