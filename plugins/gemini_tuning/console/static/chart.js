// A small SVG line chart: train as a line, validation as a dashed line with dots, shared x = step.
"use strict";

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  return node;
}

/** Round tick values covering [min, max]; `whole` keeps the step a whole number (training steps). */
function niceTicks(min, max, count, whole) {
  if (min === max) { min -= 1; max += 1; }
  const raw = (max - min) / count;
  const magnitude = Math.pow(10, Math.floor(Math.log10(raw)));
  let step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw);
  if (whole) step = Math.max(1, Math.round(step));
  const ticks = [];
  for (let t = Math.floor(min / step) * step; t < max + step * 0.999; t += step) ticks.push(+t.toFixed(10));
  return ticks;
}

/**
 * Draw `lines` ([{label, points: [[step, value]], color, dashed}]) into `host`, replacing what was there.
 * `yRange` ([min, max]) fixes the value axis, e.g. [0, 1] for a fraction; otherwise it fits the data.
 */
function lineChart(host, title, lines, format, yRange) {
  const width = 460, height = 240, left = 52, right = 12, top = 28, bottom = 34;
  const all = lines.flatMap((line) => line.points);
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title });
  const heading = svg("text", { x: left, y: 16, class: "chart-title" });
  heading.textContent = title;
  root.append(heading);
  if (!all.length) {
    const empty = svg("text", { x: width / 2, y: height / 2, class: "chart-empty", "text-anchor": "middle" });
    empty.textContent = "No points yet";
    root.append(empty);
    host.replaceChildren(root);
    return;
  }
  const xs = all.map((p) => p[0]), ys = all.map((p) => p[1]);
  const xTicks = niceTicks(Math.min(...xs), Math.max(...xs), 5, true);
  const yTicks = yRange ? niceTicks(yRange[0], yRange[1], 4) : niceTicks(Math.min(...ys), Math.max(...ys), 4);
  const [x0, x1] = [xTicks[0], xTicks[xTicks.length - 1]];  // the ticks span the data
  const [y0, y1] = [yTicks[0], yTicks[yTicks.length - 1]];
  const x = (v) => left + ((v - x0) / (x1 - x0 || 1)) * (width - left - right);
  const y = (v) => height - bottom - ((v - y0) / (y1 - y0 || 1)) * (height - top - bottom);

  for (const t of yTicks) {
    root.append(svg("line", { x1: left, x2: width - right, y1: y(t), y2: y(t), class: "gridline" }));
    const label = svg("text", { x: left - 6, y: y(t) + 4, "text-anchor": "end", class: "tick" });
    label.textContent = format(t);
    root.append(label);
  }
  for (const t of xTicks) {
    const label = svg("text", { x: x(t), y: height - bottom + 16, "text-anchor": "middle", class: "tick" });
    label.textContent = String(t);
    root.append(label);
  }
  const axis = svg("text", { x: width - right, y: height - 4, "text-anchor": "end", class: "tick" });
  axis.textContent = "step";
  root.append(axis);

  let legendX = width - right;
  for (const line of [...lines].reverse()) {
    const label = svg("text", { x: legendX, y: 16, "text-anchor": "end", class: "legend" });
    label.textContent = `${line.label} (${line.points.length})`;
    root.append(label);
    legendX -= 8 + label.textContent.length * 6.4;
    root.append(svg("line", { x1: legendX, x2: legendX + 14, y1: 12, y2: 12, stroke: line.color,
      "stroke-width": 2, "stroke-dasharray": line.dashed ? "4 3" : "" }));
    legendX -= 10;
  }
  for (const line of lines) {
    if (!line.points.length) continue;
    const d = line.points.map((p, i) => `${i ? "L" : "M"}${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`).join("");
    root.append(svg("path", { d, fill: "none", stroke: line.color, "stroke-width": 2,
      "stroke-dasharray": line.dashed ? "5 4" : "", class: "series", "data-series": line.label }));
    if (line.dashed || line.points.length === 1) {
      for (const p of line.points) root.append(svg("circle", { cx: x(p[0]), cy: y(p[1]), r: 3, fill: line.color }));
    }
  }
  host.replaceChildren(root);
}
