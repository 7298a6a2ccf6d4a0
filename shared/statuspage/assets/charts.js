// Capacity gauges (from GET /api/summary) and cost per team over time (an SVG drawn here from
// the requests list: no chart library, no CDN).
import { el, money, teamOf } from "./format.js";

const SVG = "http://www.w3.org/2000/svg";
// Okabe–Ito colours darkened where needed to reach 3:1 against white (WCAG 1.4.11, graphics).
const PALETTE = ["#0072b2", "#d55e00", "#007a5e", "#cc79a7", "#8a6d00", "#56718a", "#b8005c", "#4b4b4b"];

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  node.append(...children);
  return node;
}

function gauge(label, inUse, max, note) {
  const id = "g-" + label.replace(/[^a-z0-9]+/gi, "-").toLowerCase();
  const text = max ? `${fmt(inUse)} of ${fmt(max)}` : `${fmt(inUse)} (no budget)`;
  return el("div", { class: "gauge" },
    el("label", { for: id, text: label }),
    el("meter", { id, min: "0", max: String(max || Math.max(inUse, 1)), value: String(inUse),
      high: String((max || 1) * 0.8), optimum: "0", text }),
    el("span", { class: "gauge-text", text: text + (note ? " · " + note : "") }));
}

function fmt(n) {
  return Number.isInteger(Number(n)) ? String(n) : Number(n).toFixed(1);
}

export function renderCapacity(container, summary, items) {
  if (!summary) {
    const running = items.filter((i) => i.state === "running" || i.state === "submitted").length;
    const waiting = items.filter((i) => i.state.startsWith("waiting-")).length;
    container.replaceChildren(
      el("p", { text: `${running} running or submitted, ${waiting} waiting (from the list).` }),
      el("p", { class: "note", text: "Gauges need GET /api/summary, which this app does not serve." }));
    return;
  }
  const c = summary.capacity || {};
  const parts = [
    gauge("Cores in use", c.cores.inUse, c.cores.budget),
    gauge("Container groups in use", c.groups.inUse, c.groups.budget),
    el("p", { text: `${c.waiting} waiting for capacity or the cluster` }),
  ];
  const teams = summary.teams || [];
  if (teams.length) {
    const rows = teams.map((t) => {
      const share = t.cores.share;
      const hasShare = share !== null && share !== undefined;
      // borrowLimit null: it may borrow up to the whole budget.
      const limit = hasShare && t.cores.borrowLimit !== null && t.cores.borrowLimit !== undefined
        ? Math.min(share + t.cores.borrowLimit, c.cores.budget) : c.cores.budget;
      const name = t.team || "(no team)";
      const f = t.finished || {};
      const finished = [["succeeded", f.succeeded], ["failed", f.failed], ["cancelled", f.cancelled],
        ["rejected", f.rejected], ["dead-lettered", f.deadlettered]].filter(([, n]) => n).map(([k, n]) => `${n} ${k}`);
      return el("tr", {},
        el("th", { scope: "row", text: name }),
        el("td", { class: "num", text: String(t.running) }),
        el("td", { class: "num", text: String(t.waiting) }),
        el("td", {}, gauge(`${name}: cores`, t.cores.inUse, limit, hasShare ? `share ${fmt(share)}` : "")),
        el("td", { text: finished.join(", ") || "—" }),
        el("td", { class: "num", text: money(t.cost) }));
    });
    parts.push(el("div", { class: "scroll" }, el("table", {},
      el("caption", { text: "Each team against its share (cores; the gauge ends where its borrowing stops)" }),
      el("thead", {}, el("tr", {}, ["Team", "Running", "Waiting", "Cores", "Finished (24 h)", "Cost (24 h)"].map((h) => el("th", { scope: "col", text: h })))),
      el("tbody", {}, rows))));
  }
  container.replaceChildren(...parts);
}

// Buckets of an hour when the costs span up to two days, else of a day (UTC).
function bucketer(times) {
  const span = Math.max(...times) - Math.min(...times);
  const size = span <= 2 * 86400e3 ? 3600e3 : 86400e3;
  return { size, key: (t) => Math.floor(t / size) * size };
}

export function renderCost(container, items) {
  const costed = items.filter((i) => i.outcome && i.outcome.cost && i.outcome.cost.amount !== undefined)
    .map((i) => ({ team: teamOf(i) || "(no team)", amount: Number(i.outcome.cost.amount),
      currency: i.outcome.cost.currency || "", at: Date.parse(i.outcome.finishedAt || i.updatedAt) }))
    .filter((c) => !Number.isNaN(c.at));
  if (!costed.length) {
    container.replaceChildren(el("p", { class: "note", text: "No finished request with a cost in this list yet." }));
    return;
  }
  const currency = costed[0].currency;
  const rows = costed.filter((c) => c.currency === currency);
  const { size, key } = bucketer(rows.map((r) => r.at));
  const teams = [...new Set(rows.map((r) => r.team))].sort();
  const buckets = new Map();
  for (const r of rows) {
    const b = buckets.get(key(r.at)) || new Map();
    b.set(r.team, (b.get(r.team) || 0) + r.amount);
    buckets.set(key(r.at), b);
  }
  const starts = [...buckets.keys()].sort((a, b) => a - b);
  const totals = starts.map((s) => [...buckets.get(s).values()].reduce((a, b) => a + b, 0));
  const top = Math.max(...totals) || 1;
  const width = 600, height = 220, left = 70, bottom = 40, barGap = 4;
  const barWidth = Math.max(6, Math.min(48, (width - left - 10) / starts.length - barGap));
  const label = (s) => new Date(s).toISOString().slice(size < 86400e3 ? 11 : 5, size < 86400e3 ? 16 : 10);
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-labelledby": "cost-title", class: "chart" },
    svg("title", { id: "cost-title" }, `Cost per team per ${size < 86400e3 ? "hour" : "day"} (UTC), ${currency}`),
    svg("line", { x1: left, y1: height - bottom, x2: width, y2: height - bottom, class: "axis" }),
    svg("text", { x: left - 6, y: 14, "text-anchor": "end", class: "tick" }, top.toPrecision(2)),
    svg("text", { x: left - 6, y: height - bottom, "text-anchor": "end", class: "tick" }, "0"));
  starts.forEach((s, i) => {
    const x = left + 6 + i * (barWidth + barGap);
    let y = height - bottom;
    teams.forEach((team, t) => {
      const amount = buckets.get(s).get(team) || 0;
      if (!amount) return;
      const h = Math.max(1, (amount / top) * (height - bottom - 20));
      y -= h;
      chart.append(svg("rect", { x, y, width: barWidth, height: h, fill: PALETTE[t % PALETTE.length] },
        svg("title", {}, `${team}, ${label(s)}: ${amount.toFixed(6)} ${currency}`)));
    });
    if (i === 0 || i === starts.length - 1 || starts.length <= 8) {
      chart.append(svg("text", { x: x + barWidth / 2, y: height - bottom + 16, "text-anchor": "middle", class: "tick" }, label(s)));
    }
  });
  const legend = el("ul", { class: "legend", "aria-label": "Teams" }, teams.map((team, t) =>
    el("li", {}, svg("svg", { width: 12, height: 12, "aria-hidden": "true" }, svg("rect", { width: 12, height: 12, fill: PALETTE[t % PALETTE.length] })), " " + team)));
  const table = el("details", {}, el("summary", { text: "The numbers" }), el("table", {},
    el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "From (UTC)" }), teams.map((t) => el("th", { scope: "col", text: t })))),
    el("tbody", {}, starts.map((s) => el("tr", {}, el("th", { scope: "row", text: new Date(s).toISOString().slice(0, 16).replace("T", " ") }),
      teams.map((t) => el("td", { class: "num", text: (buckets.get(s).get(t) || 0).toFixed(6) })))))));
  container.replaceChildren(chart, legend, table);
}
