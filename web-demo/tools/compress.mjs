// Writes FILE.br (brotli, quality 11) and FILE.gz (gzip -9) beside every file under a
// directory, for servers that send precompressed files (web-demo/serve.sh does).
//   node web-demo/tools/compress.mjs DIR [CACHE_DIR]
// With CACHE_DIR, brotli output is kept there by input hash (quality 11 takes ~40 s on the
// wasm module).
import { readdir, readFile, writeFile, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { createHash } from "node:crypto";
import { brotliCompressSync, gzipSync, constants } from "node:zlib";

async function* files(dir) {
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) yield* files(p);
    else if (!/\.(br|gz)$/.test(e.name)) yield p;
  }
}

const cache = process.argv[3];
if (cache) await mkdir(cache, { recursive: true });

function brotli(raw) {
  return brotliCompressSync(raw, {
    params: {
      [constants.BROTLI_PARAM_QUALITY]: 11,
      [constants.BROTLI_PARAM_SIZE_HINT]: raw.length,
      [constants.BROTLI_PARAM_LGWIN]: 24,
    },
  });
}

for await (const p of files(process.argv[2])) {
  const raw = await readFile(p);
  let br;
  if (cache) {
    const hit = join(cache, createHash("sha256").update(raw).digest("hex") + ".br");
    br = await readFile(hit).catch(() => null);
    if (!br) {
      br = brotli(raw);
      await writeFile(hit, br);
    }
  } else {
    br = brotli(raw);
  }
  await writeFile(`${p}.br`, br);
  await writeFile(`${p}.gz`, gzipSync(raw, { level: 9 }));
  if (raw.length > 1e6) {
    console.log(`${p}: ${raw.length} bytes, brotli ${br.length}`);
  }
}
