// Gateways: every live gateway's heartbeat (connections, waiting long-polls, subscribers per
// topic) and its consumer group's lag on the fan-out logs.
import { ago, api, el, every, fill, localTime, num, start } from "./console.js";

function stat(label, value, key) {
  return el("div", { class: "stat", dataset: { total: key } },
    el("div", { class: "stat-label" }, label), el("div", { class: "stat-value" }, value));
}

function topicsCell(g) {
  const entries = Object.entries(g.topic_subscribers);
  if (!entries.length) return el("span", { class: "muted" }, "none");
  return el("div", { class: "chips" }, entries.map(([t, n]) => el("span", { class: "chip plain", dataset: { topic: t } }, `${t} `, el("b", {}, num(n)))));
}

function row(g) {
  const lagClass = g.lag === null ? "muted" : g.lag > 0 ? "warn-text" : "";
  return el("tr", { dataset: { gateway: g.gateway_id } },
    el("td", {}, el("strong", {}, g.gateway_id), el("div", { class: "muted small" }, `group ${g.consumer_group}`)),
    el("td", { title: localTime(g.last_heartbeat_at) }, ago(g.last_heartbeat_at)),
    el("td", { class: "num", dataset: { field: "websockets" } }, num(g.websocket_connections)),
    el("td", { class: "num", dataset: { field: "waiters" } }, num(g.active_waiters)),
    el("td", { class: "num", dataset: { field: "topics" } }, num(g.subscribed_topics)),
    el("td", { class: "num", dataset: { field: "subscriptions" } }, num(g.subscriptions)),
    el("td", { class: `num ${lagClass}`, dataset: { field: "lag" } }, g.lag === null ? "unknown" : num(g.lag)),
    el("td", {}, topicsCell(g)));
}

async function refresh() {
  const { totals: t, gateways } = await api("/api/v1/admin/overview");
  fill(document.getElementById("cards"),
    stat("Live gateways", num(t.gateways), "gateways"),
    stat("WebSocket connections", num(t.websocket_connections), "websockets"),
    stat("Long-polls waiting", num(t.active_waiters), "waiters"),
    stat("Subscriptions", num(t.subscriptions), "subscriptions"),
    stat("Total lag", num(t.lag), "lag"));
  fill(document.querySelector("#gateways tbody"), gateways.map(row));
  document.getElementById("empty").hidden = gateways.length > 0;
}

if (await start()) every(3000, refresh);
