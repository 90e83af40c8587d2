# Shared by scripts/demo.sh and scripts/test-deb.sh (sourced, not run).
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
