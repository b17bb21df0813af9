// Headless-Chromium test of the browser demo. Serves web-demo/dist (build it first with
// web-demo/build.sh), drives Debian's /usr/bin/chromium through playwright-core (no browser
// download), and compares the page's numbers with the native `lavit infer` on the same input.
//   node web-demo/e2e/test.mjs            (env: LAVIT_BIN, CHROMIUM, ARTIFACTS)
import { chromium } from "playwright-core";
import { createServer } from "node:http";
import { readFile, writeFile, mkdir } from "node:fs/promises";
import { execFileSync } from "node:child_process";
import { join, extname, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, "..", "dist");
const artifacts = process.env.ARTIFACTS ?? join(here, "..", "..", "target", "web-demo-e2e");
const lavit = process.env.LAVIT_BIN;
const types = { ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm",
  ".json": "application/json" };

const server = createServer(async (req, res) => {
  try {
    let path = join(dist, decodeURIComponent(new URL(req.url, "http://x").pathname));
    if (path.endsWith("/")) path = join(path, "index.html");
    const body = await readFile(path);
    res.writeHead(200, { "content-type": types[extname(path)] ?? "application/octet-stream" });
    res.end(body);
  } catch {
    res.writeHead(404).end();
  }
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const url = `http://127.0.0.1:${server.address().port}/`;
await mkdir(artifacts, { recursive: true });

const baseFlags = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
  "--disable-default-apps", "--disable-sync", "--no-first-run", "--metrics-recording-only"];

// One browser session: load, ask about the default scene, check the page and compare with
// native `lavit infer` on the same PNG within `tol`. Returns the page's thoughts.
async function session(name, flags, backendRe, tol) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", headless: true,
    args: [...baseFlags, ...flags],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    const problems = [];
    page.on("console", (m) => { if (m.type() === "error") problems.push(m.text()); });
    page.on("pageerror", (e) => problems.push(String(e)));

    await page.goto(url);
    await page.waitForFunction(() => (window.lavitScene && window.lavitBackend) || window.lavitStatus?.error,
      null, { timeout: 180000 });
    const st = await page.evaluate(() => window.lavitStatus);
    assert.ok(!st.error, `${name}: ${st.text}`);
    const backend = await page.evaluate(() => window.lavitBackend);
    console.log(`[${name}] page ready: ${await page.textContent("#status")}`);
    assert.match(backend, backendRe);

    const t0 = Date.now();
    await page.click("#ask");
    await page.waitForFunction(() => window.lavitThoughts || window.lavitStatus?.error, null, { timeout: 300000 });
    const st2 = await page.evaluate(() => window.lavitStatus);
    assert.ok(!st2.error, `${name}: ${st2.text}`);
    const thoughts = await page.evaluate(() => window.lavitThoughts);
    const scene = await page.evaluate(() => window.lavitScene);
    const answer = await page.textContent("#answer");
    console.log(`[${name}] asked "${scene.question}" -> "${answer}" (${Date.now() - t0} ms); ${await page.textContent("#timing")}`);
    assert.equal(answer, thoughts.answer || "(no answer)");
    assert.equal(thoughts.latent_steps.length, 3);
    await page.screenshot({ path: join(artifacts, `${name}-step-1.png`) });

    // The canvas shows a heatmap, and it differs between latent steps.
    const pixels = () => page.evaluate(() => {
      const c = document.getElementById("view");
      return Array.from(c.getContext("2d").getImageData(0, 0, c.width, c.height).data);
    });
    const p1 = await pixels();
    assert.ok(new Set(p1).size > 50, "the canvas is blank");
    await page.evaluate(() => { const s = document.getElementById("step"); s.value = 2; s.dispatchEvent(new Event("input")); });
    const p3 = await pixels();
    await page.screenshot({ path: join(artifacts, `${name}-step-3.png`) });
    const changed = p1.filter((v, i) => v !== p3[i]).length;
    assert.ok(changed > 1000, `latent steps 1 and 3 draw the same heatmap (${changed} values differ)`);

    // Same numbers as native: `lavit infer` on the same PNG and question.
    if (lavit) {
      const png = Buffer.from(await page.evaluate(() => Array.from(window.lavitPng ?? [])));
      const scenePath = join(artifacts, "scene.png");
      assert.ok(png.length > 0, "the page did not expose the scene PNG");
      await writeFile(scenePath, png);
      const out = JSON.parse(execFileSync(lavit, ["infer", "--model", join(dist, "model"),
        "--image", scenePath, "--question", scene.question, "--json", "--force-lvr",
        "--max-new-tokens", "32"], { encoding: "utf8" }));
      assert.equal(thoughts.answer, out.answer, "browser and native answers differ");
      assert.deepEqual(thoughts.tokens, out.tokens);
      let worst = 0;
      thoughts.latent_steps.forEach((s, k) => {
        for (const key of ["attn_map", "head_map"]) {
          s[key].forEach((v, i) => { worst = Math.max(worst, Math.abs(v - out.latent_steps[k][key][i])); });
        }
      });
      console.log(`[${name}] browser vs native CPU: answer and tokens equal, max map difference ${worst.toExponential(2)} (bound ${tol})`);
      assert.ok(worst <= tol, `maps differ by ${worst}`);
    } else {
      console.log("LAVIT_BIN not set: skipping the comparison with native");
    }

    // A bad upload is reported on the page, not thrown.
    await page.setInputFiles("#upload", { name: "bad.png", mimeType: "image/png", buffer: Buffer.from("nope") });
    await page.waitForFunction(() => window.lavitStatus?.error, null, { timeout: 10000 });
    console.log(`[${name}] bad image -> "${await page.textContent("#status")}"`);
    assert.deepEqual(problems, [], `console errors: ${problems.join("; ")}`);
    return thoughts;
  } finally {
    await browser.close();
  }
}

let failed = false;
try {
  // 1. WebGPU (Chromium's SwiftShader adapter here).
  const gpu = await session("webgpu", ["--enable-unsafe-webgpu"], /webgpu/, 1e-4);
  // 2. WebGPU off: the CPU fallback gives the same answer.
  const cpu = await session("cpu-fallback", ["--disable-gpu"], /cpu/, 1e-5);
  assert.equal(cpu.answer, gpu.answer, "CPU fallback and WebGPU answers differ");
  assert.deepEqual(cpu.tokens, gpu.tokens);
  console.log(`WebGPU and CPU fallback agree: "${gpu.answer}"; screenshots in ${artifacts}`);
} catch (e) {
  failed = true;
  console.error(e);
} finally {
  server.close();
}
process.exit(failed ? 1 : 0);
