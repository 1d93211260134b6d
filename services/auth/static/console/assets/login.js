// The login page: the relay's own /auth/login (OAuth2 password form), or "Sign in with <provider>"
// through an identity provider, then /auth/me to check that the account is an administrator
// before the token is kept for this tab.  An identity provider's sign-in comes back here with
// ?oidc=1 and a browser session (an HttpOnly cookie): the page reads the session's CSRF token
// from /auth/web/session and trades the session for an access token at /auth/web/token, so no
// token ever travels in a URL.
import { ApiError, api, saveSession } from "./console.js";

const form = document.getElementById("login-form");
const error = document.getElementById("login-error");
const params = new URLSearchParams(location.search);
const REASONS = {
  expired: "Your session has ended. Sign in again.",
  forbidden: "That account is not an administrator of this relay.",
};

function show(text) {
  error.textContent = text;
  error.hidden = !text;
}

function destination() {
  const next = params.get("next") || "";
  // Only console pages: never an open redirect to another site or path.
  return /^\/console\/(?!login)[a-z]+(\?[^#]*)?$/.test(next) ? next : "/console/overview";
}

async function login(username, password) {
  const r = await fetch("/auth/login", {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
    body: new URLSearchParams({ username, password, grant_type: "password" }),
    cache: "no-store",
  });
  const body = await r.json().catch(() => null);
  if (r.status === 401) throw new ApiError(401, "Incorrect username or password.");
  if (r.status === 429) {
    const wait = r.headers.get("Retry-After");
    throw new ApiError(429, `Too many attempts. Try again in ${wait || "a few"} seconds.`);
  }
  if (!r.ok) throw new ApiError(r.status, (body && typeof body.detail === "string" && body.detail) || `Sign-in failed (HTTP ${r.status}).`);
  return body;
}

async function keep(token) {
  const me = await api("/auth/me", { token: token.access_token });
  if (!me.permissions.includes("admin")) {
    show(`${me.username} is not an administrator: the console is for accounts with the admin permission.`);
    return;
  }
  saveSession(token.access_token, token.expires_in, me.username);
  location.assign(destination());
}

async function fromBrowserSession() {
  const s = await fetch("/auth/web/session", { headers: { Accept: "application/json" }, cache: "no-store" });
  const session = await s.json().catch(() => null);
  if (!s.ok || !session || !session.signed_in) {
    throw new ApiError(401, "The identity provider's sign-in did not complete. Try again.");
  }
  const r = await fetch("/auth/web/token", {
    method: "POST",
    headers: { "X-CSRF-Token": session.csrf_token, Accept: "application/json" },
    cache: "no-store",
  });
  const body = await r.json().catch(() => null);
  if (!r.ok) throw new ApiError(r.status, (body && typeof body.detail === "string" && body.detail) || `Sign-in failed (HTTP ${r.status}).`);
  return body;
}

async function showProviders() {
  const box = document.getElementById("providers");
  const r = await fetch("/auth/oidc/providers", { headers: { Accept: "application/json" } }).catch(() => null);
  const list = r && r.ok ? await r.json().catch(() => []) : [];
  if (!Array.isArray(list) || !list.length) return;
  const back = `/console/login?${new URLSearchParams({ oidc: "1", next: destination() })}`;
  for (const p of list) {
    const a = document.createElement("a");
    a.className = "button";
    a.href = `${p.login_url}?${new URLSearchParams({ next: back })}`;
    a.textContent = `Sign in with ${p.display_name}`;
    box.append(a);
  }
  const or = document.createElement("p");
  or.className = "muted small";
  or.textContent = "or with a relay account:";
  box.append(or);
  box.hidden = false;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  show("");
  const button = form.querySelector("button");
  button.disabled = true;
  const username = form.username.value.trim();
  try {
    await keep(await login(username, form.password.value));
  } catch (e) {
    show(e.message);
  } finally {
    button.disabled = false;
  }
});

show(REASONS[params.get("reason")] || "");
if (params.get("oidc") === "1") {
  fromBrowserSession().then(keep).catch((e) => show(e.message));
}
showProviders().finally(() => document.body.classList.add("ready"));
form.username.focus();
