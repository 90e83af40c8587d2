#!/usr/bin/env bash
# The relay beyond one machine, end to end with the real binaries, on
# 127.0.0.1 only: PostgreSQL from Debian's packages (installed if missing;
# initdb and the servers run as the `postgres` user) as a primary with two
# quorum-synchronous standbys, two `kith-relay` nodes on it with one key,
# and two devices of the `kith` CLI: paired through node A, the phone syncs
# through node B, the laptop through node A and sees the phone's call.
# Then the standbys are checked to hold the entries. Everything lives in a
# temporary directory and is stopped and removed at the end (trap).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kith/target}"

cargo build --quiet -p kith-cli --bin kith -p kith-relay --bin kith-relay
kith="$CARGO_TARGET_DIR/debug/kith"
relay_bin="$CARGO_TARGET_DIR/debug/kith-relay"

tmp="$(mktemp -d)"
chmod 0755 "$tmp"
pids=()
. scripts/lib-pg-cluster.sh
cleanup() {
    local p
    # The relay nodes, then the PostgreSQL servers (an immediate stop).
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    pg_stop pg
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT

echo "== PostgreSQL: a primary and two synchronous standbys"
pg_cluster_up pg
bin="$pg_bin_dir"
url="postgres://postgres@127.0.0.1:$p0/postgres"
echo "primary :$p0, standbys :$p1 :$p2"

echo "== two relay nodes on it, one key"
"$relay_bin" --key-file "$tmp/relay.key" --data-dir "$tmp/keygen" address >/dev/null 2>"$tmp/key.err"
# starts node $1 and sets $addr to its kith:// address (not in a subshell:
# its pid must reach the cleanup)
start_node() {
    "$relay_bin" --key-file "$tmp/relay.key" --store "$url" --data-dir "$tmp/node-$1" \
        --listen 127.0.0.1:0 --metrics-listen off >"$tmp/node-$1.out" 2>"$tmp/node-$1.err" &
    pids+=($!)
    for _ in $(seq 1 100); do
        [ -s "$tmp/node-$1.out" ] && break
        sleep 0.1
    done
    addr="$(head -n 1 "$tmp/node-$1.out")"
    case "$addr" in
    kith://*) ;;
    *)
        echo "relay node $1 did not start:" >&2
        cat "$tmp/node-$1.err" >&2
        exit 1
        ;;
    esac
}
start_node a
node_a="$addr"
start_node b
node_b="$addr"
echo "node A: $node_a"
echo "node B: $node_b"
if [ "${node_a%@*}" != "${node_b%@*}" ]; then
    echo "the nodes present different keys" >&2
    exit 1
fi

echo "== pair a laptop and a phone through node A"
laptop="$tmp/laptop"
phone="$tmp/phone"
. scripts/lib-pairing.sh
pair_devices "$kith" "$laptop" "$phone" "$node_a" "$tmp" || exit 1

echo "== the phone syncs through node B, the laptop through node A"
marker="cluster-$RANDOM$RANDOM"
"$kith" --data "$phone" log "Call about the $marker pilot" --with "Anaïs Wójcik" --create-missing --kind call >/dev/null
"$kith" --data "$phone" sync --relay "$node_b" >/dev/null
"$kith" --data "$laptop" sync --relay "$node_a" >/dev/null
if ! "$kith" --data "$laptop" timeline "Anaïs Wójcik" --limit 3 | grep -qF "$marker"; then
    echo "the laptop did not get the phone's call through the other node" >&2
    exit 1
fi
echo "the laptop sees the call the phone synced through the other node"

echo "== the standbys hold the entries (synchronous replication)"
# One standby acknowledged each commit; the other may replay a moment later
# (bounded wait, 10 s).
for port in "$p1" "$p2"; do
    n=0
    for _ in $(seq 1 100); do
        n="$("$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -Atc 'SELECT count(*) FROM entries' postgres)"
        [ "${n:-0}" -ge 1 ] && break
        sleep 0.1
    done
    if [ "${n:-0}" -lt 1 ]; then
        echo "standby :$port holds no entries" >&2
        exit 1
    fi
    echo "standby :$port: $n entries"
done
echo "cluster: ok"
