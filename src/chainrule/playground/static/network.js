// The network view: feature nodes, hidden neurons and outputs as thumbnails, edges drawn by weight or gradient.
// build() lays the nodes out when the structure changes; update() redraws thumbnails and edges each frame.
import { drawThumbnail, diverging } from "./draw.js";

const NODE = 36, GAP = 14, TOP = 46, LEFT = 64, RIGHT = 20;
const SVG = "http://www.w3.org/2000/svg";
export const FEATURE_LABELS = { x: "x", y: "y", x2: "x²", y2: "y²", xy: "xy", sinx: "sin x", siny: "sin y" };
const FEATURE_FUNCTIONS = {
  x: (x, y) => x, y: (x, y) => y, x2: (x, y) => x * x, y2: (x, y) => y * y, xy: (x, y) => x * y,
  sinx: (x) => Math.sin(x), siny: (x, y) => Math.sin(y),
};

// A feature's picture over the view when it is not an input (the server draws the active ones).
function featureThumbnail(name, size, view) {
  const values = new Float64Array(size * size);
  let bound = 0;
  for (let r = 0; r < size; r++) for (let c = 0; c < size; c++) {
    const x = -view + (2 * view * c) / (size - 1), y = view - (2 * view * r) / (size - 1);
    const v = FEATURE_FUNCTIONS[name](x, y);
    values[r * size + c] = v;
    bound = Math.max(bound, Math.abs(v));
  }
  const bytes = new Uint8Array(size * size);
  values.forEach((v, i) => { bytes[i] = Math.round((v / (bound || 1) + 1) * 127.5); });
  let text = "";
  bytes.forEach((b) => { text += String.fromCharCode(b); });
  return { data: btoa(text) };
}

export class NetworkView {
  constructor(container, handlers) {
    this.container = container;
    this.handlers = handlers;
    this.key = null;
    this.mode = "weight";
    this.selected = null;
  }

  build(allFeatures, config, widths, view, thumb) {
    const key = JSON.stringify([allFeatures, config.features, widths, this.container.clientWidth]);
    if (key === this.key) return;
    this.key = key;
    const active = config.features.split(",").filter(Boolean);
    this.active = active;
    this.widths = widths;
    const container = this.container;
    container.innerHTML = "";
    const width = Math.max(container.clientWidth, 360);
    const columns = widths.length; // features, hidden..., outputs
    const step = (width - LEFT - RIGHT - NODE) / Math.max(columns - 1, 1);
    const columnX = (c) => LEFT + c * step;
    const rowY = (i) => TOP + i * (NODE + GAP);
    const tallest = Math.max(allFeatures.length, ...widths.slice(1));
    container.style.height = `${rowY(tallest) + 10}px`;
    const svg = document.createElementNS(SVG, "svg");
    container.appendChild(svg);
    this.svg = svg;
    this.nodes = [];
    this.positions = [];

    // Column 0: every feature; the active ones feed the network.
    const featureColumn = [], featurePositions = [];
    allFeatures.forEach((name, i) => {
      const node = this.node(columnX(0), rowY(i), `feature-${name}`);
      node.classList.toggle("off", !active.includes(name));
      const tag = document.createElement("span");
      tag.className = "tag";
      tag.textContent = FEATURE_LABELS[name];
      node.appendChild(tag);
      node.title = active.includes(name) ? `input ${FEATURE_LABELS[name]} (click to remove)` : `add input ${FEATURE_LABELS[name]}`;
      node.addEventListener("click", () => this.handlers.onFeature(name));
      if (!active.includes(name)) drawThumbnail(node.firstChild, featureThumbnail(name, thumb, view), thumb);
      else { featureColumn[active.indexOf(name)] = node; featurePositions[active.indexOf(name)] = [columnX(0), rowY(i)]; }
    });
    this.nodes.push(featureColumn);
    this.positions.push(featurePositions);

    // Hidden layers and outputs.
    for (let c = 1; c < columns; c++) {
      const column = [], positions = [];
      const hidden = c < columns - 1;
      for (let j = 0; j < widths[c]; j++) {
        const node = this.node(columnX(c), rowY(j), `neuron-${c}-${j}`);
        node.dataset.layer = String(c);
        node.dataset.neuron = String(j);
        node.title = `${hidden ? "hidden" : "output"} neuron L${c}[${j}]: click for its bias b[${j}]`;
        node.addEventListener("click", () => this.handlers.onBias(c, j));
        column.push(node);
        positions.push([columnX(c), rowY(j)]);
      }
      const label = document.createElement("div");
      label.className = "layer-label";
      label.style.left = `${columnX(c) + NODE / 2}px`;
      label.style.top = "0px";
      label.textContent = hidden ? `${widths[c]} neuron${widths[c] > 1 ? "s" : ""}` : "output";
      container.appendChild(label);
      if (hidden) {
        const controls = document.createElement("div");
        controls.className = "width-control";
        controls.style.left = `${columnX(c) + NODE / 2}px`;
        controls.style.top = "16px";
        for (const [text, delta] of [["+", 1], ["−", -1]]) {
          const button = document.createElement("button");
          button.textContent = text;
          button.title = delta > 0 ? "add a neuron" : "remove a neuron";
          button.className = delta > 0 ? "add-neuron" : "remove-neuron";
          button.addEventListener("click", () => this.handlers.onWidth(c - 1, delta));
          controls.appendChild(button);
        }
        container.appendChild(controls);
      }
      this.nodes.push(column);
      this.positions.push(positions);
    }

    // Edges: one path per weight, with a wider invisible path over it to click.
    this.edges = [];
    for (let c = 1; c < columns; c++) {
      const layer = [];
      for (let j = 0; j < widths[c]; j++) {
        const row = [];
        for (let i = 0; i < widths[c - 1]; i++) {
          const [x0, y0] = this.positions[c - 1][i], [x1, y1] = this.positions[c][j];
          const ax = x0 + NODE, ay = y0 + NODE / 2, bx = x1, by = y1 + NODE / 2, mid = (ax + bx) / 2;
          const d = `M${ax},${ay} C${mid},${ay} ${mid},${by} ${bx},${by}`;
          const path = document.createElementNS(SVG, "path");
          path.setAttribute("d", d);
          path.setAttribute("class", "edge");
          path.dataset.layer = String(c); path.dataset.neuron = String(j); path.dataset.source = String(i);
          const hit = document.createElementNS(SVG, "path");
          hit.setAttribute("d", d);
          hit.setAttribute("class", "edge-hit");
          hit.dataset.layer = String(c); hit.dataset.neuron = String(j); hit.dataset.source = String(i);
          hit.addEventListener("click", () => this.handlers.onEdge(c, j, i));
          const title = document.createElementNS(SVG, "title");
          hit.appendChild(title);
          svg.appendChild(path);
          row.push({ path, hit, title });
        }
        layer.push(row);
      }
      this.edges.push(layer);
    }
    for (const layer of this.edges) for (const row of layer) for (const edge of row) svg.appendChild(edge.hit);
    this.markSelected();
  }

  node(x, y, id) {
    const node = document.createElement("div");
    node.className = "node";
    node.id = id;
    node.style.left = `${x}px`;
    node.style.top = `${y}px`;
    node.appendChild(document.createElement("canvas"));
    this.container.appendChild(node);
    return node;
  }

  update(frame, thumb) {
    frame.neurons.forEach((layer, c) => {
      layer.forEach((neuron, j) => {
        const node = this.nodes[c] && this.nodes[c][j];
        if (!node) return;
        drawThumbnail(node.firstChild, neuron, thumb);
        if (c > 0) node.dataset.scale = String(neuron.scale);
      });
    });
    const layers = frame.network.layers;
    let largest = 0;
    if (this.mode === "grad") for (const layer of layers) if (layer.grad) for (const row of layer.grad) for (const g of row) largest = Math.max(largest, Math.abs(g));
    layers.forEach((layer, l) => {
      const values = this.mode === "grad" ? layer.grad : layer.weight;
      layer.weight.forEach((row, j) => row.forEach((w, i) => {
        const edge = this.edges[l] && this.edges[l][j] && this.edges[l][j][i];
        if (!edge) return;
        const value = values ? values[j][i] : 0;
        const size = this.mode === "grad" ? (largest > 0 ? 0.3 + 6 * Math.abs(value) / largest : 0.3) : Math.min(0.4 + 2.2 * Math.abs(value), 9);
        const colour = diverging(Math.sign(value) * Math.min(1, 0.35 + Math.abs(this.mode === "grad" ? value / (largest || 1) : value)));
        edge.path.setAttribute("stroke-width", size.toFixed(2));
        edge.path.setAttribute("stroke", `rgb(${colour.map(Math.round).join(",")})`);
        edge.path.dataset.weight = String(w);
        edge.path.dataset.grad = layer.grad ? String(layer.grad[j][i]) : "";
        edge.title.textContent = `w[${j},${i}] of layer ${l + 1} = ${w.toPrecision(4)}` + (layer.grad ? `, ∂L/∂w = ${layer.grad[j][i].toPrecision(4)}` : "") + " (click for the chain rule)";
      }));
    });
    // The gradient monitor's warnings, on the layer they concern.
    this.container.querySelectorAll(".layer-warning").forEach((e) => e.remove());
    this.container.querySelectorAll(".node.warn").forEach((e) => e.classList.remove("warn"));
    const byLayer = {};
    for (const warning of frame.warnings) (byLayer[warning.layer] = byLayer[warning.layer] || []).push(warning);
    for (const [layer, warnings] of Object.entries(byLayer)) {
      const column = this.nodes[Number(layer)];
      if (!column || !column.length) continue;
      column.forEach((node) => node.classList.add("warn"));
      const badge = document.createElement("div");
      badge.className = "layer-warning";
      badge.dataset.layer = layer;
      badge.textContent = "⚠ " + warnings.map((w) => w.kind).join(", ");
      badge.title = warnings.map((w) => w.message).join("\n\n");
      const first = column[column.length - 1];
      badge.style.left = `${parseFloat(first.style.left) + NODE / 2}px`;
      badge.style.top = `${parseFloat(first.style.top) + NODE + 4}px`;
      this.container.appendChild(badge);
    }
  }

  select(selection) {
    this.selected = selection;
    this.markSelected();
  }

  markSelected() {
    this.container.querySelectorAll(".selected").forEach((e) => e.classList.remove("selected"));
    const s = this.selected;
    if (!s || !this.edges) return;
    if (s.source === null) {
      const node = this.nodes[s.layer] && this.nodes[s.layer][s.neuron];
      if (node) node.classList.add("selected");
    } else {
      const edge = this.edges[s.layer - 1] && this.edges[s.layer - 1][s.neuron] && this.edges[s.layer - 1][s.neuron][s.source];
      if (edge) edge.path.classList.add("selected");
    }
  }
}
