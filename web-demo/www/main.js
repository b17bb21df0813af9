// The page around the wasm module (web-demo/src/lib.rs). Everything numeric happens in Rust.
import init, { WebDemo } from "./pkg/lavit_web_demo.js";

const $ = (id) => document.getElementById(id);
const state = { demo: null, image: null, imageBytes: null, thoughts: null, timer: null };

function status(text, error = false) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
  // Exposed for tests and for people who open the console.
  window.lavitStatus = { text, error };
}

async function fetchBytes(path) {
  const r = await fetch(path);
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
}

async function load() {
  try {
    status("loading the wasm module…");
    await init();
    status("loading the student…");
    const t0 = performance.now();
    const files = await Promise.all(
      ["config.json", "model.safetensors", "lavit_heads.safetensors", "tokenizer.json"].map(
        (f) => fetchBytes(`model/${f}`)));
    // WebGPU when the browser has it (?backend=cpu forces the CPU backend), else the CPU
    // backend; the reason for a fallback is shown.
    const preferGpu = new URLSearchParams(location.search).get("backend") !== "cpu";
    state.demo = await WebDemo.create(...files, preferGpu && "gpu" in navigator);
    const ms = (performance.now() - t0).toFixed(0);
    const why = state.demo.fallback_reason();
    const note = why ? ` — CPU fallback: ${"gpu" in navigator ? why : "this browser has no WebGPU"}` : "";
    status(`ready — backend: ${state.demo.backend()} (model loaded in ${ms} ms)${note}`);
    $("backend").textContent = state.demo.backend() + note;
    window.lavitBackend = state.demo.backend();
    $("ask").disabled = false;
    await newScene();
  } catch (e) {
    status(`failed to load: ${e.message ?? e}`, true);
  }
}

async function showImage(bytes) {
  const blob = new Blob([bytes]);
  const bmp = await createImageBitmap(blob);
  state.image = bmp;
  state.imageBytes = bytes;
  state.thoughts = null;
  $("answer").textContent = "";
  $("timing").textContent = "";
  $("step").max = 0;
  $("stepLabel").textContent = "–";
  $("play").disabled = true;
  draw();
}

async function newScene() {
  const seed = BigInt(Math.max(0, parseInt($("seed").value || "0", 10)));
  const scene = JSON.parse(WebDemo.scene_json(seed));
  const png = WebDemo.scene_png(seed);
  window.lavitPng = png;
  await showImage(png);
  $("question").value = scene.question;
  window.lavitScene = scene;
}

async function ask() {
  const q = $("question").value;
  if (!state.imageBytes) return status("choose a scene or upload an image first", true);
  try {
    status(`thinking… (backend: ${state.demo.backend()})`);
    const t0 = performance.now();
    $("ask").disabled = true;
    const t = JSON.parse(await state.demo.ask(state.imageBytes, q));
    const ms = performance.now() - t0;
    state.thoughts = t;
    window.lavitThoughts = t;
    $("answer").textContent = t.answer || "(no answer)";
    const steps = t.latent_steps.length;
    $("timing").textContent =
      `${steps} latent steps + ${t.tokens.length} generated tokens in ${ms.toFixed(0)} ms ` +
      `(${(ms / Math.max(1, t.tokens.length + steps)).toFixed(0)} ms per step) on ${state.demo.backend()}`;
    $("step").max = Math.max(0, steps - 1);
    $("step").value = 0;
    $("play").disabled = steps < 2;
    status(`ready — backend: ${state.demo.backend()}`);
    draw();
  } catch (e) {
    status(`error: ${e.message ?? e}`, true);
  } finally {
    $("ask").disabled = false;
  }
}

// Map value → RGBA (transparent blue → opaque yellow-red).
function colour(v) {
  const r = Math.round(255 * Math.min(1, 2 * v));
  const g = Math.round(255 * Math.max(0, 2 * v - 1));
  const b = Math.round(255 * (1 - v) * 0.6);
  return [r, g, b, Math.round(40 + 170 * v)];
}

function currentMap() {
  const t = state.thoughts;
  if (!t || t.latent_steps.length === 0) return null;
  const s = t.latent_steps[+$("step").value];
  return $("mapKind").checked || !s.head_map ? s.attn_map : s.head_map;
}

function draw() {
  const cv = $("view"), ctx = cv.getContext("2d");
  ctx.clearRect(0, 0, cv.width, cv.height);
  if (!state.image) return;
  ctx.drawImage(state.image, 0, 0, cv.width, cv.height);
  const map = currentMap();
  if (!map) return;
  const [h, w] = state.thoughts.grid;
  const lo = Math.min(...map), hi = Math.max(...map);
  const small = new OffscreenCanvas(w, h), sctx = small.getContext("2d");
  const px = sctx.createImageData(w, h);
  map.forEach((v, i) => px.data.set(colour(hi > lo ? (v - lo) / (hi - lo) : 0), 4 * i));
  sctx.putImageData(px, 0, 0);
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(small, 0, 0, cv.width, cv.height);
  // Top-4 patches.
  const top = map.map((v, i) => [v, i]).sort((a, b) => b[0] - a[0]).slice(0, 4);
  ctx.strokeStyle = "#0ff";
  ctx.lineWidth = 2;
  for (const [, i] of top) {
    const y = Math.floor(i / w), x = i % w;
    ctx.strokeRect((x * cv.width) / w, (y * cv.height) / h, cv.width / w, cv.height / h);
  }
  $("stepLabel").textContent = `${+$("step").value + 1} / ${state.thoughts.latent_steps.length}`;
}

$("scene").onclick = () => { $("seed").value = +$("seed").value + 1; newScene(); };
$("ask").onclick = ask;
$("step").oninput = draw;
$("mapKind").onchange = draw;
$("template").onchange = () => { if ($("template").value) $("question").value = $("template").value; };
$("upload").onchange = async () => {
  const f = $("upload").files[0];
  if (!f) return;
  try {
    await showImage(new Uint8Array(await f.arrayBuffer()));
    status(`ready — backend: ${state.demo.backend()}`);
  } catch (e) {
    status(`not a readable image: ${e.message ?? e}`, true);
  }
};
$("play").onclick = () => {
  if (state.timer) { clearInterval(state.timer); state.timer = null; $("play").textContent = "▶ animate"; return; }
  $("play").textContent = "■ stop";
  state.timer = setInterval(() => {
    const n = state.thoughts.latent_steps.length;
    $("step").value = (+$("step").value + 1) % n;
    draw();
  }, 700);
};

load();
