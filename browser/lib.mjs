// Shared by every browser test: start `paybridge demo` on a free port with its own data dir,
// launch Debian's Chromium through playwright-core (no browser download), open pages with a
// given viewport and User-Agent, and keep a screenshot of every page whose test failed.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, existsSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
export const BIN = process.env.PAYBRIDGE_BIN ?? join(here, "..", "target", "debug", "paybridge");
export const SCREENSHOTS = join(here, "screenshots");

export const VIEWPORTS = {
  phone: { width: 375, height: 740 },
  desktop: { width: 1440, height: 900 },
};

export const USER_AGENTS = {
  desktop:
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
  wechat:
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.50(0x1800323c) NetType/WIFI Language/zh_CN",
  alipay:
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 AlipayClient/10.6.0.6000 Language/zh-Hans",
  mobile:
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36",
};

/** Starts `paybridge demo`; resolves once it has written `demo.json` and answers `/healthz`. */
export async function startDemo() {
  const dataDir = mkdtempSync(join(tmpdir(), "paybridge-browser-"));
  const child = spawn(BIN, ["demo", "--listen", "127.0.0.1:0", "--data-dir", dataDir], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  const aboutPath = join(dataDir, "demo.json");
  for (let i = 0; i < 600; i++) {
    if (child.exitCode !== null) throw new Error(`paybridge demo exited:\n${output}`);
    if (existsSync(aboutPath)) {
      const about = JSON.parse(readFileSync(aboutPath, "utf8"));
      const health = await fetch(`${about.base_url}/healthz`).catch(() => null);
      if (health?.ok) {
        return {
          ...about,
          dataDir,
          output: () => output,
          api: (path, init = {}) => api(about, path, init),
          async stop() {
            child.kill("SIGTERM");
            await new Promise((r) => (child.exitCode !== null ? r() : child.once("exit", r)));
            rmSync(dataDir, { recursive: true, force: true });
          },
        };
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill("SIGKILL");
  throw new Error(`paybridge demo did not start:\n${output}`);
}

/** A JSON call to the gateway's API with the demo's key. */
async function api(about, path, { method = "GET", body, idempotencyKey } = {}) {
  const headers = { authorization: `Bearer ${about.api_key}` };
  if (body !== undefined) headers["content-type"] = "application/json";
  if (idempotencyKey) headers["idempotency-key"] = idempotencyKey;
  const res = await fetch(`${about.base_url}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** Debian's Chromium, headless, with this machine's closed network in mind. */
export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/**
 * Runs `fn(page, context)` in a fresh browser context; on failure saves a full-page screenshot
 * of every page the context opened to `screenshots/<name>-<n>.png`, then rethrows.
 */
export async function withPage(browser, name, options, fn) {
  const { viewport = VIEWPORTS.desktop, userAgent = USER_AGENTS.desktop, locale = "en-US" } =
    options ?? {};
  const context = await browser.newContext({ viewport, userAgent, locale });
  const page = await context.newPage();
  try {
    return await fn(page, context);
  } catch (err) {
    mkdirSync(SCREENSHOTS, { recursive: true });
    const safe = name.replace(/[^A-Za-z0-9_-]+/g, "_");
    let n = 0;
    for (const p of context.pages()) {
      await p
        .screenshot({ path: join(SCREENSHOTS, `${safe}-${n++}.png`), fullPage: true })
        .catch(() => {});
    }
    throw err;
  } finally {
    await context.close();
  }
}

/** The page fits its viewport: nothing scrolls sideways. */
export async function assertNoHorizontalScroll(page) {
  const { scroll, width } = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    width: window.innerWidth,
  }));
  if (scroll > width) {
    throw new Error(`${page.url()} is ${scroll}px wide in a ${width}px viewport`);
  }
}
