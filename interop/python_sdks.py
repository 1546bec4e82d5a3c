"""Drives real third-party Python SDKs against a running paybridge sandbox.

python-alipay-sdk (Alipay gateway.do), wechatpayv3 (WeChat Pay APIv3, public-key mode, payments
and 商家转账 transfer bills) and wechatpy (WeChat Pay APIv2) are pointed at the sandbox unchanged
except for their base URL.
Each check prints PASS/FAIL; the last line is `N passed, M failed`.

Usage: python_sdks.py SANDBOX_BASE_URL SANDBOX_TOML
"""

import json
import sys
import threading
import time
import tomllib
import traceback
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

BASE, TOML_PATH = sys.argv[1].rstrip("/"), sys.argv[2]
with open(TOML_PATH, "rb") as f:
    CONF = tomllib.load(f)
KEYS = json.loads(urllib.request.urlopen(BASE + "/_sandbox/keys").read())

results = []


def check(name):
    def wrap(fn):
        try:
            fn()
            results.append((name, True, ""))
            print(f"PASS {name}", flush=True)
        except Exception as e:  # noqa: BLE001 - report every failure and go on
            results.append((name, False, repr(e)))
            print(f"FAIL {name}: {e!r}", flush=True)
            traceback.print_exc()
        return fn
    return wrap


def control(path, body=None, method="POST"):
    data = json.dumps(body or {}).encode()
    req = urllib.request.Request(BASE + path, data=data if method != "GET" else None, method=method,
                                 headers={"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(req).read() or b"null")


def trade_id(out_trade_no):
    trades = json.loads(urllib.request.urlopen(f"{BASE}/_sandbox/trades?out_trade_no={out_trade_no}").read())
    assert len(trades) == 1, trades
    return trades[0]["id"]


class Inbox:
    """A notify_url receiver: records raw requests and answers each protocol's success reply."""

    def __init__(self):
        self.items = []
        self.cond = threading.Condition()
        inbox = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with inbox.cond:
                    inbox.items.append((self.path, dict(self.headers), body))
                    inbox.cond.notify_all()
                if self.path.startswith("/alipay"):
                    reply, ctype = b"success", "text/plain"
                elif self.path.startswith("/v2"):
                    reply = b"<xml><return_code><![CDATA[SUCCESS]]></return_code><return_msg><![CDATA[OK]]></return_msg></xml>"
                    ctype = "text/xml"
                else:
                    self.send_response(204)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def wait_for(self, prefix, marker, timeout=30):
        """The first request to a path starting with `prefix` whose body contains `marker`."""
        deadline = time.time() + timeout
        with self.cond:
            while True:
                for item in self.items:
                    if item[0].startswith(prefix) and marker.encode() in item[2]:
                        return item
                left = deadline - time.time()
                if left <= 0:
                    raise AssertionError(f"no notification to {prefix} containing {marker}")
                self.cond.wait(left)


INBOX = Inbox()

# ---------------------------------------------------------------- python-alipay-sdk
from alipay import AliPay  # noqa: E402
from alipay.utils import AliPayConfig  # noqa: E402

app = next(a for a in CONF["alipay"]["apps"] if a.get("mode", "public_key") == "public_key")
alipay_public_pem = "-----BEGIN PUBLIC KEY-----\n" + KEYS["alipay"]["alipay_public_key"] + "\n-----END PUBLIC KEY-----\n"
alipay = AliPay(
    appid=app["app_id"],
    app_notify_url=INBOX.url + "/alipay",
    app_private_key_string=app["app_private_key"],
    alipay_public_key_string=alipay_public_pem,
    sign_type="RSA2",
    config=AliPayConfig(timeout=15),
)
alipay._gateway = KEYS["alipay"]["gateway"]


@check("python-alipay-sdk: precreate -> buyer pays -> notify verifies -> query -> refund -> refund query")
def _():
    out = "py-ali-" + uuid.uuid4().hex[:12]
    r = alipay.api_alipay_trade_precreate(subject="interop", out_trade_no=out, total_amount="0.01")
    assert r["code"] == "10000" and r["qr_code"], r
    control(f"/_sandbox/trades/{trade_id(out)}/pay")
    _, _, body = INBOX.wait_for("/alipay", out)
    data = dict(parse_qsl(body.decode(), keep_blank_values=True))
    sign = data.pop("sign")
    assert alipay.verify(data, sign), "notification signature rejected by the SDK"
    assert data["trade_status"] == "TRADE_SUCCESS" and data["total_amount"] == "0.01", data
    q = alipay.api_alipay_trade_query(out_trade_no=out)
    assert q["code"] == "10000" and q["trade_status"] == "TRADE_SUCCESS", q
    rf = alipay.api_alipay_trade_refund(refund_amount="0.01", out_trade_no=out, out_request_no=out + "-r1")
    assert rf["code"] == "10000" and rf["refund_fee"] == "0.01", rf
    rq = alipay.api_alipay_trade_fastpay_refund_query(out_request_no=out + "-r1", out_trade_no=out)
    assert rq["code"] == "10000" and rq.get("refund_amount") == "0.01", rq


@check("python-alipay-sdk: create then close; closed trade cannot be paid")
def _():
    out = "py-ali-" + uuid.uuid4().hex[:12]
    r = alipay.api_alipay_trade_create(subject="interop", out_trade_no=out, total_amount="1.00", buyer_id="2088000000000001")
    assert r["code"] == "10000" and r["trade_no"], r
    c = alipay.api_alipay_trade_close(out_trade_no=out)
    assert c["code"] == "10000", c
    q = alipay.api_alipay_trade_query(out_trade_no=out)
    assert q["trade_status"] == "TRADE_CLOSED", q


@check("python-alipay-sdk: page pay URL opens the sandbox buyer page")
def _():
    out = "py-ali-" + uuid.uuid4().hex[:12]
    query = alipay.api_alipay_trade_page_pay(subject="interop", out_trade_no=out, total_amount="2.50", return_url="http://127.0.0.1/return")
    page = urllib.request.urlopen(alipay._gateway + "?" + query).read().decode()
    assert out in page and "2.50" in page, page[:500]


@check("python-alipay-sdk: a wrong app key is refused with isv.invalid-signature")
def _():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    bad = AliPay(appid=app["app_id"], app_notify_url=None, app_private_key_string=other,
                 alipay_public_key_string=alipay_public_pem, sign_type="RSA2")
    bad._gateway = alipay._gateway
    try:
        r = bad.api_alipay_trade_query(out_trade_no="nope")
    except Exception as e:  # an unsigned error_response makes the SDK raise
        r = {"raised": str(e)}
    assert r.get("sub_code") == "isv.invalid-signature" or "invalid-signature" in r.get("raised", ""), r


cert_app = next((a for a in CONF["alipay"]["apps"] if a.get("mode") == "cert"), None)


@check("python-alipay-sdk DCAliPay (certificate mode): SDK-computed cert SNs accepted, signed cert-mode responses verify")
def _():
    from alipay import DCAliPay
    assert cert_app, "the sandbox config has no certificate-mode app"
    dc = DCAliPay(
        appid=cert_app["app_id"],
        app_private_key_string=cert_app["app_private_key"],
        app_public_key_cert_string=cert_app["app_cert"],
        alipay_public_key_cert_string=CONF["alipay"]["alipay_cert"],
        alipay_root_cert_string=CONF["alipay"]["root_cert"],
        app_notify_url=INBOX.url + "/alipay-cert",
    )
    dc._gateway = KEYS["alipay"]["gateway"]
    out = "py-dc-" + uuid.uuid4().hex[:12]
    r = dc.api_alipay_trade_precreate(subject="interop cert", out_trade_no=out, total_amount="0.02")
    assert r["code"] == "10000" and r["qr_code"], r
    control(f"/_sandbox/trades/{trade_id(out)}/pay")
    _, _, body = INBOX.wait_for("/alipay-cert", out)
    data = dict(parse_qsl(body.decode(), keep_blank_values=True))
    sign = data.pop("sign")
    assert dc.verify(data, sign), "notification signature rejected by the SDK"
    q = dc.api_alipay_trade_query(out_trade_no=out)
    assert q["code"] == "10000" and q["trade_status"] == "TRADE_SUCCESS", q


@check("python-alipay-sdk DCAliPay: api_alipay_fund_trans_uni_transfer (certificate mode) -> SUCCESS; a repeat is the same transfer")
def _():
    from alipay import DCAliPay
    dc = DCAliPay(
        appid=cert_app["app_id"],
        app_private_key_string=cert_app["app_private_key"],
        app_public_key_cert_string=cert_app["app_cert"],
        alipay_public_key_cert_string=CONF["alipay"]["alipay_cert"],
        alipay_root_cert_string=CONF["alipay"]["root_cert"],
    )
    dc._gateway = KEYS["alipay"]["gateway"]
    out = "py-dc-xfer-" + uuid.uuid4().hex[:12]
    r = dc.api_alipay_fund_trans_uni_transfer(out_biz_no=out, identity_type="ALIPAY_USER_ID",
                                              identity="2088123412341234", trans_amount="0.50")
    assert r["code"] == "10000" and r["status"] == "SUCCESS" and r["order_id"], r
    again = dc.api_alipay_fund_trans_uni_transfer(out_biz_no=out, identity_type="ALIPAY_USER_ID",
                                                  identity="2088123412341234", trans_amount="0.50")
    assert again["order_id"] == r["order_id"], again
    payouts = json.loads(urllib.request.urlopen(f"{BASE}/_sandbox/payouts?out_no={out}").read())
    assert len(payouts) == 1 and payouts[0]["status"] == "SUCCESS", payouts


# ---------------------------------------------------------------- wechatpayv3 (APIv3)
from wechatpayv3 import WeChatPay, WeChatPayType  # noqa: E402

merchant = CONF["wechat"]["merchants"][0]
wxpay = WeChatPay(
    wechatpay_type=WeChatPayType.NATIVE,
    mchid=merchant["mchid"],
    private_key=merchant["merchant_private_key"],
    cert_serial_no=merchant["merchant_serial"],
    appid=merchant["appid"],
    apiv3_key=merchant["api_v3_key"],
    notify_url=INBOX.url + "/v3",
    public_key=KEYS["wechat"]["public_key"],
    public_key_id=KEYS["wechat"]["serial"],
)
wxpay._core._gate_way = BASE


@check("wechatpayv3: native prepay -> buyer pays -> callback decrypts -> query -> refund -> close other")
def _():
    out = "pyv3" + uuid.uuid4().hex[:16]
    code, msg = wxpay.pay(description="interop", out_trade_no=out, amount={"total": 1})
    assert code == 200, (code, msg)
    assert json.loads(msg)["code_url"], msg
    control(f"/_sandbox/trades/{trade_id(out)}/pay")
    # v3 notifications carry only ciphertext: wait for any new one and let the SDK decrypt it.
    deadline = time.time() + 30
    found = None
    while time.time() < deadline and not found:
        for path, headers, body in list(INBOX.items):
            if path.startswith("/v3"):
                res = wxpay.callback(headers, body)
                if res and res.get("resource", {}).get("out_trade_no") == out:
                    found = res
        time.sleep(0.05)
    assert found, "no notification the SDK could verify and decrypt"
    assert found["resource"]["trade_state"] == "SUCCESS" and found["resource"]["amount"]["total"] == 1, found
    code, msg = wxpay.query(out_trade_no=out)
    assert code == 200 and json.loads(msg)["trade_state"] == "SUCCESS", (code, msg)
    code, msg = wxpay.refund(out_refund_no=out + "r", amount={"refund": 1, "total": 1, "currency": "CNY"}, out_trade_no=out)
    assert code == 200 and json.loads(msg)["status"] in ("SUCCESS", "PROCESSING"), (code, msg)
    other = "pyv3" + uuid.uuid4().hex[:16]
    code, _ = wxpay.pay(description="interop", out_trade_no=other, amount={"total": 5})
    assert code == 200
    code, msg = wxpay.close(out_trade_no=other)
    assert code == 204, (code, msg)


@check("wechatpayv3: unknown order gives 404 ORDER_NOT_EXIST")
def _():
    code, msg = wxpay.query(out_trade_no="nope" + uuid.uuid4().hex[:8])
    assert code == 404 and json.loads(msg)["code"] == "ORDER_NOT_EXIST", (code, msg)


def wait_v3(prefix, predicate, timeout=30):
    """The first v3 notification to `prefix` the SDK verifies and decrypts and `predicate` accepts."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for path, headers, body in list(INBOX.items):
            if path.startswith(prefix):
                res = wxpay.callback(headers, body)
                if res and predicate(res):
                    return res
        time.sleep(0.05)
    raise AssertionError(f"no notification to {prefix} the SDK could verify, decrypt and match")


TRANSFER_SCENE = [{"info_type": "活动名称", "info_content": "互通测试"}, {"info_type": "奖励说明", "info_content": "邀请好友"}]


@check("wechatpayv3: mch_transfer_bills (encrypted user_name) -> payee confirms -> callback decrypts -> query -> receipt; repeat is the same bill; cancel")
def _():
    out = "pyxfer" + uuid.uuid4().hex[:16]
    args = dict(out_bill_no=out, transfer_scene_id="1000", openid="oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
                transfer_amount=200, transfer_remark="互通测试奖励", user_name="张三",
                user_recv_perception="现金奖励", transfer_scene_report_infos=TRANSFER_SCENE,
                notify_url=INBOX.url + "/wxtransfer")
    code, msg = wxpay.mch_transfer_bills(**args)
    assert code == 200, (code, msg)
    bill = json.loads(msg)
    assert bill["state"] == "WAIT_USER_CONFIRM" and bill["package_info"], bill
    code, again = wxpay.mch_transfer_bills(**args)
    assert code == 200 and json.loads(again)["transfer_bill_no"] == bill["transfer_bill_no"], again
    control(f"/_sandbox/payouts/{bill['transfer_bill_no']}/confirm")
    found = wait_v3("/wxtransfer", lambda r: r["resource"].get("out_bill_no") == out)
    assert found["event_type"] == "MCHTRANSFER.BILL.FINISHED", found
    assert found["resource"]["state"] == "SUCCESS" and found["resource"]["transfer_amount"] == 200, found
    code, msg = wxpay.mch_transfer_bills_query(out_bill_no=out)
    assert code == 200 and json.loads(msg)["state"] == "SUCCESS", (code, msg)
    code, msg = wxpay.mch_transfer_bills_query(transfer_bill_no=bill["transfer_bill_no"])
    assert code == 200 and json.loads(msg)["out_bill_no"] == out, (code, msg)
    code, msg = wxpay.mch_transfer_elecsign(out_bill_no=out)
    assert code == 200, (code, msg)
    code, msg = wxpay.mch_transfer_elecsign_query(out_bill_no=out)
    assert code == 200 and json.loads(msg)["state"] == "FINISHED", (code, msg)
    other = "pyxfer" + uuid.uuid4().hex[:16]
    code, msg = wxpay.mch_transfer_bills(**dict(args, out_bill_no=other, user_name=None))
    assert code == 200, (code, msg)
    code, msg = wxpay.mch_transfer_bills_cancel(out_bill_no=other)
    assert code == 200 and json.loads(msg)["state"] in ("CANCELING", "CANCELLED"), (code, msg)


# ---------------------------------------------------------------- wechatpy (APIv2)
from wechatpy.pay import WeChatPay as WeChatPayV2  # noqa: E402


@check("wechatpy: unifiedorder NATIVE -> buyer pays -> signed notify verifies -> orderquery")
def _():
    client = WeChatPayV2(appid=merchant["appid"], api_key=merchant["api_v2_key"], mch_id=merchant["mchid"])
    client.API_BASE_URL = BASE + "/"
    out = "pyv2" + uuid.uuid4().hex[:16]
    r = client.order.create(trade_type="NATIVE", body="interop", total_fee=1, notify_url=INBOX.url + "/v2",
                            out_trade_no=out, product_id="p1", client_ip="127.0.0.1")
    assert r["return_code"] == "SUCCESS" and r["result_code"] == "SUCCESS" and r["code_url"], r
    control(f"/_sandbox/trades/{trade_id(out)}/pay")
    _, _, body = INBOX.wait_for("/v2", out)
    parsed = client.parse_payment_result(body)  # raises InvalidSignatureException on a bad sign
    assert parsed["result_code"] == "SUCCESS" and parsed["out_trade_no"] == out, parsed
    q = client.order.query(out_trade_no=out)
    assert q["trade_state"] == "SUCCESS", q


passed = sum(1 for _, ok, _ in results if ok)
failed = len(results) - passed
print(f"python SDKs: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
