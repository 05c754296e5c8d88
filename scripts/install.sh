#!/usr/bin/env bash
# Installs everything lazysnap needs on Debian 12 (as root): the Debian
# packages in scripts/debian-packages.txt that are missing, the npm
# dependencies from package-lock.json, the build, and `lazysnap` on PATH
# (/usr/local/bin/lazysnap, a link to this checkout's build; the systemd unit
# in examples/lazysnap.service runs it from there).
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
# A link, not a copy: the built files find package.json and proto/ next to
# them. Moving or deleting this checkout breaks the command (run this again).
ln -sfn "$PWD/dist/src/cli/main.js" /usr/local/bin/lazysnap
echo "lazysnap $(lazysnap --version) installed as /usr/local/bin/lazysnap -> $PWD/dist/src/cli/main.js"
