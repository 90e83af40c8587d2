#!/usr/bin/env bash
# Kith vs automerge-repo, side by side, in one run (issue 16; not run by CI).
#
# Builds the Kith side in release (the kith-e2e `compare` bench and the
# relay's binaries, into CARGO_TARGET_DIR if set), installs the pinned
# automerge-repo packages (bench/compare/automerge, npm ci), then:
#   1. the Kith bench generates the synthetic network once per size, writes
#      it as JSON into a scratch directory and measures Kith on it; then
#      relay-load gives the relay's idle-connection figure;
#   2. the node script loads the same JSON into automerge-repo and measures
#      the same workloads against its sync server on 127.0.0.1;
#   3. prints one table: figure | Kith | automerge-repo | ratio.
# Everything stays on loopback. Knobs (environment): SIZES (5000,50000),
# IDLE (idle connections per side, 2000), BOOTSTRAP_TIMEOUT_S (automerge-repo
# upload and new-device limit per size, 240), AM_STRINGS (scalar | text).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
sizes=${SIZES:-5000,50000}
idle=${IDLE:-2000}
bootstrap_timeout_s=${BOOTSTRAP_TIMEOUT_S:-240}
am_strings=${AM_STRINGS:-scalar}

command -v node >/dev/null || { echo "run.sh: node (20+) is needed for the automerge-repo side" >&2; exit 1; }

echo "== build (release) ==" >&2
(cd "$root" && cargo build --release -p kith-relay --bins >&2 && cargo bench -p kith-e2e --bench compare --no-run >&2)

echo "== npm ci (pinned automerge-repo packages) ==" >&2
if [ ! -f "$here/automerge/node_modules/.package-lock.json" ] ||
  [ "$here/automerge/package-lock.json" -nt "$here/automerge/node_modules/.package-lock.json" ]; then
  (cd "$here/automerge" && npm ci --no-audit --no-fund >&2)
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/kith-compare.XXXXXX")
trap 'rm -rf "$work"' EXIT

start=$(date +%s)
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
echo "== Kith ==" >&2
(cd "$root" && cargo bench -p kith-e2e --bench compare -- --out "$work" --sizes "$sizes")
# Idle connections: relay-load spawns the kith-relay binary and holds $idle
# authenticated QUIC connections; its line
# "relay RSS with N idle connections: X MiB over all nodes, Y KiB per connection above start"
# goes into kith.json next to the bench's figures.
"$target/release/relay-load" --connections "$idle" --active 2 --phase-s 1 > "$work/relay-load.txt"
line=$(grep '^relay RSS with' "$work/relay-load.txt")
echo "  [kith] idle: $line" >&2
node -e '
  const fs = require("fs")
  const [file, line] = process.argv.slice(1)
  // "relay RSS with N idle connections: X MiB over all nodes, Y KiB per connection above start; ..."
  const m = line.match(/with (\d+) idle connections: ([\d.]+) MiB.*?, ([\d.]+) KiB per connection/)
  if (!m) throw new Error(`relay-load line not understood: ${line}`)
  const k = JSON.parse(fs.readFileSync(file, "utf8"))
  k.idle_connections = Number(m[1])
  k.idle_server_rss_mib = Number(m[2])
  k.idle_per_connection_kib = Number(m[3])
  k.idle_per_100mib = (100 * 1024) / k.idle_per_connection_kib
  fs.writeFileSync(file, JSON.stringify(k, null, 2))
' "$work/kith.json" "$line"
echo "== automerge-repo ==" >&2
node "$here/automerge/bench.mjs" run --data "$work" --out "$work/am.json" --sizes "$sizes" \
  --idle "$idle" --bootstrap-timeout-s "$bootstrap_timeout_s" --strings "$am_strings"

echo
echo "Kith vs automerge-repo $(node -p 'require(process.argv[1] + "/automerge/node_modules/@automerge/automerge-repo/package.json").version' "$here") ($am_strings strings), $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: $(nproc) cores, load average $load_start at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end; run took $(( $(date +%s) - start )) s"
echo
node "$here/automerge/bench.mjs" table "$work/kith.json" "$work/am.json"
