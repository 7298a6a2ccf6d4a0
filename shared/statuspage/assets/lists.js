// The requests table, the counts by state, the team filter's options and the recent outcomes.
import { el, money, situation, teamOf, timeEl } from "./format.js";
import { href } from "./view.js";

const STATES = ["received", "waiting-for-cluster", "waiting-for-capacity", "submitted", "running",
  "succeeded", "failed", "rejected", "dead-lettered", "cancelled"];

function stateBadge(state) {
  return el("span", { class: "badge s-" + state, text: state });
}

export function renderCounts(list, items, view) {
  const counts = new Map();
  for (const item of items) counts.set(item.state, (counts.get(item.state) || 0) + 1);
  const entries = STATES.filter((s) => counts.has(s)).map((state) =>
    el("li", {}, el("a", { href: href({ ...view, state, id: "" }), "aria-current": view.state === state ? "true" : null },
      stateBadge(state), " ", el("strong", { text: String(counts.get(state)) }))));
  list.replaceChildren(...(entries.length ? entries : [el("li", { text: "No requests match." })]));
}

export function renderTable(tbody, items, view) {
  const rows = items.map((item) => {
    const cost = item.outcome && item.outcome.cost;
    return el("tr", { "data-key": item.id },
      el("th", { scope: "row" }, el("a", { href: href({ ...view, id: item.id }), "data-key": item.id, text: item.id })),
      el("td", {}, stateBadge(item.state)),
      el("td", { text: teamOf(item) || "—" }),
      el("td", {}, timeEl(item.receivedAt)),
      el("td", { text: situation(item) }),
      el("td", { class: "num", text: money(cost) }));
  });
  tbody.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: "6", text: "No requests match these filters." }))]));
}

export function renderTeams(select, teams, current) {
  const names = [...new Set([...teams, current].filter(Boolean))].sort();
  const options = [el("option", { value: "", text: "all teams" }),
    ...names.map((name) => el("option", { value: name, text: name }))];
  select.replaceChildren(...options);
  select.value = current;
}

export function renderEvents(list, items, view) {
  const finished = items.filter((i) => i.terminal)
    .sort((a, b) => String(b.updatedAt).localeCompare(String(a.updatedAt))).slice(0, 10);
  const entries = finished.map((item) => {
    const o = item.outcome || {};
    return el("li", {}, timeEl(o.finishedAt || item.updatedAt), " ", stateBadge(item.state), " ",
      el("a", { href: href({ ...view, id: item.id }), text: item.id }),
      o.reason || item.reason ? el("span", { class: "note", text: " — " + (o.reason || item.reason) }) : null);
  });
  list.replaceChildren(...(entries.length ? entries : [el("li", { text: "Nothing finished yet." })]));
}
