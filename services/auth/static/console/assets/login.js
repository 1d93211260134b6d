// The login page: the relay's own /auth/login (OAuth2 password form), then /auth/me to check
// that the account is an administrator before the token is kept for this tab.
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

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  show("");
  const button = form.querySelector("button");
  button.disabled = true;
  const username = form.username.value.trim();
  try {
    const token = await login(username, form.password.value);
    const me = await api("/auth/me", { token: token.access_token });
    if (!me.permissions.includes("admin")) {
      show(`${me.username} is not an administrator: the console is for accounts with the admin permission.`);
      return;
    }
    saveSession(token.access_token, token.expires_in, me.username);
    location.assign(destination());
  } catch (e) {
    show(e.message);
  } finally {
    button.disabled = false;
  }
});

show(REASONS[params.get("reason")] || "");
document.body.classList.add("ready");
form.username.focus();
