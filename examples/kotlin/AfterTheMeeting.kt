// After the meeting, on Android: log who, what was exchanged and the follow-up
// in one call, then show the contact's timeline and what is due. The same
// code runs in an app (with `context.filesDir` as the directory) and on a JVM:
//   scripts/test-bindings.sh compiles and runs it against the generated bindings.
// With a relay address it then syncs the meeting to the user's other devices.
// Every call that touches the store or the network is a `suspend fun`: in an app
// this runs in `viewModelScope.launch { ... }` (never blocking the main thread);
// here `runBlocking` stands in for that scope.
// Usage: AfterTheMeetingKt DATA_DIR [kith://KEY@HOST:PORT]
package dev.kith.examples

import dev.kith.*
import java.time.LocalDate
import kotlinx.coroutines.runBlocking

/** What an Activity would do: refresh the screens showing the changed records. */
class RefreshOnChange : KithListener {
    override fun onChange(summary: ChangeSummary) {
        println("  (refresh: ${summary.contactIds.size} contact(s), ${summary.interactionIds.size} interaction(s))")
    }
    override fun onSyncState(state: SyncState) {
        println("  (sync: $state)")
    }
}

fun main(args: Array<String>) = runBlocking {
    val dataDir = args.firstOrNull() ?: error("usage: AfterTheMeetingKt DATA_DIR [RELAY]")
    val relay = args.getOrNull(1)
    Kith.open(dataDir).use { kith ->
        kith.addListener(RefreshOnChange())

        val ana = kith.addContact(NewContact(
            name = "Ana Lima",
            organisation = "St Mary's Hospital",
            role = "Director of nursing",
            discipline = "nursing",
            seniority = Seniority.SENIOR,
            insideOrg = true,
            circles = listOf(Circle.OPERATIONAL, Circle.STRATEGIC),
        ))

        // The meeting just ended. One call, durable when it returns, offline.
        val due = LocalDate.now().plusDays(7).toString()
        val id = kith.logInteraction(NewInteraction(
            summary = "Coffee after the discharge-pathway board",
            participantIds = listOf(ana.id),
            participantNames = listOf("Rui Sousa"),   // not in Kith yet
            createMissing = true,
            kind = InteractionKind.MEAL,
            initiator = Initiator.ME,
            notes = "Ana will introduce me to the regional lead for social care.",
            exchanges = listOf(
                NewExchange(ExchangeWhat.INSIGHT, Direction.RECEIVED, withContactId = ana.id),
                NewExchange(ExchangeWhat.SUPPORT, Direction.GAVE),
            ),
            followUps = listOf(NewFollowUp("Send the audit summary", due = due)),
        ))
        println("Logged interaction $id")

        println("Ana's timeline:")
        for (i in kith.timeline(ana.id, offset = 0, limit = 20, includeDeleted = false)) {
            val with = i.participants.map { kith.getContact(it).name }.joinToString()
            println("  ${i.summary} — with $with")
        }
        println("Follow-ups due within a week:")
        for (item in kith.followUpsDueBy(due)) {
            println("  ${item.followUp.due}: ${item.followUp.text} (${item.summary})")
        }

        val hits = kith.search("regional", 10)
        println("Search 'regional': ${hits.interactions.map { it.summary }}")

        try {
            kith.logInteraction(NewInteraction(summary = "", participantIds = listOf(ana.id)))
        } catch (e: KithException.InvalidInput) {
            println("Refused as expected: ${e.field}: ${e.reason}")
        }

        if (relay != null) {
            // First run on this phone: a new account (an app keeps the keys in
            // its keystore through Kith.openWithKeyStore). Then one sync round;
            // an app would rather call kith.startSync().
            if (kith.account() == null) kith.createAccount("Ana's phone", relay)
            try {
                val report = kith.syncNow()
                println("Synced: sent ${report.pushedEntries} entries (${report.bytesSent} bytes)")
            } catch (e: KithException.Network) {
                println("Offline, the meeting stays here until the next sync: ${e.reason}")
            }
        }
        kith.closeStore()
    }
}
