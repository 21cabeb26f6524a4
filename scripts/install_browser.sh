#!/usr/bin/env bash
# Install Debian's headless-capable Chromium (and its driver) for the browser tests.
#
# The tests drive it with Python playwright via executable_path=/usr/bin/chromium; we never run
# `playwright install`, which downloads a browser build from outside the package registries.
# Idempotent: does nothing when /usr/bin/chromium is already there. Needs root (or sudo).
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
    echo "chromium already installed: $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "error: installing chromium needs root (apt-get); run as root or install sudo" >&2
        exit 1
    fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: apt-get not found; install Chromium by hand so that /usr/bin/chromium exists" >&2
    exit 1
fi

start=$(date +%s)
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
echo "installed $(/usr/bin/chromium --version 2>/dev/null) in $(( $(date +%s) - start )) s"
