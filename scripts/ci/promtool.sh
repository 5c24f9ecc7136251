#!/usr/bin/env bash
# Makes `promtool` available for the /metrics test: installs Debian's prometheus package when
# promtool is missing (about 15 s on a fresh machine). Run as root, or with sudo available.
set -euo pipefail

if command -v promtool >/dev/null 2>&1; then
  promtool --version 2>&1 | head -n 1
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
promtool --version 2>&1 | head -n 1
