// The playground page: settings live in the URL, the server trains, frames stream over a WebSocket.
import { drawChart, drawHeatmap } from "./draw.js";
import { NetworkView } from "./network.js";
import { renderPanel } from "./panel.js";

const $ = (id) => document.getElementById(id);
const CHOICES = {
  lr: ["0.00001", "0.0001", "0.001", "0.003", "0.01", "0.03", "0.1", "0.3", "1.0", "3.0", "10.0"],
  batch: ["1", "2", "4", "5", "8", "10", "16", "20", "25", "30", "32", "64"],
  rate: ["0.0", "0.0001", "0.001", "0.003", "0.01", "0.03", "0.1", "0.3", "1.0"],
};
const DATA_LABELS = { xor: "XOR", moons: "Moons", circles: "Circles", spirals: "Spirals", blobs: "Blobs",
  gaussian: "Gaussian", regression: "Regression", csv: "Your CSV" };
const THUMB = 24;

const state = { options: null, id: null, config: null, frame: null, points: null, socket: null, playing: false,
  selection: null, uploads: {} };
window.playground = state; // for tests and the curious

function showMessage(text, kind = "error") {
  const box = $("message");
  box.textContent = text;
  box.className = `message ${kind === "info" ? "info" : ""}`;
  box.hidden = !text;
}

async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, options);
  } catch (error) {
    throw new Error("the playground server does not answer (is `chainrule playground` still running?)");
  }
  const type = response.headers.get("content-type") || "";
  const body = type.includes("application/json") ? await response.json() : null;
  if (!response.ok) throw new Error(body && body.error ? body.error : `HTTP ${response.status}`);
  return body;
}

const post = (path, body) => api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body || {}) });

function fillSelect(id, values, labels = {}) {
  const select = $(id);
  select.innerHTML = "";
  for (const value of values) {
    const option = document.createElement("option");
    option.value = value;
    option.textContent = labels[value] || value;
    select.appendChild(option);
  }
}

function setSelect(id, value) {
  const select = $(id);
  if (![...select.options].some((o) => o.value === value)) {
    const option = document.createElement("option");
    option.value = value; option.textContent = value;
    select.appendChild(option);
  }
  select.value = value;
}

function queryFromURL() {
  const query = {};
  for (const [key, value] of new URLSearchParams(location.search)) query[key] = value;
  return query;
}

function writeURL(config) {
  const url = `${location.pathname}?${new URLSearchParams(config).toString()}`;
  history.replaceState(null, "", url);
}

// A new session from settings; a broken link falls back to the defaults with a message.
async function start(query, { fromLink = false } = {}) {
  pause();
  let created;
  try {
    created = await post("/api/session", { query });
  } catch (error) {
    if (fromLink) {
      showMessage(`This link's settings are broken: ${error.message}. Showing the defaults instead.`);
      created = await post("/api/session", { query: {} });
    } else {
      showMessage(error.message);
      return;
    }
  }
  if (!fromLink) showMessage("");
  state.id = created.id;
  state.config = created.config;
  state.points = created.frame.points;
  writeURL(state.config);
  showControls();
  closePanel();
  openSocket();
  render(created.frame, true);
}

function change(updates) {
  const query = { ...state.config, ...updates };
  if (query.data !== "csv") delete query.upload;
  start(query);
}

function showControls() {
  const c = state.config;
  for (const id of ["act", "loss", "opt", "reg", "init"]) $(id).value = c[id];
  for (const id of ["lr", "batch", "rate"]) setSelect(id, c[id]);
  $("seed").value = c.seed;
  for (const id of ["noise", "n", "test"]) { $(id).value = c[id]; $(`${id}-value`).textContent = c[id]; }
  document.querySelectorAll("#datasets button").forEach((b) => b.classList.toggle("active", b.dataset.name === c.data));
  $("csv-button") && ($("csv-button").hidden = c.data !== "csv");
  const hidden = c.hidden ? c.hidden.split(",").length : 0;
  $("layer-count").textContent = String(hidden);
  $("layer-plural").textContent = hidden === 1 ? "" : "s";
  const regression = state.points && state.points.task === "regression";
  $("loss").disabled = regression;
  if (regression) $("loss").value = "mse"; // regression always trains with MSE
  for (const kind of ["script", "json", "safetensors"]) $(`export-${kind}`).href = `/api/session/${state.id}/export/${kind}`;
}

function openSocket() {
  if (state.socket) state.socket.close();
  const socket = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/api/session/${state.id}/stream`);
  state.socket = socket;
  socket.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "error") { showMessage(message.message); setPlaying(false); return; }
    if (socket !== state.socket) return;
    render(message);
  };
  socket.onclose = () => { if (socket === state.socket) setPlaying(false); };
}

function send(command) {
  const socket = state.socket;
  const payload = JSON.stringify({ ...command, speed: Number($("speed").value) });
  if (socket.readyState === WebSocket.OPEN) socket.send(payload);
  else socket.addEventListener("open", () => socket.send(payload), { once: true });
}

function setPlaying(playing) {
  state.playing = playing;
  $("play").textContent = playing ? "❚❚" : "▶";
  $("play").title = playing ? "pause" : "play";
  document.body.dataset.playing = playing ? "1" : "0";
}
function pause() { if (state.playing) { send({ cmd: "pause" }); setPlaying(false); } }

function render(frame, rebuild = false) {
  state.frame = frame;
  $("step-count").textContent = String(frame.step).padStart(6, "0");
  $("epoch-count").textContent = String(frame.epoch);
  const format = (v) => (typeof v === "number" ? v.toFixed(3) : v);
  $("test-loss").textContent = format(frame.loss.test);
  $("train-loss").textContent = format(frame.loss.train);
  document.body.dataset.step = String(frame.step);
  document.body.dataset.testLoss = String(frame.loss.test);
  document.body.dataset.trainLoss = String(frame.loss.train);
  document.body.dataset.session = state.id;
  drawChart($("chart"), frame.history);
  drawHeatmap($("heatmap"), frame.output, frame.task, state.points, { showTest: $("show-test").checked, batch: $("show-batch").checked ? frame.batch : null });
  network.build(state.options.features, state.config, frame.network.widths, state.points.view, THUMB);
  network.update(frame, THUMB);
  const list = $("warnings");
  list.innerHTML = "";
  for (const warning of frame.warnings) {
    const item = document.createElement("div");
    item.className = "warning";
    item.dataset.kind = warning.kind;
    item.innerHTML = `<b>${warning.kind}</b> (layer ${warning.layer}): `;
    item.appendChild(document.createTextNode(warning.message));
    list.appendChild(item);
  }
  if (!state.playing && state.selection && !$("panel").hidden && state.explainedStep !== frame.step) explain(state.selection);
}

async function explain(selection) {
  state.selection = selection;
  network.select(selection);
  const step = state.frame ? state.frame.step : 0;
  try {
    const result = await post(`/api/session/${state.id}/explain`, selection);
    state.explainedStep = step;
    renderPanel($("panel-body"), result);
    $("panel").hidden = false;
    $("panel-body").dataset.step = String(step);
  } catch (error) {
    showMessage(error.message);
  }
}

function closePanel() {
  $("panel").hidden = true;
  state.selection = null;
  network.select(null);
}

const network = new NetworkView($("network"), {
  onEdge: (layer, neuron, source) => { pause(); explain({ layer, neuron, source }); },
  onBias: (layer, neuron) => { pause(); explain({ layer, neuron, source: null }); },
  onFeature: (name) => {
    const active = state.config.features.split(",");
    const next = active.includes(name) ? active.filter((f) => f !== name) : state.options.features.filter((f) => active.includes(f) || f === name);
    if (!next.length) { showMessage("keep at least one input feature", "info"); return; }
    change({ features: next.join(",") });
  },
  onWidth: (index, delta) => {
    const widths = state.config.hidden.split(",").map(Number);
    widths[index] = Math.max(1, Math.min(state.options.max_width, widths[index] + delta));
    change({ hidden: widths.join(",") });
  },
});

async function upload(file) {
  if (!file) return;
  const form = new FormData();
  form.append("file", file);
  try {
    const result = await api("/api/upload", { method: "POST", body: form });
    showMessage(`Loaded ${result.rows} points (${result.task}${result.classes ? `, ${result.classes} classes` : ""}) from ${file.name}.`, "info");
    const query = { ...state.config, data: "csv", upload: result.id };
    if (result.task === "regression") query.loss = "mse";
    await start(query);
    showMessage(`Loaded ${result.rows} points (${result.task}${result.classes ? `, ${result.classes} classes` : ""}) from ${file.name}.`, "info");
  } catch (error) {
    showMessage(`Could not use ${file.name}: ${error.message}`);
  }
  $("csv").value = "";
}

async function main() {
  state.options = await api("/api/options");
  const o = state.options;
  const dataButtons = $("datasets");
  for (const name of o.datasets.filter((d) => d !== "csv")) {
    const button = document.createElement("button");
    button.textContent = DATA_LABELS[name] || name;
    button.dataset.name = name;
    button.addEventListener("click", () => change({ data: name }));
    dataButtons.appendChild(button);
  }
  fillSelect("act", o.activations, Object.fromEntries(o.activations.filter((a) => a.startsWith("family:")).map((a) => [a, `${a.slice(7)} (slope 1)`])));
  fillSelect("loss", o.losses, { cross_entropy: "cross-entropy", mse: "MSE" });
  fillSelect("opt", o.optimizers, { sgd: "SGD", momentum: "SGD + momentum", adam: "Adam" });
  fillSelect("reg", o.regularization, { none: "none", l1: "L1", l2: "L2" });
  fillSelect("init", o.inits, { xavier: "Xavier", he: "He" });
  for (const [id, values] of Object.entries(CHOICES)) fillSelect(id, values);
  for (const id of ["act", "loss", "opt", "reg", "init", "lr", "batch", "rate"]) $(id).addEventListener("change", () => change({ [id]: $(id).value }));
  $("seed").addEventListener("change", () => change({ seed: $("seed").value }));
  for (const id of ["noise", "n", "test"]) {
    $(id).addEventListener("input", () => { $(`${id}-value`).textContent = $(id).value; });
    $(id).addEventListener("change", () => change({ [id]: $(id).value }));
  }
  $("add-layer").addEventListener("click", () => {
    const widths = state.config.hidden ? state.config.hidden.split(",") : [];
    if (widths.length >= o.max_layers) { showMessage(`at most ${o.max_layers} hidden layers`, "info"); return; }
    change({ hidden: [...widths, "2"].join(",") });
  });
  $("remove-layer").addEventListener("click", () => {
    const widths = state.config.hidden ? state.config.hidden.split(",") : [];
    change({ hidden: widths.slice(0, -1).join(",") });
  });
  $("play").addEventListener("click", () => {
    if (state.playing) pause();
    else { closePanel(); send({ cmd: "play" }); setPlaying(true); }
  });
  $("step").addEventListener("click", () => { setPlaying(false); send({ cmd: "step" }); });
  $("reset").addEventListener("click", () => { setPlaying(false); send({ cmd: "reset" }); });
  $("speed").addEventListener("input", () => { $("speed-value").textContent = $("speed").value; if (state.playing) send({ cmd: "play" }); });
  $("csv").addEventListener("change", () => upload($("csv").files[0]));
  $("panel-close").addEventListener("click", closePanel);
  document.querySelectorAll("input[name=edges]").forEach((r) => r.addEventListener("change", () => { network.mode = r.value; if (state.frame) network.update(state.frame, THUMB); }));
  for (const id of ["show-test", "show-batch"]) $(id).addEventListener("change", () => state.frame && render(state.frame));
  $("copy-link").addEventListener("click", async () => {
    try { await navigator.clipboard.writeText(location.href); showMessage("Link copied: it opens this lesson with the same data, network and starting weights.", "info"); }
    catch { showMessage(`The lesson link: ${location.href}`, "info"); }
  });
  window.addEventListener("resize", () => { network.key = null; if (state.frame) render(state.frame); });
  await start(queryFromURL(), { fromLink: true });
  document.body.dataset.ready = "1";
}

main().catch((error) => showMessage(error.message));
