// The page around the wasm module (web-demo/src/lib.rs). Everything numeric happens in Rust.
import init, { WebDemo } from "./pkg/lavit_web_demo.js";

const $ = (id) => document.getElementById(id);
const STUDENTS = ["baseline", "lavit"];
const state = { task: "", demo: null, image: null, imageBytes: null, scene: null, results: null, timer: null };

function status(text, error = false) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
  // Exposed for tests and for people who open the console.
  window.lavitStatus = { text, error };
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
    const files = (dir, names) => names.map((f) => `model/${dir}/${f}`);
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
  for (const n of ["teacher", ...STUDENTS]) $(`answer-${n}`).textContent = "";
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
  try {
    $("ask").disabled = true;
    const results = {}, times = {};
    for (const name of STUDENTS) {
      status(`${first ? "first answer (compiles the kernels)" : "thinking"}: ${name}… (${state.demo.backend()})`);
      const t0 = performance.now();
      results[name] = JSON.parse(await state.demo.ask(name, state.imageBytes, q));
      times[name] = performance.now() - t0;
    }
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
    for (const n of ["teacher", ...STUDENTS]) {
      const a = results[n].answer || "(no answer)";
      $(`answer-${n}`).innerHTML = `${escape(a)}${verdict(a)}`;
      $(`answer-${n}`).dataset.answer = a;
    }
    $("teacherSteps").textContent = "teacher's steps: " +
      results.teacher.steps.map((s, i) => `${i + 1}. ${s.trim()}`).join("  ");
    $("timing").textContent = ["teacher", ...STUDENTS].map((n) =>
      `${n} ${times[n].toFixed(0)} ms`).join(", ") + ` (students on ${state.demo.backend()}); ` +
      STUDENTS.map((n) => `${n}: ${perToken(results[n].work)}`).join("; ");
    $("step").max = Math.max(0, k - 1);
    $("step").value = 0;
    $("play").disabled = k < 2;
    status(`ready — students on ${state.demo.backend()}`);
    draw();
  } catch (e) {
    status(`error: ${e.message ?? e}`, true);
  } finally {
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

function drawMap(cv, map, grid) {
  const ctx = cv.getContext("2d");
  ctx.clearRect(0, 0, cv.width, cv.height);
  if (!state.image) return;
  // A grey copy of the scene under the heat, so the colours of the map are not the scene's.
  ctx.filter = "grayscale(1) opacity(0.6)";
  ctx.drawImage(state.image, 0, 0, cv.width, cv.height);
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
  for (const n of STUDENTS) drawMap($(`view-${n}`), mapOf(n, k), r?.[n].grid);
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

load();
