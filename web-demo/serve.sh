#!/usr/bin/env bash
# Serves web-demo/dist (run web-demo/build.sh first) on http://localhost:${PORT:-8080}/.
set -euo pipefail
cd "$(dirname "$0")/dist"
exec python3 -m http.server "${PORT:-8080}" --bind 127.0.0.1
