#!/usr/bin/env node
// Fan-out benchmark over automerge-repo's WebSocket protocol, for the Node sync server and for
// the relay alike: N clients, each its own Repo and connection, open the same M documents; for a
// while some of them (the editors) change a document at a fixed total rate, writing a sequence
// number and a timestamp; every other client measures the time from the change until it sees it.
//
//   Node server (the first client creates the documents):
//     node bench-fanout.mjs --url ws://127.0.0.1:PORT [--doc-count 5]
//   Relay (documents an edge node pushed; the token of an enrolled WebSocket device):
//     node bench-fanout.mjs --url ws://127.0.0.1:PORT/sync --token=T --docs automerge:A,automerge:B
//     (--token=T as one argument: a token may start with '-')
//
// Other flags: --clients 50 --editors 5 --rate 20 (changes/s, all editors together)
// --duration 20 (s) --drain 10 (s to wait for the last changes) --label NAME.
// Prints one JSON line: {clients, docs, changes, p50_ms, p95_ms, p99_ms, max_ms, received, ...};
// `expected` is changes × (clients − 1), and `missing` what had not arrived when the drain
// ended. `client_cpu_s` is this process's CPU time while editing and draining: all clients share
// one Node process, so a figure near the wall time means the load generator, not the server, set
// the pace.
//
// Each editor writes its own top-level keys (`bench_seq_<editor>`, `bench_t_<editor>`), so
// concurrent edits never conflict, and the relay's documents keep their records untouched. All
// clients share this process's clock and a table of send times, so a change that a client only
// sees folded into a later one still gets its own latency.

import { parseArgs } from "node:util";
import { close, connect, waitForPeer, withTimeout } from "./lib.mjs";

const { values: args } = parseArgs({
  options: {
    url: { type: "string" },
    token: { type: "string" },
    docs: { type: "string" },
    "doc-count": { type: "string", default: "5" },
    clients: { type: "string", default: "50" },
    editors: { type: "string", default: "5" },
    rate: { type: "string", default: "20" },
    duration: { type: "string", default: "20" },
    drain: { type: "string", default: "10" },
    "timeout-ms": { type: "string", default: "30000" },
    label: { type: "string" },
  },
  strict: true,
});

function positive(name, { integer = true } = {}) {
  const v = Number(args[name]);
  if (!Number.isFinite(v) || v <= 0 || (integer && !Number.isInteger(v))) {
    throw new Error(`--${name} must be a positive ${integer ? "integer" : "number"}, not ${args[name]}`);
  }
  return v;
}

const clients = [];

async function finish(result, code) {
  await Promise.all(clients.map(c => close(c.repo)));
  console.log(JSON.stringify(result));
  process.exit(code);
}

function fail(error) {
  const message = error instanceof Error ? error.message : String(error);
  const serverErrors = clients.flatMap(c => c.errors);
  return finish({ ok: false, error: message, ...(serverErrors.length ? { server_errors: serverErrors.slice(0, 5) } : {}) }, 1);
}
process.on("uncaughtException", fail);
process.on("unhandledRejection", fail);

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  const i = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return Math.round(sorted[Math.max(0, i)] * 100) / 100;
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));

async function main() {
  if (!args.url) throw new Error("--url is required");
  const nClients = positive("clients");
  const nEditors = Math.min(positive("editors"), nClients);
  const rate = positive("rate", { integer: false });
  const durationMs = positive("duration", { integer: false }) * 1000;
  const drainMs = positive("drain", { integer: false }) * 1000;
  const timeoutMs = positive("timeout-ms");
  if (nClients < 2) throw new Error("--clients must be at least 2: one edits, the others watch");

  const open = i => {
    const c = connect(args.url, { token: args.token, label: `client${i}` });
    clients.push(c);
    return c;
  };
  const first = open(0);
  await waitForPeer(first.repo, timeoutMs);

  let urls;
  if (args.docs) {
    urls = args.docs.split(",").map(s => s.trim()).filter(Boolean);
  } else {
    const n = positive("doc-count");
    urls = Array.from({ length: n }, (_, i) => first.repo.create({ title: `bench ${i}` }).url);
    // The others must find the documents on the server, not ask a server that has not heard of
    // them yet: a fresh connection reads each one back first.
    const probe = connect(args.url, { token: args.token, label: "probe" });
    try {
      await waitForPeer(probe.repo, timeoutMs);
      for (const url of urls) await withTimeout(probe.repo.find(url), timeoutMs, `reading back ${url}`);
    } finally {
      await close(probe.repo);
    }
  }
  if (urls.length === 0) throw new Error("no documents: pass --docs or --doc-count");

  for (let i = 1; i < nClients; i++) open(i);
  await withTimeout(Promise.all(clients.map(c => waitForPeer(c.repo, timeoutMs))), timeoutMs, "connecting the clients");
  const handles = await withTimeout(
    Promise.all(clients.map(c => Promise.all(urls.map(u => c.repo.find(u))))),
    timeoutMs,
    `opening ${urls.length} documents in ${nClients} clients`,
  );

  // sent[doc][editor][seq] = send time; each editor starts after the highest sequence number any
  // earlier run left in the document.
  const sent = urls.map(() => Array.from({ length: nEditors }, () => new Map()));
  const seqKey = e => `bench_seq_${e}`;
  const startSeq = urls.map((_, d) => Array.from({ length: nEditors }, (_, e) => Number(handles[0][d].doc()[seqKey(e)] ?? 0)));
  const nextSeq = startSeq.map(row => row.slice());
  const latencies = [];
  let measuring = true;

  handles.forEach((row, c) => {
    row.forEach((handle, d) => {
      // What this client has seen: per editor, the highest sequence number.
      const seen = startSeq[d].slice();
      handle.on("change", ({ doc }) => {
        if (!measuring) return;
        const now = performance.now();
        for (let e = 0; e < nEditors; e++) {
          if (e === c) continue; // an editor's own changes
          const cur = Number(doc[seqKey(e)] ?? 0);
          for (let s = seen[e] + 1; s <= cur; s++) {
            const t = sent[d][e].get(s);
            if (t !== undefined) latencies.push(now - t);
          }
          if (cur > seen[e]) seen[e] = cur;
        }
      });
    });
  });

  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const interval = 1000 / rate;
  const total = Math.max(1, Math.round((rate * durationMs) / 1000));
  let changes = 0;
  while (changes < total) {
    const due = started + changes * interval;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    const e = changes % nEditors;
    const d = changes % urls.length;
    const seq = ++nextSeq[d][e];
    const t = performance.now();
    sent[d][e].set(seq, t);
    handles[e][d].change(doc => {
      doc[seqKey(e)] = seq;
      doc[`bench_t_${e}`] = Date.now();
    });
    changes++;
  }
  const expected = changes * (nClients - 1);
  const drainUntil = performance.now() + drainMs;
  while (latencies.length < expected && performance.now() < drainUntil) await sleep(50);
  measuring = false;
  const cpu = process.cpuUsage(cpuBefore);

  const sorted = latencies.slice().sort((a, b) => a - b);
  const mean = sorted.length ? sorted.reduce((a, b) => a + b, 0) / sorted.length : null;
  return finish(
    {
      ok: true,
      ...(args.label ? { label: args.label } : {}),
      clients: nClients,
      docs: urls.length,
      editors: nEditors,
      rate,
      duration_s: durationMs / 1000,
      changes,
      expected,
      received: latencies.length,
      missing: expected - latencies.length,
      p50_ms: percentile(sorted, 50),
      p95_ms: percentile(sorted, 95),
      p99_ms: percentile(sorted, 99),
      max_ms: sorted.length ? Math.round(sorted[sorted.length - 1] * 100) / 100 : null,
      mean_ms: mean === null ? null : Math.round(mean * 100) / 100,
      client_cpu_s: Math.round((cpu.user + cpu.system) / 1e4) / 100,
    },
    0,
  );
}

main().catch(fail);
