#!/usr/bin/env bash
# Runs Kith's main job end to end on its embedded defaults: builds the `kith`
# CLI and the `kith-relay` relay, walks the main flows on a realistic sample
# network (log after a meeting, timeline, search, follow-ups, duplicates,
# insights), then brings a second device in: a relay on 127.0.0.1 only ever
# sees sealed entries, the phone joins with a one-time token (both show a
# short code the user compares), logs a call
# offline and the laptop receives it. Everything lives in a temporary
# directory that is removed at the end. Extra arguments go to `kith demo`
# (e.g. --contacts 200 --interactions 5000 --seed 3).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kith/target}"

cargo build --quiet -p kith-cli --bin kith -p kith-relay --bin kith-relay
kith="$CARGO_TARGET_DIR/debug/kith"
relay_bin="$CARGO_TARGET_DIR/debug/kith-relay"

tmp="$(mktemp -d)"
relay_pid=""
cleanup() {
    if [ -n "$relay_pid" ]; then kill "$relay_pid" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT

laptop="$tmp/laptop"
phone="$tmp/phone"
"$kith" demo --data "$laptop" "$@" | sed '/^The sample network stays in/d'

step() { printf '\n== %s\n' "$1"; }
# Echoes the command as a user would type it (data directories by name).
run() {
    local shown="" a
    for a in "$@"; do
        case "$a" in
        "$laptop") a="LAPTOP" ;;
        "$phone") a="PHONE" ;;
        *[[:space:]]*) a="\"$a\"" ;;
        esac
        shown="$shown $a"
    done
    printf '$ kith%s\n' "$shown"
    "$kith" "$@"
}

step "Your phone joins: first a relay (here on 127.0.0.1; it stores only sealed, signed entries)"
"$relay_bin" --data-dir "$tmp/relay" --listen 127.0.0.1:0 --metrics-listen off \
    >"$tmp/relay.out" 2>"$tmp/relay.err" &
relay_pid=$!
for _ in $(seq 1 100); do
    [ -s "$tmp/relay.out" ] && break
    sleep 0.1
done
relay="$(head -n 1 "$tmp/relay.out")"
case "$relay" in
kith://*) echo "relay listening: $relay" ;;
*)
    echo "the relay did not start:" >&2
    cat "$tmp/relay.err" >&2
    exit 1
    ;;
esac

step "The laptop creates its device keys and invites the phone (a one-time token, shown as a QR code)"
run --data "$laptop" init
# `kith pair` waits for the new device and asks to compare a short code; a
# script answers on stdin (--code-stdin) and reads one JSON line per step.
printf '$ kith --data LAPTOP pair --relay %s\n' "$relay"
mkfifo "$tmp/pair.in"
"$kith" --data "$laptop" pair --relay "$relay" --json --code-stdin \
    <"$tmp/pair.in" >"$tmp/pair.out" 2>"$tmp/pair.err" &
pair_pid=$!
exec 3>"$tmp/pair.in"
. scripts/lib-pairing.sh
token="$(json_field "$tmp/pair.out" token)"
echo "token: $token"

step "On the phone: join with the token; the phone shows a short code, the laptop the same one, you approve"
printf '$ kith --data PHONE join %s --name phone\n' "$token"
"$kith" --data "$phone" join "$token" --name phone --json >"$tmp/join.out" 2>"$tmp/join.err" &
join_pid=$!
code="$(json_field "$tmp/join.out" code)"
echo "the phone shows:  $code"
shown="$(json_field "$tmp/pair.out" code)"
echo "the laptop shows: $shown"
if [ "$shown" != "$code" ]; then
    echo "the codes differ: someone else redeemed the token" >&2
    exit 1
fi
echo "they match: approved on the laptop"
echo "$code" >&3
exec 3>&-
wait "$pair_pid"
wait "$join_pid"
echo "the phone is a member of the account; nothing secret travelled in the token"

step "On the phone, offline, right after a call"
marker="pilot-on-two-wards-$RANDOM$RANDOM"
run --data "$phone" log "Call about the pilot" --with "Anaïs Wójcik" --kind call \
    --notes "She backs the $marker plan." --follow-up "Send the ward list" --due friday
run --data "$phone" sync

step "Back on the laptop: one sync and the call is there"
run --data "$laptop" sync
run --data "$laptop" timeline "Anaïs Wójcik" --limit 3

step "The relay never saw the content: the note's words are in none of its files"
if grep -rqF "$marker" "$tmp/relay"; then
    echo "FOUND plaintext in the relay's files" >&2
    exit 1
fi
echo "searched $(find "$tmp/relay" -type f | wc -l) relay files for \"$marker\": not found"
echo
echo "The sample lived in a temporary directory and is now gone."
