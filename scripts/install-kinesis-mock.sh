#!/usr/bin/env bash
# Installs kinesis-mock (the npm package kinesis-local, the Kinesis engine LocalStack runs) into the
# project's own node_modules/, for `coattail up --kinesis kinesis-mock`. Nothing is installed globally.
set -euo pipefail
VERSION="${KINESIS_LOCAL_VERSION:-0.6.2}"
cd "$(dirname "$0")/.."
if [ -f node_modules/kinesis-local/package.json ] \
    && grep -q "\"version\" *: *\"$VERSION\"" node_modules/kinesis-local/package.json; then
  echo "kinesis-local $VERSION already installed in node_modules/"
  exit 0
fi
if ! command -v npm >/dev/null; then
  echo "kinesis-mock needs Node.js and npm: apt-get install -y nodejs npm" >&2
  exit 1
fi
npm install --no-save --no-package-lock --no-audit --no-fund "kinesis-local@$VERSION"
