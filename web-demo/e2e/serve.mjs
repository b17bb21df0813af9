// A static server for web-demo/dist, as web-demo/serve.sh serves it: precompressed `.br`
// copies where the release build wrote them. Shared by test.mjs and profile.mjs.
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { join, extname, resolve, sep } from "node:path";

const types = { ".html": "text/html", ".js": "text/javascript", ".wasm": "application/wasm",
  ".json": "application/json" };

/** Serves `dist` on a free local port; returns its URL and the server. */
export async function serveDist(dist) {
  const root = resolve(dist);
  const server = createServer(async (req, res) => {
    try {
      const name = decodeURIComponent(new URL(req.url, "http://x").pathname);
      let path = resolve(join(root, name));
      if (path !== root && !path.startsWith(root + sep)) throw new Error("outside dist"); // `..`
      if (name.endsWith("/")) path = join(path, "index.html");
      const type = types[extname(path)] ?? "application/octet-stream";
      if (/\bbr\b/.test(req.headers["accept-encoding"] ?? "")) {
        const br = await readFile(`${path}.br`).catch(() => null);
        if (br) {
          res.writeHead(200, { "content-type": type, "content-encoding": "br" });
          return res.end(br);
        }
      }
      const body = await readFile(path);
      res.writeHead(200, { "content-type": type });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${server.address().port}/`, server };
}
