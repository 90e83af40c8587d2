// The automerge-repo sync server for bench/compare, bound to 127.0.0.1 only.
//
// @automerge/automerge-repo-sync-server 0.2.8 (the newest) cannot be used as
// is: it listens on every interface (`app.listen(PORT)`) and pulls in
// automerge-repo 1.2.1. This file runs what its src/server.js runs — a Repo
// with a NodeWSServerAdapter over a `ws` WebSocketServer, NodeFS storage in
// DATA_DIR and `sharePolicy: async () => false` — on the pinned 2.5.x
// packages, minus express (it only serves a status page).
//
// Usage: node server.mjs DATA_DIR. Prints `port=N` once listening.
import fs from "node:fs"
import { WebSocketServer } from "ws"
import { Repo } from "@automerge/automerge-repo"
import { NodeWSServerAdapter } from "@automerge/automerge-repo-network-websocket"
import { NodeFSStorageAdapter } from "@automerge/automerge-repo-storage-nodefs"

const dir = process.argv[2]
if (!dir) {
  console.error("usage: node server.mjs DATA_DIR")
  process.exit(2)
}
fs.mkdirSync(dir, { recursive: true })
const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 })
new Repo({
  network: [new NodeWSServerAdapter(wss)],
  storage: new NodeFSStorageAdapter(dir),
  peerId: "storage-server-bench",
  sharePolicy: async () => false,
})
wss.on("listening", () => {
  console.log(`port=${wss.address().port}`)
})
process.on("SIGTERM", () => process.exit(0))
