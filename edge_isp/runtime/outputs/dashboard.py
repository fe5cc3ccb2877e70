"""The dashboard page the HTTP output serves at ``/``: one self-contained HTML document.

Kept as a Python string so it ships inside the package without package-data configuration,
and with no external scripts, fonts or styles: the board may have no internet.

What it shows, filling the window (and full screen on request):

- the header: what runs (model, task, backend, device, profile, input and frame sizes, from
  ``/info``), the latest frame's exposure time and gains, one FPS figure (the pipeline's, from
  the ``metrics`` events: the same figure the log prints), the end-to-end latency, and the
  board's CPU/GPU load and temperature (``/board``, where the board reports them);
- the learned view (``/view.mjpg``, at least the model's input size, resized up to the
  conventional view's width) and the conventional ISP's view at the camera's resolution
  (``/conventional-view.mjpg``, once an event says there is one), both drawn by the server for
  this viewer's settings: a score threshold, one box per object (class-agnostic suppression),
  the simulator's ground truth; with a conventional model (``run --conventional-model``), its
  boxes on the conventional view and its detections listed beside the learned model's;
- a light-level slider when the pipeline has a ``lux`` control (the simulated source), POSTed
  to ``/control``; the detections of the latest frame; per-stage latency; snapshot buttons
  (``/snapshot.png``, and ``/snapshot.zip`` with the raw frame).

An access token given in the page's address (``/?token=...``) is passed to every request.
"""

from __future__ import annotations

# Light-level slider: logarithmic from 0.1 lux (a moonless night) to 10,000 lux (daylight).
LUX_MIN = 0.1
LUX_MAX = 10000.0
# Class-agnostic suppression for the detections list, as the server draws them.
ONE_PER_OBJECT_IOU = 0.5

DASHBOARD_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>edge-isp</title>
<style>
  :root { --bg: #0e1013; --panel: #171a1f; --line: #262b33; --text: #d8dde3; --dim: #8a94a0; --accent: #7fd18b; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; background: var(--bg);
         color: var(--text); }
  header { display: flex; flex-wrap: wrap; align-items: center; gap: 6px 18px; padding: 8px 16px;
           background: var(--panel); border-bottom: 1px solid var(--line); }
  header h1 { font-size: 17px; margin: 0; letter-spacing: .02em; }
  #info { display: flex; flex-wrap: wrap; gap: 4px 6px; flex: 1 1 480px; }
  #stats { font-size: 13px; }
  #stats div span + span:not(:empty)::before { content: "\\00b7"; color: var(--dim); margin: 0 .45em 0 .2em; }
  .chip { padding: 1px 8px; border: 1px solid var(--line); border-radius: 10px; color: var(--dim);
          white-space: nowrap; font-size: 12.5px; }
  .chip b { color: var(--text); font-weight: 600; }
  #fps { font: 600 22px/1 system-ui, sans-serif; color: var(--accent); font-variant-numeric: tabular-nums; }
  #fps small { font-size: 12px; color: var(--dim); font-weight: 400; }
  #latency-head, #board, #exposure { color: var(--dim); font-variant-numeric: tabular-nums; white-space: nowrap; }
  #exposure:empty, #board:empty { display: none; }
  #board b, #latency-head b, #exposure b { color: var(--text); font-weight: 600; }
  .buttons { display: flex; gap: 6px; }
  button, a.button { font: inherit; font-size: 12.5px; color: var(--text); background: #222831;
           border: 1px solid #343b46; border-radius: 6px; padding: 3px 9px; cursor: pointer; text-decoration: none; }
  button:hover, a.button:hover { background: #2b333e; }
  #status { color: #e77; }
  #views { display: flex; flex-wrap: wrap; gap: 12px; padding: 12px 16px 0; }
  #views:fullscreen { background: #000; padding: 12px; align-content: center; }
  #views:fullscreen img { max-height: calc(100vh - 48px); object-fit: contain; }
  figure { margin: 0; flex: 1 1 0; min-width: min(var(--natural, 160px), 100%); position: relative; }
  figure img { display: block; width: 100%; height: auto; background: #000; border-radius: 4px; }
  figcaption { color: var(--dim); font-size: 12.5px; padding: 3px 2px 0; }
  figcaption b { color: var(--text); font-weight: 600; }
  #panels { display: grid; grid-template-columns: repeat(auto-fit, minmax(260px, 1fr)); gap: 12px;
            padding: 12px 16px 16px; }
  section { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; }
  h2 { font-size: 12px; text-transform: uppercase; letter-spacing: .08em; color: var(--dim); margin: 0 0 6px;
       font-weight: 600; }
  label { display: block; margin: 4px 0; }
  input[type=range] { width: 100%; accent-color: var(--accent); }
  input[type=checkbox] { accent-color: var(--accent); }
  .value { float: right; font-variant-numeric: tabular-nums; color: var(--text); }
  table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; font-size: 13px; }
  td, th { padding: 1px 6px 1px 0; text-align: right; }
  td:first-child, th:first-child { text-align: left; }
  th { color: var(--dim); font-weight: 400; }
  .swatch { display: inline-block; width: 9px; height: 9px; border-radius: 2px; margin-right: 6px; }
  #detections-empty { color: var(--dim); }
  .hidden { display: none !important; }
  @media (max-width: 900px) {
    header { padding: 6px 10px; gap: 4px 12px; }
    .chip { font-size: 11.5px; padding: 0 6px; }
    #views, #panels { padding-left: 10px; padding-right: 10px; }
  }
</style>
</head>
<body>
<header>
  <h1>edge-isp</h1>
  <div id="info"></div>
  <div id="stats">
    <span id="fps">&ndash; <small>FPS</small></span> <span id="status"></span>
    <div><span id="latency-head"></span> <span id="exposure"></span> <span id="board"></span></div>
  </div>
  <div class="buttons">
    <a class="button" id="snap-png" download title="the learned view as shown, PNG">Snapshot</a>
    <a class="button" id="snap-raw" download
       title="both views, the results and the raw frame (.npy + .json), zip">Snapshot + raw</a>
    <button id="fullscreen" type="button">Full screen</button>
  </div>
</header>
<div id="views">
  <figure id="learned-fig">
    <img id="learned" alt="learned ISP view">
    <figcaption><b id="learned-title">learned ISP + detector</b> <span id="learned-size"></span></figcaption>
  </figure>
  <figure id="conventional-fig" class="hidden">
    <img id="conventional" alt="conventional ISP view">
    <figcaption><b id="conventional-title">conventional ISP</b> <span id="conventional-size"></span></figcaption>
  </figure>
</div>
<div id="panels">
  <section>
    <h2>display</h2>
    <label>score threshold <span class="value" id="score-value"></span>
      <input id="score" type="range" min="0" max="1" step="0.05"></label>
    <label><input id="one" type="checkbox"> one box per object</label>
    <label id="truth-label" class="hidden"><input id="truth" type="checkbox"> ground truth (simulator)</label>
    <div id="light" class="hidden">
      <label>light level <span class="value"><span id="lux-value"></span> lux</span>
        <input id="lux" type="range" min="0" max="1000" step="1"></label>
    </div>
  </section>
  <section>
    <h2><span id="detections-title">detections</span> <span id="frame"></span></h2>
    <table id="results"><tbody></tbody></table>
    <div id="detections-empty">none above the threshold</div>
  </section>
  <section id="conventional-section" class="hidden">
    <h2><span id="conventional-model-title">conventional ISP + detector</span>
      <span id="conventional-frame"></span></h2>
    <table id="conventional-results"><tbody></tbody></table>
    <div id="conventional-empty">none above the threshold</div>
  </section>
  <section>
    <h2>latency (ms)</h2>
    <table id="latency"><thead><tr><th>stage</th><th>p50</th><th>p99</th></tr></thead><tbody></tbody></table>
  </section>
</div>
<script>
"use strict";
const LUX_MIN = __LUX_MIN__, LUX_MAX = __LUX_MAX__, ONE_PER_OBJECT_IOU = __IOU__;
const token = new URLSearchParams(location.search).get("token");
const authHeaders = token ? {"Authorization": "Bearer " + token} : {};
const $ = (id) => document.getElementById(id);
const url = (path, params) => {
  const query = new URLSearchParams(params || {});
  if (token) query.set("token", token);
  const text = query.toString();
  return text ? path + "?" + text : path;
};
const display = {score: 0.3, one: true, truth: true};
const displayParams = () => ({score: display.score.toFixed(2), one: display.one ? 1 : 0, truth: display.truth ? 1 : 0});
let hasConventional = false, lastEvent = null;

function setStreams() {
  $("learned").src = url("view.mjpg", displayParams());
  if (hasConventional) $("conventional").src = url("conventional-view.mjpg", displayParams());
  $("snap-png").href = url("snapshot.png", displayParams());
  $("snap-raw").href = url("snapshot.zip", displayParams());
}

// Each view is shown at least at its own resolution: the model's input size for the learned
// view (the server draws it larger, for sharp boxes), the camera's for the conventional one.
let modelWidth = null;
for (const id of ["learned", "conventional"]) {
  $(id).addEventListener("load", () => {
    const img = $(id);
    const natural = id === "learned" && modelWidth ? modelWidth : img.naturalWidth;
    img.parentElement.style.setProperty("--natural", natural + "px");
    if (id === "conventional") $(id + "-size").textContent = img.naturalWidth + "\\u00d7" + img.naturalHeight;
  });
}

function chip(name, value) {
  const span = document.createElement("span");
  span.className = "chip";
  span.append(name + " ");
  const b = document.createElement("b");
  b.textContent = value;
  span.append(b);
  return span;
}

async function loadInfo() {
  const response = await fetch(url("info"), {headers: authHeaders});
  if (!response.ok) return;
  const info = await response.json();
  const chips = [["model", info.model], ["task", info.task], ["backend", info.backend], ["device", info.device],
                 ["profile", info.profile], ["input", info.input_size], ["source", info.source],
                 ["frame", info.frame_size], ["conventional", info.conventional_model]];
  $("info").replaceChildren(...chips.filter(([, v]) => v).map(([k, v]) => chip(k, v)));
  if (info.input_size) {
    modelWidth = Number(String(info.input_size).split("x")[0]);
    $("learned-size").textContent = "model input " + String(info.input_size).replace("x", "\\u00d7");
  }
  if (info.display) {
    display.score = info.display.score_threshold;
    display.one = info.display.one_box_per_object;
    display.truth = info.display.ground_truth;
  }
  // The model's own threshold has already dropped what lies below it: the slider starts there.
  $("score").min = display.score;
  $("score").value = display.score;
  $("score-value").textContent = display.score.toFixed(2);
  $("one").checked = display.one;
  $("truth").checked = display.truth;
  if (String(info.source || "").startsWith("sim")) $("truth-label").classList.remove("hidden");
  // A classifier's answers are its top classes, not detections.
  const network = info.task === "classification" ? "classifier" : "detector";
  $("learned-title").textContent = "learned ISP + " + network;
  $("conventional-model-title").textContent = "conventional ISP + " + network;
  if (network === "classifier") $("detections-title").textContent = "top classes";
  if (info.conventional_model) {
    $("conventional-title").textContent = "conventional ISP + " + network;
    $("detections-title").textContent = "learned ISP + " + network;
    $("conventional-section").classList.remove("hidden");
  }
  setStreams();
}

let restream = null;
function displayChanged() {
  display.score = Number($("score").value);
  display.one = $("one").checked;
  display.truth = $("truth").checked;
  $("score-value").textContent = display.score.toFixed(2);
  if (lastEvent) showResult(lastEvent);
  // A drag reconnects the streams once it rests for 150 ms.
  if (restream) clearTimeout(restream);
  restream = setTimeout(() => { restream = null; setStreams(); }, 150);
}
for (const id of ["score", "one", "truth"]) $(id).addEventListener("input", displayChanged);

const sliderToLux = (v) => LUX_MIN * Math.pow(LUX_MAX / LUX_MIN, v / 1000);
const luxToSlider = (lux) => Math.round(1000 * Math.log(lux / LUX_MIN) / Math.log(LUX_MAX / LUX_MIN));
const showLux = (lux) => { $("lux-value").textContent = lux < 10 ? lux.toFixed(2) : lux.toFixed(0); };

async function loadControls() {
  const response = await fetch(url("controls"), {headers: authHeaders});
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
  $("status").textContent = response.ok ? "" : (await response.json()).error;
}
$("lux").addEventListener("input", () => {
  // Coalesce a drag into one request per 100 ms; the last position always gets sent.
  if (pending) clearTimeout(pending);
  pending = setTimeout(() => { pending = null; sendLux(); }, 100);
});

function iou(a, b) {
  const w = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
  const h = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  const area = (r) => Math.max(0, r[2] - r[0]) * Math.max(0, r[3] - r[1]);
  const inter = w * h;
  return inter > 0 ? inter / (area(a) + area(b) - inter) : 0;
}

function shown(detections) {
  // The server's rule for what it draws: the threshold, then (optionally) one box per object.
  const kept = detections.filter((d) => d.score >= display.score).sort((a, b) => b.score - a.score);
  if (!display.one) return kept;
  const out = [];
  for (const d of kept) if (out.every((o) => iou(o.box, d.box) <= ONE_PER_OBJECT_IOU)) out.push(d);
  return out;
}

function classColour(id) {
  const hue = (id * 0.618033988749895) % 1.0;
  return "hsl(" + Math.round(hue * 360) + ", 100%, 58%)";
}

function showExposure(e) {
  if (!e) return;
  const parts = [];
  if (e.exposure_time_s > 0) parts.push("<b>" + (1000 * e.exposure_time_s).toFixed(1) + "</b> ms");
  parts.push("gain <b>" + e.analogue_gain.toFixed(1) + "\\u00d7</b>");
  if (Math.abs(e.digital_gain - 1) > 0.005) parts.push("digital <b>" + e.digital_gain.toFixed(1) + "\\u00d7</b>");
  $("exposure").innerHTML = parts.join(" ");
  $("exposure").title = "the frame's exposure time, analogue gain and digital gain";
}

function resultRows(results) {
  const items = results.detections ? shown(results.detections) : (results.labels || []);
  return items.map((item) => {
    const row = document.createElement("tr");
    const name = document.createElement("td");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = classColour(item.class_id || 0);
    // ImageNet's names list synonyms ("great white shark, white shark, man-eater, ..."): the
    // first is shown, as on the picture, and the whole list on hover.
    const label = String(item.label);
    name.append(swatch, label.split(",")[0]);
    name.title = label;
    const score = document.createElement("td");
    score.textContent = item.score.toFixed(2);
    const box = document.createElement("td");
    box.textContent = Array.isArray(item.box) ? item.box.map((v) => Math.round(v)).join(", ") : "";
    row.append(name, score, box);
    return row;
  });
}

let lastConventional = null;
function showResult(event) {
  lastEvent = event;
  showExposure(event.exposure);
  $("frame").textContent = "\\u00b7 frame " + event.frame;
  const rows = resultRows(event.results);
  $("results").tBodies[0].replaceChildren(...rows);
  $("detections-empty").classList.toggle("hidden", rows.length > 0);
  // The conventional model runs on every Nth frame only: its latest answers stay listed.
  if (event.results.conventional) lastConventional = {frame: event.frame, results: event.results.conventional};
  if (lastConventional) {
    $("conventional-frame").textContent = "\\u00b7 frame " + lastConventional.frame;
    const conventionalRows = resultRows(lastConventional.results);
    $("conventional-results").tBodies[0].replaceChildren(...conventionalRows);
    $("conventional-empty").classList.toggle("hidden", conventionalRows.length > 0);
  }
  if (event.conventional && !hasConventional) {
    hasConventional = true;
    $("conventional-fig").classList.remove("hidden");
    setStreams();
  }
}

function showMetrics(m) {
  if (typeof m.fps === "number") $("fps").innerHTML = m.fps.toFixed(1) + " <small>FPS</small>";
  const e2e = (m.latency_ms || {}).end_to_end;
  if (e2e) $("latency-head").innerHTML = "latency <b>" + e2e.p50.toFixed(0) + "</b> ms p50";
  const body = $("latency").tBodies[0];
  body.replaceChildren(...Object.entries(m.latency_ms || {}).map(([stage, q]) => {
    const row = document.createElement("tr");
    for (const text of [stage.replaceAll("_", " "), q.p50, q.p99]) {
      const cell = document.createElement("td");
      cell.textContent = typeof text === "number" ? text.toFixed(1) : String(text);
      row.appendChild(cell);
    }
    return row;
  }));
}

async function loadBoard() {
  const response = await fetch(url("board"), {headers: authHeaders});
  if (!response.ok) return;
  const b = await response.json();
  const parts = [];
  if (typeof b.cpu_load === "number") parts.push("CPU <b>" + Math.round(100 * b.cpu_load) + "%</b>");
  if (typeof b.gpu_load === "number") parts.push("GPU <b>" + Math.round(100 * b.gpu_load) + "%</b>");
  const temps = Object.values(b.temperatures_c || {});
  if (temps.length) parts.push("<b>" + Math.max(...temps).toFixed(0) + "\\u00b0C</b>");
  if (typeof b.power_mw === "number") parts.push("<b>" + (b.power_mw / 1000).toFixed(1) + " W</b>");
  $("board").innerHTML = parts.join(" \\u00b7 ");
  $("board").title = Object.entries(b.temperatures_c || {}).map(([k, v]) => k + " " + v.toFixed(1) + " \\u00b0C")
    .join("\\n");
}

$("fullscreen").addEventListener("click", () => {
  if (document.fullscreenElement) document.exitFullscreen();
  else $("views").requestFullscreen();
});

const events = new EventSource(url("events"));
events.addEventListener("result", (e) => showResult(JSON.parse(e.data)));
events.addEventListener("metrics", (e) => showMetrics(JSON.parse(e.data)));
events.onerror = () => { $("status").textContent = "reconnecting"; };
events.onopen = () => { $("status").textContent = ""; };
loadInfo();
loadControls();
loadBoard();
setInterval(loadBoard, 2000);
</script>
</body>
</html>
"""
for _name, _value in (("__LUX_MIN__", LUX_MIN), ("__LUX_MAX__", LUX_MAX), ("__IOU__", ONE_PER_OBJECT_IOU)):
    DASHBOARD_HTML = DASHBOARD_HTML.replace(_name, repr(_value))
