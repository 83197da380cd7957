#!/usr/bin/env bash
# Installs what the real-VS-Code test harness needs: Debian chromium (driven by playwright-core),
# ripgrep, and code-server@4.100.3 (VS Code 1.100.3, the newest release that runs on Node 20)
# into .cache/code-server/ of the repo. Idempotent: each step is skipped when already done.
set -euo pipefail

CODE_SERVER_VERSION=4.100.3
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX="$ROOT/.cache/code-server"
BIN="$PREFIX/node_modules/.bin/code-server"

missing=()
for pkg in chromium ripgrep libkrb5-dev build-essential python3 curl; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "apt-get install: ${missing[*]}"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

installed="$(node -p 'try { require(process.argv[1]).version } catch { "" }' "$PREFIX/node_modules/code-server/package.json")"
if [[ -x "$BIN" && "$installed" == "$CODE_SERVER_VERSION" ]]; then
  echo "code-server $CODE_SERVER_VERSION already installed at $PREFIX"
  exit 0
fi

# @vscode/ripgrep (a code-server dependency) downloads rg at install time, which fails offline.
# It first looks in this cache folder, so a tarball of Debian's rg placed there satisfies it.
RG_CACHE="$(node -p 'require("os").tmpdir()')/vscode-ripgrep-cache-1.15.11"
RG_TAR="$RG_CACHE/ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz"
if [[ ! -f "$RG_TAR" ]]; then
  mkdir -p "$RG_CACHE"
  staging="$(mktemp -d)"
  cp "$(command -v rg)" "$staging/rg"
  tar -czf "$RG_TAR" -C "$staging" rg
  rm -rf "$staging"
fi

mkdir -p "$PREFIX"
[[ -f "$PREFIX/package.json" ]] || echo '{ "name": "code-server-harness", "private": true }' > "$PREFIX/package.json"
# unsafe_perm: the postinstall refuses to run as root otherwise; yes: node-pty's build runs `npx node-gyp`
# and the machine's npmrc sets yes=false.
echo "npm install code-server@$CODE_SERVER_VERSION into $PREFIX"
npm_config_unsafe_perm=true npm_config_yes=true \
  npm install --prefix "$PREFIX" --no-audit --no-fund --no-save "code-server@$CODE_SERVER_VERSION"
echo "code-server $(node -p "require(process.argv[1]).version" "$PREFIX/node_modules/code-server/package.json") installed at $PREFIX"
