// One request's life: received → waiting (why, position, estimated start) → submitted → running
// → its outcome, cost and a link to its trace.
import { el, money, seconds, timeEl } from "./format.js";

function step(name, at, ...details) {
  return el("li", { class: at ? "done" : "todo" },
    el("span", { class: "step", text: name }), " ", at ? timeEl(at) : el("span", { class: "note", text: "not reached" }),
    details.length ? el("div", { class: "step-detail" }, ...details) : null);
}

function waiting(item) {
  const times = item.times || {};
  const at = times["waiting-for-capacity"] || times["waiting-for-cluster"];
  const details = [];
  if (item.state.startsWith("waiting-") && item.reason) details.push(el("p", { text: "Why: " + item.reason }));
  const q = item.queue;
  if (item.state === "waiting-for-capacity" && q) {
    if (q.position) details.push(el("p", { class: "position", text: `Position ${q.position} of ${q.waiting} waiting` }));
    if (q.teamPosition) details.push(el("p", { text: `In its team: ${q.teamPosition} of ${q.teamWaiting}` }));
    if (q.estimatedStartAt) details.push(el("p", {}, "May start: ", timeEl(q.estimatedStartAt), q.estimatedBy ? ` (${q.estimatedBy})` : ""));
  }
  if (item.attempts) details.push(el("p", { text: `Deferred ${item.attempts} time(s)` }));
  if (!at && !details.length) return null;
  return step("waiting", at, ...details);
}

function outcome(item) {
  if (!item.terminal) return step("outcome", null);
  const o = item.outcome || {};
  const details = [];
  if (o.reason || item.reason) details.push(el("p", { text: "Reason: " + (o.reason || item.reason) }));
  if (o.exitCode !== undefined) details.push(el("p", { text: "Exit code: " + o.exitCode }));
  if (o.durationSeconds !== undefined) details.push(el("p", { text: "Ran for " + seconds(o.durationSeconds) }));
  if (o.cost) details.push(el("p", { text: "Cost: " + money(o.cost) }));
  if (item.errors) {
    details.push(el("ul", {}, item.errors.map((e) => el("li", {}, el("code", { text: e.field }), " " + e.message))));
  }
  // The ledger keeps no log tail (workload output may hold secrets: docs/api.md); the terminal
  // event has it. Shown here when the API gives one.
  const tail = o.logTail || item.logTail;
  details.push(tail ? el("pre", { class: "log", tabindex: "0", "aria-label": "Log tail", text: tail })
    : el("p", { class: "note", text: "Log tail: in the request's terminal event (the ledger keeps no workload output)." }));
  return step(item.state, o.finishedAt || item.updatedAt, ...details);
}

export function renderTimeline(container, item) {
  const times = item.times || {};
  const facts = el("dl", { class: "facts" },
    el("dt", { text: "State" }), el("dd", { text: item.state }),
    el("dt", { text: "Team" }), el("dd", { text: item.team || "—" }),
    item.jobName ? [el("dt", { text: "Job" }), el("dd", {}, el("code", { text: item.jobName }))] : null,
    item.image ? [el("dt", { text: "Image" }), el("dd", {}, el("code", { text: item.image }))] : null,
    item.correlationId ? [el("dt", { text: "Correlation id" }), el("dd", { text: item.correlationId })] : null,
    item.traceId ? [el("dt", { text: "Trace id" }), el("dd", {}, el("code", { text: item.traceId }))] : null);
  const trace = item.traceUrl && /^https?:\/\//i.test(item.traceUrl)
    ? el("p", {}, el("a", { href: item.traceUrl, rel: "noopener noreferrer", target: "_blank", text: "Open its trace" }))
    : null;
  const steps = el("ol", { class: "timeline", "aria-label": "Timeline" },
    step("received", times.received || item.receivedAt),
    waiting(item),
    step("submitted", times.submitted),
    step("running", times.running || (item.outcome || {}).startedAt),
    outcome(item));
  container.replaceChildren(...[facts, trace, steps].filter(Boolean));
}
