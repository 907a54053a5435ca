// The console's pages: the jobs list and a job's page, routed by the URL path.
"use strict";

const ROOT = document.body.dataset.root;
const POLL_MS = 3000;
const ACTION_HEADERS = { "Content-Type": "application/json", "X-Requested-By": "gemini-tuning-console" };
let CONFIG = null;

// -- helpers ----------------------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  node.append(...children.flat(Infinity).filter((c) => c !== null && c !== undefined).map(
    (c) => (c instanceof Node ? c : document.createTextNode(String(c)))));
  return node;
}

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, options) {
  let response;
  try {
    response = await fetch(`${ROOT}/api${path}`, { credentials: "same-origin", ...options });
  } catch (error) {
    throw new ApiError(0, `The Airflow API server did not answer (${error.message}).`);
  }
  if (response.ok) return options && options.stream ? response : response.json();
  let message = `${response.status} ${response.statusText}`;
  try { message = (await response.json()).error || message; } catch (_) { /* not JSON */ }
  throw new ApiError(response.status, message);
}

function showMessage(error) {
  const box = document.getElementById("message");
  if (!error) { box.hidden = true; return; }
  box.hidden = false;
  if (error.status === 401) {
    box.replaceChildren("You are not logged in to Airflow. ",
      h("a", { href: `${CONFIG ? CONFIG.airflowRoot : ""}/`, target: "_top" }, "Log in"), " and come back.");
  } else {
    box.replaceChildren(error.message);
  }
}

const airflowUrl = (path) => `${CONFIG.airflowRoot}${path}`;
const stateName = (state) => (state || "").replace("JOB_STATE_", "");
const badge = (state) => h("span", { class: `state state-${stateName(state).toLowerCase()}`, "data-state": state },
  stateName(state));

function when(text) {
  if (!text) return "—";
  const date = new Date(text);
  return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

function dagRunLink(run) {
  if (!run) return "—";
  return h("a", { target: "_top", href: airflowUrl(`/dags/${encodeURIComponent(run.dagId)}/runs/${encodeURIComponent(run.runId)}`) },
    `${run.dagId} / ${run.runId}`);
}

const jobHref = (id) => `${ROOT}/jobs/${encodeURIComponent(id)}`;

/** Run `step` now and every POLL_MS until it returns false; errors show and polling goes on. */
function poll(step) {
  let timer = null;
  const tick = async () => {
    let again = true;
    try { again = await step(); showMessage(null); } catch (error) { showMessage(error); }
    if (again !== false) timer = setTimeout(tick, POLL_MS);
  };
  tick();
  return { now() { clearTimeout(timer); tick(); } };
}

// -- the jobs list ----------------------------------------------------------------------------

function jobsPage(main) {
  const query = new URLSearchParams(location.search);
  const stateSelect = h("select", { name: "state", "aria-label": "State" }, h("option", { value: "" }, "Any state"),
    CONFIG.states.map((s) => h("option", { value: s, selected: query.get("state") === s }, stateName(s))));
  const form = h("form", { class: "filters", method: "get", action: `${ROOT}/` },
    h("label", {}, "State ", stateSelect),
    h("label", {}, "Label ", h("input", { name: "label", placeholder: "key or key=value", value: query.get("label") || "" })),
    h("label", {}, "Display name ", h("input", { name: "q", type: "search", placeholder: "contains…", value: query.get("q") || "" })),
    h("button", { type: "submit" }, "Apply"),
    h("a", { href: `${ROOT}/` }, "Clear"));
  const body = h("tbody", {}, h("tr", {}, h("td", { colspan: 8, class: "muted" }, "Loading…")));
  const pager = h("div", { class: "pager" });
  main.replaceChildren(h("h1", {}, "Tuning jobs"), form,
    h("table", { class: "jobs" }, h("thead", {}, h("tr", {}, ["Display name", "Base model", "State", "Created",
      "Duration", "Epochs", "Adapter", "DAG run"].map((c) => h("th", {}, c)))), body), pager);

  const params = new URLSearchParams();
  for (const key of ["state", "label", "q", "page"]) if (query.get(key)) params.set(key, query.get(key));
  poll(async () => {
    const page = await api(`/jobs?${params}`);
    body.replaceChildren(...(page.jobs.length ? page.jobs.map((job) => h("tr", { "data-job": job.id },
      h("td", {}, h("a", { href: jobHref(job.id) }, job.displayName || job.id)),
      h("td", {}, job.baseModel || "—"),
      h("td", {}, badge(job.state)),
      h("td", {}, when(job.createTime)),
      h("td", {}, duration(job.durationSeconds)),
      h("td", {}, job.epochCount ?? "auto"),
      h("td", {}, (job.adapterSize || "auto").replace("ADAPTER_SIZE_", "").toLowerCase()),
      h("td", {}, dagRunLink(job.dagRun)))) : [h("tr", {}, h("td", { colspan: 8, class: "muted" }, "No tuning jobs match."))]));
    const links = [];
    if (query.get("page")) links.push(h("a", { href: "javascript:history.back()" }, "← Previous page"));
    if (page.next) {
      const next = new URLSearchParams(params);
      next.set("page", page.next);
      links.push(h("a", { href: `${ROOT}/?${next}`, rel: "next" }, "Next page →"));
    }
    pager.replaceChildren(...links);
    return true;  // keep the list live: new jobs and state changes appear without a reload
  });
}

// -- a job's page -----------------------------------------------------------------------------

function fields(pairs) {
  return h("dl", { class: "fields" }, pairs.filter(([, v]) => v !== undefined && v !== null && v !== "")
    .map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

function distribution(d) {
  if (!d) return undefined;
  const num = (v) => (v === undefined ? "—" : Number(v).toLocaleString(undefined, { maximumFractionDigits: 1 }));
  return `mean ${num(d.mean)}, median ${num(d.median)}, min ${num(d.min)}, max ${num(d.max)}, p5 ${num(d.p5)}, p95 ${num(d.p95)}`;
}

function section(title, ...content) {
  return h("section", { class: "card" }, h("h2", {}, title), ...content);
}

function renderJob(job, parts) {
  const c = job.console;
  const spec = job.supervisedTuningSpec || {};
  const hyper = spec.hyperParameters || {};
  const stats = (job.tuningDataStats || {}).supervisedTuningDataStats;
  parts.title.replaceChildren(job.tunedModelDisplayName || c.id, " ", badge(c.state));
  const links = [
    c.dagRun && h("a", { target: "_top", href: airflowUrl(`/dags/${encodeURIComponent(c.dagRun.dagId)}/runs/${encodeURIComponent(c.dagRun.runId)}`) }, "DAG run"),
    c.vertexUrl && h("a", { target: "_blank", rel: "noopener", href: c.vertexUrl }, "Job in Vertex AI"),
  ];
  parts.links.replaceChildren(...links.filter(Boolean));
  const cancellable = !(c.ended || c.state === "JOB_STATE_CANCELLING");
  if (!cancellable) parts.confirm.hidden = true;
  parts.cancel.hidden = !cancellable || !parts.confirm.hidden;

  const cards = [
    section("Job", fields([
      ["Job", job.name], ["Base model", job.baseModel], ["Description", job.description],
      ["Created", when(job.createTime)], ["Started", job.startTime && when(job.startTime)],
      ["Ended", job.endTime && when(job.endTime)], ["Duration", duration(c.durationSeconds)],
      ["Labels", job.labels && Object.entries(job.labels).map(([k, v]) => h("code", { class: "label" }, `${k}=${v}`))],
      ["Experiment", job.experiment], ["DAG run", c.dagRun ? dagRunLink(c.dagRun) : undefined],
    ])),
    section("Training", fields([
      ["Training data", spec.trainingDatasetUri], ["Validation data", spec.validationDatasetUri],
      ["Epochs", hyper.epochCount ?? "recommended"], ["Adapter size", hyper.adapterSize ?? "recommended"],
      ["Learning-rate multiplier", hyper.learningRateMultiplier ?? "recommended"],
      ["Export last checkpoint only", spec.exportLastCheckpointOnly === undefined ? undefined : String(spec.exportLastCheckpointOnly)],
    ])),
  ];
  if (job.error) cards.push(h("section", { class: "card error" }, h("h2", {}, "Error"),
    h("p", {}, `${job.error.message || "no message"}`), job.error.code ? h("p", { class: "muted" }, `code ${job.error.code}`) : null));
  if (stats) cards.push(section("Data statistics", fields([
    ["Examples", stats.tuningDatasetExampleCount], ["Characters", stats.totalTuningCharacterCount],
    ["Billable tokens", stats.totalBillableTokenCount], ["Tuning steps", stats.tuningStepCount],
    ["Truncated examples", stats.totalTruncatedExampleCount],
    ["Input tokens per example", distribution(stats.userInputTokenDistribution)],
    ["Output tokens per example", distribution(stats.userOutputTokenDistribution)],
    ["Messages per example", distribution(stats.userMessagePerExampleDistribution)],
  ])));
  if (job.tunedModel) {
    const checkpoints = job.tunedModel.checkpoints || [];
    cards.push(section("Tuned model", fields([["Model", job.tunedModel.model], ["Endpoint", job.tunedModel.endpoint]]),
      checkpoints.length ? h("table", { class: "small" }, h("thead", {}, h("tr", {}, ["Checkpoint", "Epoch", "Step", "Endpoint"].map((t) => h("th", {}, t)))),
        h("tbody", {}, checkpoints.map((k) => h("tr", {}, h("td", {}, k.checkpointId), h("td", {}, k.epoch ?? "—"), h("td", {}, k.step ?? "—"), h("td", {}, k.endpoint ?? "—"))))) : null));
  }
  if (c.archive) cards.push(section("Archive", h("ul", {}, Object.entries(c.archive).map(([name, uri]) =>
    h("li", {}, h("code", {}, uri))))));
  cards.push(h("details", { class: "card" }, h("summary", {}, "The job as the backend returns it (JSON)"),
    h("pre", {}, JSON.stringify(Object.fromEntries(Object.entries(job).filter(([k]) => k !== "console")), null, 2))));
  parts.details.replaceChildren(...cards);
}

function renderCurves(metrics, host) {
  const s = metrics.series;
  const line = (label, key, color, dashed) => ({ label, points: s[key] || [], color, dashed });
  const loss = h("div", { class: "chart", "data-chart": "loss" });
  const accuracy = h("div", { class: "chart", "data-chart": "accuracy" });
  lineChart(loss, "Loss", [line("train", "/train_total_loss", "#2563eb", false),
    line("validation", "/eval_total_loss", "#ea580c", true)], (v) => v.toPrecision(3));
  lineChart(accuracy, "Next-token accuracy", [line("train", "/train_fraction_of_correct_next_step_preds", "#2563eb", false),
    line("validation", "/eval_fraction_of_correct_next_step_preds", "#ea580c", true)], (v) => `${Math.round(v * 100)}%`, [0, 1]);
  host.replaceChildren(loss, accuracy);
}

function tryPanel(jobId, job) {
  const inputs = {};
  const settings = CONFIG.trySettings.map((s) => {
    const range = h("input", { type: "range", min: s.min, max: s.max, step: s.step, value: s.default, "aria-label": s.label });
    const number = h("input", { type: "number", min: s.min, max: s.max, step: s.step, value: s.default, name: s.key });
    range.addEventListener("input", () => { number.value = range.value; });
    number.addEventListener("input", () => { range.value = number.value; });
    inputs[s.key] = number;
    return h("label", { class: "setting" }, h("span", {}, s.label, h("small", {}, ` ${s.min}–${s.max}`)), range, number);
  });
  const system = h("textarea", { name: "systemInstruction", rows: 2, placeholder: "Optional, e.g. Classify the message." });
  const prompt = h("textarea", { name: "prompt", rows: 3, placeholder: "Your prompt" });
  const columns = [["tuned", "Tuned model", job.tunedModel.endpoint], ["base", "Base model", job.baseModel]].map(
    ([target, title, model]) => {
      const text = h("div", { class: "answer-text", "data-answer": target });
      const stats = h("div", { class: "answer-stats muted" });
      return { target, text, stats, node: h("div", { class: "answer" }, h("h3", {}, title), h("code", { class: "model" }, model), text, stats) };
    });
  const send = h("button", { type: "submit", class: "primary" }, "Send");

  async function ask(column, body) {
    column.text.textContent = "";
    column.text.classList.add("pending");
    column.stats.textContent = "Waiting for the answer…";
    try {
      const response = await api(`/jobs/${encodeURIComponent(jobId)}/try`, { method: "POST", headers: ACTION_HEADERS,
        body: JSON.stringify({ ...body, target: column.target }), stream: true });
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n")) >= 0) {
          const event = JSON.parse(buffer.slice(0, cut));
          buffer = buffer.slice(cut + 1);
          if (event.text) column.text.textContent += event.text;
          if (event.error) { column.stats.textContent = ""; column.text.append(h("p", { class: "error-text" }, event.error)); }
          if (event.done) {
            const d = event.done;
            column.stats.textContent = [`prompt ${d.promptTokens ?? "?"} tokens`, `answer ${d.answerTokens ?? "?"} tokens`,
              d.streamed ? `first chunk ${d.firstChunkMs} ms` : null, `total ${d.totalMs} ms`,
              d.finishReason ? `finish ${d.finishReason}` : null, d.streamed ? "streamed" : "not streamed by this backend"]
              .filter(Boolean).join(" · ");
            column.node.dataset.done = "true";
          }
        }
      }
    } catch (error) {
      column.stats.textContent = "";
      column.text.append(h("p", { class: "error-text" }, error.message));
    } finally {
      column.text.classList.remove("pending");
    }
  }

  const form = h("form", { class: "try", onsubmit: async (event) => {
    event.preventDefault();
    const values = {};
    for (const [key, input] of Object.entries(inputs)) values[key] = Number(input.value);
    const body = { prompt: prompt.value, systemInstruction: system.value, settings: values };
    send.disabled = true;
    columns.forEach((c) => delete c.node.dataset.done);
    await Promise.all(columns.map((c) => ask(c, body)));
    send.disabled = false;
  } },
  h("label", {}, "System instruction", system), h("label", {}, "Prompt", prompt),
  h("div", { class: "settings" }, settings), h("div", {}, send));
  return section("Try the model", form, h("div", { class: "answers" }, columns.map((c) => c.node)));
}

function jobPage(main, jobId) {
  const parts = {
    title: h("h1", {}, jobId),
    links: h("span", { class: "links" }),
    cancel: h("button", { class: "danger", hidden: true }, "Cancel job"),
    really: h("button", { class: "danger solid" }, "Yes, cancel the job"),
    keep: h("button", {}, "Keep training"),
    details: h("div", { class: "grid" }),
    curves: h("div", { class: "curves" }),
    progress: h("span", { class: "muted progress" }),
    tryHost: h("div"),
  };
  parts.confirm = h("div", { class: "confirm", role: "alertdialog", hidden: true },
    h("span", {}, "Cancel this tuning job? Training stops and cannot be resumed; the curves so far are kept."),
    parts.really, parts.keep);
  main.replaceChildren(h("p", {}, h("a", { href: `${ROOT}/` }, "← All jobs")),
    h("div", { class: "title-row" }, parts.title, h("span", { class: "actions" }, parts.links, parts.cancel)),
    parts.confirm,
    h("section", { class: "card" }, h("h2", {}, "Curves ", parts.progress), parts.curves), parts.tryHost, parts.details);

  let tried = false;
  const watcher = poll(async () => {
    const [job, metrics] = await Promise.all([api(`/jobs/${encodeURIComponent(jobId)}`), api(`/jobs/${encodeURIComponent(jobId)}/metrics`)]);
    renderJob(job, parts);
    renderCurves(metrics, parts.curves);
    const trained = (metrics.series["/train_total_loss"] || []).slice(-1)[0];
    const total = ((job.tuningDataStats || {}).supervisedTuningDataStats || {}).tuningStepCount;
    parts.progress.textContent = trained ? `step ${trained[0]}${total ? ` of ${total}` : ""}` : "";
    if (!tried && job.console.state === "JOB_STATE_SUCCEEDED" && job.tunedModel && job.tunedModel.endpoint) {
      parts.tryHost.replaceChildren(tryPanel(jobId, job));
      tried = true;
    }
    return !(job.console.ended && metrics.ended);  // an ended job's page stops polling
  });

  // Airflow's frame does not allow the browser's own dialogs (no allow-modals): confirm in the page.
  parts.cancel.addEventListener("click", () => { parts.confirm.hidden = false; parts.cancel.hidden = true; });
  parts.keep.addEventListener("click", () => { parts.confirm.hidden = true; parts.cancel.hidden = false; });
  parts.really.addEventListener("click", async () => {
    parts.really.disabled = true;
    try {
      await api(`/jobs/${encodeURIComponent(jobId)}/cancel`, { method: "POST", headers: ACTION_HEADERS });
      showMessage(null);
      parts.confirm.hidden = true;
    } catch (error) {
      showMessage(error);
    } finally {
      parts.really.disabled = false;
    }
    watcher.now();
  });
}

// -- start ------------------------------------------------------------------------------------

(async () => {
  const main = document.getElementById("main");
  try {
    CONFIG = await api("/config");
  } catch (error) {
    main.replaceChildren();
    showMessage(error);
    return;
  }
  document.getElementById("new-run").href = airflowUrl(`/dags/${CONFIG.tuningDagId}`);
  document.getElementById("new-run").title = `Opens ${CONFIG.tuningDagId}: press Trigger there for the form`;
  const match = location.pathname.match(/\/jobs\/([^/]+)\/?$/);
  if (match) jobPage(main, decodeURIComponent(match[1]));
  else jobsPage(main);
})();
