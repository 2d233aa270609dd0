// The stock automerge-repo 2.x client against Anjian's server, as a supervisor's tool
// would use it: sign in, find a case by its document id, read the findings an inspector
// synced, add a comment, wait until the server holds it. Then the same client without a
// token, and with the token of a district that may not see the case, must get nothing.
//
// Usage: node interop.mjs SERVER DOCUMENT_ID USER PASSWORD OUTSIDER
// Prints one JSON line of what it saw; exits non-zero on any deviation.
import * as A from "@automerge/automerge"
import { Repo } from "@automerge/automerge-repo"
import { WebSocketClientAdapter } from "@automerge/automerge-repo-network-websocket"

const [server, documentId, username, password, outsider] = process.argv.slice(2)
const wsUrl = (token) => `${server.replace("http", "ws")}/sync${token ? `?token=${token}` : ""}`

async function login(user, actorId) {
  const response = await fetch(`${server}/api/v1/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ username: user, password, device_name: "automerge-repo 客户端", actor_id: actorId }),
  })
  if (!response.ok) throw new Error(`login ${user}: ${response.status} ${await response.text()}`)
  return (await response.json()).token
}

const randomActor = () => crypto.randomUUID().replaceAll("-", "")

async function connect(token) {
  const adapter = new WebSocketClientAdapter(wsUrl(token))
  const repo = new Repo({ network: [adapter] })
  await adapter.whenReady()
  return { adapter, repo }
}

async function findOrNothing(token) {
  const { adapter, repo } = await connect(token)
  try {
    const handle = await repo.find(documentId, { signal: AbortSignal.timeout(10_000) })
    return handle.doc()
  } catch {
    return null
  } finally {
    adapter.disconnect()
  }
}

const seen = {}
// 1. The supervisor finds the case and reads the inspector's findings.
let token = await login(username, randomActor())
const { adapter, repo } = await connect(token)
if (repo.peers.length === 0) throw new Error("not connected to the server")
const handle = await repo.find(documentId, { signal: AbortSignal.timeout(10_000) })
const doc = handle.doc()
seen.findings = Object.values(doc.findings).map((f) => f.description.toString()).sort()
seen.enterprise = doc.enterprise.name

// 2. Bind the actor this client writes with to the supervisor, then comment.
token = await login(username, A.getActorId(doc))
const text = "请补充整改期限的依据，并上传现场照片。"
handle.change((d) => {
  d.review.events.push({ kind: "comment", by: username, at: new Date().toISOString(), text })
})
const serverStorageId = repo.getStorageIdOfPeer(repo.peers[0])
const want = JSON.stringify(handle.heads())
await new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error("the server did not acknowledge the comment")), 10_000)
  const check = () => JSON.stringify(handle.getSyncInfo(serverStorageId)?.lastHeads) === want
  if (check()) { clearTimeout(timer); return resolve() }
  handle.on("remote-heads", () => { if (check()) { clearTimeout(timer); resolve() } })
})
seen.commented = text
adapter.disconnect()

// 3. Without a token, and with a token of another district: nothing.
seen.without_token = await findOrNothing(null)
seen.other_district = await findOrNothing(await login(outsider, randomActor()))

console.log(JSON.stringify(seen))
const ok = seen.findings.length > 0 && seen.without_token === null && seen.other_district === null
process.exit(ok ? 0 : 1)
