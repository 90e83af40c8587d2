// FFI call overhead (scripts/test-bindings.sh --bench): Kotlin `getContact` through the
// generated bindings, in ns/call. Every store call is a suspend fun, so each call here is the
// whole async crossing: the JNA call that starts the Rust future, the hop onto Kith's runtime
// (the read runs on its blocking pool), the completion callback and the coroutine's resumption.
// The same contact as the Rust side of the figure (benches/log_interaction.rs
// --get-contact-only). Prints figures; asserts nothing about speed.
package dev.kith.tests

import dev.kith.*
import java.nio.file.Files
import kotlinx.coroutines.runBlocking

private const val WARM_UP = 2_000
private const val CALLS = 20_000

fun main() = runBlocking {
    val dir = Files.createTempDirectory("kith-bench")
    try {
        val kith = Kith.open(dir.resolve("store").toString())
        val ana = kith.addContact(NewContact(name = "Ana Lima", organisation = "Acme", notes = "x".repeat(300))).id
        repeat(WARM_UP) { kith.getContact(ana) }
        val t0 = System.nanoTime()
        repeat(CALLS) { kith.getContact(ana) }
        val ns = (System.nanoTime() - t0).toDouble() / CALLS
        println("[figure] kotlin: getContact (suspend) through the bindings: ${"%.0f".format(ns)} ns/call (n=$CALLS)")
        kith.closeStore()
        kith.close()
    } finally {
        dir.toFile().deleteRecursively()
    }
}
