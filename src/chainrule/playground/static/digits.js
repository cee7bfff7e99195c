// The digit pad: draw (or load) a digit, send the pixels to the server, show what a trained run makes of it:
// the classes, the sample the model saw (prepared like `chainrule predict`), every layer, the contributions.
import { decode, diverging, paint } from "./draw.js";

const $ = (id) => document.getElementById(id);
const pad = $("pad");
const context = pad.getContext("2d");
let drawing = false, last = null, pending = null;

function clear() {
  context.fillStyle = "#fff";
  context.fillRect(0, 0, pad.width, pad.height);
  $("pad-result").innerHTML = '<p class="note">Draw a digit on the pad.</p>';
  document.body.dataset.padWinner = "";
}

function position(event) {
  const box = pad.getBoundingClientRect();
  return [((event.clientX - box.left) / box.width) * pad.width, ((event.clientY - box.top) / box.height) * pad.height];
}

pad.addEventListener("pointerdown", (event) => { drawing = true; last = position(event); pad.setPointerCapture(event.pointerId); stroke(last); });
pad.addEventListener("pointermove", (event) => { if (drawing) stroke(position(event)); });
pad.addEventListener("pointerup", () => { drawing = false; last = null; predict(); });

function stroke(point) {
  context.strokeStyle = "#000";
  context.lineWidth = 16;
  context.lineCap = "round";
  context.beginPath();
  context.moveTo(last[0], last[1]);
  context.lineTo(point[0], point[1]);
  context.stroke();
  last = point;
}

function escape(text) {
  return String(text).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
}

function pixels() {
  const image = context.getImageData(0, 0, pad.width, pad.height);
  let text = "";
  const bytes = image.data;
  for (let i = 0; i < bytes.length; i += 8192) text += String.fromCharCode(...bytes.subarray(i, i + 8192));
  return { width: pad.width, height: pad.height, data: btoa(text) };
}

function run() {
  return $("run-path").value.trim() || $("run-select").value;
}

async function predict() {
  const chosen = run();
  const result = $("pad-result");
  if (!chosen) {
    result.innerHTML = '<p class="error">No run to ask: train one with <code>chainrule train --out runs/digits</code> ' +
      "(then reload), or type a run directory.</p>";
    return;
  }
  const request = { run: chosen, image: pixels() };
  pending = request;
  let body;
  try {
    const response = await fetch("/api/digits/predict", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(request) });
    body = await response.json();
    if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  } catch (error) {
    if (pending === request) result.innerHTML = `<p class="error">${escape(error.message)}</p>`;
    document.body.dataset.padWinner = "";
    return;
  }
  if (pending === request) render(body);
}

function render(result) {
  const box = $("pad-result");
  const bars = result.classes.map((c) => `<span>${escape(c.name)}</span><div class="track"><div class="pbar" style="width:${(100 * c.probability).toFixed(1)}%"></div></div><span>${(100 * c.probability).toFixed(1)}%</span>`).join("");
  box.innerHTML = `<div class="prediction">
      <div class="winner" id="pad-winner">${escape(result.winner_name)}<small>${escape(result.data)} run</small></div>
      <div class="bars">${bars}</div>
      <div class="seen"><div><canvas id="pad-input"></canvas>what the model saw</div>
      <div><canvas id="pad-saliency"></canvas>pixel × ∂z/∂pixel</div></div>
    </div>
    <div id="pad-layers"></div>`;
  const input = decode(result.input.data);
  paint($("pad-input"), result.input.width, result.input.height, (i) => [255 - input[i], 255 - input[i], 255 - input[i]]);
  if (result.saliency) {
    const saliency = decode(result.saliency.data);
    paint($("pad-saliency"), result.input.width, result.input.height, (i) => diverging(saliency[i] / 127.5 - 1));
  }
  const layers = $("pad-layers");
  result.layers.forEach((layer, k) => {
    const row = document.createElement("div");
    row.className = "layer-row";
    const isLast = k === result.layers.length - 1;
    row.innerHTML = `<div class="title">layer ${escape(layer.name)}: ${layer.units} units (shape ${layer.shape.join("×")})` +
      `${layer.shown < layer.units ? `, the first ${layer.shown} shown` : ""}</div>`;
    const canvas = document.createElement("canvas");
    const columns = Math.min(64, layer.shown), rows = Math.ceil(layer.shown / columns), cell = 9;
    canvas.width = columns * cell; canvas.height = rows * cell;
    canvas.style.width = `${columns * cell}px`;
    const c = canvas.getContext("2d");
    const values = decode(layer.values);
    const top = new Set(layer.top.map((t) => t.unit));
    for (let j = 0; j < layer.shown; j++) {
      const colour = diverging(values[j] / 127.5 - 1);
      c.fillStyle = `rgb(${colour.map(Math.round).join(",")})`;
      c.fillRect((j % columns) * cell, Math.floor(j / columns) * cell, cell - 1, cell - 1);
      if (top.has(j) && !isLast) {
        c.strokeStyle = "#d62728"; c.lineWidth = 2;
        c.strokeRect((j % columns) * cell + 1, Math.floor(j / columns) * cell + 1, cell - 3, cell - 3);
      }
    }
    row.appendChild(canvas);
    if (!isLast) {
      const text = document.createElement("div");
      text.className = "top";
      text.textContent = `top contributions to “${result.winner_name}” (a · ∂z/∂a): ` +
        layer.top.map((t) => `unit ${t.unit}: ${t.value.toPrecision(3)} → ${t.contribution.toPrecision(3)}`).join(", ");
      row.appendChild(text);
    }
    layers.appendChild(row);
  });
  document.body.dataset.padWinner = String(result.winner);
}

$("pad-clear").addEventListener("click", clear);
$("pad-file").addEventListener("change", () => {
  const file = $("pad-file").files[0];
  if (!file) return;
  const url = URL.createObjectURL(file);
  const picture = new Image();
  picture.onload = () => {
    clear();
    const scale = Math.min(pad.width / picture.width, pad.height / picture.height);
    const w = picture.width * scale, h = picture.height * scale;
    context.drawImage(picture, (pad.width - w) / 2, (pad.height - h) / 2, w, h);
    URL.revokeObjectURL(url);
    predict();
  };
  picture.onerror = () => { $("pad-result").innerHTML = `<p class="error">${escape(file.name)} is not an image the browser can read.</p>`; };
  picture.src = url;
  $("pad-file").value = "";
});
$("run-path").addEventListener("change", predict);
$("run-select").addEventListener("change", predict);

async function loadRuns() {
  const select = $("run-select");
  try {
    const response = await fetch("/api/digits/runs");
    const body = await response.json();
    select.innerHTML = "";
    for (const found of body.runs) {
      const option = document.createElement("option");
      option.value = found.path;
      option.textContent = `${found.path} (${found.data}, ${found.model})`;
      select.appendChild(option);
    }
    if (!body.runs.length) {
      const option = document.createElement("option");
      option.value = ""; option.textContent = `none in ${body.roots.join(", ")}`;
      select.appendChild(option);
    }
  } catch (error) { /* the main page reports a dead server */ }
}

clear();
loadRuns();
