#!/usr/bin/env bash
# Runs Kith's main job end to end on its embedded defaults: builds the `kith`
# CLI and the `kith-relay` relay, walks the main flows on a realistic sample
# network (log after a meeting, timeline, search, follow-ups, duplicates,
# insights), then brings a second device in: a relay on 127.0.0.1 only ever
# sees sealed entries, the phone joins with a one-time token, logs a call
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
printf '$ kith --data LAPTOP pair --relay %s\n' "$relay"
token="$("$kith" --data "$laptop" pair --relay "$relay" --json |
    sed -n 's/.*"token":"\([^"]*\)".*/\1/p')"
echo "token: $token"

step "On the phone: join with the token (the account secret arrives sealed under a key derived from it)"
run --data "$phone" join "$token" --name phone

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
