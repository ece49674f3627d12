#!/usr/bin/env bash
# The HTML report tests render pages with Debian's chromium. Install it when it is missing and we are
# root (CI and fresh machines); otherwise only warn and say what to do.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  # Not ours to install here: the tests still run, and the report tests say chromium is missing.
  echo "warning: /usr/bin/chromium is missing; install it with 'sudo apt-get install -y chromium'" >&2
  exit 0
fi
echo "installing chromium (Debian package) for the report tests"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium >/dev/null
test -x /usr/bin/chromium
