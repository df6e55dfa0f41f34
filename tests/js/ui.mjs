#!/usr/bin/env node
// End-to-end test of the web UI in headless Chromium, against real edge nodes that the Rust test
// (tests/e2e/ui.rs) started: log in, create a product, create an order and move it to paid,
// answer a WhatsApp conversation that a signed webhook created, watch an edit made on a second
// edge node arrive without reloading, reconnect with Sync now from Settings, switch to Spanish, log in as head office on the relay, find
// the sale in its analytics, make an enrolment code and connect a WhatsApp number there, and
// screenshot every page at desktop and phone width.
//
// Environment: UI_URL, UI_EMAIL, UI_PASSWORD, SECOND_URL, SECOND_TOKEN, CUSTOMER (a customer
// that exists), WA_CUSTOMER (the WhatsApp customer's name), REPLY (the text to answer with),
// TICKET_REPLY (a ticket comment sent to that customer too),
// SHOTS (screenshot folder), HEAD_URL (the relay, where head office logs in). Prints one JSON
// line; exit 0 when everything held.

import { execFileSync } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdirSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { launch } from "./browser.mjs";

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const base = env("UI_URL");
const shots = env("SHOTS");
mkdirSync(shots, { recursive: true });
// A failure screenshot of an earlier run must not pass for one of this run.
for (const f of readdirSync(shots)) if (f.startsWith("FAILED-")) rmSync(`${shots}/${f}`);
const LIVE_MS = 90_000;
// axe-core checks each page against WCAG 2 A and AA (contrast included) in both themes.
const AXE = createRequire(import.meta.url).resolve("axe-core/axe.min.js");
async function accessibility(where) {
  await page.addScriptTag({ path: AXE });
  const r = await page.evaluate(() =>
    window.axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa"] }, resultTypes: ["violations"] }),
  );
  return r.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => `${where}: ${v.id} (${v.impact}) ${v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(", ")}`);
}
const a11y = [];
const STEP_MS = 30_000;

const browser = await launch();
// bypassCSP only so axe-core can be injected; the app itself never needs inline scripts.
const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: "en-US", bypassCSP: true });
const page = await context.newPage();
page.setDefaultTimeout(STEP_MS);
const problems = [];
page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
page.on("console", (m) => {
  if (m.type() === "error" && !/status of 4\d\d/.test(m.text())) problems.push(`console error: ${m.text()}`);
});
// No session token in a URL (proxies and access logs keep URLs): the live stream gets a cookie.
const tokenUrls = [];
context.on("request", (r) => {
  if (/[?&](access_token|token)=/.test(r.url())) tokenUrls.push(r.url().replace(/=([^&]{4})[^&]*/g, "=$1…"));
});
const steps = [];
async function step(name, f) {
  const t0 = Date.now();
  try {
    await f();
    steps.push({ step: name, ms: Date.now() - t0 });
  } catch (e) {
    await page.screenshot({ path: `${shots}/FAILED-${name}.png`, fullPage: true }).catch(() => {});
    console.log(JSON.stringify({ ok: false, step: name, error: String(e?.message ?? e), url: page.url(), steps, problems }));
    await browser.close();
    process.exit(1);
  }
}
const text = (s) => page.getByText(s, { exact: false }).first();
const optionValue = (select, containing) =>
  page.$eval(
    select,
    (el, c) => [...el.options].find((o) => o.textContent.includes(c))?.value ?? "",
    containing,
  );

let productId, orderId, conversationUrl, customerUrl;

await step("login", async () => {
  await page.goto(base + "/");
  await page.waitForURL(/\/login$/);
  await page.fill("#f-email", env("UI_EMAIL"));
  await page.fill("#f-password", "wrong-password");
  await page.click("button[type=submit]");
  await page.locator(".state.error, .field-error:not(:empty)").first().waitFor();
  await page.fill("#f-password", env("UI_PASSWORD"));
  await page.click("button[type=submit]");
  await page.getByRole("heading", { name: "Dashboard" }).waitFor();
  await text("Sales today").waitFor();
});

await step("product_validation_shows_the_field", async () => {
  await page.goto(base + "/products/new");
  await page.fill("#f-sku", "UI-001");
  await page.fill("#f-price", "-3");
  await page.click("button[type=submit]");
  // The API's message appears under the field it names.
  await page.locator("#f-price-err:not(:empty), #f-name-err:not(:empty)").first().waitFor();
});

await step("create_product", async () => {
  await page.fill("#f-name", "Taza DashOffice");
  await page.fill("#f-price", "85.50");
  await page.fill("#f-tax_rate", "0.16");
  // What was typed outlives a reload, said so.
  await page.reload();
  await page.locator(".draft-restored").waitFor();
  for (const [f, v] of [["#f-sku", "UI-001"], ["#f-name", "Taza DashOffice"], ["#f-price", "85.50"], ["#f-tax_rate", "0.16"]]) {
    const got = await page.inputValue(f);
    if (got !== v) throw new Error(`${f} came back as "${got}", not "${v}"`);
  }
  await page.click("button[type=submit]");
  await page.waitForURL(/\/products\/[0-9a-f-]{36}$/);
  if (await page.evaluate(() => Object.keys(localStorage).some((k) => k.startsWith("dashoffice.form.new-product."))))
    throw new Error("the product's draft stayed after it was created");
  productId = page.url().split("/").pop();
  await page.goto(base + "/products");
  await page.fill("main input[type=search]", "Taza");
  await text("Taza DashOffice").waitFor();
});

await step("create_order_and_pay", async () => {
  await page.goto(base + "/orders/new");
  await page.fill("main input[type=search]", env("CUSTOMER").split(" ")[0]);
  await page.waitForFunction(
    (c) => [...document.querySelectorAll("select[name=customer_id] option")].some((o) => o.textContent.includes(c)),
    env("CUSTOMER"),
  );
  await page.selectOption("select[name=customer_id]", await optionValue("select[name=customer_id]", env("CUSTOMER")));
  await page.waitForFunction(() =>
    [...document.querySelectorAll(".line-row select option")].some((o) => o.textContent.includes("Taza DashOffice")),
  );
  const product = await optionValue(".line-row select", "Taza DashOffice");
  await page.selectOption(".line-row select", product);
  await page.fill(".line-row input[type=number]", "1");
  await page.fill("form.form textarea", "entregar el sábado");
  // An order half written outlives a reload (a tablet's browser dropping the tab, the desktop
  // window let go in the tray): customer, line and notes come back, said so.
  const customer = await page.inputValue("select[name=customer_id]");
  await page.reload();
  await page.locator(".draft-restored").waitFor();
  await page.waitForFunction(
    ([c, p]) =>
      document.querySelector("select[name=customer_id]")?.value === c &&
      document.querySelector(".line-row select")?.value === p &&
      document.querySelector("form.form textarea")?.value === "entregar el sábado",
    [customer, product],
  );
  await page.click("button[type=submit]");
  await page.waitForURL(/\/orders\/[0-9a-f-]{36}$/);
  orderId = page.url().split("/").pop();
  // Created, it is no draft any more: a new order starts empty.
  await page.waitForFunction(() => !Object.keys(localStorage).some((k) => k.startsWith("dashoffice.form.new-order.")));
  await text("Draft").waitFor();
  await text("MX$99.18").waitFor(); // 1 × 85.50 + 16 % tax
  // A draft's lines change before it moves on.
  await page.getByRole("link", { name: "Edit draft" }).click();
  await page.waitForURL(/\/edit$/);
  await page.locator(".line-row input[type=number]").waitFor();
  if ((await page.inputValue(".line-row input[type=number]")) !== "1") throw new Error("the draft's quantity is not in the form");
  await page.fill(".line-row input[type=number]", "0");
  await page.getByRole("button", { name: "Save" }).click();
  await page.locator(".field-error", { hasText: "Line 1" }).waitFor();
  await page.fill(".line-row input[type=number]", "2");
  await page.getByRole("button", { name: "Save" }).click();
  await page.waitForURL(new RegExp(`/orders/${orderId}$`));
  await text("MX$198.36").waitFor();
  // Only legal next steps are offered: from draft, confirm or cancel (never paid).
  if (await page.getByRole("button", { name: "Mark Paid" }).count()) throw new Error("a draft offers 'paid'");
  await page.getByRole("button", { name: "Mark Confirmed" }).click();
  await page.getByRole("button", { name: "Mark Paid" }).click();
  await page.locator(".badge", { hasText: "Paid" }).first().waitFor();
  await text("MX$198.36").waitFor(); // 2 × 85.50 + 16 % tax
  // What cannot be undone asks first; saying no changes nothing.
  let asked = "";
  page.once("dialog", (d) => {
    asked = d.message();
    d.dismiss();
  });
  await page.getByRole("button", { name: "Mark Refunded" }).click();
  await page.waitForTimeout(300);
  if (!asked.includes("cannot be undone")) throw new Error(`no confirmation before refunding: "${asked}"`);
  await page.locator(".badge", { hasText: "Paid" }).first().waitFor();
});

let ticketUrl;
await step("a_support_ticket_from_an_order", async () => {
  // The customer says the cup arrived broken: a ticket from the order, worked on and resolved.
  await page.goto(base + "/orders/" + orderId);
  await page.getByRole("link", { name: "Open a ticket" }).click();
  await page.waitForURL(/\/tickets\/new\?order=/);
  await text("About order").waitFor();
  await page.fill("#f-subject", "La taza llegó rota");
  await page.selectOption("select[name=priority]", "high");
  await page.fill("#f-description", "El cliente manda foto por WhatsApp");
  await page.getByRole("button", { name: "Open ticket" }).click();
  await page.waitForURL(/\/tickets\/[0-9a-f-]{36}$/);
  ticketUrl = new URL(page.url()).pathname;
  await page.locator("h1.ticket-subject", { hasText: "La taza llegó rota" }).waitFor();
  await page.locator(".badge", { hasText: "High" }).first().waitFor();
  await page.locator("main a", { hasText: env("CUSTOMER") }).first().waitFor(); // the order's customer
  // A subject corrected afterwards; a bad one is refused under its field.
  await page.getByRole("button", { name: "Edit", exact: true }).click();
  await page.fill("#f-subject", "x");
  await page.getByRole("button", { name: "Save", exact: true }).click();
  await page.locator("#f-subject-err:not(:empty)").waitFor();
  await page.fill("#f-subject", "La taza llegó rota, sin asa");
  await page.getByRole("button", { name: "Save", exact: true }).click();
  await page.locator("h1.ticket-subject", { hasText: "sin asa" }).waitFor();
  await page.getByRole("button", { name: "Mark In progress" }).click();
  await page.locator(".badge", { hasText: "In progress" }).first().waitFor();
  await page.locator(".ticket-event", { hasText: "marked it In progress" }).waitFor();
  await page.fill("#f-body", "Enviamos otra taza");
  await page.getByRole("button", { name: "Comment", exact: true }).click();
  await page.locator(".ticket-comment", { hasText: "Enviamos otra taza" }).waitFor();
  // Active in the list; resolved, it leaves the active tab for its own.
  await page.goto(base + "/tickets");
  await page.locator("tr", { hasText: "La taza llegó rota" }).waitFor();
  await page.goto(base + ticketUrl);
  await page.getByRole("button", { name: "Mark Resolved" }).click();
  await page.locator(".badge", { hasText: "Resolved" }).first().waitFor();
  await page.goto(base + "/tickets");
  await text("No tickets here.").waitFor();
  await page.getByRole("link", { name: "Resolved", exact: true }).click();
  await page.locator("tr", { hasText: "La taza llegó rota" }).waitFor();
  // The order lists the tickets about it.
  await page.goto(base + "/orders/" + orderId);
  await page.locator(".order-tickets", { hasText: "sin asa" }).waitFor();
});

await step("answer_the_whatsapp_conversation", async () => {
  await page.goto(base + "/conversations");
  await page.locator("a.conv", { hasText: env("WA_CUSTOMER") }).first().click();
  await page.waitForURL(/\/conversations\/.+/);
  conversationUrl = page.url();
  await page.locator(".msg-in").first().waitFor();
  // A draft keeps its text while the thread is drawn again for a change that arrives live.
  await page.fill("#reply", "borrador a medias");
  const convId = new URL(page.url()).pathname.split("/").pop();
  const patched = await page.evaluate(async (id) => {
    const r = await fetch(`/api/v1/conversations/${id}`, {
      method: "PATCH",
      headers: { "content-type": "application/json", authorization: `Bearer ${localStorage.getItem("dashoffice.token")}` },
      body: JSON.stringify({ labels: ["vip"] }),
    });
    return r.status;
  }, convId);
  if (patched !== 200) throw new Error(`labelling the conversation answered ${patched}`);
  await page.waitForFunction(() => [...document.querySelectorAll(".thread-tools input")].some((i) => i.value.includes("vip")));
  const draft = await page.inputValue("#reply");
  if (draft !== "borrador a medias") throw new Error(`the draft became "${draft}" when the thread was drawn again`);
  // It outlives a reload too (and the desktop window let go while in the tray).
  await page.reload();
  await page.locator(".msg-in").first().waitFor();
  await page.waitForFunction(() => document.querySelector("#reply")?.value === "borrador a medias");
  await page.fill("#reply", env("REPLY"));
  await page.getByRole("button", { name: "Send", exact: true }).click();
  await page.locator(".msg-out", { hasText: env("REPLY") }).first().waitFor();
  // Sent, it is no draft any more.
  await page.waitForFunction(
    (id) =>
      !Object.keys(localStorage)
        .filter((k) => k.startsWith("dashoffice.drafts."))
        .some((k) => id in JSON.parse(localStorage.getItem(k))),
    convId,
  );
  // Whoever answers an unassigned conversation gets it, and the select shows them.
  await page.waitForFunction(() => {
    const sel = document.querySelector(".thread-tools select");
    return sel && sel.selectedOptions.length && sel.selectedOptions[0].value !== "";
  });
  customerUrl = await page.locator(".thread-head h2 a").getAttribute("href");

  // A message arriving live draws only itself: labels being typed keep their text and focus, and a
  // reader who scrolled up to older messages stays there; one at the bottom sees the new message.
  const note = async (text) => {
    const status = await page.evaluate(async ([id, text]) => {
      const r = await fetch(`/api/v1/conversations/${id}/messages`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${localStorage.getItem("dashoffice.token")}` },
        body: JSON.stringify({ kind: "note", text }),
      });
      return r.status;
    }, [convId, text]);
    if (status >= 300) throw new Error(`the note answered ${status}`);
    await page.locator(".messages .msg", { hasText: text }).first().waitFor({ timeout: LIVE_MS });
  };
  const labels = page.locator(".thread-tools input");
  const before = await labels.inputValue();
  await labels.click();
  await labels.fill(before + ", mayorista");
  await page.evaluate(() => {
    const m = document.querySelector(".messages");
    m.style.maxHeight = "60px";
    m.style.overflowY = "auto";
    m.scrollTop = 0;
    m.dispatchEvent(new Event("scroll"));
  });
  await note("nota interna uno");
  const [typed, focused, top] = await page.evaluate(() => {
    const i = document.querySelector(".thread-tools input");
    return [i.value, document.activeElement === i, document.querySelector(".messages").scrollTop];
  });
  if (typed !== before + ", mayorista" || !focused) {
    throw new Error(`the labels being typed became "${typed}" (focused: ${focused}) when a message arrived`);
  }
  if (top !== 0) throw new Error(`the thread scrolled to ${top} while the reader was reading older messages`);
  await labels.fill(before);
  await page.evaluate(() => {
    const m = document.querySelector(".messages");
    m.scrollTop = m.scrollHeight;
    m.dispatchEvent(new Event("scroll"));
  });
  await note("nota interna dos");
  await page.waitForFunction(() => {
    const m = document.querySelector(".messages");
    return m.scrollHeight - m.scrollTop - m.clientHeight < 5;
  });
});

await step("a_ticket_from_a_conversation_shows_in_its_thread", async () => {
  // Whoever answers the customer on WhatsApp sees their open tickets above the thread.
  await page.goto(conversationUrl);
  await page.locator(".msg-in").first().waitFor();
  await page.getByRole("link", { name: "Open a ticket" }).click();
  await page.waitForURL(/\/tickets\/new\?conversation=/);
  await page.fill("#f-subject", "Pregunta por la garantía");
  await page.selectOption("select[name=priority]", "low");
  // Half written, it outlives a reload.
  await page.reload();
  await page.locator(".draft-restored").waitFor();
  if ((await page.inputValue("#f-subject")) !== "Pregunta por la garantía") throw new Error("the ticket's subject was lost");
  if ((await page.inputValue("select[name=priority]")) !== "low") throw new Error("the ticket's priority was lost");
  await page.getByRole("button", { name: "Open ticket" }).click();
  await page.waitForURL(/\/tickets\/[0-9a-f-]{36}$/);
  await page.locator("main a", { hasText: env("WA_CUSTOMER") }).first().waitFor(); // the conversation's customer
  // A comment that also goes to the customer on WhatsApp (the Rust side sees it reach the Graph API).
  await page.fill("#f-body", env("TICKET_REPLY"));
  await page.getByLabel("Also send it to the customer on WhatsApp").check();
  await page.getByRole("button", { name: "Comment", exact: true }).click();
  await page.locator(".ticket-comment", { hasText: env("TICKET_REPLY") }).locator(".sent-to-customer").waitFor();
  if (await page.getByLabel("Also send it to the customer on WhatsApp").isChecked())
    throw new Error("the WhatsApp box stayed ticked after the comment went");
  await page.getByRole("link", { name: "See the WhatsApp conversation" }).click();
  await page.waitForURL(/\/conversations\/.+/);
  await page.locator(".thread-tickets", { hasText: "Pregunta por la garantía" }).waitFor();
  await page.locator(".msg-out", { hasText: env("TICKET_REPLY") }).first().waitFor();
  if (await page.evaluate(() => Object.keys(localStorage).some((k) => k.startsWith("dashoffice.form.new-ticket."))))
    throw new Error("the ticket's draft stayed after it was opened");
});

await step("an_edit_on_the_second_node_arrives_live", async () => {
  await page.goto(base + "/products");
  await text("Taza DashOffice").waitFor();
  const r = await fetch(env("SECOND_URL") + "/api/v1/products", {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${env("SECOND_TOKEN")}` },
    body: JSON.stringify({ sku: "LIVE-1", name: "Producto en vivo", price: "10.00" }),
  });
  if (r.status !== 201) throw new Error(`the second node refused the product: ${r.status} ${await r.text()}`);
  // No reload: the list updates itself when the change syncs over.
  await text("Producto en vivo").waitFor({ timeout: LIVE_MS });
});

await step("sync_now_reconnects_from_settings", async () => {
  const login = await fetch(base + "/api/v1/auth/login", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email: env("UI_EMAIL"), password: env("UI_PASSWORD") }),
  });
  if (login.status !== 200) throw new Error(`login for the sync status: ${login.status}`);
  const { token } = await login.json();
  const syncStatus = async () =>
    (await fetch(base + "/api/v1/sync/status", { headers: { authorization: `Bearer ${token}` } })).json();
  const before = (await syncStatus()).last_connected_at;
  await page.goto(base + "/settings");
  await page.locator("#sync-now").click();
  await page.locator(".toast", { hasText: "Reconnecting" }).waitFor();
  if ((await page.locator("#sync .state.error").count()) > 0) throw new Error("Sync now showed an error");
  // A new session, not the old one: connected again, later than before.
  const deadline = Date.now() + LIVE_MS;
  for (;;) {
    const s = await syncStatus();
    if (s.connected && s.last_connected_at > before) break;
    if (Date.now() > deadline) throw new Error(`no new session after Sync now: ${JSON.stringify(s)}`);
    await page.waitForTimeout(200);
  }
  await page.locator("#sync .badge", { hasText: "Connected" }).waitFor({ timeout: LIVE_MS });
  // Back where the next step starts.
  await page.goto(base + "/products");
  await page.getByRole("heading", { name: "Products" }).waitFor();
});

await step("the_owner_downloads_a_backup", async () => {
  await page.goto(base + "/settings");
  await page.getByRole("heading", { name: "Backup" }).waitFor();
  const [download] = await Promise.all([page.waitForEvent("download"), page.locator("#backup-download").click()]);
  const name = download.suggestedFilename();
  if (!/^dashoffice-backup-\d{4}-\d{2}-\d{2}\.db$/.test(name)) throw new Error(`the backup is called ${name}`);
  const saved = `${shots}/../backup-from-ui.db`;
  await download.saveAs(saved);
  const head = readFileSync(saved).subarray(0, 16).toString("latin1");
  rmSync(saved, { force: true });
  if (head !== "SQLite format 3\0") throw new Error(`the backup is not a SQLite file: ${JSON.stringify(head)}`);
  await page.goto(base + "/products");
  await page.getByRole("heading", { name: "Products" }).waitFor();
});

await step("switch_to_spanish", async () => {
  await page.getByRole("button", { name: "Español" }).click();
  await page.getByRole("link", { name: "Pedidos" }).waitFor();
  await page.getByRole("heading", { name: "Productos" }).waitFor();
  await page.goto(base + "/orders/" + orderId);
  await page.locator(".badge", { hasText: "Pagado" }).first().waitFor();
  await text("198.36").waitFor();
  // The API's (English) field errors read in Spanish, numbers kept.
  await page.goto(base + "/products/new");
  await page.fill("#f-sku", "UI-ES-1");
  await page.fill("#f-name", "x".repeat(10));
  await page.fill("#f-price", "-3");
  await page.click("button[type=submit]");
  await page.locator("#f-price-err", { hasText: "no puede ser negativo" }).waitFor();
  await page.getByRole("button", { name: "English" }).click();
  await page.getByRole("link", { name: "Orders" }).waitFor();
});

await step("a_manager_changes_a_role_and_archives_staff", async () => {
  await page.goto(base + "/sellers");
  await page.getByRole("button", { name: "New staff" }).click();
  await page.fill("#f-name", "Lucía Cajera");
  await page.fill("#f-email", "lucia@tienda.mx");
  await page.fill("#f-password", "password-lucia-1");
  await page.getByRole("button", { name: "Save" }).click();
  const row = page.locator("tr", { hasText: "lucia@tienda.mx" });
  await row.waitFor();
  await row.getByLabel("Role").selectOption("manager");
  await page.waitForFunction(() =>
    [...document.querySelectorAll("tr")].some((r) => r.textContent.includes("lucia@tienda.mx") && r.querySelector("select")?.value === "manager"),
  );
  // The list filters by role, and finds part of a name without its accent.
  await page.getByLabel("Filter by role").selectOption("manager");
  await page.locator("tr", { hasText: env("UI_EMAIL") }).waitFor({ state: "detached" });
  await row.waitFor();
  await page.getByLabel("Filter by role").selectOption("");
  await page.getByPlaceholder("Search by name or e-mail").fill("lucia caj");
  await page.locator("tr", { hasText: env("UI_EMAIL") }).waitFor({ state: "detached" });
  await row.waitFor();
  await page.getByPlaceholder("Search by name or e-mail").fill("");
  await page.locator("tr", { hasText: env("UI_EMAIL") }).waitFor();
  page.once("dialog", (d) => d.accept());
  await row.getByRole("button", { name: "Archive" }).click();
  // Archived staff leave the list (they can no longer log in).
  await page.locator("tr", { hasText: "lucia@tienda.mx" }).waitFor({ state: "detached" });
});

// The API as the signed-in owner (to check what the UI wrote, and to set up what a step needs).
async function ownerApi(method, path, body) {
  if (!ownerApi.token) {
    const r = await fetch(base + "/api/v1/auth/login", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: env("UI_EMAIL"), password: env("UI_PASSWORD") }),
    });
    ownerApi.token = (await r.json()).token;
  }
  const r = await fetch(base + path, {
    method,
    headers: { "content-type": "application/json", authorization: `Bearer ${ownerApi.token}` },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}
async function setShift(box, on, what, saved) {
  await until(what, async () => {
    if ((await box.isChecked()) !== on) await box.setChecked(on).catch(() => {});
    return saved();
  });
}
async function until(what, f) {
  const end = Date.now() + STEP_MS;
  while (Date.now() < end) {
    if (await f()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`never happened: ${what}`);
}

await step("a_manager_puts_staff_on_shift_and_corrects_an_account", async () => {
  const branches = (await ownerApi("GET", "/api/v1/branches")).body;
  const made = await ownerApi("POST", "/api/v1/staff", {
    name: "Pedro Vendedor", email: "pedro@tienda.mx", role: "seller", branch_id: branches[0].id, password: "clave-pedro-1",
  });
  if (made.status !== 201) throw new Error(`creating the seller: ${made.status} ${JSON.stringify(made.body)}`);
  const pedro = made.body.id;
  await page.goto(base + "/sellers");
  const row = page.locator("tr", { hasText: "pedro@tienda.mx" });
  // The list may still redraw for the seller just created (a live update) and take the click's
  // tick back before it is saved: tick again until the replica holds it.
  await setShift(row.getByLabel("Pedro Vendedor is on shift"), true, "Pedro on shift", async () =>
    (await ownerApi("GET", "/api/v1/shifts")).body.some((x) => x.staff_id === pedro && x.on));
  await row.getByRole("button", { name: "Edit" }).click();
  const form = page.locator("#edit-staff");
  await form.locator("#f-email").fill(env("UI_EMAIL"));
  await form.getByRole("button", { name: "Save" }).click();
  // The login is unique in the shop: the form says so under the field.
  await form.locator("#f-email-err:not(:empty)").waitFor();
  await form.locator("#f-email").fill("pedro.ruiz@tienda.mx");
  await form.locator("#f-password").fill("clave-pedro-2");
  await form.getByRole("button", { name: "Save" }).click();
  await page.locator("tr", { hasText: "pedro.ruiz@tienda.mx" }).waitFor();
  const login = await fetch(base + "/api/v1/auth/login", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email: "pedro.ruiz@tienda.mx", password: "clave-pedro-2" }),
  });
  if (login.status !== 200) throw new Error(`the corrected account does not log in: ${login.status}`);
  // Pedro reads his e-mails in English (a seller is not offered the daily summary); the owner
  // stops her own daily summary, then takes it again.
  await page.locator("tr", { hasText: "pedro.ruiz@tienda.mx" }).getByRole("button", { name: "Edit" }).click();
  await form.locator("#f-lang").selectOption("en");
  if ((await form.locator("#f-daily_summary").count()) !== 0) throw new Error("a seller is offered the daily summary");
  await form.getByRole("button", { name: "Save" }).click();
  await until("Pedro's e-mails in English", async () => (await ownerApi("GET", `/api/v1/staff/${pedro}`)).body.lang === "en");
  const owner = (await ownerApi("GET", "/api/v1/staff")).body.items.find((x) => x.email === env("UI_EMAIL"));
  for (const on of [false, true]) {
    await page.locator("#edit-staff").waitFor({ state: "detached" });
    await page.locator("tr", { hasText: env("UI_EMAIL") }).getByRole("button", { name: "Edit" }).click();
    const box = form.locator("#f-daily_summary");
    if ((await box.isChecked()) === on) throw new Error(`the owner's daily summary already ${on ? "on" : "off"}`);
    await box.setChecked(on);
    await form.getByRole("button", { name: "Save" }).click();
    await until(`the owner's daily summary ${on ? "on" : "off"}`, async () =>
      (await ownerApi("GET", `/api/v1/staff/${owner.id}`)).body.daily_summary === on);
  }
  const box = page.locator("tr", { hasText: "pedro.ruiz@tienda.mx" }).getByLabel("Pedro Vendedor is on shift");
  await setShift(box, false, "Pedro off shift", async () =>
    (await ownerApi("GET", "/api/v1/shifts")).body.some((x) => x.staff_id === pedro && !x.on));
});

await step("the_owner_renames_and_archives_a_branch_and_registers_a_template", async () => {
  await page.goto(base + "/settings");
  await page.locator("#f-code").fill("TMP");
  const branchForm = page.locator("form.inline-form", { has: page.locator("#f-code") });
  await branchForm.locator("#f-name").fill("Temporal");
  await branchForm.getByRole("button", { name: "Add branch" }).click();
  const item = page.locator(".row-item", { hasText: "TMP" });
  await item.getByRole("button", { name: "Edit" }).click();
  await item.locator("#f-branch_name").fill("");
  await item.locator("#f-branch_phone").fill("12");
  await item.getByRole("button", { name: "Save" }).click();
  await page.locator("#f-branch_name-err:not(:empty)").waitFor();
  await page.locator("#f-branch_phone-err:not(:empty)").waitFor();
  await item.locator("#f-branch_name").fill("Temporal Norte");
  await item.locator("#f-branch_address").fill("Calle 5 de Mayo 10");
  await item.locator("#f-branch_phone").fill("55 1234 0000");
  await item.getByRole("button", { name: "Save" }).click();
  await page.locator(".row-item", { hasText: "Temporal Norte" }).filter({ hasText: "Calle 5 de Mayo 10 · 55 1234 0000" }).waitFor();
  page.once("dialog", (d) => d.accept());
  await page.locator(".row-item", { hasText: "TMP" }).getByRole("button", { name: "Archive" }).click();
  // Archived branches leave the list (their orders and stock stay in the records).
  await page.locator(".row-item", { hasText: "TMP" }).waitFor({ state: "detached" });
  const archived = (await ownerApi("GET", "/api/v1/branches?archived=true")).body;
  if (!JSON.stringify(archived).includes("Temporal Norte")) throw new Error(`the archived branch: ${JSON.stringify(archived)}`);

  const tpl = page.locator("#register-template");
  await tpl.locator("#f-template_name").fill("pedido listo");
  await tpl.getByRole("button", { name: "Register template" }).click();
  await page.locator("#f-template_name-err:not(:empty)").waitFor();
  await tpl.locator("#f-template_name").fill("pedido_listo");
  await tpl.locator("#f-language").fill("es_MX");
  await tpl.locator("#f-body").fill("Hola {{1}}, tu pedido {{2}} está listo.");
  await tpl.getByRole("button", { name: "Register template" }).click();
  await page.locator(".row-item", { hasText: "pedido_listo" }).waitFor();
  const t = (await ownerApi("GET", "/api/v1/whatsapp/templates")).body.find((x) => x.name === "pedido_listo");
  if (t?.params !== 2 || t.language !== "es_MX") throw new Error(`template as registered: ${JSON.stringify(t)}`);
  page.once("dialog", (d) => d.accept());
  await page.locator(".row-item", { hasText: "pedido_listo" }).getByRole("button", { name: "Delete" }).click();
  await page.locator(".row-item", { hasText: "pedido_listo" }).waitFor({ state: "detached" });
});

await step("a_confirmed_order_tells_its_whatsapp_customer", async () => {
  await page.goto(base + "/settings");
  const form = page.locator("#order-notices");
  await form.locator('[id="f-order_notices.confirmed"]').fill("Hola {customer}, tu pedido {number} está confirmado.");
  await form.locator('[id="f-order_notices.delivered"]').fill("x".repeat(1001));
  await form.getByRole("button", { name: "Save" }).click();
  // Too long: said under its field, and nothing saved.
  await page.locator('[id="f-order_notices.delivered-err"]:not(:empty)').waitFor();
  await form.locator('[id="f-order_notices.delivered"]').fill("");
  await form.getByRole("button", { name: "Save" }).click();
  await until("the notice saved", async () =>
    (await ownerApi("GET", "/api/v1/shop")).body.order_notices?.confirmed?.startsWith("Hola {customer}"));
  const ana = (await ownerApi("GET", "/api/v1/customers?q=" + encodeURIComponent(env("WA_CUSTOMER")))).body.items[0];
  const product = (await ownerApi("GET", "/api/v1/products")).body.items[0];
  const made = await ownerApi("POST", "/api/v1/orders", { customer_id: ana.id, lines: [{ product_id: product.id, quantity: 1 }] });
  if (made.status !== 201) throw new Error(`the order: ${made.status} ${JSON.stringify(made.body)}`);
  const moved = await ownerApi("POST", `/api/v1/orders/${made.body.id}/transitions`, { to: "confirmed" });
  if (moved.status !== 200) throw new Error(`confirming: ${moved.status} ${JSON.stringify(moved.body)}`);
  // The order's page follows the notice until the relay has sent it.
  await page.goto(base + "/orders/" + made.body.id);
  await page.locator('#order-notices-sent .notice-row[data-status="confirmed"][data-delivery="sent"]').waitFor();
  await page.locator("#order-notices-sent a").click();
  await page.locator(".msg-text", { hasText: `tu pedido ${made.body.number} está confirmado` }).waitFor();
  // A customer who never wrote on WhatsApp and has no phone: the order says why she was not told.
  const lucia = (await ownerApi("GET", "/api/v1/customers?q=" + encodeURIComponent(env("CUSTOMER")))).body.items[0];
  const walkIn = await ownerApi("POST", "/api/v1/orders", { customer_id: lucia.id, lines: [{ product_id: product.id, quantity: 1 }] });
  if (walkIn.status !== 201) throw new Error(`her order: ${walkIn.status} ${JSON.stringify(walkIn.body)}`);
  const told = await ownerApi("POST", `/api/v1/orders/${walkIn.body.id}/transitions`, { to: "confirmed" });
  if (told.body?.notices?.[0]?.skipped !== "no_whatsapp") throw new Error(`her order's notices: ${JSON.stringify(told.body?.notices)}`);
  await page.goto(base + "/orders/" + walkIn.body.id);
  await page.locator('#order-notices-sent .notice-row[data-status="confirmed"][data-delivery="skipped"][data-reason="no_whatsapp"]', {
    hasText: "no WhatsApp number or phone on record",
  }).waitFor();
  const off = await ownerApi("PATCH", "/api/v1/shop", { order_notices: { confirmed: "" } });
  if (off.status !== 200 || off.body.order_notices.confirmed !== undefined) throw new Error(`turning it off: ${JSON.stringify(off.body)}`);
});

await step("the_shop_writes_first_on_whatsapp", async () => {
  const tpl = await ownerApi("POST", "/api/v1/whatsapp/templates", { name: "bienvenida", language: "es_MX", body: "Hola {{1}}, soy {{2}} de la tienda.", params: 2 });
  if (tpl.status >= 300) throw new Error(`the template: ${tpl.status} ${JSON.stringify(tpl.body)}`);
  // Lucía never wrote on WhatsApp. Without a phone the shop cannot write to her, and says so.
  const lucia = (await ownerApi("GET", "/api/v1/customers?q=" + encodeURIComponent(env("CUSTOMER")))).body.items[0];
  await page.goto(base + "/customers/" + lucia.id);
  await page.locator("#customer-whatsapp").click();
  await page.locator("[role=alert]", { hasText: "WhatsApp number" }).waitFor();
  // With her mobile number: her conversation opens, and the composer offers the templates only.
  await page.fill("#f-phone", "+52 55 1234 5678");
  await page.getByRole("button", { name: "Save" }).first().click();
  await until("her phone saved", async () => (await ownerApi("GET", "/api/v1/customers/" + lucia.id)).body.phone === "+525512345678");
  await page.locator("#customer-whatsapp").click();
  await page.waitForURL(/\/conversations\/[^/]+$/);
  await page.getByText("has not written to the shop on WhatsApp yet").waitFor();
  // Free text cannot go before she answers.
  if (!(await page.getByRole("button", { name: "Send", exact: true }).isDisabled())) throw new Error("free text offered before she wrote");
  await page.selectOption("select[name=template]", "bienvenida");
  await page.fill("input[name=params]", "Lucía | Pedro");
  await page.getByRole("button", { name: "Send template" }).click();
  await page.locator(".msg-out, .composer [role=alert], .composer .error").first().waitFor();
  if (!(await page.locator(".msg-out").count())) throw new Error(`the template: ${await page.locator(".composer").first().innerText()}`);
  const conv = page.url().split("/").pop();
  const c = (await ownerApi("GET", "/api/v1/conversations/" + conv)).body;
  const got = c.conversation ?? c;
  if (got.wa_id !== "525512345678" || got.state !== "open") throw new Error(`the conversation: ${JSON.stringify(got)}`);
});

await step("a_whatsapp_broadcast_to_a_tag", async () => {
  for (const [name, phone, tags] of [["Rosa Promo", "+52 55 3333 4444", ["promo-ui"]], ["Nora Sin Promos", "+52 55 5555 6666", ["promo-ui", "no-promos"]]]) {
    const made = await ownerApi("POST", "/api/v1/customers", { name, phone, tags });
    if (made.status !== 201) throw new Error(`customer ${name}: ${made.status} ${JSON.stringify(made.body)}`);
  }
  await page.goto(base + "/customers");
  await page.locator("#open-broadcast").click();
  const form = page.locator("#broadcast");
  // No tag: said under its field.
  page.once("dialog", (d) => d.accept());
  await form.getByRole("button", { name: "Send to the tag" }).click();
  await page.locator("#f-tag-err:not(:empty)").waitFor();
  await form.locator("#f-tag").fill("promo-ui");
  await form.locator("#f-template").selectOption("bienvenida|es_MX");
  await form.locator("#f-params").fill("{name} | Pedro");
  page.once("dialog", (d) => d.accept());
  await form.getByRole("button", { name: "Send to the tag" }).click();
  await page.locator("#broadcast-report", { hasText: "Queued for 1 customers" }).waitFor();
  await page.locator('#broadcast-report li[data-reason="opted_out"]', { hasText: "Nora Sin Promos" }).waitFor();
  // The list of broadcasts sent shows it.
  await page.locator("#broadcasts tbody tr", { hasText: "bienvenida" }).waitFor();
  // Another for tomorrow at this time: kept for then, and cancelled from the list.
  const d = new Date(Date.now() + 24 * 3600 * 1000);
  const two = (n) => String(n).padStart(2, "0");
  const local = `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())}T${two(d.getHours())}:${two(d.getMinutes())}`;
  await form.locator("#f-send_at").fill(local);
  page.once("dialog", (dialog) => dialog.accept());
  await form.getByRole("button", { name: "Send to the tag" }).click();
  await page.locator("#broadcast-report", { hasText: "Scheduled for" }).waitFor();
  const scheduled = page.locator('#broadcasts tbody tr[data-state="scheduled"]');
  await scheduled.waitFor();
  page.once("dialog", (dialog) => dialog.accept());
  await scheduled.locator(".broadcast-cancel").click();
  await page.locator('#broadcasts tbody tr[data-state="cancelled"]').waitFor();
  const listed = (await ownerApi("GET", "/api/v1/whatsapp/broadcasts")).body;
  if (!listed.some((b) => b.state === "cancelled" && b.tag === "promo-ui")) throw new Error(`not cancelled: ${JSON.stringify(listed)}`);
});

await step("a_product_is_archived_from_its_page", async () => {
  const made = await ownerApi("POST", "/api/v1/products", { sku: "UI-ARCH-1", name: "Vaso descontinuado", price: "10" });
  if (made.status !== 201) throw new Error(`creating the product: ${made.status}`);
  await page.goto(base + "/products/" + made.body.id);
  await until("the product loaded", async () => (await page.inputValue("#f-name")) === "Vaso descontinuado");
  page.once("dialog", (d) => d.accept());
  await page.getByRole("button", { name: "Archive product" }).click();
  await page.waitForURL(/\/products$/);
  const after = await ownerApi("GET", "/api/v1/products/" + made.body.id);
  if (!after.body?.archived) throw new Error(`the product is not archived: ${JSON.stringify(after.body)}`);
});

await step("customers_come_from_a_spreadsheet", async () => {
  await page.goto(base + "/customers");
  const csv = "name,phone,email,tags,notes,wa_id\n" +
    "Rosa Importada,+52 55 1111 2222,rosa@correo.mx,mayoreo,,\n" +
    "Sin Teléfono,not-a-phone,,,,\n";
  await page.locator("label.btn", { hasText: "Import CSV" }).locator("input[type=file]").setInputFiles({
    name: "clientes.csv", mimeType: "text/csv", buffer: Buffer.from(csv),
  });
  // The report: two rows read, one created, the bad one named by its line.
  const report = page.locator("[role=status]", { hasText: "2 rows" });
  await report.waitFor();
  await report.locator("li", { hasText: "3" }).first().waitFor();
  await page.fill("main input[type=search]", "Rosa");
  await text("Rosa Importada").waitFor();
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.getByRole("button", { name: "Export CSV" }).click(),
  ]);
  const exported = readFileSync(await download.path(), "utf8");
  if (!exported.includes("Rosa Importada") || download.suggestedFilename() !== "customers.csv") {
    throw new Error(`the export: ${download.suggestedFilename()} ${exported.slice(0, 200)}`);
  }
});

await step("head_office_on_the_relay", async () => {
  // Head office logs in on the relay (no edge node of its own) and sees the sale made above
  // in the shop's analytics once it has synced there.
  const head = await context.newPage();
  head.setDefaultTimeout(STEP_MS);
  const headUrl = env("HEAD_URL");
  await head.goto(headUrl + "/login");
  await head.fill("#f-email", env("UI_EMAIL"));
  await head.fill("#f-password", env("UI_PASSWORD"));
  await head.click("button[type=submit]");
  await head.getByRole("heading", { name: "Dashboard" }).waitFor();
  const deadline = Date.now() + LIVE_MS;
  for (;;) {
    await head.goto(headUrl + "/analytics");
    await head.locator("h1").first().waitFor();
    await head.waitForFunction(() => !document.querySelector(".state.loading"), null, { timeout: STEP_MS });
    if ((await head.getByText("198.36").count()) > 0) break;
    if (Date.now() > deadline) throw new Error("the paid order never showed in head office's analytics on the relay");
    await head.waitForTimeout(1000);
  }
  await head.screenshot({ path: `${shots}/head-office-analytics-desktop.png`, fullPage: true });
  // The owner manages the shop's devices and WhatsApp numbers on the relay's settings page.
  await head.goto(headUrl + "/settings");
  await head.locator("#devices .row-item").first().waitFor();
  await head.click("#devices button[type=submit]");
  await head.locator("#devices pre.code", { hasText: "--enrolment-code" }).waitFor();
  // No branch chosen: the code is for a head-office device, and the message says so.
  await head.locator("#devices [role=status]", { hasText: "head-office device" }).waitFor();
  await head.fill("#f-phone_number_id", "1098765");
  await head.fill("#f-access_token", "EAAG-ui-token-1");
  await head.click("#whatsapp-numbers button[type=submit]");
  await head.locator("#whatsapp-numbers .row-item", { hasText: "1098765" }).waitFor();
  await head.screenshot({ path: `${shots}/head-office-settings-desktop.png`, fullPage: true });
  await head.close();
});

const pages = [
  ["dashboard", "/"],
  ["products", "/products"],
  ["product", `/products/${productId}`],
  ["product-new", "/products/new"],
  ["orders", "/orders"],
  ["order", `/orders/${orderId}`],
  ["order-credited", `/orders/${env("FORKED_ORDER")}`],
  ["order-new", "/orders/new"],
  ["tickets", "/tickets?status=all"],
  ["ticket", ticketUrl ?? "/tickets"],
  ["ticket-new", "/tickets/new"],
  ["customers", "/customers"],
  ["customer", customerUrl ?? "/customers"],
  ["sellers", "/sellers"],
  ["conversations", "/conversations"],
  ["conversation", new URL(conversationUrl ?? base + "/conversations").pathname],
  ["bots", "/bots"],
  ["analytics", "/analytics"],
  ["settings", "/settings"],
  ["not-found", "/no-such-page"],
];
await step("a_forked_order_is_settled", async () => {
  // Two nodes moved this order in different directions while one was offline (set up by ui.rs):
  // cancelled on one, paid on the other. The owner checks and keeps "paid".
  await page.goto(base + "/orders/" + env("FORKED_ORDER"));
  const form = page.locator("#settle-order");
  await form.waitFor();
  await page.locator(".badge", { hasText: "Cancelled" }).first().waitFor();
  await form.locator("select").selectOption("paid");
  await form.getByRole("button", { name: "Keep this status" }).click();
  await page.locator(".badge", { hasText: "Paid" }).first().waitFor();
  await page.locator("#settle-order").waitFor({ state: "detached" });
  await text("Settled on Paid").waitFor();
});

await step("the_owner_fills_in_the_shops_fiscal_details", async () => {
  // What every invoice prints at its head: a wrong tax ID is refused under its field.
  await page.goto(base + "/settings");
  const shopForm = page.locator("form", { has: page.locator("#f-currency") });
  await shopForm.locator("#f-tax_id").fill("sin numero");
  await shopForm.getByRole("button", { name: "Save" }).click();
  await page.locator("#f-tax_id-err:not(:empty)").waitFor();
  await shopForm.locator("#f-legal_name").fill("Comercializadora Demo S.A. de C.V.");
  await shopForm.locator("#f-tax_id").fill("cde 010203 ab4");
  await shopForm.locator("#f-address").fill("Av. Juárez 12, Centro\nCiudad de México");
  await shopForm.getByRole("button", { name: "Save" }).click();
  await until("the tax ID saved as the authority writes it", async () => (await page.inputValue("#f-tax_id")) === "CDE 010203 AB4");
  const shop = (await ownerApi("GET", "/api/v1/shop")).body;
  if (shop.tax_id !== "CDE 010203 AB4" || !shop.address.includes("Ciudad de México")) throw new Error(`the shop: ${JSON.stringify(shop)}`);
});

await step("an_order_prints_as_a_pdf", async () => {
  // The paid order of the step before: its sales document, in the UI's language (English here).
  await page.goto(base + "/orders/" + env("FORKED_ORDER"));
  const button = page.locator("#order-pdf");
  await button.waitFor();
  if ((await button.textContent()).trim() !== "Sales note (PDF)") throw new Error(`the button says ${await button.textContent()}`);
  const [download] = await Promise.all([page.waitForEvent("download"), button.click()]);
  const name = download.suggestedFilename();
  if (!/^[A-Z0-9]+-[A-Z0-9]+-\d+\.pdf$/.test(name)) throw new Error(`the PDF is called ${name}`);
  const saved = `${shots}/../order-from-ui.pdf`;
  await download.saveAs(saved);
  // Read back by Poppler's pdftotext (Debian's poppler-utils), a real PDF reader.
  const pdf = execFileSync("pdftotext", ["-layout", saved, "-"], { encoding: "utf8" });
  rmSync(saved, { force: true });
  const fiscal = ["Comercializadora Demo S.A. de C.V.", "CDE 010203 AB4", "Ciudad de México"];
  for (const expected of ["Sales note", name.replace(/\.pdf$/, ""), "Paid", "Total", "Page 1 of 1", ...fiscal]) {
    if (!pdf.includes(expected)) throw new Error(`${expected} is missing from the PDF:\n${pdf}`);
  }
  // This customer never wrote on WhatsApp: sending it there is refused, and the page says why.
  await page.locator("#order-whatsapp").click();
  await text("has no WhatsApp conversation yet").waitFor();
});

await step("an_order_is_invoiced_with_a_legal_number", async () => {
  // This node made the branch, so it numbers the branch's invoices; Settings says so.
  await page.goto(base + "/settings");
  await page.locator(".invoicing", { hasText: "numbered on this device" }).first().waitFor();
  // The paid order of the steps before: issue its invoice; its legal number arrives live.
  await page.goto(base + "/orders/" + env("FORKED_ORDER"));
  await page.locator("#order-invoice").click();
  const line = page.locator("#order-invoice-number");
  await until("the legal invoice number on the page", async () => /^Invoice [A-Z0-9]+-\d{8}/.test(((await line.textContent().catch(() => "")) || "").trim()));
  const number = (await line.textContent()).trim().match(/^Invoice ([A-Z0-9]+-\d{8})/)[1];
  if ((await page.locator("#order-invoice").count()) !== 0) throw new Error("the order can still be invoiced");
  // The list finds it by its invoice number and under "Invoiced".
  const posted = (await ownerApi("GET", "/api/v1/orders?invoice=posted")).body.items.map((o) => o.id);
  if (!posted.includes(env("FORKED_ORDER"))) throw new Error(`not listed as invoiced: ${posted}`);
  await page.goto(base + "/orders");
  await page.selectOption("#invoice-filter", "posted");
  await page.locator(".invoice-no", { hasText: number }).waitFor();
  // The invoice register for the accountant: this month by default; emptied, every invoice.
  await page.fill("#invoices-month", "");
  const [register] = await Promise.all([page.waitForEvent("download"), page.locator("#invoices-export").click()]);
  if (register.suggestedFilename() !== "invoices.csv") throw new Error(`the register is called ${register.suggestedFilename()}`);
  const registerFile = `${shots}/../invoices-from-ui.csv`;
  await register.saveAs(registerFile);
  const csv = readFileSync(registerFile, "utf8");
  rmSync(registerFile, { force: true });
  if (!csv.startsWith("number,series,sequence,posted_at") || !csv.includes(`\n${number},`)) throw new Error(`the register:\n${csv}`);
  // The PDF is now the invoice, with its number.
  await page.goto(base + "/orders/" + env("FORKED_ORDER"));
  const button = page.locator("#order-pdf");
  await button.filter({ hasText: "Invoice (PDF)" }).waitFor();
  const [download] = await Promise.all([page.waitForEvent("download"), button.click()]);
  const saved = `${shots}/../invoice-from-ui.pdf`;
  await download.saveAs(saved);
  const pdf = execFileSync("pdftotext", ["-layout", saved, "-"], { encoding: "utf8" });
  rmSync(saved, { force: true });
  for (const expected of ["Invoice", number, "Order"]) {
    if (!pdf.includes(expected)) throw new Error(`${expected} is missing from the invoice PDF:\n${pdf}`);
  }
  // The number reaches the branch's other node by sync.
  await until("the invoice number on the second node", async () => {
    const r = await fetch(env("SECOND_URL") + "/api/v1/orders/" + env("FORKED_ORDER"), {
      headers: { authorization: `Bearer ${env("SECOND_TOKEN")}` },
    });
    return r.status === 200 && (await r.json()).invoice?.number === number;
  });
});

await step("a_refunded_invoice_is_undone_by_a_credit_note", async () => {
  // The invoiced order of the step before is refunded: the question says its invoice stays.
  await page.goto(base + "/orders/" + env("FORKED_ORDER"));
  let asked = "";
  page.once("dialog", (d) => {
    asked = d.message();
    d.accept();
  });
  await page.getByRole("button", { name: "Mark Refunded" }).click();
  await page.locator(".badge", { hasText: "Refunded" }).first().waitFor();
  if (!asked.includes("credit note")) throw new Error(`refunding an invoiced order did not mention the credit note: "${asked}"`);
  // The credit note, with its reason; its legal number arrives live.
  await page.fill("#f-credit_reason", "Devolución de la taza");
  await page.locator("#order-credit-note").click();
  const line = page.locator("#order-credit-note-number");
  await until("the credit note's legal number on the page", async () => /^Credit note NC-[A-Z0-9]+-\d{8}/.test(((await line.textContent().catch(() => "")) || "").trim()));
  await text("Reason: Devolución de la taza").waitFor();
  if ((await page.locator("#order-credit-note").count()) !== 0) throw new Error("a second credit note is offered");
  await page.locator("#order-pdf", { hasText: "Credit note (PDF)" }).waitFor();
  // The invoice it undid can still be printed.
  const [invoicePdf] = await Promise.all([page.waitForEvent("download"), page.locator("#order-invoice-pdf").click()]);
  const invoiceFile = `${shots}/../credited-invoice.pdf`;
  await invoicePdf.saveAs(invoiceFile);
  const invoiceText = execFileSync("pdftotext", ["-layout", invoiceFile, "-"], { encoding: "utf8" });
  rmSync(invoiceFile, { force: true });
  if (!invoiceText.includes("Invoice") || invoiceText.includes("Credit note")) throw new Error(`not the invoice:\n${invoiceText}`);
});

await step("the_credit_note_is_emailed_and_the_page_shows_it_went", async () => {
  // The customer of the forked order has no e-mail address: the form says so and takes one.
  await page.goto(base + "/orders/" + env("FORKED_ORDER"));
  await page.locator("#order-email").click();
  await page.locator("#order-email-send").click();
  await text("has no e-mail address").waitFor();
  await page.fill("#f-email_to", "contabilidad@example.com");
  await page.fill("#f-email_message", "Devolución registrada.");
  await page.locator("#order-email-send").click();
  const row = page.locator("#order-emails .email-row");
  await row.filter({ hasText: "contabilidad@example.com" }).filter({ hasText: "Credit note" }).waitFor();
  // The relay sends it through its mail server; the page learns it went, live.
  await until("the e-mail marked sent", async () => (await page.locator('#order-emails .email-row[data-status="sent"]').count()) === 1);
  // With the time the mail server took it.
  await row.filter({ hasText: /Sent [A-Z][a-z]{2} \d/ }).waitFor();
  // The owner has invoices e-mailed as they are issued (Settings, Shop): saved as it is ticked.
  await page.goto(base + "/settings");
  await page.locator("#email-invoices").check();
  await until("the shop e-mails invoices", async () => (await ownerApi("GET", "/api/v1/shop")).body.email_invoices === true);
  await page.locator("#email-invoices").uncheck();
  await until("the shop no longer e-mails invoices", async () => (await ownerApi("GET", "/api/v1/shop")).body.email_invoices === false);
  // The daily summary at 08:00, then off again.
  await page.selectOption("#f-daily_report_hour", "8");
  await until("the summary at 8", async () => (await ownerApi("GET", "/api/v1/shop")).body.daily_report_hour === 8);
  await page.selectOption("#f-daily_report_hour", "");
  await until("no summary", async () => (await ownerApi("GET", "/api/v1/shop")).body.daily_report_hour == null);
});

await step("a_customer_returns_one_of_two_cups", async () => {
  // The paid order of two cups (no invoice): one comes back broken.
  await page.goto(base + "/orders/" + orderId);
  await page.locator("#order-return-open").click();
  await page.locator("#order-return-form").waitFor();
  await text("2 can come back").waitFor();
  // More than was sold is refused, and says how many may come back.
  await page.fill("#f-return-qty-0", "3");
  await page.locator("#order-return-submit").click();
  await text("between 1 and 2").waitFor();
  await page.fill("#f-return-qty-0", "1");
  await page.fill("#f-return-reason", "Llegó rota");
  await page.locator("#f-return-restock").uncheck();
  await page.locator("#order-return-submit").click();
  const row = page.locator('#order-returns [data-return][data-accepted="true"]');
  await row.filter({ hasText: "Damaged" }).filter({ hasText: "Llegó rota" }).waitFor();
  await page.locator("#order-returned-total", { hasText: "MX$99.18" }).waitFor();
  const o = (await ownerApi("GET", "/api/v1/orders/" + orderId)).body;
  if (o.returnable[0] !== 1 || o.returns.length !== 1 || o.returns[0].restock !== false) throw new Error(`the return: ${JSON.stringify(o.returns)}`);
  // Without an invoice its document is a return note.
  const [download] = await Promise.all([page.waitForEvent("download"), row.locator(".return-pdf").click()]);
  if (!download.suggestedFilename().endsWith("-R.pdf")) throw new Error(`the return note is called ${download.suggestedFilename()}`);
  const saved = `${shots}/../return-note.pdf`;
  await download.saveAs(saved);
  const pdf = execFileSync("pdftotext", ["-layout", saved, "-"], { encoding: "utf8" });
  rmSync(saved, { force: true });
  for (const expected of ["Return note", "Llegó rota", "99.18"]) {
    if (!pdf.includes(expected)) throw new Error(`${expected} is missing from the return note:\n${pdf}`);
  }
  // It reaches the branch's other node by sync.
  await until("the return on the second node", async () => {
    const r = await fetch(env("SECOND_URL") + "/api/v1/orders/" + orderId, {
      headers: { authorization: `Bearer ${env("SECOND_TOKEN")}` },
    });
    return r.status === 200 && (await r.json()).returns?.length === 1;
  });
});

await step("search_from_the_top_bar", async () => {
  // Ctrl+K from any page; a typo and no accents still find the product and the customer.
  await page.goto(base + "/orders");
  await page.locator("main h1").first().waitFor();
  await page.keyboard.press("Control+K");
  await page.waitForFunction(() => document.activeElement?.id === "global-search");
  await page.keyboard.type("taza dashofice");
  const first = page.locator("#global-search-results li[role=option]").first();
  await first.filter({ hasText: "Taza DashOffice" }).waitFor();
  await page.keyboard.press("Enter");
  await page.waitForURL(new RegExp(`/products/${productId}$`));
  await page.fill("#global-search", "lucia gomez");
  // (Her support tickets carry her name too: the customer's own hit is the one labelled so.)
  const customer = page.locator("#global-search-results a", { hasText: env("CUSTOMER") }).filter({ hasText: "Customer" }).first();
  await customer.waitFor();
  if (!(await customer.textContent()).includes("Customer")) throw new Error(`not labelled a customer: ${await customer.textContent()}`);
  await customer.click();
  await page.waitForURL(/\/customers\/[0-9a-f-]{36}$/);
  // Nothing found says so.
  await page.fill("#global-search", "zzzqqq");
  await page.locator(".gsearch-status", { hasText: "Nothing found" }).waitFor();
  // The open list follows the records: a product made meanwhile shows up without typing again.
  await ownerApi("POST", "/api/v1/products", { sku: "UI-ZZQ-1", name: "Zzzqqq Nuevo", price: "10" });
  await page.locator("#global-search-results li[role=option]", { hasText: "Zzzqqq Nuevo" }).waitFor();
  await page.keyboard.press("Escape");
  await page.locator(".gsearch-results").waitFor({ state: "detached" });
});

await step("screenshots", async () => {
  for (const [width, height, label] of [
    [1280, 800, "desktop"],
    [360, 740, "phone"],
  ]) {
    await page.setViewportSize({ width, height });
    for (const [name, path] of pages) {
      await page.goto(base + path);
      await page.locator("h1").first().waitFor();
      await page.waitForLoadState("networkidle").catch(() => {});
      await page.waitForFunction(() => !document.querySelector(".state.loading"), null, { timeout: STEP_MS });
      await page.screenshot({ path: `${shots}/${name}-${label}.png`, fullPage: true });
      if (label === "desktop") a11y.push(...(await accessibility(`${path} (light)`)));
      // Nothing wider than the screen at phone width but tables, which scroll in their own box.
      if (label === "phone") {
        const wide = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth + 1);
        if (wide) throw new Error(`${path} scrolls sideways at 360 px`);
      }
    }
  }
  // Dark theme: the same checks and a screenshot of each page.
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.evaluate(() => localStorage.setItem("dashoffice.theme", "dark"));
  for (const [name, path] of pages) {
    await page.goto(base + path);
    await page.locator("h1").first().waitFor();
    await page.waitForFunction(() => !document.querySelector(".state.loading"), null, { timeout: STEP_MS });
    await page.screenshot({ path: `${shots}/${name}-dark.png`, fullPage: true });
    a11y.push(...(await accessibility(`${path} (dark)`)));
  }
  await page.evaluate(() => localStorage.removeItem("dashoffice.theme"));
  if (a11y.length) throw new Error(`accessibility (WCAG 2 AA): ${a11y.join("; ")}`);
  await page.context().clearCookies();
  await page.evaluate(() => localStorage.clear());
  await page.goto(base + "/login");
  await page.locator("#f-email").waitFor();
  await page.screenshot({ path: `${shots}/login-phone.png` });
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.screenshot({ path: `${shots}/login-desktop.png` });
});

await step("a_tab_of_an_older_build_moves_to_the_new_one", async () => {
  // A tab opened before an update: the server now holds only the newer build, so the page modules
  // of the tab's build are gone and index.html names another folder. Opening an area the tab has
  // not loaded yet must load the newer build instead of leaving a dead page.
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: "en-US" });
  const old = await ctx.newPage();
  old.setDefaultTimeout(STEP_MS);
  await old.goto(base + "/login");
  await old.fill("#f-email", env("UI_EMAIL"));
  await old.fill("#f-password", env("UI_PASSWORD"));
  await old.click("button[type=submit]");
  await old.locator(".stat-value").first().waitFor();
  await ctx.route(/\/assets\/[^/]+\/(split_|chunk_)[^/]*\.wasm$/, (r) => r.fulfill({ status: 404, body: "" }));
  await ctx.route(base + "/", (r) =>
    r.fulfill({ status: 200, contentType: "text/html", body: '<script type="module" src="/assets/0123456789ab/boot.js"></script>' }),
  );
  const reloaded = old.waitForEvent("load");
  await old.click('a[href="/bots"]');
  await reloaded;
  await ctx.unrouteAll({ behavior: "ignoreErrors" });
  await old.goto(base + "/bots");
  await old.locator("h1").first().waitFor();
  await ctx.close();
});

await step("a_staff_member_changes_their_own_password", async () => {
  const login = await fetch(base + "/api/v1/auth/login", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email: env("UI_EMAIL"), password: env("UI_PASSWORD") }),
  });
  const { token } = await login.json();
  const made = await fetch(base + "/api/v1/staff", {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify({ name: "Cajera", email: "cajera@tienda.mx", role: "support", password: "clave-cajera-1" }),
  });
  if (made.status !== 201) throw new Error(`creating the account: ${made.status} ${await made.text()}`);
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: "en-US" });
  const p = await ctx.newPage();
  p.setDefaultTimeout(STEP_MS);
  const logIn = async (password) => {
    await p.goto(base + "/login");
    await p.fill("#f-email", "cajera@tienda.mx");
    await p.fill("#f-password", password);
    await p.click("button[type=submit]");
    await p.getByRole("heading", { name: "Dashboard" }).waitFor();
  };
  await logIn("clave-cajera-1");
  await p.goto(base + "/settings");
  const form = p.locator("#account");
  await form.getByRole("heading", { name: "My account" }).waitFor();
  // Support may not change the shop's settings: the form is not offered.
  if (await p.locator("#f-currency").count()) throw new Error("support sees the shop's settings form");
  await form.locator("#f-current_password").fill("clave-cajera-1");
  await form.locator("#f-password").fill("clave-cajera-2");
  await form.locator("#f-repeat_password").fill("clave-cajera-3");
  await form.getByRole("button", { name: "Change password" }).click();
  await form.getByText("not the same").first().waitFor();
  await form.locator("#f-current_password").fill("not-my-password");
  await form.locator("#f-repeat_password").fill("clave-cajera-2");
  await form.getByRole("button", { name: "Change password" }).click();
  await form.getByText("not your current password").first().waitFor();
  await form.locator("#f-current_password").fill("clave-cajera-1");
  await form.getByRole("button", { name: "Change password" }).click();
  await p.waitForURL(/\/login$/);
  await logIn("clave-cajera-2");
  await ctx.close();
});

await step("a_resolved_conversation_asks_for_a_rating", async () => {
  // The owner turns the survey on; resolving the conversation sends it, and it shows in the thread.
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: "en-US" });
  const page = await ctx.newPage();
  page.setDefaultTimeout(STEP_MS);
  const text = (s) => page.getByText(s, { exact: false }).first();
  await page.goto(base + "/login");
  await page.fill("#f-email", env("UI_EMAIL"));
  await page.fill("#f-password", env("UI_PASSWORD"));
  await page.click("button[type=submit]");
  await page.getByRole("heading", { name: "Dashboard" }).waitFor();
  await page.goto(base + "/settings");
  const box = page.locator("#satisfaction-survey");
  await box.waitFor();
  if (await box.isChecked()) throw new Error("the satisfaction survey was on before anyone turned it on");
  await box.check();
  await text("Saved").waitFor();
  // …in the shop's own words.
  await page.fill("#f-satisfaction_question", "¿Cómo te atendimos hoy en la tienda?");
  const saved = page.waitForResponse((r) => r.url().endsWith("/api/v1/shop") && r.request().method() === "PATCH");
  await page.locator("#satisfaction").getByRole("button", { name: "Save" }).click();
  if ((await saved).status() !== 200) throw new Error(`saving the survey's question answered ${(await saved).status()}`);
  await page.reload();
  await page.locator("#satisfaction-survey:checked").waitFor();
  await page.waitForFunction(() => document.querySelector("#f-satisfaction_question")?.value === "¿Cómo te atendimos hoy en la tienda?");
  await page.goto(conversationUrl);
  await page.locator(".msg-in").first().waitFor();
  await page.getByRole("button", { name: "Resolve", exact: true }).click();
  await page.locator(".msg-out", { hasText: "¿Cómo te atendimos hoy en la tienda?" }).first().waitFor();
  // Ana taps "😀 Muy bien" on WhatsApp: Meta's signed webhook reaches the relay, the rating
  // comes back to this node by sync and shows at the top of the thread, live.
  const body = JSON.stringify({
    object: "whatsapp_business_account",
    entry: [{ id: "102290129340398", changes: [{ field: "messages", value: {
      messaging_product: "whatsapp",
      metadata: { display_phone_number: "15550783881", phone_number_id: env("WA_PHONE_NUMBER_ID") },
      contacts: [{ profile: { name: env("WA_CUSTOMER") }, wa_id: env("WA_ID") }],
      messages: [{ from: env("WA_ID"), id: "wamid.UI-RATING", timestamp: String(Math.floor(Date.now() / 1000)), type: "interactive",
        interactive: { type: "button_reply", button_reply: { id: "csat:good", title: "😀 Muy bien" } } }],
    } }] }],
  });
  const signature = "sha256=" + createHmac("sha256", env("WA_APP_SECRET")).update(body).digest("hex");
  const r = await fetch(env("HEAD_URL") + "/webhooks/whatsapp", {
    method: "POST",
    headers: { "content-type": "application/json", "x-hub-signature-256": signature },
    body,
  });
  if (r.status !== 200) throw new Error(`the relay answered the rating's webhook with ${r.status}`);
  await page.locator(".thread-head .rating", { hasText: "Rated 😀 Good" }).waitFor({ timeout: LIVE_MS });
  await page.locator(".msg-out", { hasText: "Gracias por calificarnos" }).first().waitFor();
  // The analytics count it.
  await page.goto(base + "/analytics");
  const sat = page.locator(".satisfaction-stats");
  await sat.waitFor();
  await sat.locator(".stat", { hasText: "Rated good" }).locator(".stat-value", { hasText: "100" }).waitFor();
  await sat.locator("td", { hasText: "1" }).first().waitFor();
  // So does the dashboard, once there are ratings.
  await page.goto(base + "/");
  await page.locator(".stat", { hasText: "Rated good (14 days)" }).locator(".stat-value", { hasText: "100" }).waitFor();
  await ctx.close();
});

await step("the_24_hour_window_closes_while_the_conversation_is_open", async () => {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: "en-US" });
  await ctx.clock.install();
  const p = await ctx.newPage();
  p.setDefaultTimeout(STEP_MS);
  await p.goto(base + "/login");
  await p.fill("#f-email", env("UI_EMAIL"));
  await p.fill("#f-password", env("UI_PASSWORD"));
  await p.click("button[type=submit]");
  await p.getByRole("heading", { name: "Dashboard" }).waitFor();
  await p.goto(conversationUrl);
  await p.locator("#reply").waitFor();
  if (await p.getByText("more than 24 hours old").count()) throw new Error("the window is closed already");
  // A day later, without reloading: the composer offers templates only.
  await p.clock.fastForward("24:01:00");
  await p.getByText("more than 24 hours old").first().waitFor();
  await ctx.close();
});

await browser.close();
if (tokenUrls.length) problems.push(`a token in a request URL: ${tokenUrls.join(", ")}`);
if (problems.length) {
  console.log(JSON.stringify({ ok: false, step: "console", error: problems.join("; "), steps }));
  process.exit(1);
}
console.log(JSON.stringify({ ok: true, steps, screenshots: shots }));
