// The hosted cashier in Chromium: created through the API, opened on a desktop (the QR code of
// its URL) and as each wallet (WeChat's and Alipay's in-app browsers, another phone browser),
// paid in the sandbox's wallet pages; the cashier turns to success once the gateway knows and
// goes to the merchant's return_url. Expiry is shown; 375 px and 1440 px fit without
// horizontal scrolling.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  startDemo,
  launch,
  withPage,
  assertNoHorizontalScroll,
  VIEWPORTS,
  USER_AGENTS,
} from "../lib.mjs";

let demo;
let browser;
let expiring;
let seq = 0;

before(async () => {
  demo = await startDemo();
  browser = await launch();
  // Created first, looked at last: the shortest expiry the API takes is a minute.
  expiring = await createCashier({ expires_in: 60 });
});
after(async () => {
  await browser?.close();
  await demo?.stop();
});

async function createCashier(extra = {}) {
  const no = `BROWSER${Date.now()}${seq++}`;
  const body = {
    scene: "cashier",
    accounts: { alipay: "alipay-sandbox", wechat: "wechat-sandbox" },
    amount: 2345,
    out_trade_no: no,
    subject: "Browser test order",
    return_url: `${demo.base_url}/healthz?order=${no}`,
    ...extra,
  };
  const res = await demo.api("/v1/payments", { method: "POST", body, idempotencyKey: no });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  assert.equal(res.body.object, "cashier");
  assert.equal(res.body.status, "open");
  assert.ok(res.body.cashier_url.startsWith(`${demo.base_url}/cashier/`), res.body.cashier_url);
  return res.body;
}

/** Waits for the gateway's status page to say `status` (what the cashier page polls). */
async function gatewaySays(cashier, status) {
  for (let i = 0; i < 300; i++) {
    const res = await demo.api(`/v1/cashiers/${cashier.id}`);
    if (res.body?.status === status) return res.body;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`cashier ${cashier.id} never became ${status}`);
}

/** The sandbox's wallet page: the buyer pays there. */
async function payInSandbox(page) {
  await page.waitForSelector("#pay");
  await Promise.all([page.waitForLoadState(), page.click("#pay")]);
}

async function expectOrder(page, cashier) {
  assert.equal(await page.textContent("#subject"), "Browser test order");
  assert.equal(await page.textContent("#amount"), "¥23.45");
  assert.equal(await page.textContent("#merchant"), "demo");
  // The countdown is live: it reads minutes and seconds left.
  assert.match(await page.textContent("#countdown"), /^\d?:?\d\d:\d\d$/);
  assert.ok(await page.isVisible("#state-open"));
  assert.ok(!(await page.isVisible("#state-paid")));
  assert.ok(cashier.id);
}

test("desktop shows the QR code; scanned with Alipay and paid, both pages go to return_url", async () => {
  const cashier = await createCashier();
  await withPage(browser, "cashier-desktop", { viewport: VIEWPORTS.desktop }, async (desk) => {
    const res = await desk.goto(cashier.cashier_url);
    assert.equal(res.status(), 200);
    assert.equal(res.headers()["referrer-policy"], "no-referrer");
    await expectOrder(desk, cashier);
    assert.ok(await desk.isVisible("#qr svg"), "the QR code is drawn");
    assert.ok(await desk.isVisible("#offer-wechat"));
    assert.ok(await desk.isVisible("#offer-alipay"));
    await assertNoHorizontalScroll(desk);
    const firstCount = await desk.textContent("#countdown");
    await desk.waitForFunction(
      (first) => document.getElementById("countdown").textContent !== first,
      firstCount,
    );

    // The buyer scans the code: the same URL opens in Alipay's browser.
    await withPage(
      browser,
      "cashier-alipay-wallet",
      { viewport: VIEWPORTS.phone, userAgent: USER_AGENTS.alipay },
      async (wallet) => {
        await wallet.goto(cashier.cashier_url);
        await expectOrder(wallet, cashier);
        assert.ok(!(await wallet.isVisible("#qr")), "no QR code inside a wallet");
        await assertNoHorizontalScroll(wallet);
        await Promise.all([wallet.waitForURL(/_sandbox\/pay\//), wallet.click("#pay-alipay")]);
        await payInSandbox(wallet);
        // Alipay returns to the cashier, which waits for the gateway, then leaves.
        await wallet.waitForURL(cashier.return_url, { timeout: 30_000 });
      },
    );
    // The desktop page saw it through the gateway too.
    await desk.waitForURL(cashier.return_url, { timeout: 30_000 });
  });
  const paid = await gatewaySays(cashier, "paid");
  assert.equal(paid.payments.length, 1);
  assert.equal(paid.payments[0].channel, "alipay");
  assert.equal(paid.payments[0].scene, "wap");
  assert.equal(paid.payment_id, paid.payments[0].id);
});

test("inside WeChat it pays with JSAPI, the openid from WeChat's web authorization", async () => {
  const cashier = await createCashier();
  await withPage(
    browser,
    "cashier-wechat-wallet",
    { viewport: VIEWPORTS.phone, userAgent: USER_AGENTS.wechat, locale: "zh-CN" },
    async (page, context) => {
      // WeChat's client bridge, played by the sandbox's wallet page in another tab.
      await page.exposeFunction("__sandboxWechatPay", async (prepayId) => {
        const tab = await context.newPage();
        await tab.goto(`${demo.sandbox_url}/_sandbox/pay/${prepayId}`);
        await payInSandbox(tab);
        const status = await tab.textContent("#status");
        await tab.close();
        return status;
      });
      await context.addInitScript(() => {
        window.WeixinJSBridge = {
          invoke(name, params, cb) {
            if (name !== "getBrandWCPayRequest") return cb({ err_msg: `${name}:fail` });
            window
              .__sandboxWechatPay(String(params.package).replace("prepay_id=", ""))
              .then(() => cb({ err_msg: "get_brand_wcpay_request:ok" }));
          },
        };
      });
      await page.goto(cashier.cashier_url);
      // Back from the authorize page with a code.
      assert.match(page.url(), /[?&]code=/);
      assert.equal(await page.title(), "收银台");
      await expectOrder(page, cashier);
      await assertNoHorizontalScroll(page);
      const params = JSON.parse(await page.getAttribute("#pay-wechat", "data-params"));
      assert.match(params.package, /^prepay_id=/);
      assert.ok(params.paySign);
      // A reload sends the used code again: WeChat refuses it, the cashier asks for a fresh
      // one, and the same buyer gets the same order back.
      const firstUrl = page.url();
      await page.reload();
      assert.match(page.url(), /[?&]code=/);
      assert.notEqual(page.url(), firstUrl);
      const again = JSON.parse(await page.getAttribute("#pay-wechat", "data-params"));
      assert.equal(again.package, params.package);
      await page.click("#pay-wechat");
      await page.waitForURL(cashier.return_url, { timeout: 30_000 });
    },
  );
  const paid = await gatewaySays(cashier, "paid");
  assert.equal(paid.payments.length, 1);
  assert.equal(paid.payments[0].scene, "jsapi");
  assert.match(paid.payments[0].payer_id, /^o[0-9a-f]{27}$/);
});

test("another phone browser picks WeChat H5 or Alipay; paid with H5, the cashier goes on", async () => {
  const cashier = await createCashier();
  await withPage(
    browser,
    "cashier-phone-browser",
    { viewport: VIEWPORTS.phone, userAgent: USER_AGENTS.mobile },
    async (page) => {
      await page.goto(cashier.cashier_url);
      await expectOrder(page, cashier);
      assert.ok(await page.isVisible("#pay-wechat"));
      assert.ok(await page.isVisible("#pay-alipay"));
      await assertNoHorizontalScroll(page);
      await Promise.all([page.waitForURL(/_sandbox\/pay\//), page.click("#pay-wechat")]);
      await payInSandbox(page);
      // WeChat's H5 page sends the buyer back to the cashier (redirect_url).
      await gatewaySays(cashier, "paid");
      await page.goto(cashier.cashier_url);
      assert.ok(await page.isVisible("#state-paid"));
      await page.waitForURL(cashier.return_url, { timeout: 30_000 });
    },
  );
});

for (const [name, viewport] of Object.entries(VIEWPORTS)) {
  test(`the cashier fits a ${name} (${viewport.width}px)`, async () => {
    const cashier = await createCashier();
    for (const ua of ["desktop", "mobile", "alipay"]) {
      await withPage(
        browser,
        `cashier-fit-${name}-${ua}`,
        { viewport, userAgent: USER_AGENTS[ua] },
        async (page) => {
          await page.goto(cashier.cashier_url);
          await expectOrder(page, cashier);
          await assertNoHorizontalScroll(page);
        },
      );
    }
  });
}

test("an unknown cashier link is a plain not-found page", async () => {
  await withPage(browser, "cashier-missing", {}, async (page) => {
    const res = await page.goto(`${demo.base_url}/cashier/${"x".repeat(43)}`);
    assert.equal(res.status(), 404);
  });
});

test("on expiry the cashier says so", async () => {
  await withPage(browser, "cashier-expired", { viewport: VIEWPORTS.phone }, async (page) => {
    await page.goto(expiring.cashier_url);
    await page.waitForSelector("#state-expired", { state: "visible", timeout: 90_000 });
    assert.ok(!(await page.isVisible("#state-open")));
    assert.ok(!(await page.isVisible("#countdown-line")));
    await assertNoHorizontalScroll(page);
  });
  const shown = await gatewaySays(expiring, "expired");
  assert.deepEqual(shown.payments, []);
});
