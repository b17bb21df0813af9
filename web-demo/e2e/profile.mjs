// Where the page spends its time. Until the first answer, the browser's trace of the GPU
// process (`--trace`): the time it spent creating each compute pipeline (compiling a kernel),
// summed by kernel family. Then the renderer's CPU profile (Chrome DevTools Protocol
// `Profiler`) while the students answer the first scene's question again, as self time per
// function. Build web-demo/dist first (web-demo/build.sh --release); for function names in
// the profile, run wasm-opt with `-g` on a copy of the module (web-demo/README.md).
//   node web-demo/e2e/profile.mjs [--cpu] [--trace]      (env: DIST, CHROMIUM, TOP)
import { chromium } from "playwright-core";
import { writeFile } from "node:fs/promises";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { tmpdir } from "node:os";
import { serveDist } from "./serve.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const { url, server } = await serveDist(process.env.DIST ?? join(here, "..", "dist"));
const gpu = !process.argv.includes("--cpu");
const trace = process.argv.includes("--trace");
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", headless: true,
  args: ["--no-sandbox", gpu ? "--enable-unsafe-webgpu" : "--disable-gpu"],
});
try {
  if (trace) await browser.startTracing(undefined, { categories: ["gpu", "gpu.dawn", "dawn", "disabled-by-default-gpu.dawn"] });
  const page = await browser.newPage();
  await page.goto(url);
  await page.waitForFunction(() => window.lavitFirstAnswerMs || window.lavitStatus?.error, null,
    { timeout: 300000 });
  const st = await page.evaluate(() => window.lavitStatus);
  if (st.error) throw new Error(st.text);
  if (trace) pipelines(JSON.parse(await browser.stopTracing()));
  console.log(`first answer after ${(await page.evaluate(() => window.lavitFirstAnswerMs)).toFixed(0)} ms; ` +
    `loading: ${JSON.stringify(await page.evaluate(() => window.lavitPhases))}; ${await page.textContent("#timing")}`);

  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Profiler.enable");
  await cdp.send("Profiler.setSamplingInterval", { interval: 500 }); // µs
  await cdp.send("Profiler.start");
  await page.evaluate(() => { window.lavitThoughts = null; });
  await page.click("#ask");
  await page.waitForFunction(() => window.lavitThoughts || window.lavitStatus?.error, null,
    { timeout: 300000 });
  const { profile } = await cdp.send("Profiler.stop");
  console.log(`asked again: ${await page.textContent("#timing")}`);
  const saved = join(tmpdir(), "lavit-page.cpuprofile"); // opens in DevTools
  await writeFile(saved, JSON.stringify(profile));
  console.log(`profile: ${saved}`);

  // Self time per function name, largest first.
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map();
  profile.samples.forEach((id, i) => {
    const f = nodes.get(id).callFrame;
    const key = f.functionName || `(anonymous ${f.url.split("/").pop()})`;
    self.set(key, (self.get(key) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  [...self].sort((a, b) => b[1] - a[1]).slice(0, +(process.env.TOP ?? 25)).forEach(([k, us]) =>
    console.log(`${(us / 1000).toFixed(0).padStart(7)} ms ${(100 * us / total).toFixed(1).padStart(5)} %  ${k}`));
} finally {
  await browser.close();
  server.close();
}

// Pipeline creations in a trace, by the kernel family their label starts with.
function pipelines(t) {
  const events = (t.traceEvents ?? t).filter((e) => e.ph === "X" && e.name === "DeviceBase::APICreateComputePipeline");
  const families = new Map();
  for (const e of events) {
    const family = (e.args?.label ?? "?").split("_")[0];
    const f = families.get(family) ?? { n: 0, ms: 0, max: 0 };
    families.set(family, { n: f.n + 1, ms: f.ms + e.dur / 1000, max: Math.max(f.max, e.dur / 1000) });
  }
  const total = events.reduce((a, e) => a + e.dur / 1000, 0);
  console.log(`${events.length} compute pipelines created in ${total.toFixed(0)} ms (GPU process):`);
  [...families].sort((a, b) => b[1].ms - a[1].ms).forEach(([k, f]) => console.log(
    `  ${k}: ${f.n} pipelines, ${f.ms.toFixed(0)} ms, the slowest ${f.max.toFixed(0)} ms`));
}
