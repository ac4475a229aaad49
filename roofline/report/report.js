// The report's page: filters, the Pareto front, per-parameter plots, the table and the details,
// all drawn from the REPORT object the Python side embeds (roofline/report/_build.py).
"use strict";
(function () {
  const R = REPORT;
  const N = R.columns._row.length;
  const PLOT_CONFIG = { displaylogo: false, responsive: true };
  const PREFETCH_COLORS = R.prefetch_colors;  // the colours of every figure (roofline.plots.PREFETCH_COLORS)
  const SYMBOLS = ["circle", "square", "diamond", "triangle-up", "cross", "x", "star", "hexagon", "pentagon", "triangle-down"];
  const TABLE_ROWS = Math.max(10, Math.min(R.counts.top || 100, 200));
  const objective = R.objective.metric;
  const maximize = R.objective.direction === "maximize";
  // per cost dollar and per TCO dollar where the run has them: the objective first when it is one, a
  // serving run's goodput before its static batch; the objective otherwise
  const perCostMetrics = [objective, "goodput_tok_s_per_kusd", "goodput_tok_s_per_tco_kusd", "tok_s_per_kusd", "tok_s_per_tco_kusd"]
    .filter((m, k, a) => /_kusd$/.test(m) && a.indexOf(m) === k && R.metric_names.includes(m));
  if (!perCostMetrics.length) perCostMetrics.push(objective);
  let perCost = perCostMetrics[0];

  // ---- columns ----
  const cache = {};
  function col(name) {
    if (!(name in cache)) {
      const c = R.columns[name];
      cache[name] = c === undefined ? null : (Array.isArray(c) ? c : c.codes.map((k) => c.values[k]));
    }
    return cache[name];
  }
  const has = (name) => R.columns[name] !== undefined;
  const label = (name) => R.labels[name] || name;
  const rowId = col("_row");

  function fmt(v, name) {
    if (v === null || v === undefined) return "-";
    if (typeof v === "boolean") return v ? "true" : "false";
    if (typeof v !== "number") return String(v);
    if (name && name.endsWith("_usd")) return Math.round(v).toLocaleString("en-US");
    if (Number.isInteger(v)) return v.toLocaleString("en-US");
    const a = Math.abs(v);
    if (a > 0 && a < 1e-3) return v.toPrecision(3);
    const decimals = a === 0 ? 0 : Math.max(0, 3 - Math.floor(Math.log10(a)));
    return v.toLocaleString("en-US", { maximumFractionDigits: decimals, minimumFractionDigits: 0 });
  }
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v; else if (k === "text") e.textContent = v; else e.setAttribute(k, v);
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }

  // ---- header ----
  const c = R.counts;
  document.getElementById("title").textContent = R.title;
  document.getElementById("sizes").textContent =
    `${c.total_rows.toLocaleString("en-US")} rows in the run (${c.feasible_rows.toLocaleString("en-US")} feasible); ` +
    `this report embeds ${c.embedded.toLocaleString("en-US")}: the Pareto front (${c.pareto_front}), ` +
    `the top ${c.top} by ${objective}, the best row per value of each swept parameter (${c.best_per_value}) ` +
    `and a stratified sample (${c.sample} rows over ${c.strata} strata of the discrete parameters). ` +
    `Latency breakdowns were computed for ${c.details} points.` + (R.notes.length ? " Notes: " + R.notes.join("; ") : "");

  // ---- filters ----
  const filters = {};  // name -> {kind: "set", allowed: Set} | {kind: "range", lo, hi}
  // with no feasible row at all, start by showing every row (the constraints are in the assumptions)
  let feasibleOnly = R.counts.feasible_rows > 0;
  const swept = R.parameters.map((p) => p.name);

  function buildFilters() {
    const box = document.getElementById("filter-controls");
    box.innerHTML = "";
    const feas = el("input", { type: "checkbox", id: "feasible-only", "data-param": "feasible" });
    feas.checked = feasibleOnly;
    feas.addEventListener("change", () => { feasibleOnly = feas.checked; update(); });
    box.append(el("div", { class: "filter" }, el("label", {}, feas, " feasible rows only (meet the constraints)")));
    for (const p of R.parameters) {
      const div = el("div", { class: "filter", "data-filter": p.name }, el("div", { class: "name", text: label(p.name) }));
      if (p.kind === "set") {
        filters[p.name] = { kind: "set", allowed: new Set(p.values.map(String)) };
        for (const v of p.values) {
          const cb = el("input", { type: "checkbox", "data-param": p.name, value: String(v) });
          cb.checked = true;
          cb.addEventListener("change", () => {
            const f = filters[p.name];
            if (cb.checked) f.allowed.add(String(v)); else f.allowed.delete(String(v));
            update();
          });
          div.append(el("label", {}, cb, " " + fmt(v, p.name)));
        }
      } else {
        const steps = p.values.length ? p.values.length - 1 : 100;
        const value = (k) => (p.values.length ? p.values[k] : p.low + (p.high - p.low) * k / 100);
        filters[p.name] = { kind: "range", lo: value(0), hi: value(steps) };
        const text = el("div", { class: "range-label" });
        const from = el("input", { type: "range", min: "0", max: String(steps), step: "1", value: "0", "data-param": p.name, "data-end": "low", "aria-label": label(p.name) + " from" });
        const to = el("input", { type: "range", min: "0", max: String(steps), step: "1", value: String(steps), "data-param": p.name, "data-end": "high", "aria-label": label(p.name) + " to" });
        const show = () => { text.textContent = `${fmt(filters[p.name].lo, p.name)} to ${fmt(filters[p.name].hi, p.name)}`; };
        const onInput = (which) => () => {
          let a = +from.value, b = +to.value;
          if (a > b) { if (which === "from") { b = a; to.value = String(b); } else { a = b; from.value = String(a); } }
          filters[p.name].lo = value(a); filters[p.name].hi = value(b);
          show(); update();
        };
        from.addEventListener("input", onInput("from"));
        to.addEventListener("input", onInput("to"));
        show();
        div.append(text, from, to);
      }
      box.append(div);
    }
    const fixed = Object.entries(R.fixed).filter(([, v]) => v !== "" && v !== null);
    if (fixed.length) {
      box.append(el("div", { class: "filter" }, el("div", { class: "name", text: "Fixed in this run" }),
        el("div", { class: "range-label", text: fixed.map(([k, v]) => `${k} = ${fmt(v, k)}`).join(", ") })));
    }
  }

  function filtered() {
    const out = [];
    const feasible = col("feasible");
    const checks = Object.entries(filters).map(([name, f]) => [col(name), f]);
    for (let i = 0; i < N; i++) {
      if (feasibleOnly && feasible && !feasible[i]) continue;
      let ok = true;
      for (const [values, f] of checks) {
        const v = values[i];
        if (f.kind === "set") { if (!f.allowed.has(String(v))) { ok = false; break; } }
        else if (v === null || v < f.lo - 1e-9 * Math.abs(f.lo) || v > f.hi + 1e-9 * Math.abs(f.hi)) { ok = false; break; }
      }
      if (ok) out.push(i);
    }
    return out;
  }

  // ---- hover text naming every swept parameter ----
  function hoverText(i) {
    const lines = [`<b>${col("hardware")[i]}</b> · ${col("model")[i]}`];
    for (const name of swept) if (name !== "hardware" && name !== "model") lines.push(`${label(name)}: ${fmt(col(name)[i], name)}`);
    for (const m of [R.front[0].metric, R.front[1].metric, objective]) lines.push(`${label(m)}: ${fmt(col(m)[i], m)}`);
    return [...new Set(lines)].join("<br>");
  }

  // ---- the Pareto front ----
  const xm = R.front[0].metric, ym = R.front[1].metric;
  const xmax = R.front[0].direction === "maximize", ymax = R.front[1].direction === "maximize";
  const devices = has("hardware") ? [...new Set(col("hardware"))].sort() : [];
  const symbolOf = (d) => SYMBOLS[Math.max(0, devices.indexOf(d)) % SYMBOLS.length];

  function paretoFront(idx) {
    const x = col(xm), y = col(ym);
    const pts = idx.filter((i) => x[i] !== null && y[i] !== null);
    const sx = xmax ? -1 : 1, sy = ymax ? -1 : 1;
    pts.sort((a, b) => sx * (x[a] - x[b]) || sy * (y[a] - y[b]));
    const front = [];
    let best = Infinity;
    for (const i of pts) { const v = sy * y[i]; if (v < best) { front.push(i); best = v; } }
    return front;
  }

  document.getElementById("front-hint").textContent =
    `${label(ym)} against ${label(xm)}; color: prefetching; shape: device. The black line is the front of the rows the filters keep. Click a point for its breakdown.`;

  function drawFront(idx) {
    const x = col(xm), y = col(ym);
    const prefetch = col("prefetch");
    const groups = prefetch ? ["false", "true"] : ["all"];
    const traces = [];
    // the front's points are drawn once, in the front trace, so that a click there picks them
    const f = paretoFront(idx);
    const onFront = new Set(f);
    const rest = idx.filter((i) => !onFront.has(i));
    for (const g of groups) {
      const pts = prefetch ? rest.filter((i) => String(prefetch[i]) === g) : rest;
      if (!pts.length && prefetch) continue;
      traces.push({
        type: "scatter", mode: "markers", name: prefetch ? (g === "true" ? "prefetch on" : "prefetch off") : "configurations",
        x: pts.map((i) => x[i]), y: pts.map((i) => y[i]), customdata: pts, text: pts.map(hoverText),
        hovertemplate: "%{text}<extra></extra>",
        marker: { size: 8, opacity: 0.6, color: PREFETCH_COLORS[g] || "#1f77b4", symbol: pts.map((i) => symbolOf(col("hardware")[i])), line: { width: 0.5, color: "#333" } },
      });
    }
    traces.push({
      type: "scatter", mode: "lines+markers", name: "Pareto front", x: f.map((i) => x[i]), y: f.map((i) => y[i]),
      customdata: f, text: f.map(hoverText), hovertemplate: "%{text}<extra>Pareto front</extra>",
      line: { color: "black", width: 1.5, shape: "hv" },
      marker: { size: 11, color: f.map((i) => (prefetch ? PREFETCH_COLORS[String(prefetch[i])] : "#1f77b4")),
                symbol: f.map((i) => symbolOf(col("hardware")[i])), line: { width: 1.5, color: "black" } },
    });
    if (devices.length > 1) {
      for (const d of devices) traces.push({ type: "scatter", mode: "markers", x: [null], y: [null], name: `device: ${d}`, marker: { color: "#555", symbol: symbolOf(d), size: 9 }, hoverinfo: "skip" });
    }
    const layout = {
      margin: { l: 70, r: 20, t: 10, b: 90 }, xaxis: { title: { text: label(xm) }, zeroline: false },
      yaxis: { title: { text: label(ym) }, zeroline: false }, legend: { orientation: "h", y: -0.2 }, hovermode: "closest",
      template: "plotly_white", uirevision: "front",
    };
    Plotly.react("pareto", traces, layout, PLOT_CONFIG);
  }

  // ---- per-parameter plots ----
  function drawParameterPlots(idx) {
    const box = document.getElementById("param-plots");
    const params = R.parameters.filter((p) => p.name !== "prefetch" && !(p.kind === "set" && p.values.length < 2));
    const exact = perCost === objective
      ? "Unfiltered, each point is exact for the whole run (the report embeds the best row per value)."
      : `The report embeds the best row per value by ${objective}, so this metric's points are over the embedded rows.`;
    document.getElementById("param-hint").textContent =
      `The best ${label(perCost)} among the rows the filters keep, for each value of one parameter (the others free), with and without prefetching. ${exact}`;
    const chooser = document.getElementById("per-cost-metric");
    if (!chooser.options.length) {
      for (const m of perCostMetrics) chooser.append(el("option", { value: m, text: label(m) }));
      chooser.addEventListener("change", () => { perCost = chooser.value; drawParameterPlots(current); });
    }
    const y = col(perCost), prefetch = col("prefetch");
    for (const p of params) {
      let div = document.getElementById("param-" + p.name);
      if (!div) { div = el("div", { class: "param-plot", id: "param-" + p.name }); box.append(div); }
      const values = col(p.name);
      const numeric = p.kind === "range";
      const binned = numeric && !p.values.length;
      const keyOf = (v) => (binned ? Math.min(31, Math.floor((v - p.low) / ((p.high - p.low) || 1) * 32)) : String(v));
      const groups = prefetch ? ["false", "true"] : ["all"];
      const traces = [];
      for (const g of groups) {
        const best = new Map();
        for (const i of idx) {
          if (prefetch && String(prefetch[i]) !== g) continue;
          const v = y[i];
          if (v === null) continue;
          const k = keyOf(values[i]);
          const cur = best.get(k);
          if (cur === undefined || (maximize ? v > cur.v : v < cur.v) ) best.set(k, { v, x: binned ? p.low + (k + 0.5) * (p.high - p.low) / 32 : values[i] });
        }
        let entries = [...best.values()];
        if (numeric) entries.sort((a, b) => a.x - b.x);
        traces.push({
          type: numeric ? "scatter" : "bar", mode: "lines+markers", name: prefetch ? (g === "true" ? "prefetch on" : "prefetch off") : perCost,
          x: entries.map((e) => (numeric ? e.x : String(e.x))), y: entries.map((e) => e.v),
          marker: { color: PREFETCH_COLORS[g] || "#1f77b4" }, line: { color: PREFETCH_COLORS[g] || "#1f77b4" },
          hovertemplate: `${label(p.name)}: %{x}<br>${label(perCost)}: %{y:.4~g}<extra>%{fullData.name}</extra>`,
        });
      }
      const layout = {
        title: { text: label(p.name), font: { size: 13 } }, margin: { l: 60, r: 10, t: 34, b: 44 },
        xaxis: { title: { text: label(p.name), font: { size: 11 } }, type: numeric ? "linear" : "category" },
        yaxis: { title: { text: R.headers[perCost] || perCost, font: { size: 11 } } }, showlegend: true,
        legend: { orientation: "h", y: 1.12, x: 1, xanchor: "right", font: { size: 10 } }, barmode: "group", template: "plotly_white",
      };
      Plotly.react(div, traces, layout, PLOT_CONFIG);
    }
  }

  // ---- the table ----
  // a serving run ranks at its operating point: its serving columns, not the static batch's
  const metricCols = has("serving_ttft_ms")
    ? ["serving_ttft_ms", "serving_tpot_ms", "goodput_tok_s", "slo_max_concurrency", "system_cost_usd", "serving_power_w", "memory_GiB"]
    : ["ttft_ms", "tpot_ms", "throughput_tok_s", "system_cost_usd", "tok_s_per_kusd", "prefetch_speedup", "memory_GiB", "decode_bound"];
  const tableCols = ["hardware", ...swept.filter((n) => n !== "hardware"),
    ...[objective, xm, ym, ...metricCols]
      .filter((m, k, a) => has(m) && a.indexOf(m) === k && !swept.includes(m))];
  let sortBy = objective, sortAsc = !maximize;
  // a first click sorts best first: times, costs and memory ascending, the rest descending
  const lowerIsBetter = (name) => /_(ms|usd|GiB)$/.test(name);
  let shownRows = [];
  let choice = { A: null, B: null };
  let selected = null;

  function drawTable(idx) {
    const table = document.getElementById("best-table");
    const head = table.tHead, body = table.tBodies[0];
    const obj = col(objective);
    const best = idx.filter((i) => obj[i] !== null).sort((a, b) => (maximize ? obj[b] - obj[a] : obj[a] - obj[b])).slice(0, TABLE_ROWS);
    const s = col(sortBy);
    best.sort((a, b) => {
      const va = s[a], vb = s[b];
      const cmp = typeof va === "number" && typeof vb === "number" ? va - vb : String(va).localeCompare(String(vb));
      return sortAsc ? cmp : -cmp;
    });
    shownRows = best;
    document.getElementById("table-hint").textContent =
      `The ${best.length} best of ${idx.length} rows the filters keep, by ${objective} (${R.objective.direction}); click a header to sort, a row to see it, A/B to compare.`;
    head.innerHTML = "";
    const tr = el("tr", {}, el("th", { class: "text", text: "A" }), el("th", { class: "text", text: "B" }));
    for (const name of tableCols) {
      const th = el("th", { text: R.headers[name] || name, title: `${label(name)}${R.metric_help[name] ? ": " + R.metric_help[name] : ""}`, "data-col": name });
      if (typeof col(name)[0] !== "number") th.classList.add("text");
      if (name === sortBy) th.classList.add(sortAsc ? "sorted-asc" : "sorted-desc");
      th.addEventListener("click", () => { if (sortBy === name) sortAsc = !sortAsc; else { sortBy = name; sortAsc = typeof col(name)[0] !== "number" || lowerIsBetter(name); } drawTable(current); });
      tr.append(th);
    }
    head.append(tr);
    body.innerHTML = "";
    for (const i of best) {
      const row = el("tr", { "data-index": String(i) });
      if (i === selected) row.classList.add("selected");
      for (const which of ["A", "B"]) {
        const radio = el("input", { type: "radio", name: "compare-" + which, "aria-label": `compare as ${which}` });
        radio.checked = choice[which] === i;
        radio.addEventListener("click", (ev) => { ev.stopPropagation(); choice[which] = i; drawCompare(); });
        row.append(el("td", { class: "text" }, radio));
      }
      for (const name of tableCols) {
        const v = col(name)[i];
        row.append(el("td", { class: typeof v === "number" ? "" : "text", text: fmt(v, name) }));
      }
      row.addEventListener("click", () => select(i));
      body.append(row);
    }
  }

  // ---- details of one point ----
  function kvGrid(pairs) {
    const g = el("div", { class: "kv" });
    for (const [k, v] of pairs) g.append(el("span", { class: "k", text: k }), el("span", { text: v }));
    return g;
  }
  function breakdownTraces(d, phase) {
    // prefill (one pass, hundreds of ms) and decode (one step, a few ms) on their own linear axes
    const axis = phase === "prefill" ? "" : "2";
    return Object.entries(d[phase]).filter(([, ms]) => ms > 0).map(([kind, ms]) => ({
      type: "bar", orientation: "h", name: kind, legendgroup: kind, x: [ms], y: [phase === "prefill" ? "prefill pass" : "decode step"],
      xaxis: "x" + axis, yaxis: "y" + axis, marker: { color: R.kind_colors[kind] || "#7f7f7f" },
      hovertemplate: `${kind}: %{x:.4~g} ms<extra>${phase}</extra>`, showlegend: phase === "prefill" || !(kind in d.prefill),
    }));
  }
  function memoryOf(i) {
    const m = R.memory[col("_structure")[i]];
    if (!m) return null;
    const capacity = has("hbm_capacity_GiB") ? col("hbm_capacity_GiB")[i] : m.capacity_GiB;
    return { ...m, capacity_GiB: capacity };
  }

  function select(i) {
    selected = i;
    const box = document.getElementById("details");
    box.innerHTML = "";
    const row = rowId[i];
    box.append(el("h3", { text: `${col("hardware")[i]} · ${col("model")[i]} · row ${row} of the run` }));
    const pair = (n) => [label(n), fmt(col(n)[i], n)];
    const main = [...swept, ...tableCols.filter((n) => !swept.includes(n))].filter((n) => has(n) && n !== "hardware");
    box.append(kvGrid(main.map(pair)));
    const rest = [...R.parameter_names, ...R.metric_names].filter((n) => has(n) && !main.includes(n) && n !== "hardware");
    box.append(el("details", {}, el("summary", { text: "every column" }), kvGrid(rest.map(pair))));
    const d = R.details[String(row)];
    box.append(el("h3", { text: R.serving ? "Latency breakdown of the static batch (ms)" : "Latency breakdown (ms)" }));
    if (R.serving) {
      // the serving stage does not split its steps by operator kind: say what this breakdown is
      box.append(el("p", { class: "hint", id: "breakdown-serving", text: "The serving columns of this row are the engine at its operating point (" +
        R.serving + "). The breakdown below is the same configuration's static batch (" + (has("batch") ? `batch ${fmt(col("batch")[i], "batch")}` : "one batch") +
        ", roofline predict): its prefill pass and mean decode step, made of the same operators as the serving steps, which mix prefill chunks and decode tokens." }));
    }
    if (d) {
      const div = el("div", { class: "breakdown", id: "breakdown" });
      box.append(div);
      const base = has("baseline_tpot_ms") ? col("baseline_tpot_ms")[i] : null;
      Plotly.newPlot(div, [...breakdownTraces(d, "prefill"), ...breakdownTraces(d, "decode")], {
        barmode: "stack", height: 230, margin: { l: 90, r: 10, t: 6, b: 70 }, template: "plotly_white",
        legend: { orientation: "h", y: -0.3, yanchor: "top", font: { size: 10 } },
        yaxis: { domain: [0.62, 1] }, yaxis2: { domain: [0, 0.38] },
        xaxis: { anchor: "y", title: { text: "ms per prefill pass", font: { size: 10 }, standoff: 2 } },
        xaxis2: { anchor: "y2", title: { text: "ms per decode step", font: { size: 10 }, standoff: 2 } },
      }, PLOT_CONFIG);
      box.append(el("p", { class: "hint", text: "Prefill: one pass over the prompt batch (TTFT). Decode: the mean step (TPOT)" +
        (base !== null ? `; without prefetching the decode step takes ${fmt(base, "baseline_tpot_ms")} ms.` : ".") +
        (Object.keys(d.decode).concat(Object.keys(d.prefill)).some((k) => k.startsWith("HBM stall"))
          ? " An HBM stall is prefetch traffic that spilled past its collective, not a cost of prefetching: switched off, prefetching gives exactly the baseline." : "") }));
    } else {
      box.append(el("p", { class: "hint", id: "breakdown-missing", text: `Not computed for this point (the report computes ${c.details}: the front first, then the best rows); the command below gives it.` }));
    }
    const m = memoryOf(i);
    box.append(el("h3", { text: "Memory per device (GiB)" }));
    if (m) {
      const used = m.weights_GiB + m.kv_cache_GiB + m.activations_GiB;
      const div = el("div", { class: "memory", id: "memory" });
      box.append(div);
      Plotly.newPlot(div, [["weights", m.weights_GiB, "#1f77b4"], ["KV cache", m.kv_cache_GiB, "#ff7f0e"], ["activations", m.activations_GiB, "#2ca02c"]].map(([n, v, color]) => ({
        type: "bar", orientation: "h", name: n, x: [v], y: ["memory"], marker: { color }, hovertemplate: `${n}: %{x:.3~g} GiB<extra></extra>`,
      })), {
        barmode: "stack", margin: { l: 60, r: 10, t: 16, b: 50 }, height: 140, template: "plotly_white", legend: { orientation: "h", y: -0.45, yanchor: "top", font: { size: 10 } },
        xaxis: { range: [0, Math.max(m.capacity_GiB, used) * 1.05] },
        shapes: [{ type: "line", x0: m.capacity_GiB, x1: m.capacity_GiB, y0: -0.5, y1: 0.5, line: { color: "black", dash: "dash" } }],
        annotations: [{ x: m.capacity_GiB, y: 0.5, text: `HBM ${fmt(m.capacity_GiB)} GiB`, showarrow: false, yanchor: "bottom", xanchor: "right", font: { size: 10 } }],
      }, PLOT_CONFIG);
      box.append(el("p", { class: "hint", text: `${used <= m.capacity_GiB ? "fits" : "does not fit"}: ${fmt(used)} of ${fmt(m.capacity_GiB)} GiB (weights, KV cache at its longest, one prefill chunk of activations).` }));
    }
    box.append(el("h3", { text: "Reproduce" }));
    if (has("_serve_command")) {
      box.append(el("p", { class: "hint", text: "The serving columns (goodput, TTFT, TPOT at the operating point, the SLO limit), as roofline serve computes them: within about 0.2% (serve evaluates the step cost on a finer token grid than a sweep), and the SLO limit over every concurrency (a sweep tries 1, 2, 3, 4, 6, 8, 12, ...):" }),
        el("code", { id: "serve-command", text: col("_serve_command")[i] }),
        el("p", { class: "hint", text: "The static-batch columns and the breakdown above:" }));
    }
    box.append(el("code", { id: "predict-command", text: col("_command")[i] }));
    const a = el("button", { type: "button", text: "Compare as A" }), b = el("button", { type: "button", text: "Compare as B" });
    a.addEventListener("click", () => { choice.A = i; drawCompare(); drawTable(current); });
    b.addEventListener("click", () => { choice.B = i; drawCompare(); drawTable(current); });
    box.append(el("div", {}, a, b));
    for (const tr of document.querySelectorAll("#best-table tbody tr")) tr.classList.toggle("selected", +tr.dataset.index === i);
  }

  // ---- side by side ----
  function drawCompare() {
    const box = document.getElementById("compare");
    const { A, B } = choice;
    box.innerHTML = "";
    if (A === null || B === null) {
      box.append(el("p", { class: "hint", text: `Choose ${A === null ? "A" : "B"} in the table (or with the buttons under a selected point).` }));
      return;
    }
    const t = el("table", { id: "compare-table" });
    t.append(el("thead", {}, el("tr", {}, el("th", { text: "" }), el("th", { text: "A" }), el("th", { text: "B" }), el("th", { text: "B / A" }))));
    const body = el("tbody");
    for (const name of [...R.parameter_names, ...R.metric_names]) {
      if (!has(name)) continue;
      const va = col(name)[A], vb = col(name)[B];
      const ratio = typeof va === "number" && typeof vb === "number" && va !== 0 ? fmt(vb / va) : "";
      const tr = el("tr", {}, el("td", { text: label(name) }), el("td", { text: fmt(va, name) }), el("td", { text: fmt(vb, name) }), el("td", { text: ratio }));
      if (String(va) !== String(vb) && R.parameter_names.includes(name)) tr.classList.add("diff");
      body.append(tr);
    }
    t.append(body);
    box.append(t);
    const da = R.details[String(rowId[A])], db = R.details[String(rowId[B])];
    if (da && db) {
      const kinds = [...new Set([...Object.keys(da.decode), ...Object.keys(db.decode)])];
      const div = el("div", { class: "plot", id: "compare-breakdown", style: "height:300px" });
      box.append(el("h3", { text: "Decode step by operator kind (ms)" }), div);
      Plotly.newPlot(div, kinds.map((k) => ({ type: "bar", name: k, x: ["A", "B"], y: [da.decode[k] || 0, db.decode[k] || 0], marker: { color: R.kind_colors[k] || "#7f7f7f" } })),
        { barmode: "stack", margin: { l: 50, r: 10, t: 10, b: 30 }, template: "plotly_white", yaxis: { title: { text: "ms per decode step" } } }, PLOT_CONFIG);
    }
  }

  // ---- assumptions ----
  const dl = document.getElementById("assumptions");
  for (const [h, t] of R.assumptions) dl.append(el("dt", { text: h }), el("dd", { text: t }));

  // ---- wiring ----
  let current = [];
  function update() {
    current = filtered();
    document.getElementById("filtered-count").textContent = `${current.length.toLocaleString("en-US")} of ${N.toLocaleString("en-US")} embedded rows pass the filters.`;
    drawFront(current);
    drawParameterPlots(current);
    drawTable(current);
  }
  document.getElementById("reset-filters").addEventListener("click", () => { feasibleOnly = R.counts.feasible_rows > 0; buildFilters(); update(); });
  buildFilters();
  update();
  document.getElementById("pareto").on("plotly_click", (ev) => {
    const p = ev.points && ev.points[0];
    if (p && typeof p.customdata === "number") select(p.customdata);
  });
  window.roofline_report = { select, filtered: () => current, choice };
})();
