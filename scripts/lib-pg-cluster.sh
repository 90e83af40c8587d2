# Shared by scripts/cluster.sh and scripts/cluster-figures.sh (sourced, not
# run): PostgreSQL from Debian's packages (installed if missing) as a
# primary with two quorum-synchronous standbys on 127.0.0.1 only; initdb and
# the servers run as the `postgres` user (the scripts run as root).
#
# The caller sets $tmp (a directory, mode 0755, removed by the caller) and
# an array `pids`; pg_cluster_up DIR starts the servers under $tmp/DIR and
# sets $pg_bin_dir, $p0 (primary), $p1, $p2 (standbys s1, s2); pg_stop DIR
# stops them (an immediate stop, by each postmaster's pid: runuser does not
# pass signals on).

pg_find_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
if [ -z "${KITH_PG_BIN:-}" ] && [ -z "$(pg_find_bin)" ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
pg_bin_dir="${KITH_PG_BIN:-$(pg_find_bin)}"
as_pg() { runuser -u postgres -- "$@"; }
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# waits until `pg_isready` answers on port $1 (bounded, 30 s)
wait_pg() {
    for _ in $(seq 1 300); do
        "$pg_bin_dir/pg_isready" -q -h 127.0.0.1 -p "$1" && return 0
        sleep 0.1
    done
    echo "PostgreSQL on port $1 did not start" >&2
    cat "$tmp"/*.log "$tmp"/*/*.log >&2 || true
    exit 1
}
# starts postgres on data directory $1, port $2 (extra settings follow)
start_pg() {
    local dir="$1" port="$2"
    shift 2
    as_pg "$pg_bin_dir/postgres" -D "$dir" -p "$port" -c listen_addresses=127.0.0.1 \
        -c unix_socket_directories="$tmp/sock" "$@" >"$dir.log" 2>&1 &
    pids+=($!)
    wait_pg "$port"
}
# the postmaster pid of data directory $1 (empty when it is not running; a
# killed server leaves its postmaster.pid behind)
pg_pid() {
    local p
    # the server may remove the file between a check and the read (stopping)
    p="$(head -n 1 "$1/postmaster.pid" 2>/dev/null)" || return 0
    if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then echo "$p"; fi
}

# pg_cluster_up DIR: a primary ($tmp/DIR/primary) and two standbys s1, s2
# that confirm commits as a quorum of one (ANY 1 (s1, s2)); waits until both
# stream.
pg_cluster_up() {
    local d="$tmp/$1" s port n
    p0="$(free_port)"
    p1="$(free_port)"
    p2="$(free_port)"
    install -d -o postgres -m 0700 "$d" "$d/primary" "$d/s1" "$d/s2"
    install -d -o postgres -m 0700 "$tmp/sock"
    as_pg "$pg_bin_dir/initdb" -D "$d/primary" -A trust -U postgres >/dev/null
    start_pg "$d/primary" "$p0" -c "synchronous_standby_names=ANY 1 (s1, s2)" \
        -c max_connections=200
    for s in 1 2; do
        as_pg "$pg_bin_dir/pg_basebackup" -h 127.0.0.1 -p "$p0" -U postgres -D "$d/s$s" -R -X stream
        echo "primary_conninfo = 'host=127.0.0.1 port=$p0 user=postgres application_name=s$s'" |
            as_pg tee -a "$d/s$s/postgresql.auto.conf" >/dev/null
        port="p$s"
        start_pg "$d/s$s" "${!port}" -c max_connections=200
    done
    for _ in $(seq 1 300); do
        n="$("$pg_bin_dir/psql" -h 127.0.0.1 -p "$p0" -U postgres -Atc \
            "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'quorum'" postgres)"
        [ "${n:-0}" -ge 2 ] && return 0
        sleep 0.1
    done
    echo "the standbys did not start streaming" >&2
    exit 1
}

# pg_stop DIR: an immediate stop of every server under $tmp/DIR
pg_stop() {
    local d p
    for d in "$tmp/$1"/primary "$tmp/$1"/s1 "$tmp/$1"/s2; do
        p="$(pg_pid "$d")"
        [ -n "$p" ] && kill -QUIT "$p" 2>/dev/null || true
    done
    # bounded wait for them to go (10 s)
    for _ in $(seq 1 100); do
        [ -z "$(pg_pid "$tmp/$1/primary")$(pg_pid "$tmp/$1/s1")$(pg_pid "$tmp/$1/s2")" ] && return 0
        sleep 0.1
    done
}
