// Two devices syncing through the real relay, from Kotlin: the test starts
// the `kith-relay` binary (KITH_RELAY_BIN, built by scripts/test-bindings.sh)
// on 127.0.0.1:0, reads its address, creates an account on device A (keys in
// an app-side KithKeyStore, as a phone keeps them in its keystore), pairs,
// joins on device B, logs a meeting on A, syncs, sees it on B, runs background
// sync on both, and checks the listener heard the sync states. Every wait is
// bounded; the relay is killed at the end.
package dev.kith.tests

import dev.kith.*
import java.io.File
import java.util.concurrent.CopyOnWriteArrayList
import java.util.concurrent.TimeUnit
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.cancelAndJoin
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout

private const val TIMEOUT_MS = 60_000L

private suspend fun need(condition: Boolean, what: suspend () -> String) {
    if (!condition) throw AssertionError(what())
}

/** A keystore that keeps the opaque key bytes in memory. */
class MemoryKeyStore : KithKeyStore {
    @Volatile var saved: ByteArray? = null
    override fun load(): ByteArray? = saved
    override fun save(keyMaterial: ByteArray) { saved = keyMaterial.copyOf() }
}

class SyncRecorder : KithListener {
    val changes = CopyOnWriteArrayList<ChangeSummary>()
    val states = CopyOnWriteArrayList<SyncState>()
    override fun onChange(summary: ChangeSummary) { changes.add(summary) }
    override fun onSyncState(state: SyncState) { states.add(state) }
    suspend fun heard(interactionId: String) = changes.any { interactionId in it.interactionIds }
}

private suspend fun eventually(ms: Long = 20_000, cond: suspend () -> Boolean): Boolean {
    val deadline = System.currentTimeMillis() + ms
    while (System.currentTimeMillis() < deadline) {
        if (cond()) return true
        kotlinx.coroutines.delay(20)
    }
    return cond()
}

private suspend fun <T> await(block: suspend () -> T): T = withTimeout(TIMEOUT_MS) { block() }

/** Starts kith-relay on 127.0.0.1:0; returns the process and its kith:// address. */
private suspend fun startRelay(dataDir: File): Pair<Process, String> {
    val binary = System.getenv("KITH_RELAY_BIN")
        ?: throw AssertionError("KITH_RELAY_BIN must name the built kith-relay binary")
    val process = ProcessBuilder(
        binary, "--data-dir", dataDir.path, "--listen", "127.0.0.1:0", "--metrics-listen", "off",
    ).redirectError(ProcessBuilder.Redirect.DISCARD).start()
    var line: String? = null
    val reader = Thread { line = process.inputStream.bufferedReader().readLine() }
    reader.start()
    reader.join(TIMEOUT_MS)
    val address = line
    if (address == null || !address.startsWith("kith://")) {
        process.destroyForcibly()
        throw AssertionError("the relay did not print its address: $address")
    }
    return process to address.trim()
}

suspend fun syncThroughRelay(root: File): Int {
    var checks = 0
    suspend fun check(condition: Boolean, what: suspend () -> String) { checks++; need(condition, what) }
    val (relay, address) = startRelay(File(root, "relay"))
    try {
        val keys = MemoryKeyStore()
        val a = Kith.openWithKeyStore(File(root, "a").path, keys)
        val b = Kith.open(File(root, "b").path)
        val info = a.createAccount("phone", address)
        check(keys.saved != null && !File(root, "a/keys.json").exists()) { "keys went to the KithKeyStore" }
        val recA = SyncRecorder()
        val recB = SyncRecorder()
        a.addListener(recA)
        b.addListener(recB)
        check(recA.states == listOf<SyncState>(SyncState.Idle)) { "A idle once set up: ${recA.states}" }
        check(recB.states == listOf<SyncState>(SyncState.Disabled)) { "B disabled before join: ${recB.states}" }

        check(info.recoveryCode?.startsWith("kithr1-") == true) { "recovery code shown once" }
        val invitation = await { a.invite(10) }
        check(invitation.token().isNotEmpty()) { "token for the QR code" }
        // B asks and shows its code; A sees the same code and approves.
        val joining = await { b.startJoin(invitation.token(), "laptop") }
        val code = joining.code()
        val request = await { invitation.waitForJoin() }
        check(request.code == code && request.name == "laptop") { "request: $request" }
        await { invitation.approve(code) }
        val joined = await { joining.waitForAnswer() }
        check(joined.accountId == info.accountId && joined.deviceId != info.deviceId) { "joined: $joined" }

        // A bad token: actionable errors, no crash.
        val c = Kith.open(File(root, "c").path)
        try {
            await { c.startJoin("kith-garbage", "tablet") }
            throw AssertionError("a garbage token was accepted")
        } catch (e: KithException.InvalidInput) {
            check(e.field == "token") { "field: ${e.field}" }
        }
        try {
            await { c.startJoin(invitation.token(), "tablet") }
            throw AssertionError("a used token was accepted")
        } catch (e: KithException.Authentication) {
            check("someone else redeemed" in e.reason) { e.reason }
        }
        c.closeStore()

        // After the meeting on A: log, sync A, sync B, B has it.
        val ana = a.addContact(NewContact(name = "Ana Lima", organisation = "St Mary's Hospital"))
        val id = a.logInteraction(NewInteraction(summary = "Coffee after the board meeting", participantIds = listOf(ana.id)))
        val pushed = await { a.syncNow() }
        check(pushed.pushedEntries >= 1L) { "pushed: $pushed" }
        val got = await { b.syncNow() }
        check(got.interactionsChanged >= 1L) { "received: $got" }
        check(b.getInteraction(id).summary == "Coffee after the board meeting") { "B sees the meeting" }
        check(recB.heard(id)) { "B's listener heard the merge: ${recB.changes}" }
        check(recB.states.containsAll(listOf(SyncState.Connecting, SyncState.Syncing))) { "B states: ${recB.states}" }
        check(b.syncStatus().lastSyncMs != null) { "last sync time" }
        check(b.devices().map { it.name }.sorted() == listOf("laptop", "phone")) { "devices: ${b.devices()}" }

        // Background sync on both: a second meeting arrives live.
        a.startSync()
        b.startSync()
        check(eventually { a.syncStatus().state == SyncState.Live && b.syncStatus().state == SyncState.Live }) {
            "both live: ${a.syncStatus().state} ${b.syncStatus().state}"
        }
        val id2 = a.logInteraction(NewInteraction(summary = "Lunch", participantIds = listOf(ana.id)))
        check(eventually { recB.heard(id2) }) { "B heard the live meeting" }
        check(recB.states.contains(SyncState.Live)) { "B was live: ${recB.states}" }

        // In the background sync stops and the store is released; back in front it restarts.
        runBlocking { b.enterBackground() }
        check(!b.syncStatus().background) { "loop stopped in the background" }
        runBlocking { b.enterForeground() }
        check(b.syncStatus().background) { "loop restarted in front" }
        check(eventually { b.syncStatus().state == SyncState.Live }) { "live again in front" }
        check(a.stopSync()) { "stop_sync on a running loop" }
        check(b.stopSync()) { "stop_sync on B's loop" }

        // B is stolen and revokes A; the recovery code wins the account back.
        await { b.revoke(info.deviceId) }
        try {
            await { a.syncNow() }
            throw AssertionError("a revoked device synced")
        } catch (e: KithException.Authentication) {
        }
        try {
            await { a.recover("kithr1-abcd", listOf()) }
            throw AssertionError("a mistyped recovery code was accepted")
        } catch (e: KithException.InvalidInput) {
            check(e.field == "recoveryCode" || e.field == "recovery_code") { "field: ${e.field}" }
        }
        val recovered = await { a.recover(info.recoveryCode!!, listOf()) }
        check(recovered.members == listOf(info.deviceId)) { "members: ${recovered.members}" }
        check(recovered.revoked == listOf(joined.deviceId)) { "revoked: ${recovered.revoked}" }
        try {
            await { b.syncNow() }
            throw AssertionError("the stolen device still syncs")
        } catch (e: KithException.Authentication) {
        }
        await { a.syncNow() }
        check(a.getInteraction(id).summary == "Coffee after the board meeting") { "nothing lost" }
        a.closeStore()
        b.closeStore()

        // Cancelling the coroutine that awaits syncNow cancels the round in Rust: against a
        // relay address that never answers, the state leaves Connecting at once instead of
        // after the 60 s round timeout.
        java.net.DatagramSocket(0, java.net.InetAddress.getLoopbackAddress()).use { silent ->
            val key = address.removePrefix("kith://").substringBefore('@')
            Kith.open(File(root, "cancel").path).use { c ->
                c.createAccount("phone", "kith://$key@127.0.0.1:${silent.localPort}")
                runBlocking {
                    val job = launch(Dispatchers.Default) { c.syncNow() }
                    check(eventually { c.syncStatus().state == SyncState.Connecting }) { "round started" }
                    job.cancelAndJoin()
                }
                check(eventually(5_000) { c.syncStatus().state == SyncState.Idle }) {
                    "cancelled round still ${c.syncStatus().state}"
                }
                c.closeStore()
            }
        }
    } finally {
        relay.destroyForcibly()
        relay.waitFor(10, TimeUnit.SECONDS)
    }
    return checks
}

/**
 * Mirrors the Python `test_a_token_relay_registers_with_set_registration_token`
 * and adds `checkStore`: a relay run with `--registration token` refuses the
 * first sync of a new account until the app gives the token; then the account
 * registers, the status carries an empty quarantine, the device list its
 * quarantine counts (0), and `checkStore` finds the store clean.
 */
suspend fun tokenRelayQuarantineAndCheckStore(root: File): Int {
    var checks = 0
    suspend fun check(condition: Boolean, what: suspend () -> String) { checks++; need(condition, what) }
    val binary = System.getenv("KITH_RELAY_BIN")
        ?: throw AssertionError("KITH_RELAY_BIN must name the built kith-relay binary")
    val data = File(root, "relay")
    val tokenProcess = ProcessBuilder(binary, "--data-dir", data.path, "token", "create")
        .redirectError(ProcessBuilder.Redirect.DISCARD).start()
    check(tokenProcess.waitFor(TIMEOUT_MS, TimeUnit.MILLISECONDS)) { "token create finished" }
    val token = tokenProcess.inputStream.bufferedReader().readText().trim()
    check(token.isNotEmpty()) { "a token was printed" }
    val process = ProcessBuilder(
        binary, "--data-dir", data.path, "--listen", "127.0.0.1:0", "--metrics-listen", "off",
        "--registration", "token",
    ).redirectError(ProcessBuilder.Redirect.DISCARD).start()
    try {
        var line: String? = null
        val reader = Thread { line = process.inputStream.bufferedReader().readLine() }
        reader.start()
        reader.join(TIMEOUT_MS)
        val address = line?.trim()
        check(address != null && address.startsWith("kith://")) { "relay address: $address" }
        val a = Kith.open(File(root, "a").path)
        a.createAccount("phone", address!!)
        try {
            await { a.syncNow() }
            throw AssertionError("a new account registered without the token")
        } catch (e: KithException) {
            check(e !is KithException.Internal) { "an actionable error: $e" }
        }
        a.setRegistrationToken(token)
        val r = await { a.syncNow() }
        check(r.pushedEntries >= 0L) { "synced: $r" }
        check(a.syncStatus().quarantined.isEmpty()) { "quarantine: ${a.syncStatus().quarantined}" }
        check(a.devices().map { it.quarantinedEntries } == listOf(0L)) { "devices: ${a.devices()}" }
        val report = await { a.checkStore() }
        check(report.clean && report.documents >= 1L) { "check: $report" }
        check(report.damagedDocuments.isEmpty() && report.indexTablesReindexRepairs.isEmpty()) {
            "check: $report"
        }
        a.closeStore()
    } finally {
        process.destroyForcibly()
        process.waitFor(TIMEOUT_MS, TimeUnit.MILLISECONDS)
    }
    return checks
}

/**
 * Mirrors the Python `test_the_invitation_objects_drive_a_pairing`: the
 * inviting app holds a `DeviceInvitation` (token for the QR code, expiry,
 * `waitForJoin`, `approve`), the joining app a `JoinAttempt` (`code` to show,
 * `waitForAnswer`); a code that does not match is refused on both sides.
 */
suspend fun invitationObjects(root: File): Int {
    var checks = 0
    suspend fun check(condition: Boolean, what: suspend () -> String) { checks++; need(condition, what) }
    val (relay, address) = startRelay(File(root, "relay"))
    try {
        val a = Kith.open(File(root, "a").path)
        val b = Kith.open(File(root, "b").path)
        val c = Kith.open(File(root, "c").path)
        val info = a.createAccount("phone", address)
        val invitation = await { a.invite(10) }
        check(invitation.expiresAtMs() > System.currentTimeMillis()) { "expiry in the future" }
        val token = invitation.token()
        val joining = await { b.startJoin(token, "laptop") }
        val request = await { invitation.waitForJoin() }
        check(request.name == "laptop" && request.code == joining.code()) { "request: $request" }
        await { invitation.approve(joining.code()) }
        val joined = await { joining.waitForAnswer() }
        check(joined.accountId == info.accountId && joined.deviceId == request.deviceId) { "joined: $joined" }

        val second = await { a.invite(10) }
        val tablet = await { c.startJoin(second.token(), "tablet") }
        await { second.waitForJoin() }
        val wrong = if (tablet.code() == "000000") "111111" else "000000"
        try {
            await { second.approve(wrong) }
            throw AssertionError("a wrong code was approved")
        } catch (e: KithException.Authentication) {
            check(true) { "refused" }
        }
        try {
            await { tablet.waitForAnswer() }
            throw AssertionError("the tablet joined after a wrong code")
        } catch (e: KithException.Authentication) {
            check(c.account() == null) { "the tablet has no account" }
        }
        listOf(a, b, c).forEach { it.closeStore() }
    } finally {
        relay.destroyForcibly()
        relay.waitFor(10, TimeUnit.SECONDS)
    }
    return checks
}
