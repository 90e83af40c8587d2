// The automerge-repo side of bench/compare (run by ../run.sh, not by CI).
//
// Loads the synthetic network the Kith bench exported (network-N.json:
// contacts, interactions, projects, goals from kith_synth::generate) into
// one automerge-repo document per network, shaped as maps keyed by id
// ({contacts, interactions, projects, goals}), and measures the same
// workloads as tests/benches/compare.rs. Every string is stored as an
// ImmutableString (a scalar, last-writer-wins, as Kith stores strings; see
// docs/SCHEMA.md); `--strings text` stores them as Automerge 3's default
// collaborative Text instead (one op per character: much slower).
//
//   append   one new interaction: handle.change + await repo.flush()
//            (NodeFS storage, no network attached), 30 trials: p50/p99
//   cold     a fresh node process opens the repo on the same storage
//            directory, finds the document and lists the 20 newest
//            interactions (time inside the process, from `new Repo`)
//   bootstrap a fresh repo (empty NodeFS dir) connected to the sync server
//            on 127.0.0.1 finds the document and waits until it holds
//            every interaction; the uploading device first waits until
//            the server acknowledged all of its heads
//   propagation device A -> server -> device B, both live: from A's
//            change to B's change event holding the new interaction
//   idle     N raw WebSocket clients that each complete the repo
//            handshake (join -> peer); the server's RSS delta over N
//
// The server is server.mjs in a child process (see there for why not the
// sync-server package itself); its RSS comes from /proc/PID/status.
//
// Usage:
//   node bench.mjs run --data DIR --out FILE [--sizes 5000,50000]
//       [--bootstrap-timeout-s 240] [--idle 2000] [--strings scalar|text]
//   node bench.mjs cold STORAGE_DIR DOC_URL          (child of `run`)
//   node bench.mjs table KITH_JSON AM_JSON           (prints the table)
import fs from "node:fs"
import os from "node:os"
import path from "node:path"
import { spawn, execFileSync } from "node:child_process"
import { fileURLToPath } from "node:url"
import WebSocket from "ws"
import { ImmutableString } from "@automerge/automerge"
import { Repo, cbor } from "@automerge/automerge-repo"
import { WebSocketClientAdapter } from "@automerge/automerge-repo-network-websocket"
import { NodeFSStorageAdapter } from "@automerge/automerge-repo-storage-nodefs"

const HERE = path.dirname(fileURLToPath(import.meta.url))
const APPEND_TRIALS = 30
const PROPAGATION_TRIALS = 100
const COLD_TRIALS = { 5000: 3, 50000: 1 }
const CONNECT_CONCURRENCY = 64

function arg(args, name, dflt) {
  const i = args.indexOf(name)
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt
}

function percentile(samples, p) {
  const s = [...samples].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.round((s.length - 1) * p))]
}

function rssKib(pid) {
  const s = fs.readFileSync(`/proc/${pid}/status`, "utf8")
  const line = s.split("\n").find(l => l.startsWith("VmRSS:"))
  return line ? parseInt(line.split(/\s+/)[1], 10) : 0
}

const log = msg => console.error(`  [automerge] ${msg}`)

/// A new interaction shaped like the exported ones.
function newInteraction(template, i) {
  const now = Date.now()
  const id = `bench-${now}-${i}-${Math.random().toString(36).slice(2)}`
  return {
    ...template,
    id,
    at_ms: now,
    summary: `bench write ${i}`,
    notes: "Talked about the rota and the audit. ".repeat(8),
    notes_conflicts: [],
    exchanges: [],
    follow_ups: {},
    created_ms: now,
    updated_ms: now,
    deleted_ms: null,
    event: null,
  }
}

let SCALAR_STRINGS = true

/// Strings as scalars (ImmutableString) unless `--strings text`.
function strings(v) {
  if (!SCALAR_STRINGS) return v
  if (typeof v === "string") return new ImmutableString(v)
  if (Array.isArray(v)) return v.map(strings)
  if (v && typeof v === "object") {
    const out = {}
    for (const [k, x] of Object.entries(v)) out[k] = strings(x)
    return out
  }
  return v
}

function byId(records) {
  const out = {}
  for (const r of records) out[r.id] = strings(r)
  return out
}

async function withTimeout(promise, ms, what) {
  let timer
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result in ${ms} ms`)), ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

async function startServer(dataDir) {
  const child = spawn(process.execPath, [path.join(HERE, "server.mjs"), dataDir], {
    stdio: ["ignore", "pipe", "inherit"],
  })
  const port = await new Promise((resolve, reject) => {
    let buf = ""
    child.stdout.on("data", d => {
      buf += d
      const m = buf.match(/port=(\d+)/)
      if (m) resolve(parseInt(m[1], 10))
    })
    child.on("exit", code => reject(new Error(`server exited with ${code}`)))
  })
  return { child, port, url: `ws://127.0.0.1:${port}` }
}

function stopServer(server) {
  server.child.kill("SIGTERM")
}

function networkedRepo(dir, url) {
  return new Repo({
    storage: new NodeFSStorageAdapter(dir),
    network: [new WebSocketClientAdapter(url)],
  })
}

/// Waits until the server (peer `storage-server-bench`) reported holding
/// every head of `handle`.
async function uploaded(repo, handle) {
  for (;;) {
    const storageId = repo.peerMetadataByPeerId["storage-server-bench"]?.storageId
    if (storageId) {
      const theirs = handle.getSyncInfo(storageId)?.lastHeads
      const ours = handle.heads()
      if (theirs && ours && theirs.length === ours.length && ours.every(h => theirs.includes(h))) {
        return
      }
    }
    await new Promise(r => setTimeout(r, 20))
  }
}

/// Waits until `repo` completed the handshake with the server. (The client
/// adapter declares itself ready after 1 s without an answer; a `find`
/// then finds no peer and reports the document unavailable, which a
/// loaded machine hits.)
async function connected(repo) {
  while (!repo.peers.includes("storage-server-bench")) {
    await new Promise(r => setTimeout(r, 5))
  }
}

/// A fresh device (`repo`: empty storage, connected at `t0`) finds the
/// document through the server and waits until it holds `count`
/// interactions. Returns the ms since `t0` and the handle.
async function bootstrapOnce(repo, t0, docUrl, count) {
  await connected(repo)
  const handle = await repo.find(docUrl)
  const have = () => Object.keys(handle.doc()?.interactions ?? {}).length
  if (have() < count) {
    await new Promise(resolve => {
      const on = () => {
        if (have() >= count) {
          handle.off("change", on)
          resolve()
        }
      }
      handle.on("change", on)
      on()
    })
  }
  return { ms: performance.now() - t0, handle }
}

async function size(n, dataDir, server, bootstrapTimeoutMs, figures, tmp) {
  const net = JSON.parse(fs.readFileSync(path.join(dataDir, `network-${n}.json`), "utf8"))
  log(`${n}: ${net.contacts.length} contacts, ${net.interactions.length} interactions`)
  const storeA = fs.mkdtempSync(path.join(tmp, `a-${n}-`))
  let t = performance.now()
  let repo = new Repo({ storage: new NodeFSStorageAdapter(storeA) })
  let handle = repo.create({
    contacts: byId(net.contacts),
    interactions: byId(net.interactions),
    projects: byId(net.projects),
    goals: byId(net.goals),
  })
  await repo.flush()
  log(`${n}: created and flushed the document in ${(performance.now() - t).toFixed(0)} ms`)
  const docUrl = handle.url
  const template = net.interactions[net.interactions.length - 1]

  // Durable append.
  const append = []
  for (let i = 0; i <= APPEND_TRIALS; i++) {
    const rec = newInteraction(template, i)
    t = performance.now()
    handle.change(d => {
      d.interactions[rec.id] = strings(rec)
    })
    await repo.flush()
    if (i > 0) append.push(performance.now() - t)
  }
  figures[`append_${n}_p50_ms`] = percentile(append, 0.5)
  figures[`append_${n}_p99_ms`] = percentile(append, 0.99)
  log(`${n}: append p50 ${percentile(append, 0.5).toFixed(2)} ms, p99 ${percentile(append, 0.99).toFixed(2)} ms`)
  await repo.shutdown()
  const total = net.interactions.length + APPEND_TRIALS + 1

  // Cold open, each in a fresh process.
  const cold = []
  try {
    for (let i = 0; i < (COLD_TRIALS[n] ?? 1); i++) {
      const out = execFileSync(process.execPath, [fileURLToPath(import.meta.url), "cold", storeA, docUrl], {
        encoding: "utf8",
        maxBuffer: 1 << 20,
        timeout: bootstrapTimeoutMs,
      })
      const r = JSON.parse(out)
      if (r.newest !== 20) throw new Error(`cold open listed ${r.newest} interactions`)
      cold.push(r.ms)
    }
    figures[`cold_open_${n}_p50_ms`] = percentile(cold, 0.5)
    log(`${n}: cold open ${cold.map(x => x.toFixed(0)).join(", ")} ms`)
  } catch (e) {
    figures[`cold_open_${n}_p50_ms`] = null
    figures[`cold_open_${n}_note`] = `did not finish within ${bootstrapTimeoutMs / 1000} s (${e.message})`
    log(`${n}: cold open: ${e.message}`)
  }

  // Bootstrap through the server.
  repo = networkedRepo(storeA, server.url)
  let repoB
  t = performance.now()
  try {
    await withTimeout(connected(repo), bootstrapTimeoutMs, "connect")
    handle = await repo.find(docUrl)
    await withTimeout(uploaded(repo, handle), bootstrapTimeoutMs, "upload")
    log(`${n}: upload to the server ${(performance.now() - t).toFixed(0)} ms`)
    const rssBefore = rssKib(server.child.pid)
    const t0 = performance.now()
    repoB = networkedRepo(fs.mkdtempSync(path.join(tmp, "device-")), server.url)
    const b = await withTimeout(bootstrapOnce(repoB, t0, docUrl, total), bootstrapTimeoutMs, "new device")
    figures[`bootstrap_${n}_ms`] = b.ms
    figures[`bootstrap_${n}_server_rss_mib`] = rssKib(server.child.pid) / 1024
    log(`${n}: new device ${b.ms.toFixed(0)} ms (server RSS ${(rssBefore / 1024).toFixed(0)} -> ${figures[`bootstrap_${n}_server_rss_mib`].toFixed(0)} MiB)`)
    if (n === 5000) await propagation(handle, b.handle, template, figures)
  } catch (e) {
    figures[`bootstrap_${n}_ms`] ??= null
    figures[`bootstrap_${n}_note`] = `did not finish within ${bootstrapTimeoutMs / 1000} s (${e.message})`
    log(`${n}: ${e.message}`)
  } finally {
    // Both devices leave before the server stops (a client whose server
    // vanishes mid-connect throws from the adapter's error handler).
    for (const r of [repoB, repo]) {
      if (r) await withTimeout(r.shutdown(), 30_000, "shutdown").catch(() => {})
    }
  }
}

async function propagation(handleA, handleB, template, figures) {
  const lat = []
  for (let i = 0; i < PROPAGATION_TRIALS; i++) {
    const rec = newInteraction(template, 100_000 + i)
    const seen = new Promise(resolve => {
      const on = () => {
        if (handleB.doc()?.interactions?.[rec.id]) {
          handleB.off("change", on)
          resolve(performance.now())
        }
      }
      handleB.on("change", on)
    })
    const t0 = performance.now()
    handleA.change(d => {
      d.interactions[rec.id] = strings(rec)
    })
    const t1 = await withTimeout(seen, 30_000, "propagation")
    lat.push(t1 - t0)
  }
  figures.propagation_p50_ms = percentile(lat, 0.5)
  figures.propagation_p99_ms = percentile(lat, 0.99)
  log(`propagation p50 ${figures.propagation_p50_ms.toFixed(1)} ms, p99 ${figures.propagation_p99_ms.toFixed(1)} ms`)
}

/// N raw WebSocket clients that complete the repo handshake; the server's
/// RSS delta per connection.
async function idle(n, tmp, figures) {
  const server = await startServer(fs.mkdtempSync(path.join(tmp, "idle-server-")))
  await new Promise(r => setTimeout(r, 1000))
  const base = rssKib(server.child.pid)
  const sockets = []
  let next = 0
  let failed = 0
  const one = i =>
    new Promise(resolve => {
      const ws = new WebSocket(server.url)
      ws.binaryType = "arraybuffer"
      const done = ok => {
        if (!ok) failed++
        resolve()
      }
      ws.on("open", () => {
        ws.send(
          cbor.encode({
            type: "join",
            senderId: `idle-${i}`,
            peerMetadata: {},
            supportedProtocolVersions: ["1"],
          }),
        )
      })
      ws.on("message", data => {
        const msg = cbor.decode(new Uint8Array(data))
        done(msg.type === "peer")
      })
      ws.on("error", () => done(false))
      sockets.push(ws)
    })
  const worker = async () => {
    while (next < n) await one(next++)
  }
  await Promise.all(Array.from({ length: CONNECT_CONCURRENCY }, worker))
  await new Promise(r => setTimeout(r, 2000))
  const held = n - failed
  const rss = rssKib(server.child.pid)
  const perConnKib = (rss - base) / Math.max(held, 1)
  figures.idle_connections = held
  figures.idle_server_rss_mib = rss / 1024
  figures.idle_per_connection_kib = perConnKib
  figures.idle_per_100mib = (100 * 1024) / perConnKib
  log(`idle: ${held} of ${n} held, server RSS ${(base / 1024).toFixed(1)} -> ${(rss / 1024).toFixed(1)} MiB, ${perConnKib.toFixed(1)} KiB each`)
  for (const ws of sockets) ws.terminate()
  stopServer(server)
}

async function run(args) {
  const dataDir = arg(args, "--data")
  const outFile = arg(args, "--out")
  if (!dataDir || !outFile) throw new Error("run needs --data DIR --out FILE")
  const sizes = arg(args, "--sizes", "5000,50000").split(",").map(Number)
  const bootstrapTimeoutMs = Number(arg(args, "--bootstrap-timeout-s", "240")) * 1000
  const idleN = Number(arg(args, "--idle", "2000"))
  SCALAR_STRINGS = arg(args, "--strings", "scalar") !== "text"
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "kith-compare-am-"))
  const figures = { strings: SCALAR_STRINGS ? "scalar" : "text" }
  try {
    for (const n of sizes) {
      // A fresh server per size, so one size's document does not weigh on the other.
      const server = await startServer(fs.mkdtempSync(path.join(tmp, `server-${n}-`)))
      try {
        await size(n, dataDir, server, bootstrapTimeoutMs, figures, tmp)
      } finally {
        stopServer(server)
      }
    }
    await idle(idleN, tmp, figures)
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true })
  }
  fs.writeFileSync(outFile, JSON.stringify(figures, null, 2))
}

async function cold(storageDir, docUrl) {
  const t0 = performance.now()
  const repo = new Repo({ storage: new NodeFSStorageAdapter(storageDir) })
  const handle = await repo.find(docUrl)
  const newest = Object.values(handle.doc().interactions)
    .sort((a, b) => b.at_ms - a.at_ms)
    .slice(0, 20)
  const ms = performance.now() - t0
  console.log(JSON.stringify({ ms, newest: newest.length }))
  await repo.shutdown()
}

const ROWS = [
  ["durable append at 5,000, p50", "append_5000_p50_ms", "ms"],
  ["durable append at 5,000, p99", "append_5000_p99_ms", "ms"],
  ["durable append at 50,000, p50", "append_50000_p50_ms", "ms"],
  ["durable append at 50,000, p99", "append_50000_p99_ms", "ms"],
  ["cold open to 20 newest at 5,000, p50", "cold_open_5000_p50_ms", "ms"],
  ["cold open to 20 newest at 50,000, p50", "cold_open_50000_p50_ms", "ms"],
  ["new device at 5,000 via server", "bootstrap_5000_ms", "ms"],
  ["new device at 50,000 via server", "bootstrap_50000_ms", "ms"],
  ["propagation device -> server -> device, p50", "propagation_p50_ms", "ms"],
  ["propagation device -> server -> device, p99", "propagation_p99_ms", "ms"],
  ["idle connections per 100 MiB of server RSS", "idle_per_100mib", "conns"],
]

function fmt(v, unit) {
  if (v === null || v === undefined) return "—"
  if (unit === "conns") return `${Math.round(v).toLocaleString("en-US")}`
  if (v >= 1000) return `${(v / 1000).toFixed(2)} s`
  return `${v < 10 ? v.toFixed(2) : v.toFixed(1)} ms`
}

function table(kithFile, amFile) {
  const k = JSON.parse(fs.readFileSync(kithFile, "utf8"))
  const a = JSON.parse(fs.readFileSync(amFile, "utf8"))
  const lines = [
    "| figure | Kith | automerge-repo | ratio (AM ÷ Kith) |",
    "|---|---|---|---|",
  ]
  for (const [label, key, unit] of ROWS) {
    const kv = k[key]
    const av = a[key]
    const ratio = kv && av ? `${(av / kv).toFixed(av / kv < 10 ? 2 : 0)}×` : "—"
    lines.push(`| ${label} | ${fmt(kv, unit)} | ${fmt(av, unit)} | ${ratio} |`)
  }
  console.log(lines.join("\n"))
  const notes = Object.entries({ ...k, ...a }).filter(([key]) => key.endsWith("_note"))
  for (const [key, note] of notes) console.log(`\n${key}: ${note}`)
  console.log(
    `\nTimes: lower is better (ratio > 1: automerge-repo slower). Idle connections: higher is better` +
      ` (ratio > 1: automerge-repo holds more per MiB); Kith ${k.idle_connections ?? "?"} QUIC connections` +
      ` (relay-load), automerge-repo ${a.idle_connections ?? "?"} WebSocket clients.`,
  )
}

const [mode, ...rest] = process.argv.slice(2)
// `run` exits explicitly: the client adapters' retry and readiness timers
// keep node's event loop alive after every repo shut down.
if (mode === "run") {
  await run(rest)
  process.exit(0)
}
else if (mode === "cold") await cold(rest[0], rest[1])
else if (mode === "table") table(rest[0], rest[1])
else {
  console.error("usage: node bench.mjs run|cold|table ...")
  process.exit(2)
}
