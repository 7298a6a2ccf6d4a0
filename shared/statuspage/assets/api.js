// The requests API from the browser: the function key and JSON GETs.
//
// The key arrives once as ?code= in the page's URL (that is how the host let the page load);
// it is kept in sessionStorage (this tab only, gone when it closes), sent as x-functions-key on
// every fetch, and removed from the address bar so it stays out of history and screenshots.
// With App Service authentication in Azure the browser's session cookie goes along too.

const KEY = "vnb-function-key";

export function takeKey() {
  const url = new URL(window.location.href);
  const code = url.searchParams.get("code");
  if (code) {
    sessionStorage.setItem(KEY, code);
    url.searchParams.delete("code");
    history.replaceState(history.state, "", url.pathname + url.search + url.hash);
  }
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// The API's base: the page is <prefix>/status, the API <prefix>/requests and <prefix>/summary.
function base() {
  return window.location.pathname.replace(/\/+$/, "").replace(/\/status$/i, "");
}

export async function getJson(path, params = {}) {
  const url = new URL(base() + path, window.location.origin);
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
  }
  const headers = { accept: "application/json" };
  const key = sessionStorage.getItem(KEY);
  if (key) headers["x-functions-key"] = key;
  let response;
  try {
    response = await fetch(url, { headers, credentials: "same-origin", cache: "no-store" });
  } catch (e) {
    throw new ApiError(0, "The app did not answer (" + e.message + "). Retrying.");
  }
  if (response.status === 404 && path === "/summary") return null; // an app without the summary route
  if (!response.ok) {
    let detail = response.statusText || "error";
    try {
      const body = await response.json();
      detail = body.detail || body.title || detail;
    } catch {
      // 401 from the host has no body
    }
    throw new ApiError(response.status, detail);
  }
  return response.json();
}

// Every page of a listing, up to `pages` pages of 100.
export async function listAll(params, pages = 5) {
  const items = [];
  let token;
  for (let i = 0; i < pages; i += 1) {
    const page = await getJson("/requests", { ...params, limit: "100", pageToken: token });
    items.push(...page.items);
    token = page.nextPageToken;
    if (!token) return { items, more: false };
  }
  return { items, more: true };
}
