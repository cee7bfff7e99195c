// The side panel: one weight's (or bias's) gradient as chain-rule factors, point by point, and its update.
// The numbers are chainrule.explain.trace's, formatted as `chainrule explain` prints them; the full-precision
// values sit in data attributes so tests can compare them with the engine.

function escape(text) {
  return String(text).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
}
const paren = (text) => (text.startsWith("-") ? `(${text})` : text);

function updateLines(result) {
  const t = result.text, o = result.optimizer, lr = o.lr;
  if (o.name === "sgd") {
    return `new = old − lr · ∂L/∂p\n    = ${t.old} − ${lr} · ${paren(t.grad)}\n    = ${t.new}`;
  }
  if (o.name === "momentum") {
    return `v   = ${o.momentum} · v_prev + ∂L/∂p = ${t["state.momentum_buffer"]}\n` +
      `new = old − lr · v\n    = ${t.old} − ${lr} · ${paren(t["state.momentum_buffer"])}\n    = ${t.new}`;
  }
  const [b1, b2] = o.betas, step = o.state.step;
  return `m   = ${b1} · m_prev + ${(1 - b1).toFixed(3)} · ∂L/∂p = ${t["state.exp_avg"]}\n` +
    `v   = ${b2} · v_prev + ${(1 - b2).toFixed(3)} · (∂L/∂p)² = ${t["state.exp_avg_sq"]}\n` +
    `new = old − lr · m̂ / (√v̂ + ${o.eps}),  m̂ = m / (1 − ${b1}^${step}),  v̂ = v / (1 − ${b2}^${step})\n` +
    `    = ${t.old} − ${lr} · ${Number(o.state.exp_avg / (1 - b1 ** step)).toPrecision(9)} / (√${Number(o.state.exp_avg_sq / (1 - b2 ** step)).toPrecision(9)} + ${o.eps})\n` +
    `    = ${t.new}`;
}

export function renderPanel(body, result) {
  const weight = result.kind === "weight";
  const p = weight ? "w" : "b";
  const t = result.text;
  const last = result.samples[0].paths === null;
  const header = weight
    ? `<h3>${escape(result.name)} of layer ${result.layer}: ${escape(result.source_label)} → ${escape(result.neuron_label)}</h3>`
    : `<h3>${escape(result.name)} of layer ${result.layer}: the bias of ${escape(result.neuron_label)}</h3>`;
  const rows = result.samples.map((s, k) => {
    const paths = s.paths === null ? "" : ` title="∂E/∂out sums ${s.paths} paths: ${s.text.path_terms.join(" + ")}"`;
    return `<tr class="sample" data-index="${s.index}" data-de-dout="${s.de_dout}" data-dout-dnet="${s.dout_dnet}" ` +
      `data-dnet-dparam="${s.dnet_dparam}" data-grad="${s.grad}">` +
      `<td>${k + 1}</td><td>#${s.index}</td><td${paths}>${s.text.de_dout}</td><td>${s.text.dout_dnet}</td>` +
      `<td>${s.text.dnet_dparam}</td><td><b>${s.text.grad}</b></td></tr>`;
  }).join("");
  const first = result.samples[0];
  const penalty = result.penalty.kind === "none" || !weight ? "" :
    ` + ${result.penalty.kind === "l1" ? "λ·sign(w)" : "λ·w"} (= ${t.penalty}, λ = ${result.penalty.rate})`;
  const hidden = last ? "" :
    `<p class="note">${escape(result.neuron_label)} is a hidden neuron: its ∂E/∂out is the sum over the ${first.paths} ` +
    `neurons it feeds of δ<sub>k</sub>·W<sub>k,${result.neuron}</sub>; for point 1: ${first.text.path_terms.map(paren).join(" + ")} = ${first.text.de_dout}. Hover a value for its paths.</p>`;
  body.innerHTML = `${header}
    <p class="note">Loss ${escape(result.loss_name)}: ${escape(result.loss_formula)}, averaged over the ${result.samples.length} points of the next mini-batch.
    Numbers from <code>chainrule.explain.trace</code> on each point, as <code>chainrule explain</code> prints them.</p>
    <div class="formula">∂E/∂${p} = ∂E/∂out · ∂out/∂net · ∂net/∂${p}      (for each point)
point 1:   ${first.text.grad} = ${paren(first.text.de_dout)} × ${paren(first.text.dout_dnet)} × ${paren(first.text.dnet_dparam)}</div>
    ${hidden}
    <div class="table-wrap"><table><thead><tr><th></th><th>point</th><th>∂E/∂out</th><th>∂out/∂net</th><th>∂net/∂${p}${weight ? ` (= ${escape(result.source_label)})` : ""}</th><th>∂E/∂${p}</th></tr></thead>
    <tbody>${rows}</tbody></table></div>
    <div class="formula">∂L/∂${p} = mean over the batch of ∂E/∂${p}${penalty}
        = ${t.data_grad}${penalty ? ` + ${paren(t.penalty)}` : ""} = ${t.grad}   (the engine's batch gradient; |difference| ${result.grad_check.toExponential(1)})</div>
    <h3 style="font-size:14px;margin-top:12px">The update (${escape(result.optimizer.name)}, lr ${result.optimizer.lr})</h3>
    <div class="formula">${escape(updateLines(result))}</div>
    ${result.command ? `<p class="note">The same numbers for point 1 in a terminal, with the JSON export saved as weights.json:</p>
    <div class="formula command">${escape(result.command)}</div>` : ""}
    <p class="note">Press +1 (one step): ${escape(result.name)} becomes ${t.new}.</p>`;
  body.dataset.key = result.key;
  body.dataset.grad = String(result.grad);
  body.dataset.dataGrad = String(result.data_grad);
  body.dataset.old = String(result.old);
  body.dataset.new = String(result.new);
}
