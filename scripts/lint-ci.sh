#!/usr/bin/env bash
# Lints the CI: actionlint on .github/workflows/*.yml, then shellcheck on their bash steps and
# on every shell script in the repository (where shellcheck is installed; .ci/run installs
# it). Needs node and npm.
set -euo pipefail
cd "$(dirname "$0")/.."
(cd scripts/lint-ci && npm ci --no-audit --no-fund --silent)
steps=$(mktemp -d)
trap 'rm -rf "$steps"' EXIT
node scripts/lint-ci/lint.mjs "$steps"
if ! command -v shellcheck >/dev/null; then
  echo "shellcheck not found: the workflows' shell steps and the scripts are not checked" >&2
  [ "${LAVIT_REQUIRE_SHELLCHECK:-0}" = 1 ] && exit 1
  exit 0
fi
# SC2154 (a variable set by the runner or an earlier step): the steps run in a prepared env.
shellcheck --shell bash -e SC2154 "$steps"/*.sh
tracked() { # the repository's files (every file outside build outputs when not a git checkout)
  git ls-files 2>/dev/null ||
    find . -type f -not -path './target/*' -not -path '*/node_modules/*' -not -path './.git/*'
}
mapfile -t scripts < <(tracked | while read -r f; do
  [ -f "$f" ] && head -n1 "$f" | grep -qE '^#!.*\b(ba)?sh\b' && echo "$f"
done)
shellcheck -x -S warning "${scripts[@]}"
echo "shellcheck: $(find "$steps" -name '*.sh' | wc -l) workflow step(s), ${#scripts[@]} script(s), clean"
