// Writes FILE.br (brotli, quality 11) and FILE.gz (gzip -9) beside every file under a
// directory, for servers that send precompressed files (web-demo/serve.sh does).
//   node web-demo/tools/compress.mjs DIR
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { brotliCompressSync, gzipSync, constants } from "node:zlib";

async function* files(dir) {
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) yield* files(p);
    else if (!/\.(br|gz)$/.test(e.name)) yield p;
  }
}

for await (const p of files(process.argv[2])) {
  const raw = await readFile(p);
  const br = brotliCompressSync(raw, {
    params: {
      [constants.BROTLI_PARAM_QUALITY]: 11,
      [constants.BROTLI_PARAM_SIZE_HINT]: raw.length,
      [constants.BROTLI_PARAM_LGWIN]: 24,
    },
  });
  await writeFile(`${p}.br`, br);
  await writeFile(`${p}.gz`, gzipSync(raw, { level: 9 }));
  if (raw.length > 1e6) {
    console.log(`${p}: ${raw.length} bytes, brotli ${br.length}`);
  }
}
