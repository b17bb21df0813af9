#!/usr/bin/env bash
# Serves web-demo/dist (run web-demo/build.sh first) on http://localhost:${PORT:-8080}/,
# sending the precompressed FILE.br / FILE.gz of `build.sh --release` where the browser
# accepts them (Content-Encoding), the file itself otherwise.
set -euo pipefail
cd "$(dirname "$0")/dist"
exec python3 - "${PORT:-8080}" <<'PY'
import http.server, os, sys

class Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                      ".wasm": "application/wasm", ".js": "text/javascript",
                      ".json": "application/json"}

    def send_head(self):
        path = self.translate_path(self.path)
        if os.path.isdir(path):
            path = os.path.join(path, "index.html")
        accepted = self.headers.get("Accept-Encoding", "")
        for enc, ext in (("br", ".br"), ("gzip", ".gz")):
            if enc in accepted and os.path.isfile(path + ext):
                f = open(path + ext, "rb")
                self.send_response(200)
                self.send_header("Content-Type", self.guess_type(path))
                self.send_header("Content-Encoding", enc)
                self.send_header("Content-Length", str(os.fstat(f.fileno()).st_size))
                self.send_header("Vary", "Accept-Encoding")
                self.end_headers()
                return f
        return super().send_head()

http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
PY
