// A small line chart on a canvas: messages per second over a time window, one line per series.

function niceMax(v) {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function fmtRate(v) {
  if (v >= 1000) return `${(v / 1000).toFixed(v >= 10000 ? 0 : 1)}k`;
  return v >= 10 || v === 0 ? String(Math.round(v)) : v.toFixed(1);
}

// series: [{label, color, points: [[t_ms, value], ...]}]
export function drawChart(canvas, series, { windowMs, now = Date.now() }) {
  const dpr = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 900;
  const height = canvas.clientHeight || 260;
  canvas.width = Math.round(width * dpr);
  canvas.height = Math.round(height * dpr);
  const g = canvas.getContext("2d");
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, width, height);

  const styles = getComputedStyle(canvas);
  const ink = styles.getPropertyValue("--chart-ink").trim() || "#475569";
  const rule = styles.getPropertyValue("--chart-rule").trim() || "#e2e8f0";
  const pad = { left: 48, right: 16, top: 12, bottom: 28 };
  const w = width - pad.left - pad.right;
  const h = height - pad.top - pad.bottom;
  const t0 = now - windowMs;
  const x = (t) => pad.left + ((t - t0) / windowMs) * w;
  const top = niceMax(Math.max(0, ...series.flatMap((s) => s.points.map((p) => p[1]))));
  const y = (v) => pad.top + h - (v / top) * h;

  g.font = "12px system-ui, sans-serif";
  g.lineWidth = 1;
  g.fillStyle = ink;
  g.textAlign = "right";
  g.textBaseline = "middle";
  for (let i = 0; i <= 4; i++) {
    const v = (top * i) / 4;
    const yy = Math.round(y(v)) + 0.5;
    g.strokeStyle = rule;
    g.beginPath(); g.moveTo(pad.left, yy); g.lineTo(pad.left + w, yy); g.stroke();
    g.fillText(fmtRate(v), pad.left - 8, yy);
  }
  g.textAlign = "center";
  g.textBaseline = "top";
  const step = [15, 30, 60, 120, 300].find((s) => windowMs / 1000 / s <= 6) || 600;
  for (let back = Math.floor(windowMs / 1000 / step) * step; back >= 0; back -= step) {
    const xx = Math.round(x(now - back * 1000)) + 0.5;
    g.strokeStyle = rule;
    g.beginPath(); g.moveTo(xx, pad.top + h); g.lineTo(xx, pad.top + h + 4); g.stroke();
    const label = back === 0 ? "now" : back < 60 || back % 60 ? `−${back} s` : `−${back / 60} min`;
    g.fillText(label, xx, pad.top + h + 8);
  }
  g.strokeStyle = ink;
  g.beginPath(); g.moveTo(pad.left, pad.top + h + 0.5); g.lineTo(pad.left + w, pad.top + h + 0.5); g.stroke();

  for (const s of series) {
    const pts = s.points.filter((p) => p[0] >= t0);
    if (!pts.length) continue;
    g.strokeStyle = s.color;
    g.fillStyle = s.color;
    g.lineWidth = 2;
    g.lineJoin = "round";
    g.beginPath();
    pts.forEach(([t, v], i) => (i ? g.lineTo(x(t), y(v)) : g.moveTo(x(t), y(v))));
    g.stroke();
    const [lt, lv] = pts[pts.length - 1];
    g.beginPath(); g.arc(x(lt), y(lv), 3, 0, Math.PI * 2); g.fill();
  }
}
