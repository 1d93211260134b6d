// Shared by every console page: the session (a bearer token in sessionStorage), API calls,
// DOM building (text only, never HTML strings), formatting and polling.

const KEY = "pulsar-relay-console";

export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : JSON.stringify(detail));
    this.status = status;
  }
}

export function session() {
  try {
    const s = JSON.parse(sessionStorage.getItem(KEY) || "null");
    if (s && s.token && s.expiresAt > Date.now()) return s;
  } catch (_) { /* a damaged entry counts as signed out */ }
  sessionStorage.removeItem(KEY);
  return null;
}

export function saveSession(token, expiresIn, username) {
  const s = { token, username, expiresAt: Date.now() + expiresIn * 1000 };
  sessionStorage.setItem(KEY, JSON.stringify(s));
  return s;
}

export function signOut(reason) {
  sessionStorage.removeItem(KEY);
  const next = location.pathname + location.search;
  const q = new URLSearchParams({ next });
  if (reason) q.set("reason", reason);
  location.assign("/console/login?" + q.toString());
}

function detailText(body, status) {
  if (body && typeof body.detail === "string") return body.detail;
  if (body && Array.isArray(body.detail)) return body.detail.map((d) => d.msg).join("; ");
  return `HTTP ${status}`;
}

// fetch with the session's token; JSON in and out.  401 ends the session; other errors throw.
export async function api(path, { method = "GET", json, token } = {}) {
  const s = token ? { token } : session();
  if (!s) { signOut("expired"); throw new ApiError(401, "Not signed in"); }
  const headers = { Authorization: `Bearer ${s.token}`, Accept: "application/json" };
  const init = { method, headers, cache: "no-store" };
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  }
  const r = await fetch(path, init);
  const body = r.status === 204 ? null : await r.json().catch(() => null);
  if (r.status === 401 && !token) { signOut("expired"); }
  if (!r.ok) throw new ApiError(r.status, detailText(body, r.status));
  return body;
}

// Creates an element: el("td", {class: "num"}, "12", otherNode).  Strings become text nodes.
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

export function fill(parent, ...children) {
  parent.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
}

const numberFormat = new Intl.NumberFormat("en-US");
export const num = (n) => (n === null || n === undefined ? "—" : numberFormat.format(n));

export function ago(iso, now = Date.now()) {
  if (!iso) return "—";
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

export function localTime(iso) {
  return iso ? new Date(iso).toLocaleString(undefined, { hour12: false }) : "";
}

let flashTimer = 0;
export function flash(text, kind = "info") {
  const box = document.getElementById("flash");
  box.textContent = text;
  box.dataset.kind = kind;
  box.hidden = false;
  clearTimeout(flashTimer);
  flashTimer = setTimeout(() => { box.hidden = true; }, kind === "error" ? 8000 : 4000);
}

// Runs fn now and every `ms` while the tab is visible; errors are shown, not fatal.
export function every(ms, fn) {
  let timer = 0;
  const tick = async () => {
    clearTimeout(timer);
    try { await fn(); } catch (e) { if (e.status !== 401) flash(e.message, "error"); }
    if (!document.hidden) timer = setTimeout(tick, ms);
  };
  document.addEventListener("visibilitychange", () => { if (!document.hidden) tick(); });
  tick();
  return tick;
}

// Every page but the login page: a live admin session, or back to the login page.
export async function start() {
  const stored = sessionStorage.getItem(KEY) !== null;
  const s = session();
  if (!s) { signOut(stored ? "expired" : undefined); return null; }
  document.querySelector(`[data-nav="${document.body.dataset.page}"]`)?.setAttribute("aria-current", "page");
  document.getElementById("who").textContent = s.username;
  document.getElementById("signout").addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    location.assign("/console/login");
  });
  let me;
  try {
    me = await api("/auth/me");
  } catch (e) {
    if (e.status !== 401) flash(`The relay did not answer: ${e.message}`, "error");
    return null;
  }
  if (!me.permissions.includes("admin")) { signOut("forbidden"); return null; }
  document.body.classList.add("ready");
  return s;
}
