// The page around the wasm module (web-demo/src/lib.rs). Everything numeric happens in Rust.
import init, { WebDemo } from "./pkg/lavit_web_demo.js";

const $ = (id) => document.getElementById(id);
const state = { task: "", demo: null, image: null, imageBytes: null, scene: null, results: null, timer: null,
  trained: null };
// The students that answer: the two shipped ones, and the one trained here once there is one.
const students = () => ["baseline", "lavit", ...(state.trained ? ["trained"] : [])];
const files = (dir, names) => names.map((f) => `model/${dir}/${f}`);

function status(text, error = false) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
  // Exposed for tests and for people who open the console (the last 100 in `lavitStatusLog`).
  window.lavitStatus = { text, error };
  const log = (window.lavitStatusLog ??= []);
  if (log.push(text) > 100) log.shift();
}

// Fetches every path, reporting the bytes received so far over the total to `progress`.
async function fetchAll(paths, label) {
  const responses = await Promise.all(paths.map(async (p) => {
    const r = await fetch(p);
    if (!r.ok) throw new Error(`${p}: HTTP ${r.status}`);
    return r;
  }));
  // Content-Length is the encoded size when the server compresses; the bar then only moves.
  const total = responses.reduce((n, r) => n + (+r.headers.get("content-length") || 0), 0);
  let got = 0;
  const bar = $("progress");
  return Promise.all(responses.map(async (r) => {
    const reader = r.body.getReader(), chunks = [];
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      got += value.length;
      bar.max = Math.max(total, got);
      bar.value = got;
      status(`${label}… ${(got / 1e6).toFixed(1)} MB`);
    }
    const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    let at = 0;
    for (const c of chunks) { out.set(c, at); at += c.length; }
    return out;
  }));
}

// The module's bindings, for the test (it times calls into the module).
window.lavitWebDemo = WebDemo;

// When each phase of loading ended (ms since the page opened), for the page and its test.
const phases = {};
window.lavitPhases = phases;
const mark = (name) => { phases[name] = Math.round(performance.now()); };

async function load() {
  try {
    const [wasm] = await fetchAll(["pkg/lavit_web_demo_bg.wasm"], "downloading the wasm module");
    status("compiling the wasm module…");
    mark("wasm downloaded");
    await init({ module_or_path: wasm });
    mark("wasm compiled");
    const studentFiles = ["config.json", "model.safetensors", "lavit_heads.safetensors", "tokenizer.json"];
    const bytes = await fetchAll([
      ...files("baseline", studentFiles), ...files("lavit", studentFiles),
      ...files("teacher", ["config.json", "model.safetensors", "tokenizer.json"]),
      "model/task.json",
    ], "downloading the models");
    // The synthetic task the teacher was trained on: the scenes are drawn from it.
    state.task = new TextDecoder().decode(bytes[11]);
    mark("models downloaded");
    // WebGPU when the browser has it (?backend=cpu forces the CPU backend), else the CPU
    // backend; the reason for a fallback is shown.
    const preferGpu = new URLSearchParams(location.search).get("backend") !== "cpu";
    status("starting the backend…");
    state.demo = await WebDemo.create(preferGpu && "gpu" in navigator);
    mark("backend started");
    state.demo.add_student("baseline", ...bytes.slice(0, 4));
    state.demo.add_student("lavit", ...bytes.slice(4, 8));
    state.demo.add_teacher(...bytes.slice(8, 11));
    mark("models loaded");
    $("backend").textContent = state.demo.backend();
    const why = state.demo.fallback_reason();
    if (why) fallbackNotice(preferGpu, why);
    window.lavitBackend = state.demo.backend();
    await newScene();
    // The first answer doubles as the warm-up: it compiles the GPU kernels the later
    // questions reuse.
    await ask(true);
    const ms = performance.now();
    window.lavitFirstAnswerMs = ms;
    $("ttfa").textContent = `First answer ${(ms / 1000).toFixed(1)} s after the page opened ` +
      `(download, load, kernel compilation and three models answering).`;
    $("progress").hidden = true;
    $("trainStart").disabled = false;
  } catch (e) {
    status(`failed to load: ${e.message ?? e}`, true);
  }
}

// Why the students run on the CPU, in one plain sentence; the backend's own words on demand.
function fallbackNotice(preferGpu, why) {
  const text = !preferGpu ? "The students run on the CPU, as the address asks (?backend=cpu)."
    : !("gpu" in navigator) ? "The students run on the CPU: this browser has no WebGPU."
    : "The students run on the CPU: this browser has WebGPU, but it offered no graphics adapter " +
      "(WebGPU may be switched off, or unsupported on this device).";
  $("fallbackText").textContent = text;
  $("fallbackWhy").textContent = why;
  $("fallback").hidden = false;
  window.lavitFallback = text;
}

async function showImage(bytes, scene = null) {
  state.image = await createImageBitmap(new Blob([bytes]));
  state.imageBytes = bytes;
  state.scene = scene;
  state.results = null;
  for (const n of ["teacher", ...students()]) $(`answer-${n}`).textContent = "";
  $("truth").textContent = scene ? `ground truth: ${scene.key}` : "";
  $("timing").textContent = "";
  $("teacherSteps").textContent = "";
  $("step").max = 0;
  $("stepLabel").textContent = "–";
  $("play").disabled = true;
  draw();
}

async function newScene() {
  const seed = BigInt(Math.max(0, parseInt($("seed").value || "0", 10)));
  const scene = JSON.parse(WebDemo.scene_json(seed, state.task));
  const png = WebDemo.scene_png(seed, state.task);
  window.lavitPng = png;
  window.lavitScene = scene;
  $("question").value = scene.question;
  await showImage(png, scene);
}

function verdict(answer) {
  if (!state.scene) return "";
  return WebDemo.key_of(answer) === state.scene.key ? ' <span class="ok">✓</span>' : ' <span class="bad">✗</span>';
}

async function ask(first = false) {
  const q = $("question").value;
  if (!state.imageBytes) return status("choose a scene or upload an image first", true);
  try {
    WebDemo.check_question(q);
  } catch (e) {
    return status(e.message ?? String(e), true);
  }
  // The first answer on WebGPU compiles the GPU kernels (seconds on a software adapter): the
  // status counts the seconds and the bar sweeps until it is done.
  const compiling = first && state.demo.backend().startsWith("webgpu");
  let label = "", tick = null;
  try {
    $("ask").disabled = true;
    if (compiling) {
      const t0 = performance.now();
      $("progress").removeAttribute("value");
      tick = setInterval(() => status(`${label} — ${((performance.now() - t0) / 1000).toFixed(0)} s`), 500);
    }
    const results = {}, times = {};
    for (const name of students()) {
      label = `${compiling ? "first answer, compiling the GPU kernels" : "thinking"}: ${name}… (${state.demo.backend()})`;
      status(label);
      const t0 = performance.now();
      results[name] = JSON.parse(await state.demo.ask(name, state.imageBytes, q));
      times[name] = performance.now() - t0;
    }
    clearInterval(tick);
    status("thinking: teacher… (CPU backend)");
    await new Promise((r) => setTimeout(r, 0)); // let the status paint
    const k = results.lavit.latent_steps.length;
    const t0 = performance.now();
    results.teacher = JSON.parse(state.demo.look(state.imageBytes, q, k));
    times.teacher = performance.now() - t0;
    state.results = results;
    window.lavitThoughts = results.lavit;
    window.lavitResults = results;
    $("question-shown").textContent = q;
    for (const n of ["teacher", ...students()]) {
      const a = results[n].answer || "(no answer)";
      $(`answer-${n}`).innerHTML = `${escape(a)}${verdict(a)}`;
      $(`answer-${n}`).dataset.answer = a;
    }
    $("teacherSteps").textContent = "teacher's steps: " +
      results.teacher.steps.map((s, i) => `${i + 1}. ${s.trim()}`).join("  ");
    $("timing").textContent = ["teacher", ...students()].map((n) =>
      `${n} ${times[n].toFixed(0)} ms`).join(", ") + ` (students on ${state.demo.backend()}); ` +
      students().map((n) => `${n}: ${perToken(results[n].work)}`).join("; ");
    $("step").max = Math.max(0, k - 1);
    $("step").value = 0;
    $("play").disabled = k < 2;
    status(`ready — students on ${state.demo.backend()}`);
    draw();
  } catch (e) {
    status(`error: ${e.message ?? e}`, true);
  } finally {
    clearInterval(tick);
    $("ask").disabled = false;
  }
}

// The work of one answer, per generated token (kernel dispatches and read-backs) and in all
// (pipeline compilations), as the wasm module counted it.
function perToken(w) {
  const n = Math.max(1, w.tokens);
  return `${w.tokens} tokens, ${(w.dispatches / n).toFixed(0)} dispatches and ` +
    `${(w.read_backs / n).toFixed(1)} read-backs per token, ${w.compilations} compilations`;
}

function escape(s) {
  return s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
}

// Map value → RGBA (transparent blue → opaque yellow-red).
function colour(v) {
  const r = Math.round(255 * Math.min(1, 2 * v));
  const g = Math.round(255 * Math.max(0, 2 * v - 1));
  const b = Math.round(255 * (1 - v) * 0.6);
  return [r, g, b, Math.round(40 + 170 * v)];
}

// The map each panel shows at latent step `k`.
function mapOf(name, k) {
  const r = state.results;
  if (!r) return null;
  if (name === "teacher") return r.teacher.per_latent[k] ?? null;
  const s = r[name].latent_steps[k];
  if (!s) return null;
  return name === "lavit" && $("mapKind").checked && s.head_map ? s.head_map : s.attn_map;
}

function drawMap(cv, map, grid, image = state.image) {
  const ctx = cv.getContext("2d");
  ctx.clearRect(0, 0, cv.width, cv.height);
  if (!image) return;
  // A grey copy of the scene under the heat, so the colours of the map are not the scene's.
  ctx.filter = "grayscale(1) opacity(0.6)";
  ctx.drawImage(image, 0, 0, cv.width, cv.height);
  ctx.filter = "none";
  if (!map) return;
  const [h, w] = grid;
  const lo = Math.min(...map), hi = Math.max(...map);
  const small = new OffscreenCanvas(w, h), sctx = small.getContext("2d");
  const px = sctx.createImageData(w, h);
  map.forEach((v, i) => px.data.set(colour(hi > lo ? (v - lo) / (hi - lo) : 0), 4 * i));
  sctx.putImageData(px, 0, 0);
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(small, 0, 0, cv.width, cv.height);
  const top = map.map((v, i) => [v, i]).sort((a, b) => b[0] - a[0]).slice(0, 4);
  ctx.strokeStyle = "#0ff";
  ctx.lineWidth = 2;
  for (const [, i] of top) {
    const y = Math.floor(i / w), x = i % w;
    ctx.strokeRect((x * cv.width) / w, (y * cv.height) / h, cv.width / w, cv.height / h);
  }
}

function draw() {
  const sc = $("view-scene"), sctx = sc.getContext("2d");
  sctx.clearRect(0, 0, sc.width, sc.height);
  if (state.image) sctx.drawImage(state.image, 0, 0, sc.width, sc.height);
  const k = +$("step").value;
  const r = state.results;
  drawMap($("view-teacher"), mapOf("teacher", k), r?.teacher.grid);
  for (const n of students()) drawMap($(`view-${n}`), mapOf(n, k), r?.[n]?.grid);
  $("stepLabel").textContent = r ? `${k + 1} / ${r.lavit.latent_steps.length}` : "–";
}

$("scene").onclick = () => { $("seed").value = +$("seed").value + 1; newScene(); };
$("seed").onchange = () => newScene();
$("ask").onclick = () => ask();
$("step").oninput = draw;
$("mapKind").onchange = draw;
$("template").onchange = () => { if ($("template").value) $("question").value = $("template").value; };
$("upload").onchange = async () => {
  const f = $("upload").files[0];
  if (!f) return;
  try {
    const bytes = new Uint8Array(await f.arrayBuffer());
    // Format and size from the header, before the browser or the model decodes anything.
    WebDemo.check_image(bytes);
    await showImage(bytes);
    status(`ready — students on ${state.demo.backend()}`);
  } catch (e) {
    const m = e.message ?? String(e);
    status(/^(This|The) /.test(m) ? m : `This file is not a readable image (${m}).`, true);
  }
};
$("play").onclick = () => {
  if (state.timer) { clearInterval(state.timer); state.timer = null; $("play").textContent = "▶ animate"; return; }
  $("play").textContent = "■ stop";
  state.timer = setInterval(() => {
    const n = state.results.lavit.latent_steps.length;
    $("step").value = (+$("step").value + 1) % n;
    draw();
  }, 700);
};

// ---- The Train panel: the student base trained in this page (Training in src/lib.rs). ----

const PROBE_EVERY = 10;
// work: each step's kernel dispatches and pipeline compilations (0 on the CPU backend).
const train = { run: null, opts: null, stop: false, busy: false, ce: [], kl: [], work: [],
  seconds: 0, files: null, probeImage: null, probe: null, setup: null };
window.lavitTraining = train;

function trainStatus(text, error = false) {
  $("trainStatus").textContent = text;
  $("trainStatus").className = error ? "bad" : "muted";
}

function trainButtons() {
  const running = train.busy;
  $("trainStart").disabled = running;
  $("trainStart").textContent = train.run && !train.run.finished() && train.ce.length ? "Resume" : "Train";
  $("trainStop").disabled = !running;
  $("trainReset").disabled = running || !train.run;
  for (const id of ["trainStudent", "trainSteps", "trainScenes"]) $(id).disabled = running || !!train.run;
}

// The student base and the task the demo's experiment trains on, fetched when first needed.
async function trainFiles() {
  if (!train.files) {
    const b = await fetchAll([...files("student-base", ["config.json", "model.safetensors", "tokenizer.json"]),
      "model/task-prior.json"], "downloading the student base");
    status(`ready — students on ${state.demo.backend()}`);
    train.files = { base: b.slice(0, 3), task: new TextDecoder().decode(b[3]) };
  }
  return train.files;
}

// Starts a run (or resumes a stopped one) and trains until it is done or stopped.
async function trainStart() {
  if (train.busy) return;
  if (train.run?.finished()) trainReset(); // a finished run is not resumed: Train starts anew
  const [steps, scenes] = [+$("trainSteps").value, +$("trainScenes").value];
  if (!train.run && !(Number.isInteger(steps) && Number.isInteger(scenes) && steps >= 1 && scenes >= 1)) {
    return trainStatus("Steps and scenes are whole numbers, at least 1.", true);
  }
  train.busy = true;
  train.stop = false;
  trainButtons();
  try {
    if (!train.run) {
      train.opts = { student: $("trainStudent").value, scenes, steps };
      const f = await trainFiles();
      train.run = await state.demo.train(JSON.stringify(train.opts), f.task, ...f.base, teacherProgress());
      clearInterval(train.setup.beat);
      train.probeImage = await createImageBitmap(new Blob([train.run.probe_png()]));
      Object.assign(train, { ce: [], kl: [], work: [], seconds: 0 });
      await trainProbe();
    }
    await trainLoop();
  } catch (e) {
    trainStatus(`error: ${e.message ?? e}`, true);
  } finally {
    if (train.setup) clearInterval(train.setup.beat);
    train.busy = false;
    trainButtons();
  }
}

// The teacher's signals are computed scene by scene (one teacher pass each, on the CPU backend):
// after each pass the status moves and the page gets its thread back until the next one.
// `train.setup` keeps when each pass ended and how often a 10 ms heartbeat got to run (once
// per pass when the page gets its thread back: a pass takes longer), for the test.
function teacherProgress() {
  const t0 = performance.now(), setup = { passes: [], beats: 0, beat: 0 };
  train.setup = setup;
  setup.beat = setInterval(() => { setup.beats += 1; }, 10);
  trainStatus(`computing the teacher's signals: 0 / ${train.opts.scenes + 1} scenes…`);
  return (done, total) => {
    setup.passes.push(Math.round(performance.now() - t0));
    trainStatus(`computing the teacher's signals: ${done} / ${total} scenes…`);
    return new Promise((r) => setTimeout(r, 0));
  };
}

async function trainLoop() {
  const t0 = performance.now(), s0 = train.run.steps_done(), n = train.opts.steps;
  while (!train.stop && !train.run.finished()) {
    const log = JSON.parse(await train.run.step());
    // Back to the event loop between steps: on the CPU backend a step's promise resolves
    // without it, and the page would neither paint nor see the Stop button until the end.
    await new Promise((r) => setTimeout(r, 0));
    train.ce.push([log.step, log.ce]);
    train.work.push({ dispatches: log.dispatches, compilations: log.compilations });
    if (log.step % PROBE_EVERY === 0 || train.run.finished()) await trainProbe();
    const s = (performance.now() - t0) / 1000, rate = (log.step - s0) / s;
    const gpu = log.dispatches ? ` (${log.dispatches} GPU dispatches a step)` : "";
    trainStatus(`step ${log.step} / ${n} — ${rate.toFixed(1)} steps/s on ${state.demo.backend()}${gpu} — ` +
      `CE ${log.ce.toFixed(3)}, KL on the probe ${train.kl.at(-1)[1].toFixed(3)}`);
    drawCurves();
  }
  train.seconds += (performance.now() - t0) / 1000;
  // The student as trained so far answers in the view above.
  state.demo.add_trained("trained", train.run);
  state.trained = train.opts.student;
  $("trainedKind").textContent = `(${train.opts.student}, ${train.run.steps_done()} steps)`;
  $("panel-trained").hidden = false;
  trainStatus(`${train.run.finished() ? "done" : "stopped"}: ${train.run.steps_done()} steps in ` +
    `${train.seconds.toFixed(1)} s; the trained student answers above (Ask).`);
}

async function trainProbe() {
  const p = JSON.parse(await train.run.probe());
  train.kl.push([p.step, p.kl]);
  train.probe = p;
  $("probeQuestion").textContent = p.question;
  const box = $("probeMaps");
  if (box.children.length !== p.student.length + 1) {
    box.innerHTML = `<div class="muted" style="width:4.5em;margin-top:1.3em">teacher<br><br><br><br><br>` +
      `<br>student</div>` + p.student.map((_, k) => `<div class="panel" style="width:112px">` +
      `<div class="muted">latent ${k + 1}</div><canvas id="probe-t${k}" width="112" height="112"></canvas>` +
      `<canvas id="probe-s${k}" width="112" height="112"></canvas></div>`).join("");
  }
  p.student.forEach((m, k) => {
    drawMap($(`probe-t${k}`), p.teacher[k], p.grid, train.probeImage);
    drawMap($(`probe-s${k}`), m, p.grid, train.probeImage);
  });
}

// CE (blue) and the probe's KL (red) against the step, each on its own scale from 0.
function drawCurves() {
  const cv = $("trainCurves"), ctx = cv.getContext("2d"), pad = 28;
  ctx.clearRect(0, 0, cv.width, cv.height);
  const n = train.opts?.steps ?? 1;
  ctx.strokeStyle = "#999";
  ctx.strokeRect(pad, 4, cv.width - pad - 4, cv.height - pad - 4);
  ctx.fillStyle = "#666";
  ctx.font = "11px system-ui";
  ctx.fillText("0", pad - 4, cv.height - 12);
  ctx.fillText(`${n} steps`, cv.width - 60, cv.height - 12);
  for (const [series, colour, row] of [[train.ce, "#1f5fbf", 14], [train.kl, "#c0392b", 28]]) {
    if (!series.length) continue;
    const hi = Math.max(...series.map((p) => p[1])) || 1;
    ctx.strokeStyle = colour;
    ctx.beginPath();
    series.forEach(([x, y], i) => {
      const px = pad + ((cv.width - pad - 4) * x) / n, py = 4 + (cv.height - pad - 4) * (1 - y / hi);
      i ? ctx.lineTo(px, py) : ctx.moveTo(px, py);
    });
    ctx.stroke();
    ctx.fillStyle = colour;
    ctx.fillText(`${colour === "#1f5fbf" ? "CE" : "KL"} ${series[0][1].toFixed(2)} → ${series.at(-1)[1].toFixed(2)}`,
      pad + 6, 4 + row);
  }
}

function trainReset() {
  if (train.busy) return;
  train.run?.free();
  Object.assign(train, { run: null, opts: null, ce: [], kl: [], work: [], seconds: 0, probe: null });
  $("probeMaps").innerHTML = "";
  $("probeQuestion").textContent = "";
  trainStatus("");
  drawCurves();
  trainButtons();
}

$("trainStart").onclick = trainStart;
$("trainStop").onclick = () => { train.stop = true; };
$("trainReset").onclick = trainReset;

// For the browser test: a whole run with these options, its curves and timing.
window.lavitTrain = async (opts) => {
  trainReset();
  $("trainStudent").value = opts.student;
  $("trainSteps").value = opts.steps;
  $("trainScenes").value = opts.scenes;
  await trainStart();
  if ($("trainStatus").className === "bad") throw new Error($("trainStatus").textContent);
  return { ce: train.ce.map((p) => p[1]), kl: train.kl.map((p) => p[1]), seconds: train.seconds,
    steps: train.run.steps_done(), probe: train.probe, work: train.work,
    setup: { passes: train.setup.passes, beats: train.setup.beats } };
};

load();
