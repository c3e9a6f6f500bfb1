#!/usr/bin/env bash
# What `npm test` needs beyond `npm ci`, installed when missing, so the README's test command works
# on a fresh Debian machine with only Node and npm:
#   chromium            webview and end-to-end tests (headless, through playwright-core)
#   python3-torch       the PyTorch reference and the exported code's checks (/usr/bin/python3)
#   clang, lld          the check that the committed wasm kernels rebuild byte for byte
#   libkrb5-dev, ripgrep  code-server's native build and its search
#   code-server         a real VS Code for the end-to-end tests (../shared/tools/code-server-setup.sh)
# As root it installs them; otherwise it prints the one command to run and exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(chromium python3-torch clang lld libkrb5-dev ripgrep)
missing=()
if command -v dpkg >/dev/null; then
  for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
else
  echo "test-setup: no dpkg here; the tests need these Debian packages (or their equivalents): ${packages[*]}" >&2
fi
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "test-setup: the tests need Debian packages that are not installed. Run:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "test-setup: apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# code-server: idempotent (prints its entry point when already installed; 5-8 minutes the first time)
setup=${LAYERWISE_CODE_SERVER_SETUP:-../shared/tools/code-server-setup.sh}
if [[ ! -f $setup ]]; then
  echo "test-setup: the end-to-end tests need code-server, installed by $setup, which is not here" >&2
  echo "  (set LAYERWISE_CODE_SERVER_SETUP to the setup script's path)" >&2
  exit 1
fi
echo "test-setup: code-server at $(bash "$setup")"
