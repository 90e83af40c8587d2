// Kith on the JVM through the generated Kotlin bindings (JNA), as an Android
// app uses it: open a store, log an interaction after a "meeting", list it,
// hear the listener, call from several threads at once, await the async
// methods in coroutines, and prove a Rust panic arrives as KithException.Internal;
// SyncTest.kt syncs two devices through a relay started by the test.
// Run by scripts/test-bindings.sh; exits non-zero on the first failure.
package dev.kith.tests

import dev.kith.*
import java.nio.file.Files
import java.util.concurrent.CopyOnWriteArrayList
import java.util.concurrent.CountDownLatch
import java.util.concurrent.TimeUnit
import kotlin.system.exitProcess
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.asCoroutineDispatcher
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withContext
import kotlinx.coroutines.yield

private var checks = 0

private suspend fun check(condition: Boolean, what: suspend () -> String) {
    checks++
    if (!condition) throw AssertionError(what())
}

private suspend inline fun <reified E : KithException> expect(block: () -> Unit): E {
    try {
        block()
    } catch (e: KithException) {
        check(e is E) { "expected ${E::class.simpleName}, got $e" }
        return e as E
    }
    throw AssertionError("expected ${E::class.simpleName}, nothing was thrown")
}

class Recorder : KithListener {
    val changes = CopyOnWriteArrayList<ChangeSummary>()
    val states = CopyOnWriteArrayList<SyncState>()
    override fun onChange(summary: ChangeSummary) { changes.add(summary) }
    override fun onSyncState(state: SyncState) { states.add(state) }
}

private const val MISSING_ID = "01J00000000000000000000000"

suspend fun afterTheMeeting(kith: Kith) {
    val rec = Recorder()
    kith.addListener(rec)
    check(rec.states == listOf<SyncState>(SyncState.Disabled)) { "sync state on registration: ${rec.states}" }

    val ana = kith.addContact(NewContact(
        name = "Ana Lima",
        organisation = "St Mary's Hospital",
        seniority = Seniority.SENIOR,
        circles = listOf(Circle.OPERATIONAL, Circle.STRATEGIC),
    ))
    check(rec.changes.last().contactIds == listOf(ana.id)) { "listener after add_contact" }

    val id = kith.logInteraction(NewInteraction(
        summary = "Coffee after the board meeting",
        participantIds = listOf(ana.id),
        kind = InteractionKind.MEAL,
        initiator = Initiator.ME,
        notes = "She will introduce me to the regional lead.",
        exchanges = listOf(NewExchange(ExchangeWhat.INSIGHT, Direction.RECEIVED, ana.id)),
        followUps = listOf(NewFollowUp("Send the audit summary", "2026-01-10")),
    ))
    check(rec.changes.last().interactionIds == listOf(id)) { "listener after log_interaction" }

    val timeline = kith.timeline(ana.id, 0, 20, false)
    check(timeline.map { it.id } == listOf(id)) { "timeline: $timeline" }
    val logged = timeline.single()
    check(logged.summary == "Coffee after the board meeting") { "summary" }
    check(logged.kind == InteractionKind.MEAL && logged.initiator == Initiator.ME) { "kind/initiator" }
    check(logged.exchanges.single().withContactId == ana.id) { "exchange" }
    check(logged.followUps.single().due == "2026-01-10") { "follow-up" }
    check(kith.followUpsDueBy("2026-01-31").single().followUp.text == "Send the audit summary") { "due" }
    check(kith.search("coffee", 10).interactions.single().id == id) { "search" }
    check(kith.listContacts(ContactSort.LAST_INTERACTION, 0, 10, false).first().id == ana.id) { "list" }

    val edited = kith.editInteraction(id, InteractionPatch(notes = "Edited on the train"))
    check(edited.notes == "Edited on the train") { "update" }
    check(kith.deleteInteraction(id).deletedMs != null) { "delete" }
    check(kith.undeleteInteraction(id).deletedMs == null) { "undelete" }
}

/** A listener that throws: the write still succeeds and other listeners still hear it. */
suspend fun throwingListener(kith: Kith) {
    val thrower = object : KithListener {
        override fun onChange(summary: ChangeSummary) { throw IllegalStateException("listener bug") }
        override fun onSyncState(state: SyncState) {}
    }
    val rec = Recorder()
    val h1 = kith.addListener(thrower)
    val h2 = kith.addListener(rec)
    val bo = kith.addContact(NewContact(name = "Bo Silva"))
    check(kith.getContact(bo.id).name == "Bo Silva") { "write after a throwing listener" }
    check(rec.changes.single().contactIds == listOf(bo.id)) { "other listener after a throwing one" }
    kith.removeListener(h1)
    kith.removeListener(h2)
}

suspend fun errors(kith: Kith) {
    val e = expect<KithException.InvalidInput> {
        kith.logInteraction(NewInteraction(summary = "  ", participantNames = listOf("Ana Lima")))
    }
    check(e.field == "summary") { "field: ${e.field}" }
    check(expect<KithException.InvalidInput> { kith.getContact("nope") }.field == "id") { "bad id" }
    val nf = expect<KithException.NotFound> { kith.getContact(MISSING_ID) }
    check(nf.what == "contact" && nf.id == MISSING_ID) { "not found: $nf" }
    check(expect<KithException.InvalidInput> {
        kith.addGoal(NewGoal(title = "Lead a service", priority = 9))
    }.field == "priority") { "priority" }
    // The phone build (release-ffi) ends the process on a panic after logging it; the Python
    // suite checks that in a child process.
    if (!debugPanicAborts()) {
        val panic = expect<KithException.Internal> { kith.debugPanic("deliberate test panic") }
        check(panic.reason.contains("deliberate test panic")) { "panic reason: ${panic.reason}" }
        check(kith.listProjects().isEmpty()) { "store usable after the panic" }
    }
}

suspend fun threads(kith: Kith) {
    val contacts = (0 until 4).map { kith.addContact(NewContact(name = "Person $it")).id }
    val rec = Recorder()
    val handle = kith.addListener(rec)
    val threadsN = 8
    val perThread = 25
    val failures = CopyOnWriteArrayList<Throwable>()
    val start = CountDownLatch(1)
    val workers = (0 until threadsN).map { t ->
        Thread {
            try {
                start.await()
                // A plain JVM thread (not a coroutine): it waits for each suspend call.
                runBlocking { repeat(perThread) { n ->
                    kith.logInteraction(NewInteraction(
                        summary = "jvm t$t n$n",
                        participantIds = listOf(contacts[(t + n) % contacts.size]),
                    ))
                    kith.timeline(null, 0, 5, false)
                } }
            } catch (e: Throwable) {
                failures.add(e)
            }
        }.also { it.start() }
    }
    start.countDown()
    workers.forEach { it.join(TimeUnit.SECONDS.toMillis(120)) }
    check(workers.none { it.isAlive }) { "deadlock: a JVM thread did not finish" }
    check(failures.isEmpty()) { "thread failures: $failures" }
    val logged = kith.timeline(null, 0, 1000, false).filter { it.summary.startsWith("jvm ") }
    check(logged.size == threadsN * perThread) { "logged ${logged.size}" }
    check(logged.map { it.summary }.toSet().size == threadsN * perThread) { "lost or duplicated writes" }
    check(rec.changes.size == threadsN * perThread) { "listener calls from JVM threads: ${rec.changes.size}" }
    check(kith.removeListener(handle)) { "remove listener" }
}

/**
 * The threading rule: every call that touches the disk or the network is a `suspend fun` running
 * on Kith's runtime, so a single-threaded dispatcher (the main thread's stand-in) keeps running
 * other coroutines while a backup derives its key; several awaits at once on one handle all
 * complete; a cancelled caller gets CancellationException.
 */
suspend fun coroutines(kith: Kith) = kotlinx.coroutines.coroutineScope {
    val main = java.util.concurrent.Executors.newSingleThreadExecutor().asCoroutineDispatcher()
    try {
        withContext(main) {
            var ticks = 0
            val ticker = launch { while (true) { ticks++; yield() } }
            val backup = kith.backup("correct horse battery staple", true)
            check(backup.isNotEmpty()) { "backup bytes" }
            check(ticks > 0) { "the main-thread stand-in was blocked during backup(): $ticks ticks" }
            ticker.cancel()
            val found = kith.search("person", 10)
            check(found.contacts.size == 4) { "search: ${found.contacts.size}" }
            val many = (0 until 8).map { async { kith.search("person", 10).contacts.size } }.awaitAll()
            check(many.all { it == 4 }) { "concurrent searches: $many" }
        }
    } finally {
        main.close()
    }
    kith.reindex()
    check(kith.search("person", 10).contacts.size == 4) { "search after reindex" }
    val e = expect<KithException.InvalidInput> { kith.search("x", 0) }
    check(e.field == "limit") { "async error" }
    // Signed counts: a negative offset or limit is InvalidInput naming it, never a crash.
    check(expect<KithException.InvalidInput> { kith.timeline(null, -1, 5, false) }.field == "offset") { "offset" }
    check(expect<KithException.InvalidInput> { kith.listContacts(ContactSort.NAME, 0, -5, false) }.field == "limit") { "limit" }
    check(expect<KithException.InvalidInput> { kith.setSyncTimeoutMs(-1L) }.field == "timeout_ms") { "timeout" }
    // Readable printing: errors and sync states.
    check(e.toString() == "invalid limit: must be between 1 and 1000 (got 0)") { "error text: $e" }
    check(SyncState.Idle.toString() == "Idle") { "state: ${SyncState.Idle}" }
    check(SyncState.Retrying("connection refused", 500L).toString() == "Retrying in 500 ms: connection refused") {
        "retrying: ${SyncState.Retrying("connection refused", 500L)}"
    }
}

/** Insights after a meeting is logged, then a vCard export imported into a second store. */
suspend fun insightsAndImport(dir: String, otherDir: String) {
    val dayMs = 86_400_000L
    Kith.open(dir).use { kith ->
        val ana = kith.addContact(NewContact(
            name = "Ana Lima",
            organisation = "St Mary's Hospital",
            emails = listOf(ContactPoint(value = "ana@stmarys.example", label = "work")),
            circles = listOf(Circle.STRATEGIC),
        ))
        kith.logInteraction(NewInteraction(summary = "Coffee after the board meeting", participantIds = listOf(ana.id)))
        val now = kith.insights(null)
        check(now.contactsTotal == 1 && now.interactionsTotal == 1) { "insights totals: $now" }
        check(now.circleBalance.status.state == MetricState.VALUE) { "circle balance: ${now.circleBalance.status}" }
        check(now.reconnect.top.isEmpty()) { "nobody overdue right after the meeting: ${now.reconnect.top}" }
        // Half a year later the strategic tie is overdue and the headlines say so.
        val later = kith.insights(now.nowMs + 200 * dayMs)
        check(later.headlines.isNotEmpty()) { "headlines 200 days later" }
        check(later.headlines.all { it.code.isNotEmpty() && it.message.isNotEmpty() }) { "headline text" }
        val tie = later.reconnect.top.single()
        check(tie.contactId == ana.id && !tie.never && tie.overdueRatio >= 1.0) { "reconnect: $tie" }
        check(kith.insightsJson().contains("\"headlines\"")) { "insights json (now by default)" }
        val badTime = expect<KithException.InvalidInput> { kith.insights(-1L) }
        check(badTime.field == "now_ms") { "bad time field: ${badTime.field}" }

        val vcf = kith.exportVcard()
        check(vcf.contains("FN:Ana Lima")) { "vCard export: $vcf" }
        Kith.open(otherDir).use { other ->
            val rec = Recorder()
            other.addListener(rec)
            val dry = other.importVcard(vcf.toByteArray(), true)
            check(dry.created.map { it.name } == listOf("Ana Lima") && dry.created.single().contactId == null) { "dry run: $dry" }
            check(rec.changes.isEmpty()) { "a dry run notifies nobody" }
            val report = other.importVcard(vcf.toByteArray(), false)
            val id = report.created.single().contactId!!
            val copy = other.getContact(id)
            check(copy.name == "Ana Lima" && copy.organisation == "St Mary's Hospital") { "imported: $copy" }
            check(copy.emails.map { it.value } == listOf("ana@stmarys.example")) { "imported emails" }
            check(rec.changes.single().contactIds == listOf(id)) { "listener after import: ${rec.changes}" }
            val again = other.importVcard(vcf.toByteArray(), false)
            check(again.created.isEmpty() && again.alreadyImported.single().existingContactId == id) { "re-import: $again" }
            val bad = expect<KithException.InvalidInput> { other.importVcard("not a vcard".toByteArray(), false) }
            check(bad.field == "bytes") { "bad bytes field: ${bad.field}" }
            other.closeStore()
        }
        kith.closeStore()
    }
}

suspend fun lifecycle(dir: String) = kotlinx.coroutines.coroutineScope {
    val ui = Kith.open(dir)
    ui.addProject(NewProject(name = "Rota redesign"))
    // A WorkManager worker opens its own handle: same engine, no Locked.
    val worker = Kith.open(dir)
    check(worker.listProjects().single().name == "Rota redesign") { "worker reads: ${worker.listProjects()}" }
    // The UI goes to the background (onStop): the worker's lease keeps the store open.
    ui.enterBackground()
    check(!ui.isInForeground() && !ui.isReleased()) { "held by the worker" }
    worker.addProject(NewProject(name = "Written by the worker"))
    worker.closeStore()
    // No handle in front: the store is released, calls fail with Locked.
    check(ui.isReleased()) { "released once the worker closed" }
    expect<KithException.Locked> { ui.listProjects() }
    ui.enterForeground()
    check(ui.listProjects().map { it.name }.sorted() == listOf("Rota redesign", "Written by the worker")) {
        "after coming back: ${ui.listProjects()}"
    }
    ui.closeStore()
    expect<KithException.Locked> { ui.listProjects() }
    ui.close()
}

/** Same workload as the Python harness and the Rust bench: fresh store, 20 warm-up, 300 timed. */
suspend fun figure(dir: String) = Kith.open(dir).use { kith ->
    val ana = kith.addContact(NewContact(name = "Ana Lima")).id
    val n = 300
    val notes = "x".repeat(300)
    repeat(20) { kith.logInteraction(NewInteraction(summary = "warm-up $it", participantIds = listOf(ana), notes = notes)) }
    val t0 = System.nanoTime()
    repeat(n) { i ->
        kith.logInteraction(NewInteraction(summary = "Meeting $i", participantIds = listOf(ana), notes = notes))
    }
    val us = (System.nanoTime() - t0) / 1000.0 / n
    println("[figure] kotlin: log_interaction through the bindings: ${"%.0f".format(us)} us/call (n=$n)")
    // A read that touches no disk shows the cost of the crossing itself.
    val reads = 2000
    repeat(200) { kith.getContact(ana) }
    val r0 = System.nanoTime()
    repeat(reads) { kith.getContact(ana) }
    val readUs = (System.nanoTime() - r0) / 1000.0 / reads
    println("[figure] kotlin: get_contact through the bindings: ${"%.1f".format(readUs)} us/call (n=$reads)")
    kith.closeStore()
}

/// Merge, a value the duplicate gets afterwards (shown as a conflict on the
/// kept contact), and unmerge giving the duplicate its call back.
suspend fun mergeAndUnmerge(kith: Kith) {
    val keep = kith.addContact(NewContact(name = "Grace Hopper", role = "Admiral"))
    val dup = kith.addContact(NewContact(name = "G. Hopper"))
    val call = kith.logInteraction(NewInteraction(summary = "Call with the duplicate", participantIds = listOf(dup.id)))
    val kept = kith.mergeContacts(keep.id, dup.id)
    check(kept.mergedFrom == listOf(dup.id)) { "merged from: ${kept.mergedFrom}" }
    check(kith.getInteraction(call).participants == listOf(keep.id)) { "the call follows the merge" }
    kith.editContact(dup.id, ContactPatch(role = "Rear Admiral"))
    val conflict = kith.getContact(keep.id).conflicts.single()
    check(conflict.field == "role" && conflict.value == "Rear Admiral" && conflict.fromContactId == dup.id) {
        "conflict: $conflict"
    }
    val back = kith.unmergeContact(dup.id)
    check(back.mergedInto == null && !back.archived) { "unmerged: $back" }
    check(kith.getInteraction(call).participants == listOf(dup.id)) { "the call is the duplicate's again" }
    check(kith.getContact(keep.id).conflicts.isEmpty()) { "no conflict once unmerged" }
    expect<KithException.Conflict> { kith.unmergeContact(dup.id) }
}

/** The app's logger: what Logcat would show. */
class LogRecorder : KithLogger {
    val records = CopyOnWriteArrayList<LogRecord>()
    override fun log(record: LogRecord) {
        records.add(record)
    }
}

suspend fun logging(dir: String) {
    val rec = LogRecorder()
    setLogger(rec, LogLevel.INFO)
    try {
        Kith.open(dir).use { kith ->
            val opened = rec.records.filter { it.message.startsWith("store opened") }
            check(opened.size == 1 && opened[0].level == LogLevel.INFO) { "opened: ${rec.records}" }
            if (!debugPanicAborts()) {
                expect<KithException.Internal> { kith.debugPanic("a panic for Logcat") }
                val panics = rec.records.filter { it.target == "panic" }
                check(panics.size == 1 && panics[0].level == LogLevel.ERROR) { "panics: $panics" }
                check(panics[0].message.contains("a panic for Logcat")) { "panic text: ${panics[0].message}" }
            }
            kith.closeStore()
        }
    } finally {
        clearLogger()
    }
    val n = rec.records.size
    Kith.open(dir).use { it.closeStore() }
    check(rec.records.size == n) { "logs after clearLogger: ${rec.records.drop(n)}" }
}

fun main() = runBlocking {
    val root = Files.createTempDirectory("kith-kotlin-test")
    try {
        Kith.open(root.resolve("store").toString()).use { kith ->
            afterTheMeeting(kith)
            errors(kith)
            throwingListener(kith)
            mergeAndUnmerge(kith)
            threads(kith)
            coroutines(kith)
            kith.closeStore()
        }
        Kith.open(root.resolve("meetings").toString()).use { kith -> checks += meetings(kith) }
        Kith.open(root.resolve("flows").toString()).use { kith -> checks += flows(kith); kith.closeStore() }
        insightsAndImport(root.resolve("insights").toString(), root.resolve("imported").toString())
        lifecycle(root.resolve("lifecycle").toString())
        logging(root.resolve("logging").toString())
        figure(root.resolve("figure").toString())
        checks += namesFromEveryLanguage(root.resolve("names").toFile())
        checks += syncThroughRelay(root.resolve("sync").toFile())
        checks += invitationObjects(root.resolve("invitation").toFile())
        checks += tokenRelayQuarantineAndCheckStore(root.resolve("token").toFile())
        println("kotlin binding tests: $checks passed, 0 failed")
    } catch (e: Throwable) {
        System.err.println("kotlin binding tests: FAILED after $checks checks: $e")
        e.printStackTrace()
        exitProcess(1)
    } finally {
        root.toFile().deleteRecursively()
    }
}
