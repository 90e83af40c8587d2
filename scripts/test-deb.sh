#!/usr/bin/env bash
# Tests the Debian package of kith-relay the way an operator uses it, on this
# machine, as root (CI: Debian 12 without systemd as PID 1):
#   1. builds the .deb with cargo-deb from the debug binary the tests built
#      (no second build; `cargo deb -p kith-relay` makes the release package),
#   2. installs it with dpkg and checks files, owners and modes, the conffile
#      and the system user; verifies the unit with `systemd-analyze verify`,
#   3. runs the installed binary the way the unit does (as kith-relay, with
#      /etc/kith-relay/relay.toml) on 127.0.0.1 and syncs two devices through
#      it with the workspace's `kith` CLI; admin commands and an online backup
#      go through its socket,
#   4. upgrades over it with a rebuilt package (revision 2): the data, the key
#      and an edited config survive, the devices sync again,
#   5. installs and purges the `kith` CLI package,
#   6. removes kith-relay (config and data stay) and purges it (both gone).
# Installs what it needs when missing: cargo-deb (crates.io), systemd (for
# systemd-analyze), adduser. Refuses to touch an existing kith-relay install.
# Needs root (dpkg, the kith-relay user): run it as root or it re-runs itself
# with sudo.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
    exec sudo --preserve-env=CARGO_TARGET_DIR,PATH,CARGO_HOME,RUSTUP_HOME "$0" "$@"
fi
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kith/target}"
CARGO_DEB_VERSION=3.8.0

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install_missing() {
    if ! cargo deb --version >/dev/null 2>&1; then
        echo "== installing cargo-deb $CARGO_DEB_VERSION (crates.io)"
        cargo install --quiet --locked cargo-deb --version "$CARGO_DEB_VERSION"
    fi
    local pkgs=()
    command -v systemd-analyze >/dev/null 2>&1 || pkgs+=(systemd)
    command -v adduser >/dev/null 2>&1 || pkgs+=(adduser)
    command -v setpriv >/dev/null 2>&1 || pkgs+=(util-linux)
    if [ "${#pkgs[@]}" -gt 0 ]; then
        echo "== installing ${pkgs[*]} (apt)"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}"
    fi
}

fail() {
    echo "test-deb: FAILED: $*" >&2
    exit 1
}

# "owner:group mode" of a path.
perms() { as_root stat -c '%U:%G %a' "$1"; }

for pkg in kith-relay kith; do
    if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q installed; then
        fail "$pkg is installed on this machine already; this test installs and purges it"
    fi
done

install_missing
started=$(date +%s)

cargo build --quiet -p kith-relay --bin kith-relay -p kith-cli --bin kith
kith="$CARGO_TARGET_DIR/debug/kith"
out="$CARGO_TARGET_DIR/debian-test"
rm -rf "$out"
mkdir -p "$out"
tmp="$(mktemp -d)"
chmod 755 "$tmp"
relay_pid=""
cleanup() {
    if [ -n "$relay_pid" ]; then kill "$relay_pid" 2>/dev/null || true; fi
    as_root dpkg --purge kith-relay >/dev/null 2>&1 || true
    as_root dpkg --purge kith >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT

# cargo-deb packages the debug build here (it warns that dev packages are
# for testing only); the asset path target/release/kith-relay follows --profile.
build_deb() {
    cargo deb --quiet --fast -p kith-relay --no-build --profile dev --deb-revision "$1" \
        -o "$out/kith-relay_$1.deb" 2>&1 >/dev/null | grep -v "dev profile\|debug symbols set\|^ *To enable" || true
    [ -s "$out/kith-relay_$1.deb" ] || fail "cargo deb made no package"
}

echo "== building the package (revision 1)"
build_deb 1
echo "== installing it"
as_root dpkg -i "$out/kith-relay_1.deb" >/dev/null
[ "$(dpkg-query -W -f='${Version}' kith-relay)" = "0.1.0-1" ] || fail "version"

echo "== files, owners, modes"
[ "$(perms /usr/bin/kith-relay)" = "root:root 755" ] || fail "/usr/bin/kith-relay: $(perms /usr/bin/kith-relay)"
[ "$(perms /etc/kith-relay/relay.toml)" = "root:root 644" ] || fail "relay.toml: $(perms /etc/kith-relay/relay.toml)"
[ "$(perms /var/lib/kith-relay)" = "kith-relay:kith-relay 700" ] || fail "/var/lib/kith-relay: $(perms /var/lib/kith-relay)"
unit=/usr/lib/systemd/system/kith-relay.service
[ -f "$unit" ] || fail "no unit at $unit"
grep -qx "/etc/kith-relay/relay.toml" /var/lib/dpkg/info/kith-relay.conffiles || fail "relay.toml is not a conffile"
getent passwd kith-relay | grep -q ":/var/lib/kith-relay:/usr/sbin/nologin$" || fail "user: $(getent passwd kith-relay)"
# The unit enables the service for boot (symlink made by deb-systemd-helper).
[ -L /etc/systemd/system/multi-user.target.wants/kith-relay.service ] || fail "the service is not enabled"
/usr/bin/kith-relay --version | grep -q "store format" || fail "--version: $(/usr/bin/kith-relay --version)"

echo "== systemd-analyze verify"
as_root systemd-analyze verify "$unit" 2>"$tmp/verify.err" || {
    cat "$tmp/verify.err" >&2
    fail "systemd-analyze verify"
}
# Warnings about the unit itself would show here (the host's other units may warn too).
if grep -q "kith-relay.service" "$tmp/verify.err"; then
    cat "$tmp/verify.err" >&2
    fail "systemd-analyze warns about the unit"
fi
for setting in NoNewPrivileges=yes ProtectSystem=strict PrivateTmp=yes \
    "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX" Restart=on-failure User=kith-relay; do
    grep -qx "$setting" "$unit" || fail "the unit lacks $setting"
done

# Runs the installed binary as the unit does (its ExecStart, as its user),
# on loopback: systemd is not PID 1 here.
start_relay() {
    local exec_start
    exec_start="$(sed -n 's/^ExecStart=//p' "$unit")"
    : >"$tmp/relay.out"
    # shellcheck disable=SC2086 # the unit's command line, split as systemd does
    setpriv --reuid=kith-relay --regid=kith-relay --init-groups -- \
        $exec_start --listen "127.0.0.1:$1" --metrics-listen 127.0.0.1:0 \
        >"$tmp/relay.out" 2>"$tmp/relay.err" &
    relay_pid=$!
    for _ in $(seq 1 100); do
        grep -q '^metrics ' "$tmp/relay.out" 2>/dev/null && break
        sleep 0.1
    done
    relay="$(head -n 1 "$tmp/relay.out")"
    case "$relay" in
    kith://*) ;;
    *)
        cat "$tmp/relay.err" >&2
        fail "the installed relay did not start"
        ;;
    esac
    [ -S /var/lib/kith-relay/admin.sock ] || fail "no admin socket"
    [ "$(perms /var/lib/kith-relay/admin.sock)" = "kith-relay:kith-relay 600" ] ||
        fail "admin.sock: $(perms /var/lib/kith-relay/admin.sock)"
}

stop_relay() {
    kill -TERM "$relay_pid"
    wait "$relay_pid" || fail "the relay did not exit 0 on SIGTERM"
    relay_pid=""
}

admin() { as_root /usr/bin/kith-relay --config /etc/kith-relay/relay.toml "$@"; }

echo "== running the installed relay as kith-relay and syncing two devices"
start_relay 0
first_address="$relay"
laptop="$tmp/laptop"
phone="$tmp/phone"
# Pairing: `pair` waits for the phone and takes the code it shows on stdin.
. scripts/lib-pairing.sh
pair_devices "$kith" "$laptop" "$phone" "$relay" "$tmp" || fail "pairing through the packaged relay failed"
marker="packaged-relay-$RANDOM$RANDOM"
"$kith" --data "$phone" log "Call via the packaged relay" --with "Ada Lovelace" \
    --kind call --notes "$marker" --create-missing >/dev/null
"$kith" --data "$phone" sync >/dev/null
"$kith" --data "$laptop" sync >/dev/null
"$kith" --data "$laptop" timeline "Ada Lovelace" --limit 3 | grep -q "Call via the packaged relay" ||
    fail "the laptop did not receive the phone's interaction"

echo "== admin commands and an online backup through the socket"
admin status >"$tmp/status"
grep -qx "running true" "$tmp/status" || fail "status: $(cat "$tmp/status")"
grep -q "^store_format [0-9]" "$tmp/status" || fail "status lacks the store format"
grep -qx "accounts 1" "$tmp/status" || fail "status: $(cat "$tmp/status")"
admin address | grep -qx "${first_address%@*}@127.0.0.1:7447" || fail "address: $(admin address)"
# Nobody else reaches the admin socket (0600 in a 0700 directory).
if setpriv --reuid=65534 --regid=65534 --clear-groups -- \
    /usr/bin/kith-relay --config /etc/kith-relay/relay.toml status >/dev/null 2>&1; then
    fail "another user ran an admin command"
fi
admin accounts >"$tmp/accounts"
[ "$(wc -l <"$tmp/accounts")" -eq 2 ] || fail "accounts: $(cat "$tmp/accounts")"
awk 'NR==2 { exit !($2 == 2) }' "$tmp/accounts" || fail "accounts: $(cat "$tmp/accounts")"
admin token create | grep -Eq '^[a-z2-7]{30,}$' || fail "token create"
admin backup "$tmp/relay.backup" >/dev/null
[ "$(perms "$tmp/relay.backup" | cut -d' ' -f2)" = "600" ] || fail "backup mode"
grep -qF "$marker" -r /var/lib/kith-relay "$tmp/relay.backup" && fail "plaintext in the relay's files"

echo "== upgrading over it (revision 2) with an edited config"
stop_relay
echo "quota_entries_per_minute = 5000 # edited by the operator" | as_root tee -a /etc/kith-relay/relay.toml >/dev/null
key_sum="$(as_root sha256sum /var/lib/kith-relay/relay.key | cut -d' ' -f1)"
build_deb 2
as_root dpkg -i "$out/kith-relay_2.deb" >/dev/null
[ "$(dpkg-query -W -f='${Version}' kith-relay)" = "0.1.0-2" ] || fail "not upgraded"
grep -q "edited by the operator" /etc/kith-relay/relay.toml || fail "the edited config was replaced"
[ "$(as_root sha256sum /var/lib/kith-relay/relay.key | cut -d' ' -f1)" = "$key_sum" ] || fail "the key changed"
[ "$(perms /var/lib/kith-relay)" = "kith-relay:kith-relay 700" ] || fail "data dir after upgrade"
# Same port: the devices keep the relay's address.
start_relay "${first_address##*:}"
[ "$relay" = "$first_address" ] || fail "the relay's address changed: $relay"
admin status | grep -qx "accounts 1" || fail "the account did not survive the upgrade"
"$kith" --data "$laptop" log "Lunch after the upgrade" --with "Ada Lovelace" --kind meeting >/dev/null
"$kith" --data "$laptop" sync >/dev/null
"$kith" --data "$phone" sync >/dev/null
"$kith" --data "$phone" timeline "Ada Lovelace" --limit 5 >"$tmp/timeline"
grep -q "Lunch after the upgrade" "$tmp/timeline" || fail "no sync after the upgrade"
grep -q "Call via the packaged relay" "$tmp/timeline" || fail "lost an interaction"
stop_relay

echo "== the kith CLI package installs and removes cleanly"
cargo deb --quiet --fast -p kith-cli --no-build --profile dev -o "$out/kith.deb" 2>&1 >/dev/null |
    grep -v "dev profile\|debug symbols set\|^ *To enable" || true
as_root dpkg -i "$out/kith.deb" >/dev/null
[ "$(perms /usr/bin/kith)" = "root:root 755" ] || fail "/usr/bin/kith: $(perms /usr/bin/kith)"
/usr/bin/kith --data "$laptop" timeline "Ada Lovelace" --limit 1 >/dev/null || fail "the packaged kith does not run"
as_root dpkg --purge kith >/dev/null
[ ! -e /usr/bin/kith ] || fail "kith left after purge"

echo "== remove keeps config and data; purge deletes them"
as_root dpkg -r kith-relay >/dev/null
[ ! -e /usr/bin/kith-relay ] || fail "binary left after remove"
[ -f /etc/kith-relay/relay.toml ] || fail "remove deleted the config"
as_root test -f /var/lib/kith-relay/relay.redb || fail "remove deleted the data"
as_root dpkg --purge kith-relay >/dev/null
[ ! -e /etc/kith-relay ] || fail "config left after purge"
[ ! -e /var/lib/kith-relay ] || fail "data left after purge"
[ ! -e "$unit" ] || fail "unit left after purge"

echo "test-deb: ok ($(($(date +%s) - started)) s)"
