// Drawing on canvases: the output heatmap with its points, neuron thumbnails and the loss curves.
// Images arrive from the server as base64 bytes (0..255); colours follow TensorFlow Playground's
// orange (negative / class 0) and blue (positive / class 1).

export const CLASS_COLOURS = [[245, 147, 34], [8, 119, 189], [44, 160, 44], [148, 103, 189], [214, 39, 40],
  [140, 86, 75], [227, 119, 194], [127, 127, 127]];
const WHITE = [255, 255, 255];

export function decode(base64) {
  const text = atob(base64);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  return bytes;
}

function mix(a, b, t) {
  return [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t];
}

// A value in [-1, 1] as orange (negative) through white to blue (positive).
export function diverging(t) {
  return t >= 0 ? mix(WHITE, CLASS_COLOURS[1], t) : mix(WHITE, CLASS_COLOURS[0], -t);
}

// Sizes the canvas to width × height pixels and paints pixel i (row by row) colourAt(i), an [r, g, b] colour,
// mixed towards white by the fraction `lighten`.
export function paint(canvas, width, height, colourAt, lighten = 0) {
  canvas.width = width; canvas.height = height;
  const context = canvas.getContext("2d");
  const image = context.createImageData(width, height);
  for (let i = 0; i < width * height; i++) {
    let colour = colourAt(i);
    if (lighten) colour = mix(colour, WHITE, lighten);
    image.data[4 * i] = colour[0]; image.data[4 * i + 1] = colour[1]; image.data[4 * i + 2] = colour[2];
    image.data[4 * i + 3] = 255;
  }
  context.putImageData(image, 0, 0);
}

// The network's output on the grid: class probabilities (channels = classes) or a regression value.
export function outputColours(output, task) {
  const bytes = decode(output.data);
  const channels = output.channels;
  if (task === "regression") return (i) => diverging(bytes[i] / 127.5 - 1);
  if (channels === 2) return (i) => diverging((bytes[2 * i + 1] - bytes[2 * i]) / 255);
  return (i) => {
    let best = 0;
    for (let c = 1; c < channels; c++) if (bytes[channels * i + c] > bytes[channels * i + best]) best = c;
    const confidence = Math.max(0, (bytes[channels * i + best] / 255 - 1 / channels) / (1 - 1 / channels));
    return mix(WHITE, CLASS_COLOURS[best % CLASS_COLOURS.length], confidence);
  };
}

export function drawHeatmap(canvas, output, task, points, options) {
  const size = output.size;
  const off = document.createElement("canvas");
  paint(off, size, size, outputColours(output, task), 0.25);
  const width = canvas.clientWidth || 300;
  const scale = window.devicePixelRatio || 1;
  canvas.width = width * scale; canvas.height = width * scale;
  const context = canvas.getContext("2d");
  context.imageSmoothingEnabled = true;
  context.drawImage(off, 0, 0, canvas.width, canvas.height);
  if (!points) return;
  const view = points.view;
  const toPixel = (p) => [(p[0] + view) / (2 * view) * canvas.width, (view - p[1]) / (2 * view) * canvas.height];
  const colourOf = (label) => {
    if (points.task === "regression") {
      const [low, high] = points.range;
      return diverging(2 * (label - low) / (high - low || 1) - 1);
    }
    return CLASS_COLOURS[label % CLASS_COLOURS.length];
  };
  const radius = 3.2 * scale;
  const dot = (p, label, stroke, width_) => {
    const [x, y] = toPixel(p);
    const colour = colourOf(label);
    context.beginPath();
    context.arc(x, y, radius, 0, 2 * Math.PI);
    context.fillStyle = `rgb(${colour[0]},${colour[1]},${colour[2]})`;
    context.fill();
    context.lineWidth = width_ * scale;
    context.strokeStyle = stroke;
    context.stroke();
  };
  points.train.forEach((p, i) => dot(p, points.train_y[i], "#fff", 1));
  if (options.showTest) points.test.forEach((p, i) => dot(p, points.test_y[i], "#000", 1));
  if (options.batch) {
    for (const index of options.batch) {
      const [x, y] = toPixel(points.train[index]);
      context.beginPath();
      context.arc(x, y, radius + 3 * scale, 0, 2 * Math.PI);
      context.lineWidth = 1.5 * scale;
      context.strokeStyle = "#d62728";
      context.stroke();
    }
  }
  // axis ticks at the scaled coordinates' integers
  context.fillStyle = "#0008";
  context.font = `${10 * scale}px system-ui, sans-serif`;
  for (const t of [-3, 0, 3]) {
    const [x] = toPixel([t, 0]);
    context.fillText(String(t), x + 2 * scale, canvas.height - 3 * scale);
  }
}

export function drawThumbnail(canvas, neuron, size) {
  const bytes = decode(neuron.data);
  paint(canvas, size, size, (i) => diverging(bytes[i] / 127.5 - 1));
}

export function drawChart(canvas, history) {
  const scale = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 300, height = canvas.clientHeight || 64;
  canvas.width = width * scale; canvas.height = height * scale;
  const context = canvas.getContext("2d");
  context.scale(scale, scale);
  context.clearRect(0, 0, width, height);
  const finite = (v) => typeof v === "number" && isFinite(v);
  let top = 0;
  for (const [, train, test] of history) {
    if (finite(train)) top = Math.max(top, train);
    if (finite(test)) top = Math.max(top, test);
  }
  if (!(top > 0) || history.length < 2) return;
  const last = history[history.length - 1][0] || 1;
  const line = (column, colour) => {
    context.beginPath();
    let started = false;
    for (const row of history) {
      if (!finite(row[column])) continue;
      const x = (row[0] / last) * (width - 2) + 1, y = height - 2 - (row[column] / top) * (height - 16);
      if (started) context.lineTo(x, y); else { context.moveTo(x, y); started = true; }
    }
    context.strokeStyle = colour;
    context.lineWidth = 1.5;
    context.stroke();
  };
  line(1, "#9aa5ad");
  line(2, "#183d4e");
  context.fillStyle = "#777";
  context.font = "10px system-ui, sans-serif";
  context.fillText(`${top.toPrecision(3)}`, 4, 10);
  context.fillStyle = "#183d4e";
  context.fillText("— test", width - 90, 10);
  context.fillStyle = "#9aa5ad";
  context.fillText("— train", width - 46, 10);
}
