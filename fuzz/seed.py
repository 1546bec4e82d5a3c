#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into fuzz/corpus/<target>/ (gitignored).

Seeds come from two places, both made at run time so that no vector value is ever kept in
the repository: the shared protocol vectors at $PAYBRIDGE_VECTORS (default ../shared/vectors
beside the checkout), and samples written here in each provider's format with made-up values.
Only the standard library is used.

    python3 fuzz/seed.py            # all targets
"""

import gzip
import hashlib
import io
import json
import os
import pathlib
import sys
import urllib.parse
import zipfile

FUZZ = pathlib.Path(__file__).resolve().parent
CORPUS = FUZZ / "corpus"
VECTORS = pathlib.Path(
    os.environ.get("PAYBRIDGE_VECTORS") or (FUZZ.parent.parent / "shared" / "vectors")
)

seeds: dict[str, list[bytes]] = {}


def add(target: str, data) -> None:
    if isinstance(data, str):
        data = data.encode("utf-8")
    seeds.setdefault(target, []).append(data)


def vectors(name: str) -> list[dict]:
    path = VECTORS / name
    if not path.exists():
        return []
    return json.loads(path.read_text(encoding="utf-8"))["vectors"]


def vector_file(name: str) -> bytes | None:
    path = VECTORS / name
    return path.read_bytes() if path.exists() else None


def form(params: dict, encoding: str = "utf-8") -> bytes:
    return urllib.parse.urlencode(params, encoding=encoding).encode("ascii")


def cdata_xml(fields: dict, root: str = "xml") -> str:
    body = "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in fields.items())
    return f"<{root}>{body}</{root}>"


# ---------------------------------------------------------------------------------- vectors

def from_vectors() -> None:
    form_ct = "application/x-www-form-urlencoded; charset=utf-8\n"
    for name in ("alipay_notify.json", "alipay_notify_v2.json"):
        for v in vectors(name):
            add("alipay_notify", form_ct.encode() + form(v["input"]["params"]))
    for name in (
        "alipay_response_extract.json",
        "alipay_response_extract_more.json",
        "alipay_response_verify.json",
    ):
        for v in vectors(name):
            if "response" not in v["input"]:
                continue
            node = v["input"].get("method_node", "")
            method = node[: -len("_response")] if node.endswith("_response") else node
            add("alipay_response", f"{method}\n{v['input']['response']}")
    for name in ("wechat_v2_sign.json", "wechat_v2_sign_more.json"):
        for v in vectors(name):
            params = dict(v["input"]["params"])
            if "sign" in (v.get("expected") or {}):
                params["sign"] = v["expected"]["sign"]
            add("wechat_v2_xml", cdata_xml(params))
    for name in ("wechat_v2_req_info.json", "wechat_v2_req_info_more.json"):
        for v in vectors(name):
            exp = v.get("expected") or {}
            if isinstance(exp.get("fields"), dict):
                add("wechat_v2_xml", cdata_xml(exp["fields"], exp.get("root", "root")))
            if "req_info" in v["input"]:
                add("wechat_v2_xml", cdata_xml({
                    "return_code": "SUCCESS", "appid": "wx0", "mch_id": "1",
                    "req_info": v["input"]["req_info"],
                }))
    for v in vectors("wechat_v2_xml.json"):
        data = vector_file(v["input"]["xml_file"])
        if data is not None:
            add("wechat_v2_xml", data)
    for name in ("wechat_v3_sign.json", "wechat_v3_sign_more.json"):
        for v in vectors(name):
            auth = (v.get("expected") or {}).get("authorization")
            if auth:
                add("wechat_v3_headers", auth)
    for v in vectors("wechat_v3_notify.json"):
        inp = v["input"]
        if isinstance(inp.get("headers"), dict):
            head = "\n".join(f"{k}: {val}" for k, val in inp["headers"].items())
            add("wechat_v3_headers", f"{head}\n\n{inp.get('body', '')}")
        if "body" in inp:
            add("wechat_v3_resource", inp["body"])
        plain = (v.get("expected") or {}).get("plaintext")
        if plain:
            add("wechat_v3_resource", b"\x03" + plain.encode())
    for name in ("wechat_v3_aes_gcm.json", "wechat_v3_aes_gcm_more.json"):
        for v in vectors(name):
            plain = v["input"].get("plaintext") or (v.get("expected") or {}).get("plaintext")
            if plain:
                add("wechat_v3_resource", b"\x00" + plain.encode())
    for v in vectors("wechat_v3_cert_download.json"):
        if "response_file" in v["input"]:
            data = vector_file(v["input"]["response_file"])
            if data is not None:
                add("wechat_v3_resource", data)
    certs = VECTORS / "certs"
    if certs.is_dir():
        for crt in sorted(certs.glob("*.crt"))[:3]:
            add("wechat_v3_resource", b"\x03" + crt.read_bytes())
    for v in vectors("wechat_bill.json"):
        data = vector_file(v["input"]["csv_file"])
        if data is not None:
            add("bill_wechat", data)
            lines = data.split(b"\n")
            add("bill_wechat", b"\n".join(lines[:3] + lines[-3:]))


# --------------------------------------------------------------------------------- our own

def own_samples() -> None:
    trade = {
        "notify_time": "2024-01-01 12:00:05", "notify_type": "trade_status_sync",
        "notify_id": "ac05099524730693a8b330c5ecf72da9786", "charset": "utf-8", "version": "1.0",
        "sign_type": "RSA2", "sign": "c2lnbmF0dXJl", "app_id": "2021000000000000",
        "trade_no": "2024010122001400000000000001", "out_trade_no": "ORDER0001",
        "out_biz_no": "", "buyer_id": "2088000000000001", "seller_id": "2088000000000002",
        "trade_status": "TRADE_SUCCESS", "total_amount": "12.30", "receipt_amount": "12.30",
        "buyer_pay_amount": "12.30", "refund_fee": "0.00", "subject": "咖啡",
        "gmt_create": "2024-01-01 12:00:00", "gmt_payment": "2024-01-01 12:00:04",
        "fund_bill_list": '[{"amount":"12.30","fundChannel":"ALIPAYACCOUNT"}]',
        "passback_params": "a%3D1",
    }
    add("alipay_notify", b"\n" + form(trade))
    gbk = dict(trade, charset="GBK", trade_status="TRADE_FINISHED", refund_fee="1.00",
               gmt_refund="2024-01-02 09:00:00", out_biz_no="REFUND0001")
    add("alipay_notify", b"\n" + form(gbk, "gbk"))
    no_charset = {k: v for k, v in gbk.items() if k != "charset"}
    add("alipay_notify", b"text/plain; charset=\"GBK\"\n" + form(no_charset, "gbk"))
    add("alipay_notify", b"\nsubject=a%26out_trade_no%3Dx&a=1&a=2&b&%zz=%E4%B8")

    ok = '{"code":"10000","msg":"Success","trade_no":"2024","out_trade_no":"ORDER0001",' \
         '"total_amount":"12.30","trade_status":"TRADE_SUCCESS","buyer_pay_amount":"12.30"}'
    add("alipay_response", f'alipay.trade.query\n{{"alipay_trade_query_response":{ok},"sign":"c2ln"}}')
    add("alipay_response", 'alipay.trade.pay\n{"error_response":{"code":"40002","msg":"Invalid '
                           'Arguments","sub_code":"isv.invalid-app-id","sub_msg":"x"}}')
    add("alipay_response", 'alipay.trade.refund\n{"alipay_trade_refund_response":"HJjZXDcVHUcOrBy'
                           'ocVgEmi4JxHzS7t5uQ7RGgvntf1k=","sign":"c2ln","alipay_cert_sn":"abc"}')
    add("alipay_response", 'alipay.trade.precreate\n{"alipay_trade_precreate_response":{"code":"100'
                           '00","qr_code":"https:\\/\\/qr.alipay.com\\/x","a":["}",{"b":"\\""}]},'
                           '"sign":"c2ln"}')

    notify = {
        "return_code": "SUCCESS", "appid": "wx0000000000000000", "mch_id": "1900000000",
        "nonce_str": "5K8264ILTKCH16CQ2502SI8ZNMTM67VS", "result_code": "SUCCESS",
        "openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", "trade_type": "JSAPI", "bank_type": "CFT",
        "total_fee": "123", "cash_fee": "123", "fee_type": "CNY",
        "transaction_id": "4200000000202401010000000001", "out_trade_no": "ORDER0001",
        "time_end": "20240101120004", "attach": "a&b<c>", "sign": "0" * 32,
    }
    add("wechat_v2_xml", cdata_xml(notify))
    add("wechat_v2_xml", "<xml><return_code>FAIL</return_code><return_msg>签名错误 &amp; &#x4e2d;"
                         "</return_msg><e/></xml>")
    refundquery = {
        "return_code": "SUCCESS", "result_code": "SUCCESS", "refund_count": "2",
        "out_refund_no_0": "R1", "refund_fee_0": "100", "refund_status_0": "SUCCESS",
        "out_refund_no_1": "R2", "refund_fee_1": "50", "refund_status_1": "PROCESSING",
        "refund_success_time_0": "2024-01-01 12:00:00", "prepay_id": "wx01",
        "refund_fee": "100", "out_refund_no": "R1",
    }
    add("wechat_v2_xml", cdata_xml(refundquery))
    add("wechat_v2_xml", cdata_xml({
        "out_refund_no": "R1", "out_trade_no": "ORDER0001", "refund_id": "50000",
        "total_fee": "123", "refund_fee": "100", "settlement_refund_fee": "100",
        "refund_status": "SUCCESS", "success_time": "2024-01-01 12:00:00",
        "refund_recv_accout": "支付用户零钱", "transaction_id": "4200"}, "root"))
    add("wechat_v2_xml", '<?xml version="1.0"?><!--c--><xml><a><![CDATA[x]]]]><![CDATA[>y]]></a>'
                         "<b>1</b></xml>")
    add("wechat_v2_xml", "<xml><error_code>20002</error_code><return_msg>No Bill Exist"
                         "</return_msg></xml>")

    schema = "WECHATPAY2-SHA256-RSA2048"
    add("wechat_v3_headers", f'{schema} mchid="1900000000",nonce_str="593BEC0C930BF1AFEB40B4A08C8FB'
                             f'242",timestamp="1700000000",serial_no="1DDE55AD98ED71D6EDD4A4A16996'
                             f'DE7B47773A8C",signature="c2lnbmF0dXJl"')
    add("wechat_v3_headers", f'{schema} signature="s", serial_no="X",timestamp="1700000001", '
                             f'extra="e",nonce_str="n",mchid="m"')
    add("wechat_v3_headers", "Wechatpay-Timestamp: 1700000000\nWechatpay-Nonce: n\n"
                             "Wechatpay-Signature: WECHATPAY/SIGNTEST/abc\n"
                             "wechatpay-serial: PUB_KEY_ID_0000000000000000000000000000\n\n{}")

    transaction = {
        "appid": "wx0000000000000000", "mchid": "1900000000", "out_trade_no": "ORDER0001",
        "transaction_id": "4200000000202401010000000001", "trade_type": "NATIVE",
        "trade_state": "SUCCESS", "trade_state_desc": "支付成功", "bank_type": "OTHERS",
        "attach": "", "success_time": "2024-01-01T12:00:04+08:00",
        "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
        "amount": {"total": 123, "payer_total": 123, "currency": "CNY", "payer_currency": "CNY"},
        "promotion_detail": [{"coupon_id": "1", "amount": 1}],
    }
    refund = {
        "mchid": "1900000000", "out_trade_no": "ORDER0001", "transaction_id": "4200",
        "out_refund_no": "R1", "refund_id": "50000", "refund_status": "SUCCESS",
        "success_time": "2024-01-01T12:00:04+08:00", "user_received_account": "支付用户零钱",
        "status": "SUCCESS", "channel": "ORIGINAL", "create_time": "2024-01-01T12:00:00+08:00",
        "amount": {"total": 123, "refund": 100, "payer_total": 123, "payer_refund": 100,
                   "settlement_refund": 100, "settlement_total": 123, "discount_refund": 0,
                   "currency": "CNY", "from": []},
    }
    add("wechat_v3_resource", b"\x00" + json.dumps(transaction, ensure_ascii=False).encode())
    add("wechat_v3_resource", b"\x01" + json.dumps(refund, ensure_ascii=False).encode())
    add("wechat_v3_resource", json.dumps({"prepay_id": "wx01", "code_url": "weixin://x",
                                          "h5_url": "https://wx.tenpay.com/x"}))
    add("wechat_v3_resource", json.dumps({"code": "PARAM_ERROR", "message": "bad",
                                          "detail": {"field": "amount"}}))
    add("wechat_v3_resource", json.dumps({
        "id": "EV-1", "create_time": "2024-01-01T12:00:05+08:00",
        "event_type": "TRANSACTION.SUCCESS", "resource_type": "encrypt-resource",
        "summary": "支付成功", "resource": {
            "algorithm": "AEAD_AES_256_GCM", "ciphertext": "c2lnbmF0dXJlc2lnbmF0dXJl",
            "associated_data": "transaction", "nonce": "fuzznonce012",
            "original_type": "transaction"}}, ensure_ascii=False))

    columns = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型," \
              "交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额," \
              "充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注"
    pay = ["2024-01-01 12:00:04", "wx0", "1900000000", "0", "", "4200", "ORDER0001", "o",
           "NATIVE", "SUCCESS", "OTHERS", "CNY", "1.23", "0.00", "0", "0", "0.00", "0.00", "",
           "", "咖啡, 大杯", "", "0.01000", "0.60%", "1.23", "0.00", ""]
    ref = list(pay)
    ref[9], ref[14], ref[15], ref[16], ref[19], ref[22], ref[25] = (
        "REFUND", "5000", "R1", "1.00", "SUCCESS", "-0.01", "1.00")
    summary = "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"
    text = "\ufeff" + columns + "\r\n" + "".join(
        "`" + ",`".join(r) + "\r\n" for r in (pay, ref)) + summary + "\r\n" + \
        "`2,`1.23,`1.00,`0.00,`0.00,`1.23,`1.00\r\n"
    add("bill_wechat", text)
    add("bill_wechat", gzip.compress(text.encode("utf-8")))
    add("bill_wechat", json.dumps({"hash_type": "SHA1", "hash_value": hashlib.sha1(b"").hexdigest(),
                                   "download_url": "https://api.mch.weixin.qq.com/v3/billdownload/"
                                                   "file?token=abc"}))

    detail_cols = ["支付宝交易号", "商户订单号", "业务类型", "商品名称", "创建时间", "完成时间", "门店编号",
                   "门店名称", "操作员", "终端号", "对方账户", "订单金额（元）", "商家实收（元）",
                   "支付宝红包（元）", "集分宝（元）", "支付宝优惠（元）", "商家优惠（元）", "券核销金额（元）",
                   "券名称", "商家红包消费金额（元）", "卡消费金额（元）", "退款批次号/请求号", "服务费（元）",
                   "分润（元）", "备注"]
    row_pay = ["2024010122001400000000000001", "ORDER0001", "交易", '"咖啡, ""大杯"""',
               "2024-01-01 12:00:00", "2024-01-01 12:00:04", "", "", "", "", "buyer@example.com",
               "12.30", "12.30", "0.00", "0.00", "0.00", "0.00", "0.00", "", "0.00", "0.00", "",
               "-0.07", "0.00", ""]
    row_ref = list(row_pay)
    row_ref[2], row_ref[11], row_ref[12], row_ref[21], row_ref[22], row_ref[24] = (
        "退款", "-1.00", "-1.00", "REFUND0001", "0.01", "TRADE_CLOSED")
    csv = ("#支付宝业务明细查询\r\n#账号：[20880000000000000156]\r\n"
           "#起始日期：[2024-01-01 00:00:00]   终止日期：[2024-01-01 23:59:59]\r\n"
           "#-----------------------------------------业务明细列表----------------------------------------\r\n"
           + ",".join(detail_cols) + "\r\n"
           + "".join(",".join(f"{v}\t" for v in r) + "\r\n" for r in (row_pay, row_ref))
           + "#-----------------------------------------业务明细列表结束------------------------------------\r\n"
           + "#交易合计：1笔，退款合计：1笔\r\n#导出时间：[2024-01-01 23:59:59]\r\n")
    csv_gbk = csv.encode("gbk")
    add("bill_alipay", csv_gbk)
    for method in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", method) as z:
            z.writestr("20880000000000000156_20240101_业务明细.csv", csv_gbk)
            z.writestr("20880000000000000156_20240101_业务明细(汇总).csv", "#汇总\r\n".encode("gbk"))
        add("bill_alipay", buf.getvalue())

    for value in ("Bearer pb_test_0123456789abcdef", "bearer  pb_live_x  ", "Bearer ",
                  "Basic dXNlcjpwYXNz", "Bearer " + "k" * 300):
        add("server_auth", value)


def main() -> int:
    if not VECTORS.is_dir():
        print(f"seed.py: no vectors at {VECTORS}; seeding from our own samples only",
              file=sys.stderr)
    from_vectors()
    own_samples()
    for target, items in sorted(seeds.items()):
        out = CORPUS / target
        out.mkdir(parents=True, exist_ok=True)
        for data in items:
            (out / hashlib.sha1(data).hexdigest()).write_bytes(data)
        print(f"{target}: {len(items)} seeds in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
