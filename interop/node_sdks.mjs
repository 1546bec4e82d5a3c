// Drives real third-party Node.js SDKs against a running paybridge sandbox: alipay-sdk
// (Alipay gateway.do, payments and the fund APIs of payouts) and wechatpay-axios-plugin (WeChat Pay APIv3 and APIv2), pointed at the
// sandbox unchanged except for their base URL. Prints PASS/FAIL per check and a final
// `N passed, M failed` line.
//
// Usage: node node_sdks.mjs SANDBOX_BASE_URL SANDBOX_TOML
import { createRequire } from 'node:module';
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';

const require = createRequire(import.meta.url);
const { AlipaySdk } = require('alipay-sdk');
const { Wechatpay } = require('wechatpay-axios-plugin');
const toml = require('smol-toml');

const BASE = process.argv[2].replace(/\/$/, '');
const CONF = toml.parse(readFileSync(process.argv[3], 'utf8'));
const KEYS = await (await fetch(`${BASE}/_sandbox/keys`)).json();

const results = [];
async function check(name, fn) {
  try {
    await fn();
    results.push(true);
    console.log(`PASS ${name}`);
  } catch (e) {
    results.push(false);
    console.log(`FAIL ${name}: ${e && e.stack ? e.stack : e}`);
  }
}
function assert(cond, what) {
  if (!cond) throw new Error(`assertion failed: ${typeof what === 'string' ? what : JSON.stringify(what)}`);
}
async function control(path) {
  const r = await fetch(BASE + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  return r.json();
}
async function tradeId(out) {
  const list = await (await fetch(`${BASE}/_sandbox/trades?out_trade_no=${out}`)).json();
  assert(list.length === 1, list);
  return list[0].id;
}

// A notify_url receiver answering each protocol's success reply.
const inbox = [];
const waiters = [];
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8');
    inbox.push({ path: req.url, headers: req.headers, body });
    waiters.splice(0).forEach((w) => w());
    if (req.url.startsWith('/alipay')) { res.end('success'); return; }
    if (req.url.startsWith('/v2')) {
      res.setHeader('content-type', 'text/xml');
      res.end('<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>');
      return;
    }
    res.statusCode = 204;
    res.end();
  });
});
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const INBOX = `http://127.0.0.1:${server.address().port}`;
async function waitFor(prefix, marker, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const hit = inbox.find((i) => i.path.startsWith(prefix) && i.body.includes(marker));
    if (hit) return hit;
    if (Date.now() > deadline) throw new Error(`no notification to ${prefix} containing ${marker}`);
    await new Promise((r) => { waiters.push(r); setTimeout(r, 200); });
  }
}

// ------------------------------------------------------------------ alipay-sdk
const app = CONF.alipay.apps.find((a) => (a.mode ?? 'public_key') === 'public_key');
const alipay = new AlipaySdk({
  appId: app.app_id,
  privateKey: app.app_private_key,
  keyType: 'PKCS8',
  alipayPublicKey: KEYS.alipay.alipay_public_key,
  gateway: KEYS.alipay.gateway,
  camelcase: true,
});

await check('alipay-sdk: precreate -> buyer pays -> checkNotifySign -> query -> refund', async () => {
  const out = `node-ali-${randomUUID().slice(0, 12)}`;
  const r = await alipay.exec('alipay.trade.precreate', {
    notify_url: `${INBOX}/alipay`,
    bizContent: { out_trade_no: out, total_amount: '0.01', subject: 'interop' },
  });
  assert(r.code === '10000' && r.qrCode, r);
  await control(`/_sandbox/trades/${await tradeId(out)}/pay`);
  const n = await waitFor('/alipay', out);
  const params = Object.fromEntries(new URLSearchParams(n.body));
  assert(alipay.checkNotifySign(params), 'notification signature rejected by the SDK');
  assert(params.trade_status === 'TRADE_SUCCESS', params);
  const q = await alipay.exec('alipay.trade.query', { bizContent: { out_trade_no: out } });
  assert(q.code === '10000' && q.tradeStatus === 'TRADE_SUCCESS', q);
  const rf = await alipay.exec('alipay.trade.refund', {
    bizContent: { out_trade_no: out, refund_amount: '0.01', out_request_no: `${out}-r` },
  });
  assert(rf.code === '10000' && rf.refundFee === '0.01', rf);
});

await check('alipay-sdk: pageExecute GET URL opens the sandbox buyer page', async () => {
  const out = `node-ali-${randomUUID().slice(0, 12)}`;
  const url = alipay.pageExecute('alipay.trade.page.pay', 'GET', {
    bizContent: { out_trade_no: out, total_amount: '3.20', subject: 'interop', product_code: 'FAST_INSTANT_TRADE_PAY' },
    returnUrl: 'http://127.0.0.1/return',
  });
  const page = await (await fetch(url)).text();
  assert(page.includes(out) && page.includes('3.20'), page.slice(0, 300));
});

await check('alipay-sdk (certificate mode): SDK-computed cert SNs accepted, cert-mode responses verify', async () => {
  const certApp = CONF.alipay.apps.find((a) => a.mode === 'cert');
  assert(certApp, 'the sandbox config has no certificate-mode app');
  const sdk = new AlipaySdk({
    appId: certApp.app_id,
    privateKey: certApp.app_private_key,
    keyType: 'PKCS8',
    appCertContent: certApp.app_cert,
    alipayPublicCertContent: CONF.alipay.alipay_cert,
    alipayRootCertContent: CONF.alipay.root_cert,
    gateway: KEYS.alipay.gateway,
  });
  const out = `node-dc-${randomUUID().slice(0, 12)}`;
  const r = await sdk.exec('alipay.trade.precreate', {
    notify_url: `${INBOX}/alipay-cert`,
    bizContent: { out_trade_no: out, total_amount: '0.03', subject: 'interop cert' },
  });
  assert(r.code === '10000' && r.qrCode, r);
  await control(`/_sandbox/trades/${await tradeId(out)}/pay`);
  const n = await waitFor('/alipay-cert', out);
  assert(sdk.checkNotifySign(Object.fromEntries(new URLSearchParams(n.body))), 'notification rejected');
  const q = await sdk.exec('alipay.trade.query', { bizContent: { out_trade_no: out } });
  assert(q.code === '10000' && q.tradeStatus === 'TRADE_SUCCESS', q);
});

await check('alipay-sdk (certificate mode): alipay.fund.trans.uni.transfer -> order.changed message verifies -> common.query -> account.query; a repeat is the same transfer', async () => {
  const certApp = CONF.alipay.apps.find((a) => a.mode === 'cert');
  const sdk = new AlipaySdk({
    appId: certApp.app_id,
    privateKey: certApp.app_private_key,
    keyType: 'PKCS8',
    appCertContent: certApp.app_cert,
    alipayPublicCertContent: CONF.alipay.alipay_cert,
    alipayRootCertContent: CONF.alipay.root_cert,
    gateway: KEYS.alipay.gateway,
  });
  const before = await sdk.exec('alipay.fund.account.query', {
    bizContent: { alipay_user_id: '2088102177800000', account_type: 'ACCTRANS_ACCOUNT' },
  });
  assert(before.code === '10000' && before.availableAmount, before);
  const out = `node-xfer-${randomUUID().slice(0, 12)}`;
  const transfer = {
    notify_url: `${INBOX}/alipay-fund`,
    bizContent: {
      out_biz_no: out, trans_amount: '1.23', product_code: 'TRANS_ACCOUNT_NO_PWD', biz_scene: 'DIRECT_TRANSFER',
      order_title: 'interop', payee_info: { identity: 'payee@example.com', identity_type: 'ALIPAY_LOGON_ID', name: '王五' },
    },
  };
  const r = await sdk.exec('alipay.fund.trans.uni.transfer', transfer);
  assert(r.code === '10000' && r.status === 'SUCCESS' && r.orderId, r);
  const again = await sdk.exec('alipay.fund.trans.uni.transfer', transfer);
  assert(again.code === '10000' && again.orderId === r.orderId, again);
  const n = await waitFor('/alipay-fund', out);
  const params = Object.fromEntries(new URLSearchParams(n.body));
  assert(params.msg_method === 'alipay.fund.trans.order.changed', params);
  assert(sdk.checkNotifySign(params), 'order.changed message rejected by the SDK');
  assert(JSON.parse(params.biz_content).status === 'SUCCESS', params);
  const q = await sdk.exec('alipay.fund.trans.common.query', {
    bizContent: { out_biz_no: out, product_code: 'TRANS_ACCOUNT_NO_PWD', biz_scene: 'DIRECT_TRANSFER' },
  });
  assert(q.code === '10000' && q.status === 'SUCCESS' && q.transAmount === '1.23', q);
  const after = await sdk.exec('alipay.fund.account.query', {
    bizContent: { alipay_user_id: '2088102177800000', account_type: 'ACCTRANS_ACCOUNT' },
  });
  // Yuan strings to integer fen without a float.
  const fen = (y) => { const [i, f = ''] = y.split('.'); return Number(i) * 100 + Number((f + '00').slice(0, 2)); };
  assert(fen(before.availableAmount) - fen(after.availableAmount) === 123, [before, after]);
});

// ------------------------------------------------------------------ wechatpay-axios-plugin
const merchant = CONF.wechat.merchants[0];
const wxpay = new Wechatpay({
  mchid: merchant.mchid,
  serial: merchant.merchant_serial,
  privateKey: merchant.merchant_private_key,
  certs: { [KEYS.wechat.serial]: KEYS.wechat.public_key },
  secret: merchant.api_v2_key,
  baseURL: `${BASE}/`,
});

await check('wechatpay-axios-plugin: v3 native -> pay -> query -> close another (signed 204)', async () => {
  const out = `nodev3${randomUUID().replace(/-/g, '').slice(0, 16)}`;
  const r = await wxpay.v3.pay.transactions.native.post({
    mchid: merchant.mchid, appid: merchant.appid, description: 'interop', out_trade_no: out,
    notify_url: `${INBOX}/v3`, amount: { total: 1, currency: 'CNY' },
  });
  assert(r.status === 200 && r.data.code_url, r.data);
  await control(`/_sandbox/trades/${await tradeId(out)}/pay`);
  const q = await wxpay.v3.pay.transactions.outTradeNo._out_trade_no_.get({
    params: { mchid: merchant.mchid }, out_trade_no: out,
  });
  assert(q.data.trade_state === 'SUCCESS' && q.data.amount.total === 1, q.data);
  const other = `nodev3${randomUUID().replace(/-/g, '').slice(0, 16)}`;
  await wxpay.v3.pay.transactions.native.post({
    mchid: merchant.mchid, appid: merchant.appid, description: 'interop', out_trade_no: other,
    notify_url: `${INBOX}/v3`, amount: { total: 7, currency: 'CNY' },
  });
  const c = await wxpay.v3.pay.transactions.outTradeNo._out_trade_no_.close.post({ mchid: merchant.mchid }, { out_trade_no: other });
  assert(c.status === 204, c.status);
});

await check('wechatpay-axios-plugin: v2 unifiedorder + orderquery (signed XML)', async () => {
  const out = `nodev2${randomUUID().replace(/-/g, '').slice(0, 16)}`;
  const r = await wxpay.v2.pay.unifiedorder.post({
    appid: merchant.appid, mch_id: merchant.mchid, body: 'interop', out_trade_no: out, total_fee: 1,
    spbill_create_ip: '127.0.0.1', notify_url: `${INBOX}/v2`, trade_type: 'NATIVE', product_id: 'p1',
  });
  assert(r.data.return_code === 'SUCCESS' && r.data.result_code === 'SUCCESS' && r.data.code_url, r.data);
  await control(`/_sandbox/trades/${await tradeId(out)}/pay`);
  const q = await wxpay.v2.pay.orderquery.post({ appid: merchant.appid, mch_id: merchant.mchid, out_trade_no: out });
  assert(q.data.trade_state === 'SUCCESS', q.data);
});

server.close();
const passed = results.filter(Boolean).length;
console.log(`node SDKs: ${passed} passed, ${results.length - passed} failed`);
process.exit(results.length - passed ? 1 : 0);
