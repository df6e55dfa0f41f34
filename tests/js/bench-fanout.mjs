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
// ended. `client_cpu_s` is this process's CPU time while editing and draining.
//
// The clients are spread over --workers worker threads (default: one per core, at most one per
// client), each with its own event loop: with every client on one thread, 50 clients kept it
// busy for nearly the whole run and the latencies measured its queue, not the server's fan-out.
// A figure of client_cpu_s near workers × the wall time still means the load generator set the
// pace.
//
// Each editor writes its own top-level keys (`bench_seq_<editor>`, `bench_t_<editor>`), so
// concurrent edits never conflict, and the relay's documents keep their records untouched. The
// threads share one clock and a table of send times (shared memory), so a change that a client
// only sees folded into a later one still gets its own latency.

import os from "node:os";
import { parseArgs } from "node:util";
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import { close, connect, waitForPeer, withTimeout } from "./lib.mjs";

const { values: args } = isMainThread ? parseArgs({
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
    workers: { type: "string" },
  },
  strict: true,
}) : { values: {} };

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
if (isMainThread) {
  process.on("uncaughtException", fail);
  process.on("unhandledRejection", fail);
}

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  const i = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return Math.round(sorted[Math.max(0, i)] * 100) / 100;
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));
/** Milliseconds on a clock every thread of this process shares. */
const clock = () => performance.timeOrigin + performance.now();
const seqKey = e => `bench_seq_${e}`;

async function main() {
  if (!args.url) throw new Error("--url is required");
  const nClients = positive("clients");
  const nEditors = Math.min(positive("editors"), nClients);
  const rate = positive("rate", { integer: false });
  const durationMs = positive("duration", { integer: false }) * 1000;
  const drainMs = positive("drain", { integer: false }) * 1000;
  const timeoutMs = positive("timeout-ms");
  if (nClients < 2) throw new Error("--clients must be at least 2: one edits, the others watch");
  const cores = typeof os.availableParallelism === "function" ? os.availableParallelism() : os.cpus().length;
  if (args.workers === undefined) args.workers = String(cores);
  const nWorkers = Math.min(positive("workers"), nClients);

  // The documents, and the sequence numbers earlier runs left in them, read by a client that
  // leaves before the run.
  const first = connect(args.url, { token: args.token, label: "setup" });
  clients.push(first);
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
  const setup = await withTimeout(Promise.all(urls.map(u => first.repo.find(u))), timeoutMs, "opening the documents");
  const startSeq = setup.map(h => Array.from({ length: nEditors }, (_, e) => Number(h.doc()[seqKey(e)] ?? 0)));
  await close(first.repo);
  clients.length = 0;

  const interval = 1000 / rate;
  const total = Math.max(1, Math.round((rate * durationMs) / 1000));
  // Send times in microseconds: [doc][editor][sequence number − the start's].
  const times = new SharedArrayBuffer(8 * urls.length * nEditors * (total + 1));
  const per = Math.ceil(nClients / nWorkers);
  const workers = [];
  for (let lo = 0; lo < nClients; lo += per) {
    const hi = Math.min(nClients, lo + per);
    const w = new Worker(new URL(import.meta.url), {
      workerData: { url: args.url, token: args.token, urls, startSeq, lo, hi, nEditors, total, interval, drainMs, timeoutMs, times },
    });
    w.on("error", fail);
    workers.push(w);
  }
  const next = (w, type) =>
    new Promise((resolve, reject) => {
      const on = m => {
        if (m.type === "error") reject(new Error(m.message));
        else if (m.type === type) resolve(m);
        else return;
        w.off("message", on);
      };
      w.on("message", on);
    });
  await withTimeout(Promise.all(workers.map(w => next(w, "ready"))), timeoutMs * 2, `connecting ${nClients} clients`);

  const cpuBefore = process.cpuUsage();
  const startAt = clock() + 100;
  const results = Promise.all(workers.map(w => next(w, "done")));
  for (const w of workers) w.postMessage({ type: "go", startAt });
  const done = await withTimeout(results, total * interval + drainMs + timeoutMs, "running the workload");
  const cpu = process.cpuUsage(cpuBefore);
  await Promise.all(workers.map(w => w.terminate()));

  const latencies = done.flatMap(m => Array.from(m.latencies));
  const expected = done.reduce((n, m) => n + m.expected, 0);
  const serverErrors = done.flatMap(m => m.errors);
  const sorted = latencies.sort((a, b) => a - b);
  const mean = sorted.length ? sorted.reduce((a, b) => a + b, 0) / sorted.length : null;
  return finish(
    {
      ok: true,
      ...(args.label ? { label: args.label } : {}),
      clients: nClients,
      workers: workers.length,
      docs: urls.length,
      editors: nEditors,
      rate,
      duration_s: durationMs / 1000,
      changes: total,
      expected,
      received: sorted.length,
      missing: expected - sorted.length,
      p50_ms: percentile(sorted, 50),
      p95_ms: percentile(sorted, 95),
      p99_ms: percentile(sorted, 99),
      max_ms: sorted.length ? Math.round(sorted[sorted.length - 1] * 100) / 100 : null,
      mean_ms: mean === null ? null : Math.round(mean * 100) / 100,
      client_cpu_s: Math.round((cpu.user + cpu.system) / 1e4) / 100,
      ...(serverErrors.length ? { server_errors: serverErrors.slice(0, 5) } : {}),
    },
    0,
  );
}

/** One worker thread: clients lo..hi−1, the changes of the editors among them, their latencies. */
async function worker() {
  const { url, token, urls, startSeq, lo, hi, nEditors, total, interval, drainMs, timeoutMs } = workerData;
  const times = new BigInt64Array(workerData.times);
  const slot = (d, e, seq) => ((d * nEditors + e) * (total + 1)) + (seq - startSeq[d][e]);
  const mine = [];
  for (let c = lo; c < hi; c++) mine.push({ c, ...connect(url, { token, label: `client${c}` }) });
  await withTimeout(Promise.all(mine.map(m => waitForPeer(m.repo, timeoutMs))), timeoutMs, "connecting the clients");
  const handles = await withTimeout(
    Promise.all(mine.map(m => Promise.all(urls.map(u => m.repo.find(u))))),
    timeoutMs,
    `opening ${urls.length} documents in ${mine.length} clients`,
  );
  const latencies = [];
  let measuring = false;
  handles.forEach((row, i) => {
    const c = mine[i].c;
    row.forEach((handle, d) => {
      // What this client has seen: per editor, the highest sequence number.
      const seen = startSeq[d].slice();
      handle.on("change", ({ doc }) => {
        if (!measuring) return;
        const now = clock();
        for (let e = 0; e < nEditors; e++) {
          if (e === c) continue; // an editor's own changes
          const cur = Number(doc[seqKey(e)] ?? 0);
          for (let s = seen[e] + 1; s <= cur; s++) {
            if (s - startSeq[d][e] > total) break;
            const t = Atomics.load(times, slot(d, e, s));
            if (t !== 0n) latencies.push(now - Number(t) / 1000);
          }
          if (cur > seen[e]) seen[e] = cur;
        }
      });
    });
  });
  const { startAt } = await new Promise(resolve => {
    parentPort.on("message", m => m.type === "go" && resolve(m));
    parentPort.postMessage({ type: "ready" });
  });
  measuring = true;
  // Every change reaches every client but its editor's.
  let expected = 0;
  const nextSeq = startSeq.map(row => row.slice());
  for (let i = 0; i < total; i++) {
    const e = i % nEditors;
    const own = e >= lo && e < hi;
    expected += mine.length - (own ? 1 : 0);
    if (!own) continue;
    const wait = startAt + i * interval - clock();
    if (wait > 0) await sleep(wait);
    const d = i % urls.length;
    const seq = ++nextSeq[d][e];
    Atomics.store(times, slot(d, e, seq), BigInt(Math.round(clock() * 1000)));
    handles[e - lo][d].change(doc => {
      doc[seqKey(e)] = seq;
      doc[`bench_t_${e}`] = Date.now();
    });
  }
  const drainUntil = startAt + total * interval + drainMs;
  while (latencies.length < expected && clock() < drainUntil) await sleep(50);
  measuring = false;
  const errors = mine.flatMap(m => m.errors);
  parentPort.postMessage({ type: "done", latencies: Float64Array.from(latencies), expected, errors });
  await Promise.all(mine.map(m => close(m.repo)));
}

if (isMainThread) {
  main().catch(fail);
} else {
  worker().catch(e => parentPort.postMessage({ type: "error", message: e instanceof Error ? e.message : String(e) }));
}
