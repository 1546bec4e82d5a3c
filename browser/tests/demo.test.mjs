// The demo's pages at a phone's and a desktop's width.
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

for (const [name, viewport] of Object.entries(VIEWPORTS)) {
  test(`the demo page fits a ${name} (${viewport.width}px)`, async () => {
    await withPage(browser, `demo-${name}`, { viewport }, async (page) => {
      const res = await page.goto(`${demo.base_url}/demo`);
      assert.equal(res.status(), 200);
      await assertNoHorizontalScroll(page);
    });
  });
}
