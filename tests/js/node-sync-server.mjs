#!/usr/bin/env node
// The reference Node sync server for the benchmarks, set up as the public automerge-repo sync
// server runs it: an HTTP server whose upgrades go to a `ws` WebSocketServer, a Repo with the
// WebSocket server adapter and file-system storage. One difference, on purpose: its share policy
// shares everything (the public server announces nothing and only answers requests), so the
// server is as eager as the relay is for the documents a client asks about.
//
//   node node-sync-server.mjs PORT DATA_DIR      (PORT 0 picks a free port)
//
// Prints `listening on PORT` once it accepts connections; SIGINT or SIGTERM flush and exit.

import http from "node:http";
import os from "node:os";
import { Repo } from "@automerge/automerge-repo";
import { NodeWSServerAdapter } from "@automerge/automerge-repo-network-websocket";
import { NodeFSStorageAdapter } from "@automerge/automerge-repo-storage-nodefs";
import { WebSocketServer } from "ws";

const [portArg = "3030", dir = ".amrg"] = process.argv.slice(2);
const port = Number(portArg);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error(`node-sync-server: bad port ${portArg}; usage: node node-sync-server.mjs PORT DATA_DIR`);
  process.exit(2);
}

const wss = new WebSocketServer({ noServer: true });
const repo = new Repo({
  network: [new NodeWSServerAdapter(wss)],
  storage: new NodeFSStorageAdapter(dir),
  peerId: `storage-server-${os.hostname()}`,
  sharePolicy: async () => true,
});

const server = http.createServer((req, res) => {
  res.writeHead(200, { "content-type": "text/plain" });
  res.end("automerge-repo sync server is running\n");
});
server.on("upgrade", (request, socket, head) => {
  wss.handleUpgrade(request, socket, head, ws => wss.emit("connection", ws, request));
});
server.listen(port, "127.0.0.1", () => {
  console.log(`listening on ${server.address().port}`);
});

async function stop() {
  wss.close();
  server.close();
  await repo.flush();
  process.exit(0);
}
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
