// Helpers shared by the interoperability check and the fan-out benchmark: a Repo over one
// WebSocket connection, waits with deadlines, and a protocol trace for reporting mismatches.

import { Repo, cbor } from "@automerge/automerge-repo";
import { WebSocketClientAdapter } from "@automerge/automerge-repo-network-websocket";

/** `url` with `?token=` added (the relay's `/sync` takes the device token there). */
export function withToken(url, token) {
  if (!token) return url;
  const u = new URL(url);
  u.searchParams.set("token", token);
  return u.toString();
}

/** Rejects with "timed out after N ms while WHAT" unless `promise` settles first. */
export function withTimeout(promise, ms, what) {
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms while ${what}`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

/** A short description of a protocol message: its type and fields, binary data by length. */
export function describe(message) {
  const out = {};
  for (const [k, v] of Object.entries(message ?? {})) {
    out[k] = v instanceof Uint8Array || v instanceof ArrayBuffer ? `<${v.byteLength} bytes>` : v;
  }
  return JSON.stringify(out);
}

/**
 * A Repo without storage, connected to `url` through one WebSocket client adapter.
 * `errors` collects the `error` messages the server sends (the adapter only logs them); with
 * `trace`, every message in and out is written to standard error.
 */
export function connect(url, { token, trace = false, label = "client", retryMs = 5000 } = {}) {
  const adapter = new WebSocketClientAdapter(withToken(url, token), retryMs);
  const errors = [];
  const receive = adapter.receiveMessage.bind(adapter);
  adapter.receiveMessage = bytes => {
    let message;
    try {
      message = cbor.decode(new Uint8Array(bytes));
    } catch (e) {
      if (trace) console.error(`[${label}] <- undecodable frame (${bytes.byteLength} bytes): ${e.message}`);
    }
    if (message?.type === "error") errors.push(message.message);
    if (trace && message) console.error(`[${label}] <- ${describe(message)}`);
    return receive(bytes);
  };
  if (trace) {
    const send = adapter.send.bind(adapter);
    adapter.send = message => {
      console.error(`[${label}] -> ${describe(message)}`);
      return send(message);
    };
  }
  const repo = new Repo({ network: [adapter], sharePolicy: async () => true });
  return { repo, adapter, errors };
}

/**
 * Resolves once the server has answered `join` with `peer`. Finding a document before that
 * would ask no peer and report it unavailable at once.
 */
export function waitForPeer(repo, ms) {
  if (repo.peers.length > 0) return Promise.resolve();
  const peer = new Promise(resolve => repo.networkSubsystem.once("peer", resolve));
  return withTimeout(peer, ms, "waiting for the server's peer message");
}

/** Resolves once `predicate(doc)` holds for the handle's document. */
export function waitForDoc(handle, predicate, ms, what) {
  const seen = new Promise(resolve => {
    const check = () => {
      if (predicate(handle.doc())) {
        handle.off("change", check);
        resolve(handle.doc());
        return true;
      }
      return false;
    };
    if (!check()) handle.on("change", check);
  });
  return withTimeout(seen, ms, what);
}

/** Closes the repo's connections; swallows what a half-open socket throws. */
export async function close(repo) {
  try {
    await withTimeout(repo.shutdown(), 2000, "shutting down");
  } catch {
    // Nothing left to save (no storage); the process exits next anyway.
  }
}

/** Plain text of a string read from a document: a text object or an ImmutableString. */
export function text(value) {
  return value === undefined || value === null ? value : String(value);
}
