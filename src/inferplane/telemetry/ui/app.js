// The status page: polls status.json and draws pools, replicas and four line charts on
// canvas. No dependencies, no build step; text goes in through textContent only.
"use strict";

const POLL_MS = 2000;
const FORMATS = {
  rate: (v) => v.toFixed(v < 10 ? 2 : 0) + "/s",
  seconds: (v) => (v < 1 ? (v * 1000).toFixed(0) + " ms" : v.toFixed(2) + " s"),
  count: (v) => v.toFixed(Number.isInteger(v) ? 0 : 1),
  dollars: (v) => "$" + v.toFixed(v < 10 ? 3 : 2),
};

function el(tag, attrs, children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  for (const child of children || []) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function drawChart(canvas, times, values, format) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth, height = canvas.clientHeight;
  canvas.width = width * ratio;
  canvas.height = height * ratio;
  const ctx = canvas.getContext("2d");
  ctx.scale(ratio, ratio);
  ctx.clearRect(0, 0, width, height);
  const pad = { left: 56, right: 8, top: 8, bottom: 18 };
  const known = values.filter((v) => v !== null);
  const top = (Math.max(0, ...known) || 1) * 1.15; // all zero: a 0..1 axis
  const x = (i) => pad.left + (i / Math.max(1, values.length - 1)) * (width - pad.left - pad.right);
  const y = (v) => height - pad.bottom - (v / top) * (height - pad.top - pad.bottom);
  ctx.strokeStyle = "#2a323c";
  ctx.fillStyle = "#8a96a3";
  ctx.font = "11px DejaVu Sans, sans-serif";
  for (const v of [0, top / 2, top]) {
    ctx.beginPath();
    ctx.moveTo(pad.left, y(v));
    ctx.lineTo(width - pad.right, y(v));
    ctx.stroke();
    ctx.fillText(known.length ? FORMATS[format](v) : "", 4, y(v) + 4);
  }
  if (times.length > 1) {
    const span = Math.round(times[times.length - 1] - times[0]);
    ctx.fillText("last " + span + " s", pad.left, height - 4);
  }
  ctx.strokeStyle = "#4fb3ff";
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  let pen = false;
  values.forEach((v, i) => {
    if (v === null) { pen = false; return; }
    if (pen) ctx.lineTo(x(i), y(v)); else ctx.moveTo(x(i), y(v));
    pen = true;
  });
  ctx.stroke();
}

function replicaRow(r) {
  return el("tr", { class: "replica", "data-replica": r.id }, [
    el("td", {}, [r.id]),
    el("td", {}, [el("span", { class: "state state-" + r.state }, [r.state])]),
    el("td", { class: "num" }, [r.in_flight]),
    el("td", { class: "num" }, [r.running]),
    el("td", { class: "num" }, [r.waiting]),
    el("td", { class: "num" }, [(r.kv_usage * 100).toFixed(0) + "%"]),
    el("td", { class: "num" }, [r.ewma_ttft_s ? FORMATS.seconds(r.ewma_ttft_s) : "-"]),
  ]);
}

function poolSection(pool) {
  const head = el("tr", {}, ["replica", "state", "in flight", "running", "waiting", "KV cache",
    "TTFT (ewma)"].map((h, i) => el("th", i > 1 ? { class: "num" } : {}, [h])));
  return el("div", { class: "pool", "data-pool": pool.name }, [
    el("h2", {}, [pool.name, el("small", {}, [
      "model " + pool.model + " · " + pool.ready + "/" + pool.replicas.length + " ready"])]),
    el("table", {}, [el("thead", {}, [head]), el("tbody", {}, pool.replicas.map(replicaRow))]),
  ]);
}

function render(status) {
  const t = status.totals;
  document.getElementById("summary").textContent =
    t.pools + " pools · " + t.replicas + " replicas · " + t.ready + " ready" +
    (t.requests === null ? "" : " · " + Math.round(t.requests).toLocaleString() + " requests");
  document.getElementById("updated").textContent =
    "updated " + new Date(status.generated_at * 1000).toLocaleTimeString();
  document.getElementById("pools").replaceChildren(...status.pools.map(poolSection));
  for (const canvas of document.querySelectorAll("canvas[data-series]")) {
    const key = canvas.dataset.series, format = canvas.dataset.format;
    const values = status.series[key];
    drawChart(canvas, status.series.t, values, format);
    const last = t.latest ? t.latest[key] : null;
    document.getElementById("now-" + key).textContent = last === null ? "–" : FORMATS[format](last);
  }
  document.body.dataset.loaded = "true";
}

async function poll() {
  try {
    const response = await fetch("status.json", { cache: "no-store" });
    if (response.ok) render(await response.json());
  } catch (error) {
    document.getElementById("updated").textContent = "gateway unreachable";
  }
  setTimeout(poll, POLL_MS);
}

poll();
