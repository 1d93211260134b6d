// Topics: every topic with its stored messages, newest message, live subscribers and owner.
import { ago, api, el, every, fill, localTime, num, start } from "./console.js";

const filter = document.getElementById("filter");
let topics = [];

function badge(text, kind) {
  return el("span", { class: `badge ${kind}` }, text);
}

function row(t) {
  const split = t.subscribers_by_transport;
  const tail = `/console/tail?topic=${encodeURIComponent(t.topic_name)}`;
  return el("tr", { dataset: { topic: t.topic_name } },
    el("td", {},
      el("div", { class: "name" }, el("strong", {}, t.topic_name), " ",
        t.is_public ? badge("public", "ok") : badge("private", "muted")),
      t.description ? el("div", { class: "muted small" }, t.description) : null),
    el("td", { class: "owner" }, t.owner_username ?? el("span", { class: "muted" }, `${t.owner_id.slice(0, 8)}… (deleted)`)),
    el("td", { class: "num", dataset: { field: "messages" } }, num(t.message_count)),
    el("td", { title: t.newest_message_id ? `${localTime(t.newest_message_at)} · id ${t.newest_message_id}` : "" },
      t.newest_message_at ? ago(t.newest_message_at) : el("span", { class: "muted" }, "none")),
    el("td", { class: "num", dataset: { field: "subscribers" } }, num(t.subscribers)),
    el("td", { class: "num", dataset: { field: "websocket" } }, split ? num(split.websocket) : "—"),
    el("td", { class: "num", dataset: { field: "longpoll" } }, split ? num(split.longpoll) : "—"),
    el("td", { class: "actions" }, el("a", { href: tail, class: "button small" }, "Tail")));
}

function render() {
  const q = filter.value.trim().toLowerCase();
  const shown = topics.filter((t) => !q || t.topic_name.toLowerCase().includes(q)
    || (t.owner_username || "").toLowerCase().includes(q));
  fill(document.querySelector("#topics tbody"), shown.map(row));
  document.getElementById("empty").hidden = topics.length > 0;
}

async function refresh() {
  const overview = await api("/api/v1/admin/overview");
  topics = overview.topics;
  render();
  const unsplit = topics.some((t) => t.subscribers_by_transport === null);
  document.getElementById("note").textContent =
    `${num(topics.length)} topics · ${num(overview.totals.messages)} messages stored · ` +
    `subscribers summed over ${num(overview.totals.gateways)} live gateway(s)` +
    (unsplit ? " · per-transport split unknown while long-polls wait (the gateways report only the total per topic)" : "");
}

if (await start()) {
  filter.addEventListener("input", render);
  every(5000, refresh);
}
