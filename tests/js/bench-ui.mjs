#!/usr/bin/env node
// First-load budget of the web UI in headless Chromium on loopback (scripts/bench-ui):
// every run is a fresh browser context (empty cache). Measures bytes transferred (as sent on the
// wire, gzip included), first contentful paint, the moment the login form can be used, and the
// time from submitting the login to the dashboard's figures.
//   UI_URL, UI_EMAIL, UI_PASSWORD, RUNS (default 10). Prints one JSON line.

import { launch } from "./browser.mjs";

const base = process.env.UI_URL;
const runs = Number(process.env.RUNS ?? 10);
const browser = await launch();
const samples = [];
for (let i = 0; i < runs; i++) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: "en-US" });
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send("Network.enable");
  await cdp.send("Network.setCacheDisabled", { cacheDisabled: true });
  const bytes = new Map();
  cdp.on("Network.responseReceived", (e) => bytes.set(e.requestId, { url: e.response.url, size: 0 }));
  cdp.on("Network.loadingFinished", (e) => {
    const b = bytes.get(e.requestId);
    if (b) b.size = e.encodedDataLength;
  });
  const t0 = Date.now();
  await page.goto(base + "/login");
  await page.locator("#f-email").waitFor();
  const usable = Date.now() - t0;
  const fcp = await page.evaluate(
    () => performance.getEntriesByName("first-contentful-paint")[0]?.startTime ?? null,
  );
  const nav = await page.evaluate(() => performance.getEntriesByType("navigation")[0]?.responseEnd ?? null);
  const first = [...bytes.values()];
  const firstBytes = first.reduce((a, b) => a + b.size, 0);
  await page.fill("#f-email", process.env.UI_EMAIL);
  await page.fill("#f-password", process.env.UI_PASSWORD);
  const t1 = Date.now();
  await page.click("button[type=submit]");
  await page.locator(".stat-value").first().waitFor();
  const dashboard = Date.now() - t1;
  // Everything up to the dashboard's figures: the first load, the login and the dashboard's
  // page module and data.
  const toDashboard = [...bytes.values()].reduce((a, b) => a + b.size, 0);
  samples.push({
    fcp,
    usable,
    nav,
    firstBytes,
    toDashboard,
    dashboard,
    files: first.map((f) => [new URL(f.url).pathname, f.size]),
    later: [...bytes.values()].slice(first.length).map((f) => [new URL(f.url).pathname, f.size]),
  });
  await context.close();
}
await browser.close();
const med = (k) => {
  const v = samples.map((s) => s[k]).filter((x) => x != null).sort((a, b) => a - b);
  return v.length ? Math.round(v[Math.floor(v.length / 2)] * 10) / 10 : null;
};
const p95 = (k) => {
  const v = samples.map((s) => s[k]).filter((x) => x != null).sort((a, b) => a - b);
  return v.length ? Math.round(v[Math.min(v.length - 1, Math.ceil(v.length * 0.95) - 1)] * 10) / 10 : null;
};
console.log(
  JSON.stringify({
    runs,
    first_load_bytes: samples[0].firstBytes,
    first_load_files: samples[0].files,
    bytes_through_dashboard: samples[0].toDashboard,
    dashboard_files: samples[0].later,
    fcp_ms_median: med("fcp"),
    fcp_ms_p95: p95("fcp"),
    login_form_usable_ms_median: med("usable"),
    login_to_dashboard_ms_median: med("dashboard"),
  }),
);
