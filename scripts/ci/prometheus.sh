#!/usr/bin/env bash
# Makes the `prometheus` server and `promtool` available for the telemetry tests (alert rules
# checked by promtool, the end-to-end scrape test). Debian's prometheus package ships both, so
# this defers to promtool.sh, which installs it when promtool is missing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
  prometheus --version 2>&1 | head -n 1
  exit 0
fi
"$here/promtool.sh"
if ! command -v prometheus >/dev/null 2>&1; then  # promtool came from elsewhere
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
prometheus --version 2>&1 | head -n 1
