#!/usr/bin/env bash
# Installs the real LiveKit stack used by `npm run test:livekit` (issue 9) into a cache folder outside the repo,
# so a fresh clone on the same machine finds it warm and a new machine builds it cold:
#   - Debian packages: pkg-config + libopus/libopusfile/libsoxr (cgo deps of livekit-sip), sipp (sip-tester),
#     espeak-ng + sox (speech and tones), pocketsphinx + pocketsphinx-en-us (offline recognition), tshark (RTP capture).
#   - livekit-server and livekit-sip, built with `go install` at pinned tags.
# Idempotent: a warm run only checks. Prints what it did and how long each step took.
#
# Pinned tags (why these):
#   livekit-server v1.13.5: later tags carry `replace` directives in go.mod, which `go install pkg@version` refuses.
#   livekit-sip   v1.8.0: the Go module proxy here answers 403 "This module version is not available" for
#                 github.com/livekit/sip v1.11.0 (the version issue 9 was planned on), v1.10.0, v1.9.0 and v1.4.0-v1.6.0,
#                 and for the module's version list; v1.8.0 (2026-07-22) and its dependencies are served. Its config keys
#                 (nat_1_to_1_ip, use_external_ip, listen_ip, health_port) are the same as v1.11.0's.
#                 `go install pkg@version` reads the version list (for deprecation notices) and fails on that 403, so
#                 livekit-sip is built from a throwaway module that requires the pinned version instead.
# Override with LIVEKIT_SERVER_TAG / LIVEKIT_SIP_TAG (the cache folder is per tag).
set -euo pipefail

SERVER_TAG="${LIVEKIT_SERVER_TAG:-v1.13.5}"
SIP_TAG="${LIVEKIT_SIP_TAG:-v1.8.0}"
CACHE_ROOT="${LIVEKIT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ai-dialer/livekit}"
SERVER_BIN_DIR="$CACHE_ROOT/livekit-server-$SERVER_TAG/bin"
SIP_BIN_DIR="$CACHE_ROOT/livekit-sip-$SIP_TAG/bin"
# Go builds are heavy on a shared 2-core machine: run them at the lowest priority.
NICE="${LIVEKIT_BUILD_NICE:-19}"

APT_PACKAGES=(pkg-config libopus-dev libopusfile-dev libsoxr-dev sip-tester espeak-ng sox
  pocketsphinx pocketsphinx-en-us tshark redis-server iproute2)

t_all=$(date +%s)
now() { date +%s; }
say() { printf '[livekit:build] %s\n' "$*"; }

# 1. Debian packages -------------------------------------------------------------------------------------------------
t=$(now)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    say "missing Debian packages: ${missing[*]} (need root to apt-get install them)"
    exit 3
  fi
  say "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # tshark asks whether non-root users may capture; answer no, non-interactively.
  echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections 2>/dev/null || true
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  say "apt: installed ${#missing[@]} package(s) in $(($(now) - t)) s"
else
  say "apt: all ${#APT_PACKAGES[@]} packages present ($(($(now) - t)) s)"
fi

# 2. Go toolchain (only needed for what is not cached yet) ----------------------------------------------------------
need_go() {
  if ! command -v go >/dev/null; then
    say "go is not installed: livekit-server and livekit-sip are built from source with Go (>= 1.24)"
    exit 3
  fi
  say "$(go version)"
}

build() { # mode (install|module), name, package@tag or module@tag/cmd/x, bin dir, binary name, extra env...
  local mode=$1 name=$2 pkg=$3 dir=$4 bin=$5
  shift 5
  local t0
  t0=$(now)
  if [[ -x "$dir/$bin" ]]; then
    say "$name: cached at $dir/$bin ($(($(now) - t0)) s)"
    return
  fi
  need_go
  mkdir -p "$dir"
  # Build into a temporary folder, then move: an interrupted build never leaves a half binary that looks cached.
  local tmp ok=1
  tmp=$(mktemp -d "$dir/.build.XXXXXX")
  if [[ $mode == install ]]; then
    say "$name: go install $pkg (nice $NICE; this takes minutes on a cold cache)"
    env GOBIN="$tmp" GOFLAGS=-buildvcs=false "$@" nice -n "$NICE" go install "$pkg" || ok=0
  else
    # pkg is module@version/package: a throwaway main module requiring module@version, then go build package.
    local modver=${pkg%%/cmd/*} sub=${pkg#*/cmd/}
    local module=${modver%@*} version=${modver#*@}
    say "$name: go build $module/cmd/${sub} at $version (nice $NICE; this takes minutes on a cold cache)"
    mkdir -p "$tmp/mod"
    printf 'module ai-dialer/livekit-build\n\ngo 1.24\n\nrequire %s %s\n' "$module" "$version" >"$tmp/mod/go.mod"
    (cd "$tmp/mod" && env GOFLAGS="-buildvcs=false -mod=mod" "$@" nice -n "$NICE" go build -o "$tmp/$bin" "$module/cmd/$sub") || ok=0
  fi
  if ((!ok)); then
    rm -rf "$tmp"
    say "$name: building $pkg failed"
    exit 4
  fi
  mv "$tmp/$bin" "$dir/$bin"
  rm -rf "$tmp"
  say "$name: built in $(($(now) - t0)) s -> $dir/$bin"
}

# 3. The two binaries ------------------------------------------------------------------------------------------------
build install livekit-server "github.com/livekit/livekit-server/cmd/server@$SERVER_TAG" "$SERVER_BIN_DIR" server CGO_ENABLED=0
build module livekit-sip "github.com/livekit/sip@$SIP_TAG/cmd/livekit-sip" "$SIP_BIN_DIR" livekit-sip CGO_ENABLED=1

say "done in $(($(now) - t_all)) s"
say "LIVEKIT_SERVER_BIN=$SERVER_BIN_DIR/server"
say "LIVEKIT_SIP_BIN=$SIP_BIN_DIR/livekit-sip"
