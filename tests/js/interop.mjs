#!/usr/bin/env node
// Interoperability check: automerge-repo's JavaScript client edits a product document through the
// relay's `/sync` endpoint, and a second, fresh connection confirms the relay stored the edit.
//
//   node interop.mjs --url ws://HOST/sync --token=T --doc automerge:ID --record PRODUCT \
//       --set-name NEW [--expect-name OLD] [--timeout-ms 15000] [--trace]
//   node interop.mjs --url ws://HOST/sync --token=T --doc automerge:ID --expect-unavailable
//   node interop.mjs --url ws://HOST/sync --token=T --doc automerge:ID --dump
//
// --dump prints the document as it is now and as it was after each change in its history
// ({"ok":true,"doc":…,"history":[…]}), to check what a client can read.
//
// The token goes as one argument, --token=T: a device token may start with '-' (base64url), which
// parseArgs would otherwise refuse as an option.
//
// Prints one JSON line on standard output: {"ok":true,...} and exit 0, or {"ok":false,"error":...}
// and exit 1. The record's current name and, with --trace, every protocol message go to
// standard error.

import { parseArgs } from "node:util";
import { close, connect, text, waitForDoc, waitForPeer, withTimeout } from "./lib.mjs";

const { values: args } = parseArgs({
  options: {
    url: { type: "string" },
    token: { type: "string" },
    doc: { type: "string" },
    record: { type: "string" },
    "set-name": { type: "string" },
    "expect-name": { type: "string" },
    "expect-unavailable": { type: "boolean", default: false },
    dump: { type: "boolean", default: false },
    "timeout-ms": { type: "string", default: "15000" },
    trace: { type: "boolean", default: false },
  },
  strict: true,
});

const repos = [];
let finished = false;

async function finish(result) {
  if (finished) return;
  finished = true;
  for (const { repo } of repos) await close(repo);
  let line;
  try {
    // Automerge integers beyond 2^53 come as BigInt, which JSON has no form for.
    line = JSON.stringify(result, (_, v) => (typeof v === "bigint" ? v.toString() : v));
  } catch (e) {
    line = JSON.stringify({ ok: false, error: `printing the result: ${e.message}` });
    result = { ok: false };
  }
  console.log(line);
  // Handles that were still being requested keep a 60 s timer; nothing else is pending.
  process.exit(result.ok ? 0 : 1);
}

function fail(error) {
  const message = error instanceof Error ? error.message : String(error);
  const serverErrors = repos.flatMap(r => r.errors);
  return finish({ ok: false, error: message, ...(serverErrors.length ? { server_errors: serverErrors } : {}) });
}

// The WebSocket adapter throws from its socket's error listener (a refused upgrade: bad token,
// wrong path), which nothing can catch around it.
process.on("uncaughtException", fail);
process.on("unhandledRejection", fail);

function required(name) {
  if (!args[name]) throw new Error(`--${name} is required`);
  return args[name];
}

function open(label) {
  const c = connect(args.url, { token: args.token, trace: args.trace, label });
  repos.push(c);
  return c;
}

async function find(repo, timeoutMs) {
  await waitForPeer(repo, timeoutMs);
  return withTimeout(repo.find(args.doc), timeoutMs, `finding ${args.doc}`);
}

async function main() {
  required("url");
  required("doc");
  const timeoutMs = Number(args["timeout-ms"]);
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new Error("--timeout-ms must be a positive number");

  if (args["expect-unavailable"]) {
    const { repo } = open("client");
    try {
      await find(repo, timeoutMs);
    } catch (e) {
      if (/unavailable/i.test(e.message)) return finish({ ok: true, unavailable: true });
      throw e;
    }
    throw new Error(`${args.doc} was found, but it should be unavailable to this device`);
  }

  if (args.dump) {
    const { repo } = open("reader");
    const handle = await find(repo, timeoutMs);
    const history = (handle.history() ?? []).map(heads => handle.view(heads).doc());
    return finish({ ok: true, doc: handle.doc(), history });
  }

  const record = required("record");
  const newName = required("set-name");
  const { repo } = open("writer");
  const handle = await find(repo, timeoutMs);
  const current = handle.doc()?.records?.[record];
  if (!current) throw new Error(`the document has no record ${record}`);
  const before = text(current.name);
  console.error(`current name: ${before}`);
  if (args["expect-name"] !== undefined && before !== args["expect-name"]) {
    throw new Error(`the name is ${JSON.stringify(before)}, expected ${JSON.stringify(args["expect-name"])}`);
  }

  handle.change(doc => {
    doc.records[record].name = newName;
  });

  // The relay stores a change before it tells anyone about it, so a fresh connection that reads
  // the new name proves the relay has it. The writer stays connected until then.
  const { repo: checker } = open("checker");
  const seen = await find(checker, timeoutMs);
  const doc = await waitForDoc(
    seen,
    d => text(d?.records?.[record]?.name) === newName,
    timeoutMs,
    "waiting for a second connection to read the new name from the relay",
  );
  return finish({ ok: true, before, after: text(doc.records[record].name) });
}

main().catch(fail);
