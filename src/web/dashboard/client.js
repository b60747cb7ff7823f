// The dashboard's browser script (served as is by src/web/server.ts; uPlot is loaded before it).
// Views: the list of runs and studies (#), one run (#run=PATH) with live loss curves fed by
// Server-Sent Events, and one study's report (#study=PATH). State for tests: globalThis.ddDash.
/* global uPlot */
"use strict";

const dash = { view: "", points: 0, charts: 0, events: null, run: null };
globalThis.ddDash = dash;

const view = () => document.getElementById("view");
const NOT_METRICS = new Set(["step", "epoch", "time", "images_per_s"]);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : String(c));
  return node;
}

const fileUrl = (path) => "/files/" + path.split("/").map(encodeURIComponent).join("/");

function duration(s) {
  if (s === null || s === undefined || !Number.isFinite(s)) return "?";
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = Math.floor(s % 60);
  return h > 0 ? `${h}h${String(m).padStart(2, "0")}m` : `${m}m${String(sec).padStart(2, "0")}s`;
}

async function getJson(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: ${r.status} ${await r.text()}`);
  return r.json();
}

function stopEvents() {
  if (dash.events) dash.events.close();
  dash.events = null;
}

// ---- list ----

async function showList() {
  dash.view = "list";
  const { runs, studies } = await getJson("/api/runs");
  if (dash.view !== "list") return;
  const rows = runs.map((r) =>
    el(
      "tr",
      { class: "run", "data-path": r.path, onclick: () => (location.hash = `run=${r.path}`) },
      el("td", {}, r.name),
      el("td", {}, r.kind || "?"),
      el("td", {}, r.preset || "?"),
      el("td", {}, r.backend || "?"),
      el("td", {}, `${r.step}/${r.totalSteps ?? "?"}`),
      el("td", {}, r.imagesPerSecond ?? "?"),
      el("td", {}, r.state === "training" ? duration(r.etaSeconds) : "-"),
      el("td", { class: `state-${r.state}` }, r.state),
    )
  );
  const head = el(
    "tr",
    {},
    ...["run", "model", "preset", "backend", "step", "images/s", "ETA", "state"].map((h) =>
      el("th", {}, h)
    ),
  );
  const studyList = studies.map((s) =>
    el("li", {}, el("a", { href: `#study=${s.path}` }, s.name || "(this folder)"))
  );
  view().replaceChildren(
    el("h2", {}, `Runs (${runs.length})`),
    runs.length
      ? el("table", { id: "runs" }, head, ...rows)
      : el("p", { class: "muted" }, "No runs yet."),
    el("h2", {}, `Studies (${studies.length})`),
    studies.length
      ? el("ul", { id: "studies" }, ...studyList)
      : el("p", { class: "muted" }, "No studies."),
  );
  dash.runs = runs.length;
}

// ---- one run ----

function metricGroups(lines) {
  const keys = new Set();
  for (const l of lines) for (const k of Object.keys(l)) if (!NOT_METRICS.has(k)) keys.add(k);
  const all = [...keys];
  const losses = all.filter((k) => /^loss/i.test(k));
  const others = all.filter((k) => !/^loss/i.test(k));
  return [losses, others].filter((g) => g.length);
}

const COLORS = ["#2f6fdb", "#d9480f", "#2b8a3e", "#862e9c", "#c2255c", "#0b7285"];

function makeChart(container, keys, lines) {
  const data = [lines.map((l) => l.step), ...keys.map((k) => lines.map((l) => l[k] ?? null))];
  const opts = {
    title: keys.join(", "),
    width: 560,
    height: 260,
    scales: { x: { time: false } },
    series: [{ label: "step" }, ...keys.map((k, i) => ({ label: k, stroke: COLORS[i % 6] }))],
  };
  return { keys, data, plot: new uPlot(opts, data, container) };
}

function summaryLine(s) {
  return `${s.kind || "?"} ${s.preset || ""} on ${s.backend || "?"}: step ${s.step}/${
    s.totalSteps ?? "?"
  }, ${s.imagesPerSecond ?? "?"} images/s, ETA ${
    s.state === "training" ? duration(s.etaSeconds) : "-"
  }, ${s.state}`;
}

function previewsCard(s) {
  // The animated PNG has the grids' exact colours; the GIF (256 a frame) is the fallback.
  const animation = s.apng || s.gif;
  if (!s.previews.length && !animation) return el("p", { class: "muted" }, "No previews yet.");
  const [newest, ...older] = s.previews;
  return el(
    "div",
    { class: "card", id: "previews" },
    newest ? el("h3", {}, `Newest preview: ${newest.split("/").pop()}`) : "",
    newest ? el("img", { id: "newest", class: "pixel", src: fileUrl(newest), width: "548" }) : "",
    older.length ? el("h3", {}, "Earlier previews") : "",
    el(
      "div",
      { class: "strip" },
      ...older.map((p) => el("img", { class: "pixel", src: fileUrl(p), title: p })),
    ),
    animation ? el("h3", {}, animation.split("/").pop()) : "",
    animation
      ? el("img", { id: "progress", class: "pixel", src: fileUrl(animation), width: "548" })
      : "",
  );
}

async function showRun(path) {
  dash.view = "run";
  dash.run = path;
  const { summary, log, next } = await getJson(`/api/run?path=${encodeURIComponent(path)}`);
  if (dash.view !== "run" || dash.run !== path) return;
  const charts = el("div", { class: "charts", id: "charts" });
  const header = el("p", { id: "summary" }, summaryLine(summary));
  let previews = previewsCard(summary);
  view().replaceChildren(
    el("h2", {}, summary.name),
    header,
    charts,
    previews,
    el("h3", {}, "Config"),
    el("pre", { id: "config" }, JSON.stringify(summary.config, null, 2)),
  );
  let lines = log;
  let built = [];
  const draw = () => {
    const groups = metricGroups(lines);
    const same = built.length === groups.length &&
      built.every((c, i) => c.keys.join() === groups[i].join());
    if (!same) {
      charts.replaceChildren();
      built = groups.map((keys) => {
        const box = el("div", { class: "card chart" });
        charts.append(box);
        return makeChart(box, keys, lines);
      });
    } else {
      for (const c of built) {
        c.data = [lines.map((l) => l.step), ...c.keys.map((k) => lines.map((l) => l[k] ?? null))];
        c.plot.setData(c.data);
      }
    }
    dash.points = lines.length;
    dash.charts = built.length;
    dash.chartPoints = built.map((c) => c.data[0].length);
  };
  draw();
  let shownPreviews = summary.previews.join();
  const events = new EventSource(
    `/api/events?path=${encodeURIComponent(path)}&from=${next}`,
  );
  dash.events = events;
  events.addEventListener("log", (e) => {
    const { lines: added, reset } = JSON.parse(e.data);
    lines = reset ? added : lines.concat(added);
    draw();
  });
  events.addEventListener("summary", (e) => {
    const s = JSON.parse(e.data);
    if (!s) return;
    header.textContent = summaryLine(s);
    if (
      s.previews.join() !== shownPreviews ||
      ((s.apng || s.gif) && !document.getElementById("progress"))
    ) {
      shownPreviews = s.previews.join();
      const fresh = previewsCard(s);
      previews.replaceWith(fresh);
      previews = fresh;
    }
  });
}

// ---- one study ----

async function showStudy(path) {
  dash.view = "study";
  const { html } = await getJson(`/api/report?path=${encodeURIComponent(path)}`);
  const report = el("div", { id: "report", class: "card" });
  // The server renders report.md with raw HTML escaped and links rewritten (markdown.ts).
  report.innerHTML = html;
  view().replaceChildren(report);
}

// ---- routing ----

async function route() {
  stopEvents();
  const hash = decodeURIComponent(location.hash.slice(1));
  try {
    if (hash.startsWith("run=")) await showRun(hash.slice(4));
    else if (hash.startsWith("study=")) await showStudy(hash.slice(6));
    else await showList();
    dash.error = undefined;
  } catch (e) {
    dash.error = String(e);
    view().replaceChildren(el("p", {}, `Error: ${e.message}`));
  }
}

globalThis.addEventListener("hashchange", route);
setInterval(() => {
  if (dash.view === "list") route();
}, 5000);
route();
