#!/usr/bin/env bash
# Makes a headless Chromium available for the status page test: installs Debian's chromium
# package when no chromium binary is found. Run as root, or with sudo available.
set -euo pipefail

find_chromium() {
  command -v chromium || command -v chromium-browser || true
}

if [ -n "$(find_chromium)" ]; then
  "$(find_chromium)" --version 2>/dev/null | head -n 1 || true
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
"$(find_chromium)" --version 2>/dev/null | head -n 1 || true
