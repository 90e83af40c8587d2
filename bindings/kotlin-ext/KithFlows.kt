// Hand-written Kotlin shipped with the generated bindings: scripts/bindings.sh copies this file
// next to the generated dev/kith/kith_ffi.kt, and an app compiles both (it needs only
// kotlinx-coroutines, which the generated code needs anyway).
//
// What it adds, because every app would otherwise write it:
//   - Flows over the KithListener callback: `kith.changes()` and `kith.syncStates()`
//     (callbackFlow: the listener is registered when collection starts and removed when it
//     stops, so a Compose screen or a ViewModel scope owns it);
//   - java.time helpers: the bindings carry instants as `Long` milliseconds since the Unix
//     epoch (UTC) in `*Ms` fields, and calendar dates as ISO `YYYY-MM-DD` strings.
package dev.kith

import java.time.Instant
import java.time.LocalDate
import java.time.format.DateTimeParseException
import kotlinx.coroutines.channels.awaitClose
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.buffer
import kotlinx.coroutines.flow.callbackFlow
import kotlinx.coroutines.flow.conflate

/** How many change summaries wait for a slow collector before they are folded into one. */
const val CHANGES_BUFFERED_MAX: Int = 64

/**
 * Every change while the flow is collected: local writes (through any handle on this store in
 * the process) and merges from other devices, in order. Collect it in the scope that shows the
 * data (a ViewModel, `LaunchedEffect`); the listener is removed when collection ends.
 *
 * Bounded: if the collector falls [CHANGES_BUFFERED_MAX] summaries behind, what it missed is
 * never dropped silently: it gets one summary with `everything = true` (reload all) instead.
 */
fun Kith.changes(): Flow<ChangeSummary> = callbackFlow {
    val lock = Any()
    var missed = false // guarded by lock: summaries that did not fit while the collector lagged
    val handle = addListener(object : KithListener {
        override fun onChange(summary: ChangeSummary) {
            synchronized(lock) {
                if (missed) {
                    if (trySend(EVERYTHING_CHANGED).isSuccess) missed = false else return
                }
                if (!trySend(summary).isSuccess) missed = true
            }
        }

        override fun onSyncState(state: SyncState) {}
    })
    awaitClose { removeListener(handle) }
}.buffer(CHANGES_BUFFERED_MAX)

/**
 * The sync state: the current one at once, then every transition while collected. Only the
 * latest state matters to a status line, so a slow collector skips intermediate ones
 * (conflated: bounded by construction).
 */
fun Kith.syncStates(): Flow<SyncState> = callbackFlow {
    val handle = addListener(object : KithListener {
        override fun onChange(summary: ChangeSummary) {}
        override fun onSyncState(state: SyncState) {
            trySend(state)
        }
    })
    awaitClose { removeListener(handle) }
}.conflate()

private val EVERYTHING_CHANGED = ChangeSummary(
    contactIds = emptyList(),
    interactionIds = emptyList(),
    projectIds = emptyList(),
    goalIds = emptyList(),
    settings = true,
    everything = true,
)

// ---------------------------------------------------------------- java.time

/** An instant of the bindings (`*Ms`: milliseconds since the Unix epoch, UTC). */
fun kithInstant(ms: Long): Instant = Instant.ofEpochMilli(ms)

/** The bindings' form of an instant (for `atMs`, `nowMs`, `startMs`, ...). */
fun Instant.toKithMs(): Long = toEpochMilli()

/**
 * A calendar date of the bindings (ISO `YYYY-MM-DD`, as in `FollowUp.due`, `Contact.firstMet`).
 * Throws [KithException.InvalidInput] naming the text when it is not one (the library only
 * returns valid dates; this guards strings from elsewhere).
 */
fun kithDate(iso: String): LocalDate = try {
    LocalDate.parse(iso.trim())
} catch (e: DateTimeParseException) {
    throw KithException.InvalidInput("date", "'$iso' is not a date in YYYY-MM-DD form")
}

/** The bindings' form of a date (for `due`, `followUpsDueBy(date)`, `overdueFollowUps(today)`). */
fun LocalDate.toKithDate(): String = toString()

/** When the interaction happened. */
val Interaction.at: Instant get() = kithInstant(atMs)

/** When the interaction was deleted, if it is. */
val Interaction.deletedAt: Instant? get() = deletedMs?.let(::kithInstant)

/** When the contact was created and last changed. */
val Contact.createdAt: Instant get() = kithInstant(createdMs)
val Contact.updatedAt: Instant get() = kithInstant(updatedMs)

/** The date the user first met the contact, if known. */
val Contact.firstMetDate: LocalDate? get() = firstMet?.let(::kithDate)

/** The follow-up's due date, if it has one, and when it was done. */
val FollowUp.dueDate: LocalDate? get() = due?.let(::kithDate)
val FollowUp.doneAt: Instant? get() = doneMs?.let(::kithInstant)

/** When this device last completed a sync round. */
val SyncStatus.lastSync: Instant? get() = lastSyncMs?.let(::kithInstant)

/** When the last interaction with the contact happened. */
val ContactStats.lastInteraction: Instant? get() = lastInteractionMs?.let(::kithInstant)

/** Until when a pairing token works. */
val DeviceInvitation.expiresAt: Instant get() = kithInstant(expiresAtMs())
