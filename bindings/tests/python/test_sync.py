"""Account, pairing and sync through the generated Python bindings, with two
stores (two devices) and the real `kith-relay` binary started by the test on
127.0.0.1:0 (its path in KITH_RELAY_BIN, set by scripts/test-bindings.sh).
Every wait is bounded; the relay is killed at the end."""

import asyncio
import os
import pathlib
import socket
import subprocess
import sys
import threading
import time

import pytest

import kith_ffi as raw_kith_ffi
from blocking import kith_ffi, run
from kith_ffi import KithError, NewContact, NewInteraction, SyncState

TIMEOUT_S = 60


@pytest.fixture
def relay(relay_process):
    """Starts kith-relay; yields its kith:// address; kills it afterwards."""
    yield relay_process[1]


@pytest.fixture
def relay_process(tmp_path):
    """Starts kith-relay; yields (process, kith:// address); kills it afterwards."""
    binary = os.environ.get("KITH_RELAY_BIN")
    if not binary or not pathlib.Path(binary).is_file():
        raise RuntimeError("KITH_RELAY_BIN must name the built kith-relay binary")
    proc = subprocess.Popen(
        [
            binary,
            "--data-dir", str(tmp_path / "relay"),
            "--listen", "127.0.0.1:0",
            "--metrics-listen", "off",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        # The first stdout line is the address with the bound port.
        lines = []
        reader = threading.Thread(target=lambda: lines.append(proc.stdout.readline()))
        reader.start()
        reader.join(TIMEOUT_S)
        assert lines and lines[0].startswith("kith://"), f"relay said {lines!r}"
        yield proc, lines[0].strip()
    finally:
        proc.kill()
        proc.wait(TIMEOUT_S)


class Recorder(kith_ffi.KithListener):
    def __init__(self):
        self.lock = threading.Lock()
        self.changes = []
        self.states = []

    def on_change(self, summary):
        with self.lock:
            self.changes.append(summary)

    def on_sync_state(self, state):
        with self.lock:
            self.states.append(state)

    def heard_interaction(self, iid):
        with self.lock:
            return any(iid in c.interaction_ids for c in self.changes)

    def kinds(self):
        with self.lock:
            return [type(s).__name__.rsplit(".", 1)[-1] for s in self.states]


class MemoryKeyStore(kith_ffi.KithKeyStore):
    """What a phone's Keychain does, in memory: keeps the opaque bytes."""

    def __init__(self):
        self.saved = None
        self.saves = 0

    def load(self):
        return self.saved

    def save(self, key_material):
        self.saved = bytes(key_material)
        self.saves += 1


def eventually(cond, seconds=20):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def test_sync_now_with_background_sync_reports_the_round_and_fails_offline(tmp_path, relay_process):
    proc, relay = relay_process
    a, b = two_devices(tmp_path, relay)
    a.start_sync()
    assert eventually(lambda: a.sync_status().state == SyncState.LIVE())
    ana = a.add_contact(NewContact(name="Ana Lima"))
    a.log_interaction(NewInteraction(summary="Coffee", participant_ids=[ana.id]))
    report = run(a.sync_now())
    assert report.via_background_sync
    st = a.sync_status()
    assert (st.unsent_local_writes, st.unacknowledged_entries) == (0, 0), st
    # The relay dies (killed: the session has not noticed yet); a meeting logged meanwhile
    # cannot reach it, and pull-to-refresh is told so within its timeout, not "synced".
    proc.kill()
    proc.wait(TIMEOUT_S)
    a.log_interaction(NewInteraction(summary="Offline lunch", participant_ids=[ana.id]))
    a.set_sync_timeout_ms(2_000)
    with pytest.raises(KithError.Network):
        run(a.sync_now())
    assert a.stop_sync()
    a.close()
    b.close()


def test_cancelling_the_awaiting_task_cancels_the_round(tmp_path, relay):
    # A relay address that never answers: the round would wait for its 60 s timeout.
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    key = relay.split("://", 1)[1].split("@", 1)[0]
    k = kith_ffi.Kith.open(str(tmp_path / "c"))
    k.create_account("phone", f"kith://{key}@127.0.0.1:{silent.getsockname()[1]}")

    async def cancel_it():
        task = asyncio.ensure_future(k.raw.sync_now())
        while (await k.raw.sync_status()).state != SyncState.CONNECTING():
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(cancel_it())
    # The round went with the task: the state leaves Connecting at once.
    assert eventually(lambda: k.sync_status().state == SyncState.IDLE(), seconds=5), \
        k.sync_status().state
    k.close()
    silent.close()


def two_devices(tmp_path, relay):
    keys_a = MemoryKeyStore()
    a = kith_ffi.Kith.open_with_key_store(str(tmp_path / "a"), keys_a)
    b = kith_ffi.Kith.open(str(tmp_path / "b"))
    info = a.create_account("phone", relay)
    assert info.relay == relay
    # The recovery code is shown once, never stored.
    assert info.recovery_code.startswith("kithr1-")
    assert a.account().recovery_code is None
    # The device keys went to the app's key store, not to a file.
    assert keys_a.saves == 1 and keys_a.saved
    assert not (tmp_path / "a" / "keys.json").exists()
    invitation = a.invite(10)
    assert invitation.token() and invitation.expires_at_ms() > time.time() * 1000
    # b asks and shows its code; a sees the same code and approves.
    joining = b.start_join(invitation.token(), "laptop")
    code = joining.code()
    request = invitation.wait_for_join()
    assert request.code == code and request.name == "laptop"
    invitation.approve(code)
    joined = joining.wait_for_answer()
    assert joined.account_id == info.account_id
    assert joined.device_id != info.device_id
    # The default key store: keys.json next to the store.
    assert (tmp_path / "b" / "keys.json").exists()
    return a, b


def test_the_invitation_objects_drive_a_pairing(tmp_path, relay):
    a = kith_ffi.Kith.open(str(tmp_path / "a"))
    b = kith_ffi.Kith.open(str(tmp_path / "b"))
    c = kith_ffi.Kith.open(str(tmp_path / "c"))
    info = a.create_account("phone", relay)
    invitation = run(a.invite(10))
    assert invitation.expires_at_ms() > time.time() * 1000
    token = invitation.token()
    # Neither object shows the token when printed (logs, crash reports).
    assert token not in repr(invitation) and token not in str(invitation)
    joining = run(b.start_join(token, "laptop"))
    assert token not in repr(joining)
    # The inviter sees who asks and the code the joiner shows.
    request = run(invitation.wait_for_join())
    assert (request.name, request.code) == ("laptop", joining.code())
    run(invitation.approve(joining.code()))
    joined = run(joining.wait_for_answer())
    assert joined.account_id == info.account_id
    assert joined.device_id == request.device_id
    assert b.account().account_id == info.account_id

    # A code that does not match what the joiner shows: refused on both sides.
    invitation = run(a.invite(10))
    joining = run(c.start_join(invitation.token(), "tablet"))
    run(invitation.wait_for_join())
    wrong = "111111" if joining.code() == "000000" else "000000"
    with pytest.raises(KithError.Authentication):
        run(invitation.approve(wrong))
    with pytest.raises(KithError.Authentication):
        run(joining.wait_for_answer())
    assert c.account() is None


def test_two_devices_sync_a_meeting_through_the_relay(tmp_path, relay):
    a, b = two_devices(tmp_path, relay)
    rec_a, rec_b = Recorder(), Recorder()
    a.add_listener(rec_a)
    b.add_listener(rec_b)
    assert rec_b.states == [SyncState.IDLE()]

    ana = a.add_contact(NewContact(name="Ana Lima"))
    iid = a.log_interaction(
        NewInteraction(summary="Coffee after the talk", participant_ids=[ana.id])
    )
    assert a.sync_status().unsent_local_writes == 2
    pushed = run(a.sync_now())
    assert pushed.pushed_entries >= 1
    status = a.sync_status()
    assert status.unsent_local_writes == 0 and status.last_error is None
    assert status.last_sync_ms is not None and status.relay == relay

    got = run(b.sync_now())
    assert got.interactions_changed >= 1
    assert b.get_interaction(iid).summary == "Coffee after the talk"
    assert b.get_contact(ana.id).name == "Ana Lima"
    assert rec_b.heard_interaction(iid)
    assert rec_b.kinds() == ["IDLE", "CONNECTING", "SYNCING", "IDLE"]
    assert "CONNECTING" in rec_a.kinds()

    devices = b.devices()
    assert sorted(d.name for d in devices) == ["laptop", "phone"]
    assert [d.name for d in devices if d.this_device] == ["laptop"]
    a.close()
    b.close()


def test_background_sync_is_live_and_suspend_stops_it(tmp_path, relay):
    a, b = two_devices(tmp_path, relay)
    rec_b = Recorder()
    b.add_listener(rec_b)
    a.start_sync()
    b.start_sync()
    assert eventually(lambda: a.sync_status().state == SyncState.LIVE()
                      and b.sync_status().state == SyncState.LIVE())
    ana = a.add_contact(NewContact(name="Ana Lima"))
    iid = a.log_interaction(NewInteraction(summary="Lunch", participant_ids=[ana.id]))
    assert eventually(lambda: rec_b.heard_interaction(iid)), rec_b.changes
    assert b.get_interaction(iid).summary == "Lunch"
    assert {"CONNECTING", "SYNCING", "LIVE"} <= set(rec_b.kinds())
    assert run(a.sync_now()).via_background_sync

    run(b.enter_background())
    assert not b.sync_status().background
    with pytest.raises(KithError.Locked):
        b.start_sync()
    # Back in front, background sync starts again by itself.
    run(b.enter_foreground())
    assert b.sync_status().background
    assert eventually(lambda: b.sync_status().state == SyncState.LIVE())
    assert a.stop_sync()
    a.close()
    b.close()


def test_bad_tokens_and_missing_accounts_raise_actionable_errors(tmp_path, relay):
    a, _b = two_devices(tmp_path, relay)
    c = kith_ffi.Kith.open(str(tmp_path / "c"))
    with pytest.raises(KithError.InvalidInput) as e:
        c.start_join("kith-not-a-token", "tablet")
    assert e.value.field == "token"
    invitation = a.invite(10)
    c.start_join(invitation.token(), "tablet")
    d = kith_ffi.Kith.open(str(tmp_path / "d"))
    # A second device with the same token (a photo of it) is told why.
    with pytest.raises(KithError.Authentication) as e:
        d.start_join(invitation.token(), "watch")
    assert "someone else redeemed" in str(e.value)
    with pytest.raises(KithError.Authentication):
        run(d.sync_now())
    with pytest.raises(KithError.Conflict):
        a.create_account("again", None)
    with pytest.raises(KithError.InvalidInput):
        d.create_account("x", "not a relay")
    assert d.account() is None
    for k in (a, c, d):
        k.close()


def test_revoke_and_an_unreachable_relay(tmp_path, relay):
    a, b = two_devices(tmp_path, relay)
    b_id = b.account().device_id
    b.add_contact(NewContact(name="Bo"))
    run(b.sync_now())
    run(a.sync_now())
    run(a.revoke(b_id))
    assert any(d.id == b_id and d.revoked_at_ms for d in a.devices())
    with pytest.raises(KithError.Authentication):
        run(b.sync_now())
    assert isinstance(b.sync_status().state, SyncState.ERROR)

    # A relay address nobody answers on: a bounded round, then Network.
    host_port = relay.split("@")[1]
    key = relay[len("kith://"):].split("@")[0]
    port = int(host_port.rsplit(":", 1)[1])
    dead = f"kith://{key}@127.0.0.1:{port + 1 if port < 65535 else port - 1}"
    a.set_relay(dead)
    a.set_sync_timeout_ms(1500)
    with pytest.raises(KithError.Network):
        run(a.sync_now())
    assert isinstance(a.sync_status().state, SyncState.OFFLINE)
    a.close()
    b.close()


def test_a_failing_key_store_is_an_error_not_a_crash(tmp_path, relay):
    class Broken(kith_ffi.KithKeyStore):
        def load(self):
            return None

        def save(self, key_material):
            raise KithError.Storage("keychain locked")

    k = kith_ffi.Kith.open_with_key_store(str(tmp_path / "k"), Broken())
    with pytest.raises(KithError.Storage) as e:
        k.create_account("phone", relay)
    assert "keychain locked" in str(e.value)
    assert k.account() is None

    class Garbage(kith_ffi.KithKeyStore):
        def load(self):
            return b"{not json"

        def save(self, key_material):
            pass

    g = kith_ffi.Kith.open_with_key_store(str(tmp_path / "g"), Garbage())
    with pytest.raises(KithError.Storage):
        g.account()
    k.close()
    g.close()


def test_a_backup_restores_the_same_device_into_a_key_store(tmp_path, relay):
    a, b = two_devices(tmp_path, relay)
    info = a.account()
    ana = a.add_contact(NewContact(name="Ana Backup"))
    iid = a.log_interaction(NewInteraction(summary="Backed-up coffee", participant_ids=[ana.id]))
    run(a.sync_now())
    sealed = a.backup("a long passphrase")
    data_only = a.backup("a long passphrase", include_keys=False)
    a.close()
    keys = MemoryKeyStore()
    restored = kith_ffi.restore_backup(
        str(tmp_path / "restored"), "a long passphrase", sealed, keys
    )
    mine = restored.account()
    assert (mine.account_id, mine.device_id) == (info.account_id, info.device_id)
    assert keys.saves == 1 and keys.saved
    assert restored.get_interaction(iid).summary == "Backed-up coffee"
    # The relay address is a setting of the data directory, not in the backup.
    restored.set_relay(relay)
    # The restored phone is the same device: it goes on syncing with the laptop.
    later = restored.log_interaction(
        NewInteraction(summary="Call after the restore", participant_ids=[ana.id])
    )
    assert run(restored.sync_now()).pushed_entries >= 1
    run(b.sync_now())
    assert b.get_interaction(iid).summary == "Backed-up coffee"
    assert b.get_interaction(later).summary == "Call after the restore"
    restored.close()
    plain = kith_ffi.restore_backup(str(tmp_path / "data-only"), "a long passphrase", data_only)
    assert plain.account() is None
    assert not (tmp_path / "data-only" / "keys.json").exists()
    plain.close()
    b.close()


def test_the_python_example_syncs_to_the_relay(tmp_path, relay):
    repo = pathlib.Path(__file__).resolve().parents[3]
    env = dict(os.environ, PYTHONPATH=str(repo / "bindings" / "generated" / "python"))
    out = subprocess.run(
        [sys.executable, str(repo / "examples" / "python" / "after_meeting.py"),
         str(tmp_path / "ex"), relay],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S * 2,
    )
    assert out.returncode == 0, out.stderr
    assert "Synced: sent" in out.stdout, out.stdout


def test_a_token_relay_registers_with_set_registration_token(tmp_path):
    """A relay run with `--registration token`: the first sync of a new
    account is refused until the app gives the token; then it registers, and
    the status carries an empty quarantine and the devices their counts."""
    binary = os.environ.get("KITH_RELAY_BIN")
    if not binary or not pathlib.Path(binary).is_file():
        raise RuntimeError("KITH_RELAY_BIN must name the built kith-relay binary")
    data = str(tmp_path / "relay")
    token = subprocess.run(
        [binary, "--data-dir", data, "token", "create"],
        check=True, capture_output=True, text=True, timeout=TIMEOUT_S,
    ).stdout.strip()
    proc = subprocess.Popen(
        [binary, "--data-dir", data, "--listen", "127.0.0.1:0",
         "--metrics-listen", "off", "--registration", "token"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        lines = []
        reader = threading.Thread(target=lambda: lines.append(proc.stdout.readline()))
        reader.start()
        reader.join(TIMEOUT_S)
        address = lines[0].strip()
        a = kith_ffi.Kith.open(str(tmp_path / "a"))
        a.create_account("phone", address)
        with pytest.raises(KithError):
            run(a.sync_now())
        a.set_registration_token(token)
        run(a.sync_now())
        status = a.sync_status()
        assert status.quarantined == []
        assert [d.quarantined_entries for d in a.devices()] == [0]
    finally:
        proc.kill()
        proc.wait(TIMEOUT_S)


def test_recover_with_the_code_after_a_stolen_device_revoked_this_one(tmp_path, relay):
    laptop = kith_ffi.Kith.open(str(tmp_path / "laptop"))
    phone = kith_ffi.Kith.open(str(tmp_path / "phone"))
    info = laptop.create_account("laptop", relay)
    code = info.recovery_code
    invitation = laptop.invite(10)
    joining = phone.start_join(invitation.token(), "phone")
    shown = joining.code()
    assert invitation.wait_for_join().code == shown
    invitation.approve(shown)
    phone_id = joining.wait_for_answer().device_id
    ana = laptop.add_contact(NewContact(name="Ana Lima"))
    run(laptop.sync_now())
    run(phone.sync_now())
    # The thief's phone revokes the laptop.
    run(phone.revoke(info.device_id))
    with pytest.raises(KithError.Authentication):
        run(laptop.sync_now())
    # A mistyped code or an unknown device id: the field to fix.
    with pytest.raises(KithError.InvalidInput) as e:
        run(laptop.recover("kithr1-abcd", []))
    assert e.value.field == "recovery_code"
    with pytest.raises(KithError.InvalidInput) as e:
        run(laptop.recover(code, ["not-a-device"]))
    assert e.value.field == "keep_device_ids"
    # The code wins the account back: the phone is out, nothing is lost.
    report = run(laptop.recover(code, []))
    assert report.members == [info.device_id]
    assert report.revoked == [phone_id]
    assert report.epochs_carried >= 1
    with pytest.raises(KithError.Authentication):
        run(phone.sync_now())
    run(laptop.sync_now())
    assert laptop.get_contact(ana.id).name == "Ana Lima"
    laptop.close()
    phone.close()
