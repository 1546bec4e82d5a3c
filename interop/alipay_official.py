"""Drives the official Alipay Python SDK (alipay-sdk-python) against a running paybridge sandbox:
AlipayFundTransUniTransferRequest, AlipayFundTransCommonQueryRequest and
AlipayFundAccountQueryRequest from an app in certificate mode, and the
alipay.fund.trans.order.changed message verified with the SDK's own signature utility.

The SDK runs unchanged. Two facts of this SDK shape the harness:
- It has no certificate-mode client; its users send `app_cert_sn` and `alipay_root_cert_sn`
  with `add_other_text_param`, computed by Alipay's rule (md5 of issuer DN + serial), as here.
- `WebUtils.get_http_connection` drops the port of `server_url` (it always connects to 80 or
  443), so the harness forwards 127.0.0.1:80 to the sandbox's port.

Prints PASS/FAIL per check and a final `N passed, M failed` line.

Usage: alipay_official.py SANDBOX_BASE_URL SANDBOX_TOML
"""

import base64
import hashlib
import json
import socket
import sys
import threading
import time
import tomllib
import traceback
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlparse

from cryptography import x509
from cryptography.hazmat.primitives import serialization

BASE, TOML_PATH = sys.argv[1].rstrip("/"), sys.argv[2]
with open(TOML_PATH, "rb") as f:
    CONF = tomllib.load(f)

results = []


def check(name):
    def wrap(fn):
        try:
            fn()
            results.append(True)
            print(f"PASS {name}", flush=True)
        except Exception as e:  # noqa: BLE001 - report every failure and go on
            results.append(False)
            print(f"FAIL {name}: {e!r}", flush=True)
            traceback.print_exc()
        return fn
    return wrap


def forward_port_80(target_host, target_port):
    """127.0.0.1:80 -> the sandbox, byte for byte (the SDK cannot reach another port)."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 80))
    listener.listen(16)

    def pump(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def serve():
        while True:
            client, _ = listener.accept()
            upstream = socket.create_connection((target_host, target_port))
            threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=pump, args=(upstream, client), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()


class Inbox:
    """The notify_url: records requests and answers `success`."""

    def __init__(self):
        self.items = []
        inbox = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                inbox.items.append((self.path, body))
                self.send_response(200)
                self.send_header("Content-Length", "7")
                self.end_headers()
                self.wfile.write(b"success")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def wait_for(self, marker, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for path, body in list(self.items):
                if marker.encode() in body:
                    return body
            time.sleep(0.05)
        raise AssertionError(f"no notification containing {marker}")


def cert_sn(cert):
    """Alipay's SN: md5 of the issuer DN (RFC 2253 order) followed by the decimal serial."""
    return hashlib.md5((cert.issuer.rfc4514_string() + str(cert.serial_number)).encode()).hexdigest()


def root_cert_sn(bundle):
    certs = x509.load_pem_x509_certificates(bundle.encode())
    rsa_signed = [c for c in certs if c.signature_algorithm_oid.dotted_string.startswith("1.2.840.113549.1.1")]
    return "_".join(cert_sn(c) for c in rsa_signed)


def body_of(pem_der):
    return base64.b64encode(pem_der).decode()


cert_app = next(a for a in CONF["alipay"]["apps"] if a.get("mode") == "cert")
app_key = serialization.load_pem_private_key(cert_app["app_private_key"].encode(), password=None)
# This SDK loads PKCS#1 (`RSA PRIVATE KEY`) bodies; the sandbox hands out PKCS#8.
app_key_pkcs1 = body_of(app_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL,
                                               serialization.NoEncryption()))
alipay_cert = x509.load_pem_x509_certificate(CONF["alipay"]["alipay_cert"].encode())
alipay_public = body_of(alipay_cert.public_key().public_bytes(serialization.Encoding.DER,
                                                            serialization.PublicFormat.SubjectPublicKeyInfo))
APP_CERT_SN = cert_sn(x509.load_pem_x509_certificate(cert_app["app_cert"].encode()))
ROOT_CERT_SN = root_cert_sn(CONF["alipay"]["root_cert"])

sandbox = urlparse(BASE)
forward_port_80(sandbox.hostname, sandbox.port)
INBOX = Inbox()

from alipay.aop.api.AlipayClientConfig import AlipayClientConfig  # noqa: E402
from alipay.aop.api.DefaultAlipayClient import DefaultAlipayClient  # noqa: E402
from alipay.aop.api.domain.AlipayFundAccountQueryModel import AlipayFundAccountQueryModel  # noqa: E402
from alipay.aop.api.domain.AlipayFundTransCommonQueryModel import AlipayFundTransCommonQueryModel  # noqa: E402
from alipay.aop.api.domain.AlipayFundTransUniTransferModel import AlipayFundTransUniTransferModel  # noqa: E402
from alipay.aop.api.domain.Participant import Participant  # noqa: E402
from alipay.aop.api.request.AlipayFundAccountQueryRequest import AlipayFundAccountQueryRequest  # noqa: E402
from alipay.aop.api.request.AlipayFundTransCommonQueryRequest import AlipayFundTransCommonQueryRequest  # noqa: E402
from alipay.aop.api.request.AlipayFundTransUniTransferRequest import AlipayFundTransUniTransferRequest  # noqa: E402
from alipay.aop.api.response.AlipayFundAccountQueryResponse import AlipayFundAccountQueryResponse  # noqa: E402
from alipay.aop.api.response.AlipayFundTransCommonQueryResponse import AlipayFundTransCommonQueryResponse  # noqa: E402
from alipay.aop.api.response.AlipayFundTransUniTransferResponse import AlipayFundTransUniTransferResponse  # noqa: E402
from alipay.aop.api.util.SignatureUtils import get_sign_content, verify_with_rsa  # noqa: E402

config = AlipayClientConfig()
config.server_url = f"http://127.0.0.1{sandbox.path or ''}/gateway.do"
config.app_id = cert_app["app_id"]
config.app_private_key = app_key_pkcs1
config.alipay_public_key = alipay_public
config.sign_type = "RSA2"
client = DefaultAlipayClient(alipay_client_config=config)


def cert_mode(request):
    request.add_other_text_param("app_cert_sn", APP_CERT_SN)
    request.add_other_text_param("alipay_root_cert_sn", ROOT_CERT_SN)
    return request


def balance():
    model = AlipayFundAccountQueryModel()
    model.alipay_user_id = "2088102177800000"
    model.account_type = "ACCTRANS_ACCOUNT"
    resp = AlipayFundAccountQueryResponse()
    resp.parse_response_content(client.execute(cert_mode(AlipayFundAccountQueryRequest(biz_model=model))))
    assert resp.is_success(), resp.body
    whole, _, frac = resp.available_amount.partition(".")
    return int(whole) * 100 + int((frac + "00")[:2])


def transfer(out):
    model = AlipayFundTransUniTransferModel()
    model.out_biz_no = out
    model.trans_amount = "0.88"
    model.product_code = "TRANS_ACCOUNT_NO_PWD"
    model.biz_scene = "DIRECT_TRANSFER"
    model.order_title = "interop"
    payee = Participant()
    payee.identity = "payee@example.com"
    payee.identity_type = "ALIPAY_LOGON_ID"
    payee.name = "王五"
    model.payee_info = payee
    request = AlipayFundTransUniTransferRequest(biz_model=model)
    request.notify_url = INBOX.url + "/alipay-official"
    resp = AlipayFundTransUniTransferResponse()
    resp.parse_response_content(client.execute(cert_mode(request)))
    return resp


@check("alipay-sdk-python: AlipayFundTransUniTransferRequest -> order.changed verifies -> common.query -> account.query; a repeat is the same transfer")
def _():
    before = balance()
    out = "py-official-" + uuid.uuid4().hex[:12]
    r = transfer(out)
    assert r.is_success() and r.status == "SUCCESS" and r.order_id, r.body
    again = transfer(out)
    assert again.is_success() and again.order_id == r.order_id, again.body
    body = INBOX.wait_for(out)
    fields = dict(parse_qsl(body.decode(), keep_blank_values=True))
    sign = fields.pop("sign")
    fields.pop("sign_type", None)
    assert fields["msg_method"] == "alipay.fund.trans.order.changed", fields
    assert verify_with_rsa(alipay_public, get_sign_content(fields).encode(), sign), "message signature rejected"
    assert json.loads(fields["biz_content"])["status"] == "SUCCESS", fields
    model = AlipayFundTransCommonQueryModel()
    model.out_biz_no = out
    model.product_code = "TRANS_ACCOUNT_NO_PWD"
    model.biz_scene = "DIRECT_TRANSFER"
    q = AlipayFundTransCommonQueryResponse()
    q.parse_response_content(client.execute(cert_mode(AlipayFundTransCommonQueryRequest(biz_model=model))))
    assert q.is_success() and q.status == "SUCCESS" and q.order_id == r.order_id, q.body
    assert before - balance() == 88, "one transfer of 0.88 left the balance"
    payouts = json.loads(urllib.request.urlopen(f"{BASE}/_sandbox/payouts?out_no={out}").read())
    assert len(payouts) == 1, payouts


passed = sum(results)
print(f"alipay-sdk-python: {passed} passed, {len(results) - passed} failed")
sys.exit(0 if passed == len(results) else 1)
