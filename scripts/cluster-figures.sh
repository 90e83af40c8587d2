#!/usr/bin/env bash
# Load figures of the relay on PostgreSQL across nodes, beside one node on
# redb, with the release build, on 127.0.0.1 only (docs/RELAY.md, "Scaling
# out"). RUNS times (default 3), each on a fresh PostgreSQL primary with two
# quorum-synchronous standbys (scripts/lib-pg-cluster.sh):
#   1. latency: 3 nodes, 1,000 connections, 100 active devices (50 pushing
#      one entry a second, each partner subscribed on another node);
#   2. throughput: 3 nodes, 200 devices, 100 pushing 10 entries back to back;
#   3. failover: the throughput load with 5 entries a push, and 5 s in:
#      kill -9 of the primary, promotion of standby s1 (what a replication
#      manager does); the nodes reach the new primary through their
#      multi-host URL; then every acknowledged entry is verified;
#   4. the same latency and throughput loads on one redb node.
# Prints relay-load's output (with the load average) and tears everything
# down at the end. Usage: scripts/cluster-figures.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kith/target}"
runs="${1:-3}"

cargo build --quiet --release -p kith-relay --bins
load="$CARGO_TARGET_DIR/release/relay-load"
phase_s="${KITH_FIGURES_PHASE_S:-20}"

tmp="$(mktemp -d)"
chmod 0755 "$tmp"
pids=()
. scripts/lib-pg-cluster.sh
clusters=()
cleanup() {
    local c p
    for c in "${clusters[@]}"; do pg_stop "$c"; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT

# a fresh database on the current primary; sets $url (multi-host: the
# nodes follow whichever server accepts writes)
new_database() {
    local name="kith_$1"
    "$pg_bin_dir/psql" -q -h 127.0.0.1 -p "$p0" -U postgres -c "CREATE DATABASE $name" postgres
    # the standbys must have replayed it before a node may fail over to one
    url="postgres://postgres@127.0.0.1:$p0,127.0.0.1:$p1,127.0.0.1:$p2/$name?target_session_attrs=read-write"
}

latency=(--connections 1000 --active 100 --phase-s "$phase_s")
throughput=(--connections 200 --active 200 --push-interval-ms 0 --entries-per-push 10 --phase-s "$phase_s")

echo "== $(date -u '+%F %T') UTC, $(nproc) cores, $(uname -r), PostgreSQL $("$pg_bin_dir/postgres" --version | awk '{print $3}')"
for run in $(seq 1 "$runs"); do
    c="run$run"
    clusters+=("$c")
    pg_cluster_up "$c"
    echo "== run $run: PostgreSQL primary :$p0, synchronous standbys :$p1 :$p2"
    db_pids=(--db-pid "$(pg_pid "$tmp/$c/primary")" --db-pid "$(pg_pid "$tmp/$c/s1")" --db-pid "$(pg_pid "$tmp/$c/s2")")
    new_database "latency"
    echo "-- 3 nodes on PostgreSQL: latency at 100 active devices"
    "$load" --store "$url" --nodes 3 "${db_pids[@]}" "${latency[@]}"
    new_database "throughput"
    echo "-- 3 nodes on PostgreSQL: throughput"
    "$load" --store "$url" --nodes 3 "${db_pids[@]}" "${throughput[@]}"
    echo "-- one node on redb: latency at 100 active devices"
    "$load" "${db_pids[@]}" "${latency[@]}"
    echo "-- one node on redb: throughput"
    "$load" "${db_pids[@]}" "${throughput[@]}"
    new_database "failover"
    echo "-- 3 nodes on PostgreSQL: kill -9 of the primary under load, s1 promoted"
    # What a replication manager does: promote the standby that received
    # the most WAL (with ANY 1, a commit may be on one standby only).
    cat >"$tmp/failover-$c.sh" <<EOF
kill -9 $(pg_pid "$tmp/$c/primary")
lsn() { "$pg_bin_dir/psql" -h 127.0.0.1 -p "\$1" -U postgres -Atc "SELECT pg_last_wal_receive_lsn() - '0/0'" postgres; }
l1="\$(lsn $p1)"; l2="\$(lsn $p2)"
if [ "\${l1%.*}" -ge "\${l2%.*}" ]; then s=s1; else s=s2; fi
echo "  promoting \$s (WAL received: s1 \$l1, s2 \$l2)"
runuser -u postgres -- "$pg_bin_dir/pg_ctl" promote -w -D "$tmp/$c/\$s" >/dev/null
EOF
    failover="sh $tmp/failover-$c.sh"
    "$load" --store "$url" --nodes 3 "${db_pids[@]}" --connections 200 --active 200 --push-interval-ms 0 \
        --entries-per-push 5 --phase-s "$phase_s" --failover-after-s 5 \
        --failover-cmd "$failover" --verify
    pg_stop "$c"
done
echo "== done $(date -u '+%F %T') UTC"
