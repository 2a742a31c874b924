#!/usr/bin/env bash
# `npm run test:livekit`: the real-LiveKit suite (issue 9), offline.
#
# Makes a network namespace of its own (no default route, so no packet can leave it) with a veth pair whose two
# ends both live inside it: 10.77.0.1 carries the LiveKit stack (livekit-server, livekit-sip, Redis, the dialer and
# the agent), 10.77.0.2 the far end (sipp callees). Loopback is not enough: livekit-sip skips loopback for its
# signalling IP and libwebrtc (rtc-node) ignores loopback for ICE. Then runs vitest inside the namespace with
# vitest.livekit.config.ts; test/livekit/globalSetup.ts starts the stack there. Everything left in the namespace is
# ended by PID and the namespace deleted on exit, even on failure.
#
# Needs: root (ip netns), the binaries from `npm run livekit:build`, sipp, espeak-ng, sox, pocketsphinx.
# Says what is missing and exits 3 when something is.
set -euo pipefail
cd "$(dirname "$0")/../.."

SERVER_TAG="${LIVEKIT_SERVER_TAG:-v1.13.5}"
SIP_TAG="${LIVEKIT_SIP_TAG:-v1.8.0}"
CACHE_ROOT="${LIVEKIT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ai-dialer/livekit}"
export LIVEKIT_SERVER_BIN="${LIVEKIT_SERVER_BIN:-$CACHE_ROOT/livekit-server-$SERVER_TAG/bin/server}"
export LIVEKIT_SIP_BIN="${LIVEKIT_SIP_BIN:-$CACHE_ROOT/livekit-sip-$SIP_TAG/bin/livekit-sip}"
export LIVEKIT_SERVER_TAG="$SERVER_TAG" LIVEKIT_SIP_TAG="$SIP_TAG"
# Addresses inside the namespace (a /24 of our own; nothing outside the namespace can see or route it).
export LIVEKIT_STACK_IP="${LIVEKIT_STACK_IP:-10.77.0.1}"
export LIVEKIT_FAR_IP="${LIVEKIT_FAR_IP:-10.77.0.2}"

say() { printf '[test:livekit] %s\n' "$*" >&2; }

missing=()
[[ $(id -u) -eq 0 ]] || missing+=("root (ip netns add needs CAP_SYS_ADMIN; run as root)")
command -v ip >/dev/null || missing+=("ip (Debian iproute2)")
command -v nsenter >/dev/null || missing+=("nsenter (Debian util-linux)")
[[ -x "$LIVEKIT_SERVER_BIN" ]] || missing+=("livekit-server $SERVER_TAG at $LIVEKIT_SERVER_BIN (npm run livekit:build; needs Go)")
[[ -x "$LIVEKIT_SIP_BIN" ]] || missing+=("livekit-sip $SIP_TAG at $LIVEKIT_SIP_BIN (npm run livekit:build; needs Go and cgo)")
[[ -x node_modules/.bin/vitest ]] || missing+=("node_modules/.bin/vitest (npm ci)")
for tool in redis-server sipp espeak-ng sox pocketsphinx_continuous dumpcap; do
  command -v "$tool" >/dev/null || missing+=("$tool (npm run livekit:build installs it)")
done
if ((${#missing[@]})); then
  say "cannot run the real-LiveKit suite; missing:"
  for m in "${missing[@]}"; do say "  - $m"; done
  exit 3
fi

NS="aidl-lk-$$"
cleanup() {
  local rc=$?
  if ip netns list | grep -qw "$NS"; then
    # Only our processes live in this namespace: end them by PID, then the namespace.
    local pids
    pids=$(ip netns pids "$NS" || true)
    if [[ -n "$pids" ]]; then
      # shellcheck disable=SC2086
      kill -TERM $pids 2>/dev/null || true
      for _ in $(seq 1 50); do
        [[ -z "$(ip netns pids "$NS" || true)" ]] && break
        sleep 0.1
      done
      pids=$(ip netns pids "$NS" || true)
      # shellcheck disable=SC2086
      [[ -n "$pids" ]] && kill -KILL $pids 2>/dev/null || true
    fi
    ip netns del "$NS" || true
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

t0=$(date +%s%N)
ip netns add "$NS"
ip -n "$NS" link set lo up
# IPv4 only inside: no link-local IPv6 chatter, one address per end for ICE and SIP.
ip netns exec "$NS" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
ip -n "$NS" link add lkstack type veth peer name lkfar
ip -n "$NS" addr add "$LIVEKIT_STACK_IP/24" dev lkstack
ip -n "$NS" addr add "$LIVEKIT_FAR_IP/24" dev lkfar
ip -n "$NS" link set lkstack up
ip -n "$NS" link set lkfar up
if ip -n "$NS" route show default | grep -q .; then
  say "namespace $NS has a default route; refusing to run"
  exit 3
fi
say "namespace $NS: stack $LIVEKIT_STACK_IP, far end $LIVEKIT_FAR_IP, no default route ($((($(date +%s%N) - t0) / 1000000)) ms)"

# vitest's own exit code decides; its JSON report names what failed, so the last lines say why.
REPORT=".tmp/livekit/last-report.json"
mkdir -p .tmp/livekit
# Each run keeps its logs, traces and RTP captures (5–10 MB); keep the newest KEEP_RUNS of them.
KEEP_RUNS="${LIVEKIT_KEEP_RUNS:-5}"
find .tmp/livekit -maxdepth 1 -type d -name 'run-*' -printf '%f\n' | sort -r | tail -n +"$KEEP_RUNS" |
  while IFS= read -r old; do rm -rf ".tmp/livekit/$old"; done
rm -f "$REPORT"
t_run=$(date +%s)
set +e
# nsenter --net, not `ip netns exec`: the latter also remounts /sys for the namespace, which hides /sys/fs/cgroup,
# and agents-js then measures its load from os.cpus() (the whole machine) instead of its cgroup (agentRig.ts NUM_CPUS).
nsenter --net="/run/netns/$NS" env LIVEKIT_NETNS="$NS" node_modules/.bin/vitest run --config vitest.livekit.config.ts \
  --reporter=default --reporter=json --outputFile.json="$REPORT" "$@"
rc=$?
set -e
elapsed=$(($(date +%s) - t_run))
summary=$(node -e '
  const fs = require("node:fs");
  let r;
  try { r = JSON.parse(fs.readFileSync(process.argv[1], "utf8")); } catch { console.log("no report: vitest did not finish"); process.exit(0); }
  const failed = [];
  for (const file of r.testResults ?? []) {
    const short = file.name.replace(/^.*test\/livekit\//, "");
    if (file.status === "failed" && (file.assertionResults ?? []).every((a) => a.status !== "failed"))
      failed.push(`${short}: ${(file.message ?? "suite failed").split("\n")[0]}`);
    for (const a of file.assertionResults ?? [])
      if (a.status === "failed") failed.push(`${short} > ${a.title}: ${(a.failureMessages?.[0] ?? "").split("\n")[0].slice(0, 300)}`);
  }
  console.log(`${r.numPassedTests}/${r.numTotalTests} scenarios passed, ${r.numFailedTests} failed, ${r.numPendingTests ?? 0} skipped`);
  for (const f of failed) console.log(`FAILED ${f}`);
  if (r.numTotalTests > 0 && r.numPassedTests === r.numTotalTests) console.log("ALL-PASSED");
' "$REPORT")
# A full run (no arguments) passes only when every scenario ran and passed: a skipped one is not a pass.
if (($# == 0)) && ((rc == 0)) && ! grep -q '^ALL-PASSED$' <<<"$summary"; then
  rc=1
  say "not every scenario passed (skipped or missing ones count as failures in a full run)"
fi
summary=$(grep -v '^ALL-PASSED$' <<<"$summary" || true)
while IFS= read -r line; do say "$line"; done <<<"$summary"
if ((rc == 0)); then
  say "PASS: every scenario passed in ${elapsed} s"
else
  say "FAIL (vitest exit $rc) after ${elapsed} s; logs in the run folder under .tmp/livekit/"
fi
exit "$rc"
