// A headless Chromium (Debian's /usr/bin/chromium, a fresh profile directory) driven by
// playwright-core, taking one JSON command per stdin line and answering one JSON line each:
// {"id": 1, "op": "goto", "args": {...}} -> {"id": 1, "ok": true, "result": ...}.
// tests/console/browser.py is the other end.  Console messages and page errors of the browser
// are reported as {"event": ...} lines, so a test can fail on a script error.
"use strict";

const fs = require("fs");
const os = require("os");
const path = require("path");
const readline = require("readline");
const { chromium } = require("playwright-core");

const ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];
const TIMEOUT = Number(process.env.DRIVER_TIMEOUT_MS || 20000);

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

async function main() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "console-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ARGS,
    viewport: { width: 1280, height: 800 },
    deviceScaleFactor: 1,
    locale: "en-GB",
    timezoneId: "UTC",
  });
  context.setDefaultTimeout(TIMEOUT);
  const pages = [];
  const watch = (page, index) => {
    page.on("console", (m) => out({ event: "console", page: index, level: m.type(), text: m.text() }));
    page.on("pageerror", (e) => out({ event: "pageerror", page: index, text: String(e) }));
    page.on("dialog", (d) => d.accept());
  };
  pages.push(context.pages()[0] || (await context.newPage()));
  watch(pages[0], 0);

  const ops = {
    async newPage() {
      const page = await context.newPage();
      pages.push(page);
      watch(page, pages.length - 1);
      return pages.length - 1;
    },
    goto: (p, a) => p.goto(a.url, { waitUntil: "load" }).then((r) => (r ? r.status() : null)),
    url: (p) => p.url(),
    fill: (p, a) => p.locator(a.selector).fill(a.value),
    click: (p, a) => p.locator(a.selector).click(),
    check: (p, a) => p.locator(a.selector).setChecked(Boolean(a.value)),
    press: (p, a) => p.locator(a.selector).press(a.key),
    waitFor: (p, a) => p.locator(a.selector).first().waitFor({ state: a.state || "visible", timeout: a.timeout }),
    waitForUrl: (p, a) => p.waitForURL((u) => u.pathname === a.path, { timeout: a.timeout }),
    text: (p, a) => p.locator(a.selector).first().innerText(),
    texts: (p, a) => p.locator(a.selector).allInnerTexts(),
    count: (p, a) => p.locator(a.selector).count(),
    attr: (p, a) => p.locator(a.selector).first().getAttribute(a.name),
    // The expression is a function body evaluated in the page, e.g. "return document.title".
    evaluate: (p, a) => p.evaluate(new Function("arg", a.body), a.arg ?? null),
    waitForFunction: (p, a) =>
      p.waitForFunction(new Function("arg", a.body), a.arg ?? null, { timeout: a.timeout, polling: 100 }).then(() => true),
    screenshot: async (p, a) => {
      fs.mkdirSync(path.dirname(a.path), { recursive: true });
      await p.screenshot({ path: a.path, fullPage: a.fullPage !== false });
      return a.path;
    },
  };

  const lines = readline.createInterface({ input: process.stdin });
  for await (const line of lines) {
    if (!line.trim()) continue;
    const cmd = JSON.parse(line);
    if (cmd.op === "quit") break;
    try {
      const op = ops[cmd.op];
      if (!op) throw new Error(`unknown op ${cmd.op}`);
      const page = pages[cmd.page || 0];
      const result = await op(page, cmd.args || {});
      out({ id: cmd.id, ok: true, result: result === undefined ? null : result });
    } catch (e) {
      out({ id: cmd.id, ok: false, error: String(e && e.message ? e.message : e) });
    }
  }
  await context.close();
  fs.rmSync(profile, { recursive: true, force: true });
}

main().then(
  () => process.exit(0),
  (e) => {
    out({ event: "fatal", text: String(e && e.stack ? e.stack : e) });
    process.exit(1);
  },
);
