// The stock automerge-repo sync server (Repo + NodeWSServerAdapter + NodeFSStorageAdapter),
// as its own example runs it: the baseline the load benchmark compares Anjian's server to.
// Usage: node stock-server.mjs DATA_DIR   (prints "listening PORT" once ready)
import { WebSocketServer } from "ws"
import { Repo } from "@automerge/automerge-repo"
import { NodeWSServerAdapter } from "@automerge/automerge-repo-network-websocket"
import { NodeFSStorageAdapter } from "@automerge/automerge-repo-storage-nodefs"

const dir = process.argv[2] ?? "./stock-data"
const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, path: "/sync", maxPayload: 64 * 1024 * 1024 })
const repo = new Repo({
  network: [new NodeWSServerAdapter(wss)],
  storage: new NodeFSStorageAdapter(dir),
  peerId: "stock-sync-server",
  sharePolicy: async () => false,
})
// Announce the port only once the repo has set up its storage and network adapter:
// sockets accepted before that are dropped.
wss.on("listening", async () => {
  await repo.storageId()
  console.log(`listening ${wss.address().port}`)
})
const stop = () => repo.shutdown().catch(() => {}).finally(() => process.exit(0))
process.on("SIGTERM", stop)
process.on("SIGINT", stop)
