// Small formatting and DOM helpers shared by the renderers.

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") node.textContent = value;
    else if (name === "class") node.className = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

export function time(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString(undefined, { dateStyle: "short", timeStyle: "medium" });
}

export function timeEl(iso) {
  return iso ? el("time", { datetime: iso, text: time(iso) }) : "";
}

export function money(cost) {
  if (!cost || cost.amount === undefined || cost.amount === null) return "";
  const amount = Number(cost.amount);
  const digits = amount !== 0 && Math.abs(amount) < 0.01 ? 6 : 2;
  return amount.toFixed(digits) + " " + (cost.currency || "");
}

export function seconds(value) {
  if (value === undefined || value === null) return "";
  const s = Math.round(Number(value));
  if (s < 120) return s + " s";
  if (s < 7200) return Math.round(s / 60) + " min";
  return (s / 3600).toFixed(1) + " h";
}

export const WAITING = new Set(["received", "waiting-for-cluster", "waiting-for-capacity"]);
export const ACTIVE = new Set(["submitted", "running"]);

export function teamOf(item) {
  return item.team || (item.labels && item.labels.team) || "";
}

// What the list shows in its "waiting / outcome" column.
export function situation(item) {
  if (item.state === "waiting-for-capacity" && item.queue && item.queue.position) {
    const q = item.queue;
    let text = `#${q.position} of ${q.waiting}`;
    if (q.estimatedStartAt) text += `, may start ${time(q.estimatedStartAt)}`;
    return text;
  }
  if (item.terminal) {
    const o = item.outcome || {};
    return [o.reason || item.reason || "", o.exitCode !== undefined ? `exit ${o.exitCode}` : ""]
      .filter(Boolean).join(", ");
  }
  return item.reason || "";
}
