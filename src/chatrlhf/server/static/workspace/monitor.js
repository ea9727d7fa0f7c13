// Monitoring page: GET /api/admin/monitor drawn with Chart.js (window.Chart, vendored in
// /static/vendor). Traffic, thumbs-up ratio, moderation flag rate, reports and latency per version
// over time, a per-version table, the arena's picks of the window (win rate with its Wilson
// interval, Bradley-Terry, Elo), and the topics (labels and counts only: the server never sends
// conversation text). Topics are computed in the background on the server; while they are not
// ready the page asks again every few seconds.
import { api, el, setup, showError } from "/static/workspace/ws.js";

const $ = (id) => document.getElementById(id);
const pct = (x) => (x === null || x === undefined ? "–" : `${(100 * x).toFixed(1)}%`);
const sec = (x) => (x === null || x === undefined ? "–" : `${x.toFixed(2)} s`);
const num = (x, d = 1) => (x === null || x === undefined ? "–" : x.toFixed(d));
// Colour-blind-safe palette (Okabe–Ito), one colour per version, stable across charts.
const PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"];
const charts = {};
let pollTimer = null;

function draw(id, config) {
  charts[id]?.destroy();
  charts[id] = new window.Chart($(id), {
    ...config,
    options: { responsive: true, maintainAspectRatio: false, animation: false,
               interaction: { mode: "index", intersect: false },
               plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } } }, ...config.options },
  });
}

// One series per version over all buckets: the server's series is sparse, gaps become null.
function series(m, field) {
  return m.versions.map((v, i) => {
    const byBucket = Object.fromEntries(m.by_version_bucket[v].map((c) => [c.bucket, c[field]]));
    return { label: v, data: m.buckets.map((b) => byBucket[b] ?? null), borderColor: PALETTE[i % PALETTE.length],
             backgroundColor: PALETTE[i % PALETTE.length], spanGaps: true, pointRadius: 2, borderWidth: 2 };
  });
}

function lineChart(id, m, field, yOptions = {}) {
  draw(id, { type: "line", data: { labels: m.buckets, datasets: series(m, field) },
             options: { scales: { y: { beginAtZero: true, ...yOptions } } } });
}

const ratioAxis = { min: 0, max: 1, ticks: { callback: (v) => `${Math.round(v * 100)}%` } };

function renderMetrics(m) {
  $("mon-versions").replaceChildren(...m.versions.map((v) => {
    const r = m.by_version[v];
    return el("tr", { dataset: { version: v } }, el("td", {}, v), el("td", { class: "num" }, String(r.conversations)),
      el("td", { class: "num" }, String(r.replies)),
      el("td", { class: "num" }, `${pct(r.up_ratio)} (${r.thumbs_up}/${r.thumbs_up + r.thumbs_down})`),
      el("td", { class: "num" }, pct(r.flag_rate)), el("td", { class: "num" }, String(r.reports)),
      el("td", { class: "num" }, `${sec(r.ttft_p50)} / ${sec(r.ttft_p90)}`), el("td", { class: "num" }, num(r.tps_p50)));
  }));
  if (!m.versions.length) $("mon-versions").append(el("tr", {}, el("td", { colspan: 8, class: "muted" }, "No replies in this window.")));
  const t = m.totals;
  $("mon-status").textContent = `${t.conversations} conversations, ${t.replies} replies, ${t.users} users · ` +
    `thumbs up ${pct(t.up_ratio)} · flagged ${pct(t.flag_rate)} · ${t.reports} reports · answered in ${m.seconds} s`;

  draw("chart-traffic", { type: "bar", data: { labels: m.buckets, datasets: series(m, "replies").map((d) => ({ ...d, spanGaps: undefined })) },
                          options: { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } } });
  lineChart("chart-thumbs", m, "up_ratio", ratioAxis);
  lineChart("chart-flags", m, "flag_rate", { ticks: ratioAxis.ticks });
  draw("chart-reports", { type: "bar", data: { labels: m.buckets, datasets: [
    { label: "reports", data: m.by_bucket.map((b) => b.reports), backgroundColor: "#D55E00" }] },
    options: { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } } });
  const kinds = Object.entries(m.reports_by_kind);
  $("mon-report-kinds").textContent = kinds.length ? kinds.map(([k, n]) => `${k}: ${n}`).join(" · ") : "No reports.";
  lineChart("chart-ttft", m, "ttft_p50", { title: { display: true, text: "seconds" } });
  lineChart("chart-tps", m, "tps_p50", { title: { display: true, text: "tokens/s" } });
}

// The arena over the window: a table per version, and the win rate drawn as a point on a
// floating bar spanning its 95% interval (Chart.js takes [lo, hi] as a bar's data).
function renderArena(a) {
  const empty = a.picks === 0;
  $("arena-table").hidden = empty;
  $("arena-chart-box").hidden = empty;
  charts["chart-arena"]?.destroy();
  delete charts["chart-arena"];
  if (empty) {
    $("arena-status").textContent = "No arena picks in this window.";
    $("arena-versions").replaceChildren();
    return;
  }
  const c = a.choices;
  $("arena-status").textContent = `${a.picks} picks, ${a.games} games between two versions · A ${c.A} · B ${c.B} · ` +
    `tie ${c.tie} · both bad ${c.both_bad}. A tie or "both bad" is half a point each; ties below include both bad.`;
  $("arena-versions").replaceChildren(...a.versions.map((r) => el("tr", { dataset: { version: r.version } },
    el("td", {}, r.version), el("td", { class: "num" }, String(r.games)),
    el("td", { class: "num" }, `${r.wins} / ${r.losses} / ${r.ties}`), el("td", { class: "num" }, String(r.both_bad)),
    el("td", { class: "num" }, `${pct(r.win_rate)} (${pct(r.ci[0])}–${pct(r.ci[1])})`),
    el("td", { class: "num" }, num(r.bt, 3)), el("td", { class: "num" }, num(r.elo, 0)))));
  const colours = a.versions.map((_, i) => PALETTE[i % PALETTE.length]);
  draw("chart-arena", { type: "bar", data: { labels: a.versions.map((r) => r.version), datasets: [
    { label: "95% interval", data: a.versions.map((r) => r.ci), backgroundColor: colours.map((x) => `${x}66`),
      borderColor: colours, borderWidth: 1, barPercentage: 0.5 },
    { type: "line", label: "win rate", data: a.versions.map((r) => r.win_rate), showLine: false, pointRadius: 6,
      pointStyle: "rectRot", borderColor: "#1f2328", backgroundColor: "#1f2328" }] },
    options: { scales: { y: ratioAxis },
               plugins: { legend: { position: "bottom", labels: { boxWidth: 12 } }, tooltip: { callbacks: { label: (ctx) => (Array.isArray(ctx.raw)
                 ? `95% interval ${pct(ctx.raw[0])}–${pct(ctx.raw[1])}` : `win rate ${pct(ctx.raw)}`) } } } } });
}

function renderTopics(t) {
  clearTimeout(pollTimer);
  if (t.status === "computing" || t.status === "error") {
    $("topics-status").textContent = t.status === "error" ? `Topics failed: ${t.error}` : "Clustering conversations…";
    $("topics").replaceChildren();
    charts["chart-topics"]?.destroy();
    delete charts["chart-topics"];
    if (t.status === "computing") pollTimer = setTimeout(() => load(true), 2000);
    return;
  }
  const sample = t.sampled ? ` (a random sample of ${t.clustered} of ${t.conversations})` : "";
  $("topics-status").textContent = `${t.topics.length} topics from ${t.clustered} conversations${sample}; ` +
    `topics under ${t.min_cluster_size} conversations and unclustered ones count as "other" (${t.other}), ` +
    `with no label.` + (t.status === "stale" ? ` Refreshing (${Math.round(t.age_s)} s old).` : "");
  $("topics").replaceChildren(...t.topics.map((x) => el("tr", { dataset: { topic: String(x.id) } },
    el("td", {}, x.label), el("td", { class: "num" }, String(x.count)), el("td", { class: "num" }, pct(x.share)),
    el("td", {}, Object.entries(x.by_version).map(([v, n]) => `${v}: ${n}`).join(", ")))),
    el("tr", { class: "muted" }, el("td", {}, "other"), el("td", { class: "num" }, String(t.other)),
      el("td", { class: "num" }, pct(t.other_share)), el("td", {}, "")));
  draw("chart-topics", { type: "bar", data: { labels: t.topics.map((x) => x.label), datasets: [
    { label: "conversations", data: t.topics.map((x) => x.count), backgroundColor: "#009E73" }] },
    options: { indexAxis: "y", plugins: { legend: { display: false } }, scales: { x: { beginAtZero: true } } } });
  if (t.status === "stale") pollTimer = setTimeout(() => load(true), 5000);
}

async function load(topicsOnly = false) {
  const q = new URLSearchParams({ days: $("mon-days").value, bucket: $("mon-bucket").value });
  try {
    const m = await api("GET", `/api/admin/monitor?${q}`);
    $("mon-error").textContent = "";
    if (!topicsOnly) { renderMetrics(m); renderArena(m.arena); }
    renderTopics(m.topics);
    document.body.dataset.loaded = "1";  // for the browser tests
  } catch (e) { showError($("mon-error"), e); }
}

await setup("/workspace/monitor");
$("mon-form").addEventListener("submit", (ev) => { ev.preventDefault(); load(); });
await load();
