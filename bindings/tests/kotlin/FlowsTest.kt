// The hand-written bindings/kotlin-ext/KithFlows.kt against the real library: Flows over the
// listener (changes, sync state, the bound on a slow collector) and the java.time helpers.
package dev.kith.tests

import dev.kith.*
import java.time.Instant
import java.time.LocalDate
import kotlinx.coroutines.CompletableDeferred
import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.delay
import kotlinx.coroutines.flow.onEach
import kotlinx.coroutines.flow.transformWhile
import kotlinx.coroutines.yield
import kotlinx.coroutines.async
import kotlinx.coroutines.coroutineScope
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.flow.take
import kotlinx.coroutines.flow.toList
import kotlinx.coroutines.withTimeout

suspend fun flows(kith: Kith): Int = coroutineScope {
    var n = 0
    suspend fun ok(c: Boolean, what: suspend () -> String) { n++; if (!c) throw AssertionError(what()) }

    // The sync state: the current one at once.
    ok(withTimeout(10_000) { kith.syncStates().first() } == SyncState.Disabled) { "first sync state" }

    // Changes, in order, while collected.
    val collected = async(start = CoroutineStart.UNDISPATCHED) {
        withTimeout(30_000) { kith.changes().take(2).toList() }
    }
    yield() // the flow's producer registers its listener before the writes
    val zoe = kith.addContact(NewContact(name = "Zoë Flow"))
    val met = kith.logInteraction(NewInteraction(summary = "Flow review", participantIds = listOf(zoe.id)))
    val got = collected.await()
    ok(got[0].contactIds == listOf(zoe.id)) { "first change: ${got[0]}" }
    ok(got[1].interactionIds == listOf(met)) { "second change: ${got[1]}" }

    // A collector that falls far behind is told to reload everything instead of losing changes.
    val release = CompletableDeferred<Unit>()
    val slow = async(start = CoroutineStart.UNDISPATCHED) {
        withTimeout(60_000) {
            var first = true
            kith.changes()
                .onEach { if (first) { first = false; release.await() } } // stuck on the first
                .transformWhile { emit(it); !it.everything }
                .toList()
        }
    }
    yield() // the flow's producer registers its listener
    // More writes than the flow buffers, from a plain thread, while the collector is stuck.
    val writer = Thread {
        kotlinx.coroutines.runBlocking {
            repeat(CHANGES_BUFFERED_MAX + 40) { kith.addContact(NewContact(name = "Burst $it")) }
        }
    }.also { it.start() }
    writer.join(120_000)
    release.complete(Unit)
    // The next change after the overflow comes as `everything`; write until the collector has it.
    var extra = 0
    withTimeout(60_000) {
        while (!slow.isCompleted) { kith.addContact(NewContact(name = "After ${extra++}")); delay(20) }
    }
    val seen = slow.await()
    ok(seen.last().everything) { "no 'everything' summary after an overflow: ${seen.size} seen" }
    ok(seen.size <= CHANGES_BUFFERED_MAX + 2 + extra) { "more summaries than the bound: ${seen.size}" }

    // java.time helpers.
    val i = kith.getInteraction(met)
    ok(i.at == Instant.ofEpochMilli(i.atMs)) { "Interaction.at" }
    ok(Instant.ofEpochMilli(1_700_000_000_123L).toKithMs() == 1_700_000_000_123L) { "toKithMs" }
    ok(kithInstant(0L) == Instant.EPOCH) { "kithInstant" }
    ok(kithDate("2026-01-10") == LocalDate.of(2026, 1, 10)) { "kithDate" }
    ok(LocalDate.of(2026, 2, 3).toKithDate() == "2026-02-03") { "toKithDate" }
    val bad = try { kithDate("10/01/2026"); null } catch (e: KithException.InvalidInput) { e }
    ok(bad?.field == "date") { "kithDate of a non-date: $bad" }
    val withDue = kith.addFollowUp(met, "Send the notes", LocalDate.of(2026, 3, 1).toKithDate())
    ok(withDue.dueDate == LocalDate.of(2026, 3, 1)) { "FollowUp.dueDate" }
    ok(zoe.createdAt == Instant.ofEpochMilli(zoe.createdMs)) { "Contact.createdAt" }
    ok(kith.syncStatus().lastSync == null) { "SyncStatus.lastSync before any sync" }
    n
}
