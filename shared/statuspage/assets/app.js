// The status page: reads the view from the URL's hash, fetches the requests API, renders, and
// refreshes every few seconds while the tab is visible (no reload: fetch + DOM updates).
import { ApiError, getJson, listAll, takeKey } from "./api.js";
import { renderCapacity, renderCost } from "./charts.js";
import { el } from "./format.js";
import { renderCounts, renderEvents, renderTable, renderTeams } from "./lists.js";
import { renderTimeline } from "./timeline.js";
import { go, readView } from "./view.js";

const REFRESH_MS = 5000;
const $ = (id) => document.getElementById(id);
const seenTeams = new Set();
let timer = null;
let shownId = "";
let loading = null;

function explain(error) {
  const box = $("problem");
  if (!error) {
    box.hidden = true;
    box.replaceChildren();
    return;
  }
  const page = window.location.origin + window.location.pathname;
  let parts;
  if (error.status === 401) {
    parts = [el("strong", { text: "The API refused this page's key (401)." }),
      el("p", {}, "Open the page once with a function key: ", el("code", { text: page + "?code=<function key>" }),
        " — the key is kept in this tab only and removed from the address bar. Get a key with ",
        el("code", { text: "az functionapp keys list -g <group> -n <app>" }),
        "; locally, ./scripts/demo prints the URL. With App Service authentication, sign in first.")];
  } else if (error.status === 403) {
    parts = [el("strong", { text: "Refused (403): " + error.message }),
      el("p", { text: "With a teams file, only members of a team (or operators) see its requests." })];
  } else {
    parts = [el("strong", { text: "Could not refresh: " + error.message }),
      el("p", { text: "Showing the last data; trying again in a few seconds." })];
  }
  box.replaceChildren(...parts);
  box.hidden = false;
}

async function loadDetail(view) {
  const section = $("detail");
  if (!view.id) {
    section.hidden = true;
    return;
  }
  section.hidden = false;
  $("detail-heading").textContent = "Request " + view.id;
  try {
    const item = await getJson("/requests/" + encodeURIComponent(view.id));
    renderTimeline($("detail-body"), item);
  } catch (e) {
    if (!(e instanceof ApiError) || (e.status !== 404 && e.status !== 400)) throw e;
    $("detail-body").replaceChildren(el("p", { class: "missing", text: `No request "${view.id}" that you may see (${e.status}: ${e.message}).` }));
  }
}

async function load({ moved }) {
  const view = readView();
  const focusedKey = document.activeElement && document.activeElement.getAttribute("data-key");
  try {
    const [list, summary] = await Promise.all([
      listAll({ state: view.state, team: view.team }),
      getJson("/summary").catch((e) => (e instanceof ApiError && e.status >= 500 ? null : Promise.reject(e))),
      loadDetail(view),
    ]);
    const items = list.items.sort((a, b) => String(b.receivedAt).localeCompare(String(a.receivedAt)));
    for (const item of items) if (item.team) seenTeams.add(item.team);
    for (const t of (summary && summary.teams) || []) if (t.team) seenTeams.add(t.team);
    renderTeams($("f-team"), seenTeams, view.team);
    $("f-state").value = view.state;
    renderCounts($("state-counts"), items, view);
    renderTable($("requests").tBodies[0], items, view);
    $("requests-more").hidden = !list.more;
    $("requests-more").textContent = list.more ? "Showing the first 500; narrow the filters to see the rest." : "";
    renderCapacity($("capacity"), summary, items);
    renderCost($("cost"), items);
    renderEvents($("events"), items, view);
    $("updated").textContent = "Updated " + new Date().toLocaleTimeString();
    explain(null);
  } catch (e) {
    explain(e instanceof ApiError ? e : new ApiError(0, String(e)));
    $("updated").textContent = "Not updated";
  }
  if (moved) {
    // A new view: put the keyboard where the user went (the request, or back to the list).
    if (view.id) $("detail-heading").focus();
    else if (shownId) $("requests-heading").focus();
    shownId = view.id;
  } else if (focusedKey) {
    // A refresh replaced the rows: keep the focus on the same request.
    const again = document.querySelector(`#requests a[data-key="${CSS.escape(focusedKey)}"]`);
    if (again) again.focus();
  }
}

function refresh(moved = false) {
  clearTimeout(timer);
  loading = (loading || Promise.resolve()).then(() => load({ moved })).finally(schedule);
  return loading;
}

function schedule() {
  clearTimeout(timer);
  if ($("auto").checked && !document.hidden) timer = setTimeout(() => refresh(), REFRESH_MS);
}

function start() {
  takeKey();
  $("filters").addEventListener("submit", (e) => {
    e.preventDefault();
    go({ state: $("f-state").value, team: $("f-team").value, id: "" });
  });
  $("search").addEventListener("submit", (e) => {
    e.preventDefault();
    const id = $("f-id").value.trim();
    if (id) go({ ...readView(), id });
  });
  $("detail-close").addEventListener("click", (e) => {
    e.preventDefault();
    go({ ...readView(), id: "" });
  });
  $("refresh").addEventListener("click", () => refresh());
  $("auto").addEventListener("change", schedule);
  window.addEventListener("hashchange", () => refresh(true));
  // A hidden tab asks nothing; it catches up as soon as it is seen again.
  document.addEventListener("visibilitychange", () => (document.hidden ? clearTimeout(timer) : refresh()));
  shownId = readView().id;
  refresh(Boolean(shownId));
}

start();
