// Users: every account with its permissions, owned topics and read grants; create, deactivate or
// reactivate, grant and revoke, all through the relay's public API.
import { api, el, fill, flash, localTime, session, start } from "./console.js";

const tbody = document.querySelector("#users tbody");
const createForm = document.getElementById("create-user");
let me = "";

const enc = encodeURIComponent;

async function act(work, done) {
  try {
    await work();
    if (done) flash(done, "ok");
  } catch (e) {
    flash(e.message, "error");
  }
  await refresh().catch((e) => flash(e.message, "error"));
}

function grantForm(u) {
  const input = el("input", { list: "topic-names", placeholder: "topic", "aria-label": `Topic to grant ${u.username}`, required: true });
  return el("form", { class: "inline", onsubmit: (event) => {
    event.preventDefault();
    const topic = input.value.trim();
    act(() => api(`/api/v1/topics/${enc(topic)}/permissions`, { method: "POST", json: { user_id: u.user_id } }),
      `${u.username} may now read ${topic}`);
  } }, input, el("button", { type: "submit", class: "small" }, "Grant"));
}

function grantChip(u, topic) {
  return el("span", { class: "chip", dataset: { grant: topic } }, topic,
    el("button", { type: "button", class: "chip-x", title: `Revoke ${u.username}'s access to ${topic}`,
      "aria-label": `Revoke ${u.username}'s access to ${topic}`,
      onclick: () => act(() => api(`/api/v1/topics/${enc(topic)}/permissions/${enc(u.user_id)}`, { method: "DELETE" }),
        `Revoked ${u.username}'s access to ${topic}`) }, "×"));
}

function row(u) {
  const self = u.username === me;
  const toggle = el("button", {
    type: "button", class: u.is_active ? "small danger" : "small", disabled: self,
    title: self ? "You cannot deactivate your own account here" : undefined,
    onclick: () => act(() => api(`/auth/users/${enc(u.user_id)}`, { method: "PATCH", json: { is_active: !u.is_active } }),
      `${u.username} ${u.is_active ? "deactivated" : "reactivated"}`),
  }, u.is_active ? "Deactivate" : "Reactivate");
  return el("tr", { dataset: { user: u.username }, class: u.is_active ? "" : "inactive" },
    el("td", {}, el("strong", {}, u.username), self ? el("span", { class: "muted" }, " (you)") : null,
      el("div", { class: "muted small" }, u.email || "no email"),
      el("div", { class: "muted small", title: u.created_at }, `since ${localTime(u.created_at)}`)),
    el("td", { dataset: { field: "status" } }, u.is_active ? el("span", { class: "badge ok" }, "active") : el("span", { class: "badge warn" }, "inactive")),
    el("td", { dataset: { field: "permissions" } }, u.permissions.length ? u.permissions.map((p) => el("span", { class: `chip perm-${p}` }, p)) : el("span", { class: "muted" }, "none")),
    el("td", { class: "topics" }, u.owned_topics.length ? u.owned_topics.map((t) => el("span", { class: "chip plain" }, t)) : el("span", { class: "muted" }, "—")),
    el("td", { class: "topics", dataset: { field: "grants" } }, u.granted_topics.length ? u.granted_topics.map((t) => grantChip(u, t)) : el("span", { class: "muted" }, "—")),
    el("td", {}, grantForm(u)),
    el("td", { class: "actions" }, toggle));
}

async function refresh() {
  const [users, overview] = await Promise.all([api("/api/v1/admin/users"), api("/api/v1/admin/overview")]);
  fill(tbody, users.map(row));
  fill(document.getElementById("topic-names"), overview.topics.map((t) => el("option", { value: t.topic_name })));
}

createForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const f = createForm;
  const body = {
    username: f.username.value.trim(),
    password: f.password.value,
    permissions: [...f.querySelectorAll("input[name=perm]:checked")].map((c) => c.value),
  };
  if (f.email.value.trim()) body.email = f.email.value.trim();
  act(async () => {
    await api("/auth/register", { method: "POST", json: body });
    f.reset();
  }, `Created ${body.username}`);
});

if (await start()) {
  me = session().username;
  refresh().catch((e) => flash(e.message, "error"));
}
