#!/usr/bin/env bash
# Builds the dashboard (dashboard/ -> dashboard/dist) for `coattail dashboard` and `coattail run --live`:
# the npm packages at the versions dashboard/package-lock.json pins (`npm ci`, from npm's cache when it
# has them), then type check and Vite build. Without Node.js 20.19+ and npm it says so and exits 0:
# everything else works without the dashboard.
set -euo pipefail
cd "$(dirname "$0")/../dashboard"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "dashboard: not built (needs Node.js 20.19+ and npm: apt-get install nodejs npm); everything else works" >&2
  exit 0
fi
if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)'; then
  echo "dashboard: not built (Node.js $(node --version) is older than 20.19, which Vite needs); everything else works" >&2
  exit 0
fi
# npm ci only when the lock file changed since the last install (it removes node_modules first)
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --prefer-offline --no-audit --no-fund --loglevel=error
fi
npm run --silent build
echo "dashboard: built into dashboard/dist"
