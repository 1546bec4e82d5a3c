// The operator console in Chromium, against `paybridge demo`: logging in (one-time link and
// password), refusals (wrong password, missing CSRF token, a viewer's refund), a payment made
// through the API and paid in the sandbox shown paid with its timeline, a half refund with its
// webhook delivery, and every page at a phone's and a desktop's width.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startDemo, launch, withPage, assertNoHorizontalScroll, VIEWPORTS } from "../lib.mjs";

let demo;
let browser;
before(async () => {
  demo = await startDemo();
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await demo?.stop();
});

const operator = (role) => demo.operators.find((o) => o.role === role);

async function loginWithPassword(page, { username, password }) {
  await page.goto(`${demo.base_url}/console/login`);
  await page.fill('input[name="username"]', username);
  await page.fill('input[name="password"]', password);
  const [res] = await Promise.all([page.waitForNavigation(), page.click('button[type="submit"]')]);
  return res;
}

/** A sandbox payment made through the API, paid by the buyer in the sandbox's pay page. */
async function paidPayment(page, amount) {
  const out = `CONSOLE${Date.now()}${Math.floor(Math.random() * 1000)}`;
  const created = await demo.api("/v1/payments", {
    method: "POST",
    idempotencyKey: out,
    body: {
      account: "alipay-sandbox",
      channel: "alipay",
      scene: "qr",
      amount,
      out_trade_no: out,
      subject: "Console test",
    },
  });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const id = created.body.id;
  await page.goto(`${demo.base_url}/demo/buyer/${id}`);
  await Promise.all([page.waitForNavigation(), page.click("#pay")]);
  return id;
}

/** Reloads the page until `check()` holds (the notification and webhook arrive asynchronously). */
async function eventually(page, check, what) {
  for (let i = 0; i < 100; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 200));
    await page.reload();
  }
  throw new Error(`timed out waiting for ${what} on ${page.url()}`);
}

test("the demo's one-time link logs in once, into sandbox mode", async () => {
  await withPage(browser, "console-link", {}, async (page) => {
    await page.goto(demo.login_url);
    await Promise.all([page.waitForNavigation(), page.click('button[type="submit"]')]);
    assert.equal(new URL(page.url()).pathname, "/console");
    assert.ok(await page.isVisible('[data-mode="sandbox"]'), "the sandbox banner");
    assert.match(await page.textContent("header"), /demo \(admin\)/);
  });
  await withPage(browser, "console-link-again", {}, async (page) => {
    await page.goto(demo.login_url);
    const [res] = await Promise.all([
      page.waitForNavigation(),
      page.click('button[type="submit"]'),
    ]);
    assert.equal(res.status(), 401);
    assert.match(await page.textContent(".error"), /used already or has expired/);
  });
});

test("a wrong password is refused, the right one logs in", async () => {
  await withPage(browser, "console-password", {}, async (page) => {
    const bad = await loginWithPassword(page, { username: "demo", password: "not the password" });
    assert.equal(bad.status(), 401);
    assert.match(await page.textContent(".error"), /Wrong username or password/);
    const good = await loginWithPassword(page, operator("admin"));
    assert.equal(good.status(), 200);
    assert.equal(new URL(page.url()).pathname, "/console");
  });
});

test("a form posted without its CSRF token is refused and changes nothing", async () => {
  await withPage(browser, "console-csrf", {}, async (page) => {
    await loginWithPassword(page, operator("admin"));
    assert.ok(await page.isVisible('[data-mode="sandbox"]'));
    await page.evaluate(() => document.querySelector('form.mode input[name="csrf"]').remove());
    const [res] = await Promise.all([page.waitForNavigation(), page.click("form.mode button")]);
    assert.equal(res.status(), 403);
    await page.goto(`${demo.base_url}/console`);
    assert.ok(await page.isVisible('[data-mode="sandbox"]'), "still in sandbox mode");
  });
});

test("a paid payment shows paid with one timeline; refund half and see its webhook", async () => {
  await withPage(browser, "console-refund", {}, async (page) => {
    const id = await paidPayment(page, 1000);
    await loginWithPassword(page, operator("admin"));
    await page.goto(`${demo.base_url}/console/payments?q=${id}`);
    await Promise.all([page.waitForNavigation(), page.click(`a[href="/console/payments/${id}"]`)]);
    await eventually(
      page,
      async () =>
        (await page.textContent("dl.facts")).includes("paid") &&
        (await page.locator('[data-kind="webhook"] [data-delivery-status="delivered"]').count()) > 0,
      "paid with a delivered webhook",
    );
    // One timeline: the notification, the state change and the webhook, in time order.
    assert.ok((await page.locator('[data-kind="notification"]').count()) >= 1);
    assert.match(await page.textContent('[data-kind="notification"]'), /verified/);
    assert.match(await page.textContent("ol.timeline"), /pending → paid|created → paid/);
    const times = await page.$$eval("ol.timeline .when", (els) => els.map((e) => e.textContent));
    assert.deepEqual(times, [...times].sort(), "entries in time order");

    await page.fill('form[action$="/refund"] input[name="amount"]', "5.00");
    await page.fill('form[action$="/refund"] input[name="reason"]', "half returned");
    await Promise.all([page.waitForNavigation(), page.click('form[action$="/refund"] button')]);
    assert.match(await page.textContent(".done"), /Refund requested/);
    await eventually(
      page,
      async () => {
        const refunds = await page.locator("tr[data-refund]").allTextContents();
        const hooks = await page.locator('[data-kind="webhook"]').allTextContents();
        return (
          refunds.some((r) => r.includes("¥5.00") && r.includes("succeeded")) &&
          hooks.some((h) => h.includes("refund.succeeded") && h.includes("delivered"))
        );
      },
      "the refund succeeded with its webhook delivered",
    );
    assert.match(await page.textContent("dl.facts"), /partially_refunded/);
    // The refund is in the audit trail with the operator and the reason.
    assert.match(await page.textContent("ol.timeline"), /operator:demo · refund requested: half returned/);
    await page.goto(`${demo.base_url}/console/refunds`);
    assert.ok((await page.locator(`a[href="/console/payments/${id}"]`).count()) >= 1);
  });
});

test("a viewer sees no refund form and cannot refund", async () => {
  await withPage(browser, "console-viewer", {}, async (page) => {
    const id = await paidPayment(page, 200);
    await loginWithPassword(page, operator("viewer"));
    await page.goto(`${demo.base_url}/console/payments/${id}`);
    await eventually(page, async () => (await page.textContent("dl.facts")).includes("paid"), "paid");
    assert.equal(await page.locator('form[action$="/refund"]').count(), 0);
    // Posting the refund form by hand (with a valid token) is refused.
    const res = await page.evaluate(async (id) => {
      const csrf = document.querySelector('input[name="csrf"]').value;
      const body = new URLSearchParams({ csrf, amount: "1.00", reason: "try", idempotency_key: "v1" });
      const r = await fetch(`/console/payments/${id}/refund`, { method: "POST", body });
      return r.status;
    }, id);
    assert.equal(res, 403);
    await page.reload();
    assert.equal(await page.locator("tr[data-refund]").count(), 0, "no refund was made");
  });
});

test("an admin starts a reconciliation run and creates an API key shown once", async () => {
  await withPage(browser, "console-admin", {}, async (page) => {
    await loginWithPassword(page, operator("admin"));
    await page.goto(`${demo.base_url}/console/reconciliations`);
    await Promise.all([
      page.waitForNavigation(),
      page.click('form[action="/console/reconciliations"] button'),
    ]);
    assert.match(new URL(page.url()).pathname, /^\/console\/reconciliations\/rec/);
    await eventually(
      page,
      async () => /completed|failed/.test(await page.textContent("dl.facts")),
      "the run to finish",
    );
    assert.match(await page.textContent("dl.facts"), /completed/);

    await page.goto(`${demo.base_url}/console/api-keys`);
    await page.fill('form[action="/console/api-keys"] input[name="reason"]', "browser test");
    await Promise.all([
      page.waitForNavigation(),
      page.click('form[action="/console/api-keys"] button'),
    ]);
    const secret = (await page.textContent("pre[data-new-key]")).trim();
    assert.match(secret, /^pb_test_/);
    const res = await fetch(`${demo.base_url}/v1/payments?limit=1`, {
      headers: { authorization: `Bearer ${secret}` },
    });
    assert.equal(res.status, 200, "the new key works");
    await page.goto(`${demo.base_url}/console/api-keys`);
    assert.ok(!(await page.content()).includes(secret), "shown only once");
  });
});

for (const [name, viewport] of Object.entries(VIEWPORTS)) {
  test(`every console page fits a ${name} (${viewport.width}px)`, async () => {
    await withPage(browser, `console-pages-${name}`, { viewport }, async (page) => {
      await page.goto(`${demo.base_url}/console/login`);
      await assertNoHorizontalScroll(page);
      const id = await paidPayment(page, 300);
      await loginWithPassword(page, operator("admin"));
      await page.goto(`${demo.base_url}/console/payments/${id}`);
      await eventually(page, async () => (await page.textContent("dl.facts")).includes("paid"), "paid");
      const paths = [
        "/console",
        "/console/payments",
        `/console/payments/${id}`,
        "/console/refunds",
        "/console/events",
        "/console/events?undelivered=1",
        "/console/reconciliations",
        "/console/accounts",
        "/console/api-keys",
        "/console/operators",
      ];
      for (const path of paths) {
        const res = await page.goto(`${demo.base_url}${path}`);
        assert.equal(res.status(), 200, path);
        // Open every collapsed block too: raw bodies and payloads must wrap, not widen.
        await page.evaluate(() => document.querySelectorAll("details").forEach((d) => (d.open = true)));
        await assertNoHorizontalScroll(page);
      }
      // And in Chinese.
      await page.goto(`${demo.base_url}/console/lang/zh`);
      assert.match(await page.textContent("header"), /支付/);
      await assertNoHorizontalScroll(page);
      await page.goto(`${demo.base_url}/console/lang/en`);
    });
  });
}
