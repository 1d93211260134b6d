// Live tail: the newest messages of one topic from its history, then every new one over the
// relay's own /ws (same origin; the token travels as the "bearer.<jwt>" subprotocol, not in the URL).
import { ApiError, api, el, fill, flash, localTime, session, signOut, start } from "./console.js";

const MAX_SHOWN = 200;
const BACKLOG = 20;
const RECONNECT = new Set([1001, 1006, 1011, 4008]); // docs/CLOSE_CODES.md: "reconnect? yes"
const form = document.getElementById("tail-form");
const input = document.getElementById("topic");
const list = document.getElementById("messages");
const status = document.getElementById("status");
const stopButton = document.getElementById("stop");

let socket = null;
let topic = "";
let lastId = null; // newest id shown: the exclusive "since" of the next subscribe
let retry = 0;
let retryTimer = 0;

function setStatus(state, text) {
  status.dataset.state = state;
  status.textContent = text;
}

function item(m, origin) {
  const meta = m.metadata && Object.keys(m.metadata).length
    ? el("dl", { class: "meta" }, Object.entries(m.metadata).flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, String(v))]))
    : null;
  return el("li", { class: `message ${origin}`, dataset: { id: m.message_id } },
    el("div", { class: "message-head" },
      el("code", { class: "id" }, m.message_id),
      el("time", { datetime: m.timestamp, title: m.timestamp }, localTime(m.timestamp)),
      el("span", { class: `badge ${origin === "live" ? "ok" : "muted"}` }, origin)),
    el("pre", { class: "payload" }, JSON.stringify(m.payload, null, 2)),
    meta);
}

// Ids grow strictly per topic ("<ms>-<seq>", compared numerically), so anything not newer than
// the last one shown is a repeat from a replay.
function newer(a, b) {
  if (!b) return true;
  const [am, as] = a.split("-").map(Number);
  const [bm, bs] = b.split("-").map(Number);
  return am > bm || (am === bm && as > bs);
}

function show(m, origin) {
  if (m.topic !== topic || !newer(m.message_id, lastId)) return;
  lastId = m.message_id;
  list.prepend(item(m, origin));
  while (list.children.length > MAX_SHOWN) list.lastElementChild.remove();
}

// False when the topic does not exist (404): there is nothing to tail, and the subscription
// would be acknowledged all the same, so the page would say "Live" about a topic that is not there.
async function backlog(name) {
  try {
    const page = await api(`/api/v1/topics/${encodeURIComponent(name)}/messages?limit=${BACKLOG}&order=desc`);
    page.messages.reverse().forEach((m) => show(m, "history"));
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) return false;
    throw e;
  }
  // Known to be empty: replay from the start, so that nothing published between this read and
  // the subscription is missed.
  lastId = lastId || "0-0";
  return true;
}

function connect() {
  const s = session();
  if (!s) { signOut("expired"); return; }
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/ws`, ["bearer", `bearer.${s.token}`]);
  let opened = false;
  socket = ws;
  setStatus("connecting", `Connecting to ${topic}…`);
  ws.onopen = () => {
    opened = true;
    const frame = { type: "subscribe", topics: [topic] };
    if (lastId) frame.since = { [topic]: lastId };
    ws.send(JSON.stringify(frame));
  };
  ws.onmessage = (event) => {
    const f = JSON.parse(event.data);
    if (f.type === "message") show(f, "live");
    else if (f.type === "subscribed") { retry = 0; setStatus("live", `Live: ${topic}`); }
    else if (f.type === "error") { flash(`${f.code}: ${f.message}`, "error"); setStatus("error", f.message); }
  };
  ws.onclose = (event) => {
    if (socket !== ws) return; // replaced by a newer connection
    socket = null;
    const why = `${event.code}${event.reason ? ` ${event.reason}` : ""}`;
    if (event.code === 4001) { signOut("expired"); return; }
    if (!opened && retry === 0) {
      // Browsers report a refused handshake (HTTP 403) as 1006 without a reason.
      stopButton.disabled = true;
      setStatus("error", "The relay refused the WebSocket (the account needs the read permission)");
      return;
    }
    if (RECONNECT.has(event.code) && retry < 8) {
      const wait = Math.min(30, 2 ** retry++);
      setStatus("connecting", `Closed (${why}); reconnecting in ${wait} s…`);
      retryTimer = setTimeout(connect, wait * 1000);
      return;
    }
    stopButton.disabled = true;
    setStatus(event.code === 1000 ? "idle" : "error", event.code === 1000 ? "Stopped" : `Closed (${why})`);
  };
}

function stop() {
  clearTimeout(retryTimer);
  const ws = socket;
  socket = null;
  if (ws) ws.close(1000);
  stopButton.disabled = true;
  setStatus("idle", "Stopped");
}

async function tail(name) {
  stop();
  topic = name;
  lastId = null;
  retry = 0;
  fill(list);
  history.replaceState(null, "", `/console/tail?topic=${encodeURIComponent(name)}`);
  document.title = `${name} · Live tail · Pulsar Relay console`;
  stopButton.disabled = false;
  try {
    if (!(await backlog(name))) {
      stopButton.disabled = true;
      setStatus("error", `No topic named ${name} (404 Not Found)`);
      return;
    }
  } catch (e) {
    flash(e.message, "error");
  }
  if (topic === name) connect();
}

if (await start()) {
  form.addEventListener("submit", (event) => { event.preventDefault(); tail(input.value.trim()); });
  stopButton.addEventListener("click", stop);
  document.getElementById("clear").addEventListener("click", () => fill(list));
  api("/api/v1/admin/overview").then((o) => fill(document.getElementById("topic-names"),
    o.topics.map((t) => el("option", { value: t.topic_name }))), () => {});
  const wanted = new URLSearchParams(location.search).get("topic");
  if (wanted) { input.value = wanted; tail(wanted); } else input.focus();
}
