// blockserve's web page: models and their live figures, trying a model, its architecture,
// loading and unloading. Every request goes to this page's own origin.

const MERMAID_SRC = "/ui/static/vendor/mermaid-12.3.0.min.js";
const REFRESH_MS = 2500;
const HISTORY = 40;
const SKETCH_DEBOUNCE_MS = 150;
const FOLLOW_MS = 1000;
const FOLLOW_LIMIT = 180;
const TOKEN_KEY = "blockserve-token";

const $ = (selector) => document.querySelector(selector);

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

async function api(path, options = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const headers = new Headers(options.headers || {});
  if (token) headers.set("Authorization", `Bearer ${token}`);
  const response = await fetch(path, { ...options, headers });
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try {
      message = (await response.json()).error || message;
    } catch {
      // the body was not JSON: keep the status line
    }
    throw new Error(message);
  }
  return response;
}

const getJson = async (path) => (await api(path)).json();
const number = (value) => Number(value).toLocaleString("en-US");
const shape = (value) => (Array.isArray(value) ? `[${value.join(", ")}]` : String(value ?? ""));

// ---- tabs ----

const tabs = [...document.querySelectorAll('[role="tab"]')];
const onShow = {};

function selectTab(tab, focus = false) {
  for (const other of tabs) {
    const selected = other === tab;
    other.setAttribute("aria-selected", String(selected));
    other.tabIndex = selected ? 0 : -1;
    document.getElementById(other.getAttribute("aria-controls")).hidden = !selected;
  }
  if (focus) tab.focus();
  onShow[tab.id]?.();
}

for (const tab of tabs) {
  tab.addEventListener("click", () => selectTab(tab));
  tab.addEventListener("keydown", (event) => {
    const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
    if (step) {
      const next = tabs[(tabs.indexOf(tab) + step + tabs.length) % tabs.length];
      selectTab(next, true);
      event.preventDefault();
    } else if (event.key === "Home" || event.key === "End") {
      selectTab(event.key === "Home" ? tabs[0] : tabs[tabs.length - 1], true);
      event.preventDefault();
    }
  });
}

// ---- models and live figures ----

let models = [];
const history = new Map(); // "name@version" -> {last, series: {figure: [values]}}

const FIGURES = [
  ["rate", "requests/s", (v) => v.toFixed(1)],
  ["p50", "p50", (v) => `${(v * 1000).toFixed(1)} ms`],
  ["p99", "p99", (v) => `${(v * 1000).toFixed(1)} ms`],
  ["batch", "mean batch", (v) => v.toFixed(2)],
  ["queue", "queue depth", (v) => String(v)],
];

function quantile(previous, current, q) {
  const deltas = current.map(([le, count], i) => [le, count - (previous?.[i]?.[1] ?? 0)]);
  const total = deltas.length ? deltas[deltas.length - 1][1] : 0;
  if (total <= 0) return 0;
  const found = deltas.find(([, count]) => count >= q * total);
  const le = found ? found[0] : deltas[deltas.length - 1][0];
  return Number.isFinite(Number(le)) ? Number(le) : 0;
}

function figuresBetween(previous, current, seconds) {
  const requests = current.requests - (previous?.requests ?? current.requests);
  const batches = current.batches - (previous?.batches ?? current.batches);
  const images = current.images - (previous?.images ?? current.images);
  return {
    rate: previous && seconds > 0 ? requests / seconds : 0,
    p50: previous ? quantile(previous.latency_buckets, current.latency_buckets, 0.5) : 0,
    p99: previous ? quantile(previous.latency_buckets, current.latency_buckets, 0.99) : 0,
    batch: batches > 0 ? images / batches : 0,
    queue: current.queue_depth ?? 0,
  };
}

function sparkline(values, label) {
  const width = 100;
  const height = 20;
  const top = Math.max(...values, 1e-9);
  const step = width / Math.max(HISTORY - 1, 1);
  const offset = (HISTORY - values.length) * step;
  const points = values
    .map((v, i) => `${(offset + i * step).toFixed(1)},${(height - 1 - (v / top) * (height - 2)).toFixed(1)}`)
    .join(" ");
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("class", "spark");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `${label}, last ${values.length} samples`);
  const baseline = document.createElementNS(ns, "line");
  for (const [name, value] of Object.entries({ x1: 0, x2: width, y1: height - 0.5, y2: height - 0.5 })) {
    baseline.setAttribute(name, value);
  }
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", points);
  svg.append(baseline, line);
  return svg;
}

function recordFigures(snapshot) {
  for (const current of snapshot.models || []) {
    const key = `${current.name}@${current.version}`;
    const entry = history.get(key) || { last: null, time: 0, series: {} };
    const figures = figuresBetween(entry.last, current, snapshot.time - entry.time);
    for (const [figure] of FIGURES) {
      const series = (entry.series[figure] ||= []);
      series.push(figures[figure]);
      if (series.length > HISTORY) series.shift();
    }
    entry.current = figures;
    entry.last = current;
    entry.time = snapshot.time;
    history.set(key, entry);
  }
}

function batchingText(batching) {
  if (!batching) return "off";
  return Object.entries(batching)
    .map(([key, value]) => `${key.replaceAll("_", " ")} ${value}`)
    .join(", ");
}

function modelCard(model) {
  const key = `${model.name}@${model.version}`;
  const details = [
    ["version", model.version],
    ["format", model.format],
    ["device", model.device],
    ["instances", model.instances],
    ["batching", batchingText(model.batching)],
    ["weights", model.trained ? "trained" : "random init"],
    ["input", shape(model.input_shape)],
  ];
  const list = el("dl");
  for (const [term, value] of details) list.append(el("dt", {}, term), el("dd", {}, String(value ?? "–")));
  const card = el(
    "article",
    { class: "card", "aria-label": `Model ${key}` },
    el("h3", {}, model.name, " ", el("span", { class: `state state-${model.state}` }, model.state)),
    model.reason ? el("p", { class: "error" }, model.reason) : null,
    list,
  );
  const entry = history.get(key);
  if (entry?.current) {
    const figures = el("div", { class: "figures" });
    for (const [figure, label, format] of FIGURES) {
      figures.append(
        el("span", {}, label),
        el("strong", {}, format(entry.current[figure])),
        sparkline(entry.series[figure], label),
      );
    }
    card.append(figures);
  }
  return card;
}

async function refreshModels() {
  const status = $("#models-status");
  try {
    models = (await getJson("/models")).models;
    status.textContent = "";
  } catch (error) {
    status.textContent = `Could not list models: ${error.message}`;
    return;
  }
  try {
    recordFigures(await getJson("/ui/figures"));
  } catch (error) {
    status.textContent = `Live figures unavailable: ${error.message}`;
  }
  $("#model-cards").replaceChildren(...models.map(modelCard));
  fillModelPickers();
}

function fillModelPickers() {
  const names = [...new Set(models.filter((m) => m.state === "READY").map((m) => m.name))];
  for (const picker of [$("#try-model"), $("#arch-model")]) {
    const chosen = picker.value;
    const have = [...picker.options].map((option) => option.value);
    if (have.join() === names.join()) continue;
    picker.replaceChildren(...names.map((name) => el("option", { value: name }, name)));
    if (names.includes(chosen)) picker.value = chosen;
    picker.dispatchEvent(new Event("change"));
  }
}

// ---- try it ----

function bars(predictions) {
  const list = el("ol", { class: "bars" });
  for (const p of predictions) {
    const percent = Math.max(0, Math.min(100, p.score * 100));
    list.append(
      el(
        "li",
        {},
        el("span", { class: "label" }, p.label),
        el("span", { class: "bar", style: `width: ${percent}%`, role: "presentation" }),
        el("span", { class: "score" }, p.score.toFixed(3)),
      ),
    );
  }
  return list;
}

// One image, as a raw PNG body or as a multipart `files` part, to the chosen model.
async function predict(body, headers = {}) {
  const model = $("#try-model").value;
  const topK = $("#try-top-k").value || "3";
  const started = performance.now();
  const response = await api(
    `/predict?model=${encodeURIComponent(model)}&top_k=${encodeURIComponent(topK)}`,
    { method: "POST", headers, body },
  );
  const answer = await response.json();
  return { model, predictions: answer.predictions[0], milliseconds: performance.now() - started };
}

function filesPart(file) {
  const form = new FormData();
  form.append("files", file, file.name || "pasted.png");
  return form;
}

async function tryFiles(files) {
  const images = [...files].filter((file) => file.type.startsWith("image/"));
  const results = $("#try-results");
  results.replaceChildren();
  await Promise.all(
    images.map(async (file, index) => {
      const caption = el("figcaption", {}, file.name || `image ${index + 1}`);
      const figure = el("figure", { class: "result" }, el("img", { src: URL.createObjectURL(file), alt: "" }), caption);
      results.append(figure);
      try {
        const { model, predictions, milliseconds } = await predict(filesPart(file));
        caption.append(` — ${model}, ${milliseconds.toFixed(0)} ms`);
        figure.append(bars(predictions));
      } catch (error) {
        figure.append(el("p", { class: "error" }, error.message));
      }
    }),
  );
}

function setUpTry() {
  const zone = $("#drop-zone");
  $("#try-files").addEventListener("change", (event) => tryFiles(event.target.files));
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    tryFiles(event.dataTransfer.files);
  });
  document.addEventListener("paste", (event) => {
    if ($("#view-try").hidden) return;
    const files = [...event.clipboardData.items].map((item) => item.getAsFile()).filter(Boolean);
    if (files.length) tryFiles(files);
  });
  $("#try-model").addEventListener("change", showSketchIfDigits);
  setUpSketch();
}

function showSketchIfDigits() {
  const model = models.find((m) => m.name === $("#try-model").value);
  const input = (model?.input_shape || []).slice(-3);
  $("#sketch").hidden = input.join("x") !== "1x8x8";
}

// ---- drawing a digit ----

function setUpSketch() {
  const canvas = $("#sketch-canvas");
  const pen = canvas.getContext("2d");
  const clear = () => {
    pen.fillStyle = "#000";
    pen.fillRect(0, 0, canvas.width, canvas.height);
    $("#sketch-result").replaceChildren();
  };
  clear();
  let drawing = false;
  let timer = 0;
  const at = (event) => {
    const box = canvas.getBoundingClientRect();
    return [
      ((event.clientX - box.left) * canvas.width) / box.width,
      ((event.clientY - box.top) * canvas.height) / box.height,
    ];
  };
  canvas.addEventListener("pointerdown", (event) => {
    drawing = true;
    canvas.setPointerCapture(event.pointerId);
    pen.strokeStyle = "#fff";
    pen.lineWidth = canvas.width / 9;
    pen.lineCap = "round";
    pen.lineJoin = "round";
    pen.beginPath();
    pen.moveTo(...at(event));
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!drawing) return;
    pen.lineTo(...at(event));
    pen.stroke();
    clearTimeout(timer);
    timer = setTimeout(classifySketch, SKETCH_DEBOUNCE_MS);
  });
  const stop = () => {
    if (!drawing) return;
    drawing = false;
    clearTimeout(timer);
    classifySketch();
  };
  canvas.addEventListener("pointerup", stop);
  canvas.addEventListener("pointercancel", stop);
  $("#sketch-clear").addEventListener("click", clear);
}

let sketchRequest = 0;

async function classifySketch() {
  const small = el("canvas", { width: 8, height: 8 });
  const context = small.getContext("2d");
  context.imageSmoothingEnabled = true;
  context.imageSmoothingQuality = "high";
  context.drawImage($("#sketch-canvas"), 0, 0, 8, 8);
  const blob = await new Promise((resolve) => small.toBlob(resolve, "image/png"));
  const request = ++sketchRequest;
  const result = $("#sketch-result");
  try {
    const { predictions, milliseconds } = await predict(blob, { "Content-Type": "image/png" });
    if (request !== sketchRequest) return;
    result.replaceChildren(el("p", {}, `${milliseconds.toFixed(0)} ms`), bars(predictions));
  } catch (error) {
    if (request === sketchRequest) result.replaceChildren(el("p", { class: "error" }, error.message));
  }
}

// ---- architecture ----

let mermaidReady = null;
let diagramCount = 0;

function loadMermaid() {
  mermaidReady ||= new Promise((resolve, reject) => {
    const script = el("script", { src: MERMAID_SRC });
    script.onload = () => {
      window.mermaid.initialize({ startOnLoad: false, securityLevel: "strict", theme: "neutral" });
      resolve(window.mermaid);
    };
    script.onerror = () => reject(new Error("the diagram renderer did not load"));
    document.head.append(script);
  });
  return mermaidReady;
}

function summaryTotals(totals) {
  const lines = [
    `Total params: ${number(totals.total_params)}`,
    `Trainable params: ${number(totals.trainable_params)}`,
    `Non-trainable params: ${number(totals.non_trainable_params)}`,
    `Total mult-adds: ${number(totals.total_mult_adds)}`,
    `Params size (MB): ${Number(totals.params_mb).toFixed(2)}`,
    `Estimated total size (MB): ${Number(totals.total_mb).toFixed(2)}`,
  ];
  $("#arch-totals").replaceChildren(...lines.map((line) => el("li", {}, line)));
}

async function showArchitecture() {
  const name = $("#arch-model").value;
  const status = $("#arch-status");
  if (!name) return;
  $("#bundle-link").href = `/models/${encodeURIComponent(name)}/bundle`;
  status.textContent = `Loading the architecture of ${name}…`;
  try {
    const path = `/models/${encodeURIComponent(name)}/summary`;
    const [summary, source, mermaid] = await Promise.all([
      getJson(`${path}?format=json`),
      api(`${path}?format=mermaid`).then((response) => response.text()),
      loadMermaid(),
    ]);
    if ($("#arch-model").value !== name) return;
    summaryTotals(summary.totals);
    $("#arch-table tbody").replaceChildren(
      ...summary.rows.map((row) =>
        el(
          "tr",
          {},
          el("th", { scope: "row" }, row.name),
          el("td", {}, shape(row.output_shape)),
          el("td", {}, number(row.params)),
          el("td", {}, number(row.mult_adds)),
        ),
      ),
    );
    const { svg } = await mermaid.render(`diagram-${++diagramCount}`, source);
    $("#arch-diagram").innerHTML = svg;
    status.textContent = `${name}: ${summary.rows.length} layers.`;
  } catch (error) {
    status.textContent = `Could not show ${name}: ${error.message}`;
  }
}

// ---- manage ----

async function fillArchitectures() {
  const picker = $("#manage-arch");
  if (picker.options.length) return;
  try {
    const registry = await getJson("/registry");
    picker.replaceChildren(...registry.architectures.map((a) => el("option", { value: a.name }, a.name)));
  } catch (error) {
    $("#manage-status").textContent = `Could not read the registry: ${error.message}`;
  }
}

let following = 0;

// Follows `name` in the model list (no 404 once it is unloaded) until `done(entry)`.
async function follow(name, done) {
  const run = ++following;
  const status = $("#manage-status");
  for (let attempt = 0; attempt < FOLLOW_LIMIT && run === following; attempt += 1) {
    try {
      const listed = (await getJson("/models")).models.filter((m) => m.name === name);
      const entry = listed[listed.length - 1];
      const reason = entry?.reason ? ` — ${entry.reason}` : "";
      status.textContent = entry ? `${name}: ${entry.state}${reason}` : `${name}: not loaded`;
      if (done(entry)) break;
    } catch (error) {
      status.textContent = `${name}: ${error.message}`;
    }
    await new Promise((resolve) => setTimeout(resolve, FOLLOW_MS));
  }
  refreshModels();
}

function setUpManage() {
  const token = $("#token");
  token.value = sessionStorage.getItem(TOKEN_KEY) || "";
  token.addEventListener("input", () => sessionStorage.setItem(TOKEN_KEY, token.value));
  const status = $("#manage-status");
  $("#load-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = $("#manage-name").value.trim();
    const config = JSON.stringify({ arch: $("#manage-arch").value });
    status.textContent = `Loading ${name}…`;
    try {
      await api(`/v2/repository/models/${encodeURIComponent(name)}/load`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ parameters: { config } }),
      });
      follow(name, (entry) => entry?.state === "READY" || entry?.state === "FAILED");
    } catch (error) {
      status.textContent = `Load of ${name} failed: ${error.message}`;
    }
  });
  $("#unload").addEventListener("click", async () => {
    const name = $("#manage-name").value.trim();
    if (!name) {
      status.textContent = "Enter the name of the model to unload.";
      return;
    }
    status.textContent = `Unloading ${name}…`;
    try {
      await api(`/v2/repository/models/${encodeURIComponent(name)}/unload`, { method: "POST" });
      follow(name, (entry) => !entry || !["READY", "UNLOADING"].includes(entry.state));
    } catch (error) {
      status.textContent = `Unload of ${name} failed: ${error.message}`;
    }
  });
}

// ---- start ----

onShow["tab-architecture"] = showArchitecture;
onShow["tab-manage"] = fillArchitectures;
onShow["tab-try"] = showSketchIfDigits;
$("#arch-model").addEventListener("change", () => {
  if (!$("#view-architecture").hidden) showArchitecture();
});
setUpTry();
setUpManage();
refreshModels();
setInterval(refreshModels, REFRESH_MS);
