# shellcheck shell=bash
# Shared by scripts/demo.sh, scripts/test-deb.sh and scripts/cluster.sh (sourced, not run).
#
# json_field FILE KEY: the first string value of KEY in the JSON lines FILE
# that a running `kith` command writes, waiting for it (bounded, 60 s); on
# timeout prints FILE and its .err companion and exits 1.
json_field() {
    local v=""
    for _ in $(seq 1 600); do
        v="$(sed -n "s/.*\"$2\":\"\([^\"]*\)\".*/\1/p" "$1" | head -n 1)"
        [ -n "$v" ] && break
        sleep 0.1
    done
    if [ -z "$v" ]; then
        echo "no $2 in $1:" >&2
        cat "$1" "${1%.out}.err" >&2
        exit 1
    fi
    printf '%s' "$v"
}

# pair_devices KITH LAPTOP PHONE RELAY TMP: a fresh store LAPTOP invites
# through RELAY (`pair --code-stdin`), PHONE joins with the token, the codes
# both show must match and go back to `pair`; both commands must succeed.
# Scratch files go to TMP. Prints why and returns 1 on failure.
pair_devices() {
    local kith="$1" laptop="$2" phone="$3" relay="$4" tmp="$5"
    "$kith" --data "$laptop" init >/dev/null
    mkfifo "$tmp/pair.in"
    "$kith" --data "$laptop" pair --relay "$relay" --json --code-stdin \
        <"$tmp/pair.in" >"$tmp/pair.out" 2>"$tmp/pair.err" &
    local pair_pid=$!
    exec 3>"$tmp/pair.in"
    local token code
    token="$(json_field "$tmp/pair.out" token)" || return 1
    "$kith" --data "$phone" join "$token" --name phone --json >"$tmp/join.out" 2>"$tmp/join.err" &
    local join_pid=$!
    code="$(json_field "$tmp/join.out" code)" || return 1
    local shown
    shown="$(json_field "$tmp/pair.out" code)" || return 1
    if [ "$shown" != "$code" ]; then
        echo "the pairing codes differ" >&2
        return 1
    fi
    echo "$code" >&3
    exec 3>&-
    wait "$pair_pid" || { echo "pair failed: $(cat "$tmp/pair.err")" >&2; return 1; }
    wait "$join_pid" || { echo "join failed: $(cat "$tmp/join.err")" >&2; return 1; }
}
