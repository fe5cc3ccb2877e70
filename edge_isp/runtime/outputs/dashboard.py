"""The dashboard page the HTTP output serves at ``/``: one self-contained HTML document.

Kept as a Python string so it ships inside the package without package-data configuration,
and with no external scripts, fonts or styles: the board may have no internet.

What it shows: the learned view (``/stream.mjpg``), the conventional ISP's view beside it
when the pipeline renders one (``/conventional.mjpg``, shown once an event says so), the
detections or labels of the latest frame and its latency (server-sent events at ``/events``),
FPS and latency quantiles (the ``metrics`` events), and, when the pipeline has a ``lux``
control (the simulated source), a light-level slider that POSTs to ``/control``. An access
token given in the page's address (``/?token=...``) is passed to every request.
"""

from __future__ import annotations

# Light-level slider: logarithmic from 0.1 lux (a moonless night) to 10,000 lux (daylight).
LUX_MIN = 0.1
LUX_MAX = 10000.0

DASHBOARD_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>edge-isp</title>
<style>
  body { margin: 0; font: 14px/1.4 system-ui, sans-serif; background: #111; color: #ddd; }
  header { padding: 8px 16px; background: #1d1d1d; display: flex; gap: 24px; align-items: baseline; }
  header h1 { font-size: 16px; margin: 0; }
  #stats { font-variant-numeric: tabular-nums; color: #9c9; }
  main { display: flex; flex-wrap: wrap; gap: 16px; padding: 16px; }
  figure { margin: 0; }
  /* Small model inputs (160x128) are shown at least 320 wide; larger ones as they are, up to 640. */
  figure img { display: block; min-width: 320px; max-width: 640px; width: 100%; background: #000; }
  figcaption { color: #aaa; padding: 4px 0; }
  aside { min-width: 240px; }
  #results li { font-variant-numeric: tabular-nums; }
  #light { margin-top: 12px; }
  #light input { width: 220px; }
  table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
  td, th { padding: 1px 8px 1px 0; text-align: right; }
  td:first-child, th:first-child { text-align: left; }
  .hidden { display: none; }
  #status.bad { color: #e77; }
</style>
</head>
<body>
<header>
  <h1>edge-isp</h1>
  <span id="stats">waiting for frames</span>
  <span id="status"></span>
</header>
<main>
  <figure>
    <img id="learned" alt="learned ISP view">
    <figcaption>learned ISP + detector</figcaption>
  </figure>
  <figure id="conventional-fig" class="hidden">
    <img id="conventional" alt="conventional ISP view">
    <figcaption>conventional ISP</figcaption>
  </figure>
  <aside>
    <div id="light" class="hidden">
      <label for="lux">light level: <span id="lux-value"></span> lux</label><br>
      <input id="lux" type="range" min="0" max="1000" step="1">
    </div>
    <h2>results <small id="frame"></small></h2>
    <ul id="results"></ul>
    <h2>latency</h2>
    <table id="latency"><thead><tr><th>stage</th><th>p50 ms</th><th>p99 ms</th></tr></thead>
    <tbody></tbody></table>
  </aside>
</main>
<script>
"use strict";
const LUX_MIN = __LUX_MIN__, LUX_MAX = __LUX_MAX__;
const token = new URLSearchParams(location.search).get("token");
const withToken = (path) => token ? path + "?token=" + encodeURIComponent(token) : path;
const authHeaders = token ? {"Authorization": "Bearer " + token} : {};
const $ = (id) => document.getElementById(id);

$("learned").src = withToken("stream.mjpg");

const sliderToLux = (v) => LUX_MIN * Math.pow(LUX_MAX / LUX_MIN, v / 1000);
const luxToSlider = (lux) => Math.round(1000 * Math.log(lux / LUX_MIN) / Math.log(LUX_MAX / LUX_MIN));
const showLux = (lux) => { $("lux-value").textContent = lux < 10 ? lux.toFixed(2) : lux.toFixed(0); };

async function loadControls() {
  const response = await fetch(withToken("controls"), {headers: authHeaders});
  if (!response.ok) return;
  const controls = await response.json();
  if (typeof controls.lux === "number") {
    $("lux").value = luxToSlider(controls.lux);
    showLux(controls.lux);
    $("light").classList.remove("hidden");
  }
}

let pending = null;
async function sendLux() {
  const lux = sliderToLux(Number($("lux").value));
  showLux(lux);
  const response = await fetch("control", {
    method: "POST",
    headers: Object.assign({"Content-Type": "application/json"}, authHeaders),
    body: JSON.stringify({name: "lux", value: lux}),
  });
  const status = $("status");
  if (response.ok) { status.textContent = ""; status.className = ""; }
  else { status.textContent = (await response.json()).error; status.className = "bad"; }
}
$("lux").addEventListener("input", () => {
  // Coalesce a drag into one request per 100 ms; the last position always gets sent.
  if (pending) clearTimeout(pending);
  pending = setTimeout(() => { pending = null; sendLux(); }, 100);
});

function describe(item) {
  const score = typeof item.score === "number" ? " " + item.score.toFixed(2) : "";
  const box = Array.isArray(item.box) ? " [" + item.box.map((v) => Math.round(v)).join(", ") + "]" : "";
  return String(item.label) + score + box;
}

function showResult(event) {
  const e2e = (event.latency_ms || {}).end_to_end;
  const latency = typeof e2e === "number" ? " \u00b7 " + e2e.toFixed(1) + " ms" : "";
  $("frame").textContent = "frame " + event.frame + latency;
  const items = event.results.detections || event.results.labels || [];
  const list = $("results");
  list.replaceChildren(...items.map((item) => {
    const li = document.createElement("li");
    li.textContent = describe(item);
    return li;
  }));
  if (event.conventional && $("conventional-fig").classList.contains("hidden")) {
    $("conventional").src = withToken("conventional.mjpg");
    $("conventional-fig").classList.remove("hidden");
  }
}

function showMetrics(m) {
  const parts = [];
  if (typeof m.fps === "number") parts.push(m.fps.toFixed(1) + " FPS");
  if (typeof m.frames === "number") parts.push(m.frames + " frames");
  if (typeof m.dropped === "number") parts.push(m.dropped + " dropped");
  $("stats").textContent = parts.join(" \\u00b7 ");
  const body = $("latency").tBodies[0];
  body.replaceChildren(...Object.entries(m.latency_ms || {}).map(([stage, q]) => {
    const row = document.createElement("tr");
    for (const text of [stage, q.p50, q.p99]) {
      const cell = document.createElement("td");
      cell.textContent = typeof text === "number" ? text.toFixed(1) : String(text);
      row.appendChild(cell);
    }
    return row;
  }));
}

const events = new EventSource(withToken("events"));
events.addEventListener("result", (e) => showResult(JSON.parse(e.data)));
events.addEventListener("metrics", (e) => showMetrics(JSON.parse(e.data)));
events.onerror = () => { $("status").textContent = "reconnecting"; $("status").className = "bad"; };
events.onopen = () => { $("status").textContent = ""; $("status").className = ""; };
loadControls();
</script>
</body>
</html>
""".replace("__LUX_MIN__", repr(LUX_MIN)).replace("__LUX_MAX__", repr(LUX_MAX))
