// What the page shows lives in the URL's hash (#state=running&team=a&id=r1), so every filter
// change and every opened request is a history entry: the browser's back button restores the
// previous view, and a view can be bookmarked or shared (without the key, which is never in it).

export function readView() {
  const params = new URLSearchParams(window.location.hash.slice(1));
  return { state: params.get("state") || "", team: params.get("team") || "", id: params.get("id") || "" };
}

export function href(view) {
  const params = new URLSearchParams();
  for (const name of ["state", "team", "id"]) if (view[name]) params.set(name, view[name]);
  const text = params.toString();
  return text ? "#" + text : "#";
}

export function go(view) {
  const target = href(view);
  if (target !== (window.location.hash || "#")) window.location.hash = target;
}
