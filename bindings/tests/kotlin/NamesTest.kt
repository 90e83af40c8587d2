// Names from every language through the Kotlin bindings (issue 21): the
// shared table core/tests/data/names.tsv (read from the repository root, where
// scripts/test-bindings.sh runs). Every query finds its person through
// search(); every look-alike pair, and no other, is a likely duplicate; an
// import of the other spellings reports each as one. Returns the checks made.
package dev.kith.tests

import dev.kith.*
import java.io.File

private class NameChecks {
    var count = 0
    suspend fun need(condition: Boolean, what: suspend () -> String) {
        count++
        if (!condition) throw AssertionError(what())
    }
}

suspend fun namesFromEveryLanguage(dir: File): Int {
    val c = NameChecks()
    val people = mutableListOf<Pair<String, List<String>>>()
    val dups = mutableListOf<Pair<String, String>>()
    File("core/tests/data/names.tsv").readLines(Charsets.UTF_8).forEach { line ->
        if (line.isBlank() || line.startsWith("#")) return@forEach
        val f = line.split("\t")
        when {
            f[0] == "person" && f.size == 4 -> people.add(f[2] to f[3].split("|"))
            f[0] == "dup" && f.size == 3 -> dups.add(f[1] to f[2])
            else -> throw AssertionError("bad line in names.tsv: $line")
        }
    }
    c.need(people.size >= 40) { "${people.size} people" }

    Kith.open(File(dir, "people").path).use { kith ->
        val ids = people.associate { (name, _) -> name to kith.addContact(NewContact(name = name)).id }
        val missed = people.flatMap { (name, queries) ->
            queries.filter { q -> kith.search(q, 100).contacts.none { it.id == ids[name] } }
                .map { q -> "\"$q\" -> $name" }
        }
        c.need(missed.isEmpty()) { "not found: $missed" }
        c.need(kith.likelyDuplicates().isEmpty()) { "people of the table look alike" }
        kith.closeStore()
    }

    Kith.open(File(dir, "dups").path).use { kith ->
        val ids = mutableMapOf<String, String>()
        dups.map { it.first }.distinct().forEach { ids[it] = kith.addContact(NewContact(name = it)).id }
        val vcf = dups.joinToString("") { "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:${it.second}\r\nEND:VCARD\r\n" }
        val report = kith.importVcard(vcf.toByteArray(Charsets.UTF_8), true)
        c.need(report.created.isEmpty()) { "import created ${report.created}" }
        val reported = report.likelyDuplicates.map { it.mergeIntoId to it.name }.toSet()
        dups.forEach { (a, b) -> c.need((ids[a] to b) in reported) { "import missed $b ~ $a" } }

        dups.map { it.second }.distinct().forEach { ids[it] = kith.addContact(NewContact(name = it)).id }
        val names = ids.entries.associate { (k, v) -> v to k }
        val pairs = kith.likelyDuplicates()
        pairs.forEach { p ->
            c.need(p.reasons.size == 1 && p.reasons[0] is DuplicateReason.SameName) { "reasons $p" }
        }
        val got = pairs.map { setOf(names[it.contactA], names[it.contactB]) }.toSet()
        val want = dups.map { setOf(it.first, it.second) }.toSet()
        c.need(got == want) { "duplicates: extra ${got - want}, missing ${want - got}" }
        kith.closeStore()
    }
    return c.count
}
