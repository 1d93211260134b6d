// Overview: deployment totals and the publish / delivery rate chart.
import { drawChart } from "./chart.js";
import { api, el, every, fill, num, start } from "./console.js";

const SERIES = [
  { key: 2, label: "published", color: "#2563eb" },
  { key: 3, label: "delivered", color: "#16a34a" },
];

function card(label, value, hint, key) {
  return el("div", { class: "stat", dataset: { total: key } },
    el("div", { class: "stat-label" }, label),
    el("div", { class: "stat-value" }, value),
    hint ? el("div", { class: "stat-hint" }, hint) : null);
}

async function refreshTotals() {
  const { totals: t } = await api("/api/v1/admin/overview");
  fill(document.getElementById("cards"),
    card("Topics", num(t.topics), null, "topics"),
    card("Messages stored", num(t.messages), null, "messages"),
    card("Published (all time)", num(t.published_total), null, "published"),
    card("Users", num(t.users), `${num(t.active_users)} active`, "users"),
    card("Gateways", num(t.gateways), null, "gateways"),
    card("WebSocket connections", num(t.websocket_connections), null, "websockets"),
    card("Long-polls waiting", num(t.active_waiters), null, "waiters"),
    card("Consumer-group lag", num(t.lag), "entries not yet delivered", "lag"));
}

async function refreshRates() {
  const rates = await api("/api/v1/admin/rates");
  const canvas = document.getElementById("rates");
  const series = SERIES.map((s) => ({
    ...s,
    points: rates.samples.map((p) => [p[0], p[1] > 0 ? p[s.key] / p[1] : 0]),
  }));
  // The axis spans the samples there are (at least two minutes), up to the whole window.
  const first = rates.samples[0];
  const span = first ? Date.now() - (first[0] - first[1] * 1000) : 0;
  const windowMs = Math.min(rates.window_seconds * 1000, Math.max(120000, Math.ceil(span / 60000) * 60000));
  drawChart(canvas, series, { windowMs });
  const last = rates.samples[rates.samples.length - 1];
  fill(document.getElementById("legend"), series.map((s) => {
    const now = last && last[1] > 0 ? last[s.key] / last[1] : 0;
    const peak = Math.max(0, ...s.points.map((p) => p[1]));
    canvas.dataset[s.label] = String(peak);
    return el("span", { class: "key", dataset: { series: s.label } },
      el("i", { class: "swatch" }), `${s.label} `, el("b", {}, now.toFixed(1)), " /s");
  }));
  const where = rates.delivered_source === "gateways"
    ? "delivered: the gateways' heartbeat counters"
    : "delivered: this process's relay_messages_delivered_total (all of it when the gateway runs in the same process, as in pulsar-relay serve all)";
  document.getElementById("rates-note").textContent =
    `One point every ${rates.interval_seconds} s over the last ${rates.window_seconds / 60} min, sampled since this console was first opened on this server. ` +
    `Published: fan-out log appends (whole deployment); ${where}.`;
}

if (await start()) {
  every(5000, refreshTotals);
  every(2000, refreshRates);
  window.addEventListener("resize", refreshRates);
}
