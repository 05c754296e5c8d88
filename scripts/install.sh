#!/usr/bin/env bash
# Installs everything lazysnap needs on Debian 12 (as root): the Debian
# packages in scripts/debian-packages.txt that are missing, the npm
# dependencies from package-lock.json, and the build.
set -euo pipefail
cd "$(dirname "$0")/.."

mapfile -t packages < <(grep -v '^\s*#' scripts/debian-packages.txt | grep -v '^\s*$')
missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The Debian containerd package may start its own daemon under systemd; the
# tests start private instances and never use it.
npm ci --no-audit --no-fund
npm run build
chmod +x dist/src/cli/main.js
