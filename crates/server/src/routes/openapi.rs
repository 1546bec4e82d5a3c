//! The OpenAPI 3 document served at `/openapi.json`, written by hand next to the routes it
//! describes (a test checks every route appears in it).

use serde_json::{json, Value};

fn problem_responses() -> Value {
    json!({
        "400": {"$ref": "#/components/responses/Problem"},
        "401": {"$ref": "#/components/responses/Problem"},
        "403": {"$ref": "#/components/responses/Problem"},
        "404": {"$ref": "#/components/responses/Problem"},
        "409": {"$ref": "#/components/responses/Problem"},
        "422": {"$ref": "#/components/responses/Problem"}
    })
}

fn ok(schema: &str, status: &str) -> Value {
    let mut r = problem_responses();
    r[status] = json!({
        "description": "OK",
        "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}
    });
    r
}

fn id_param(name: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}})
}

fn idem_param() -> Value {
    json!({"$ref": "#/components/parameters/IdempotencyKey"})
}

pub fn document() -> Value {
    let mut doc = json!({
        "openapi": "3.0.3",
        "info": {
            "title": "paybridge gateway",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "One API over Alipay and WeChat Pay. Amounts are integer fen. Every POST needs an Idempotency-Key header. API keys are bound to one mode (live or sandbox) and carry scopes read, write and refund."
        },
        "security": [{"bearer": []}],
        "paths": {
            "/v1/payments": {
                "post": {
                    "operationId": "createPayment",
                    "summary": "Create a payment and return what the buyer's client needs",
                    "description": "Scope: write.",
                    "parameters": [idem_param()],
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CreatePayment"}}}},
                    "responses": ok("Payment", "201")
                },
                "get": {
                    "operationId": "listPayments",
                    "summary": "List payments of the key's mode, newest first",
                    "description": "Scope: read.",
                    "parameters": [
                        {"name": "account", "in": "query", "schema": {"type": "string"}},
                        {"name": "channel", "in": "query", "schema": {"$ref": "#/components/schemas/Channel"}},
                        {"name": "status", "in": "query", "schema": {"$ref": "#/components/schemas/PaymentStatus"}},
                        {"name": "out_trade_no", "in": "query", "schema": {"type": "string"}},
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
                        {"name": "after", "in": "query", "description": "next_cursor of the previous page", "schema": {"type": "string"}}
                    ],
                    "responses": ok("PaymentList", "200")
                }
            },
            "/v1/payments/{id}": {
                "get": {
                    "operationId": "getPayment",
                    "description": "Scope: read.",
                    "parameters": [id_param("id")],
                    "responses": ok("Payment", "200")
                }
            },
            "/v1/payments/{id}/close": {
                "post": {
                    "operationId": "closePayment",
                    "summary": "Close an unpaid payment at the provider (barcode payments are cancelled)",
                    "description": "Scope: write.",
                    "parameters": [id_param("id"), idem_param()],
                    "responses": ok("Payment", "200")
                }
            },
            "/v1/payments/{id}/refunds": {
                "post": {
                    "operationId": "createRefund",
                    "summary": "Refund part or all of a paid payment",
                    "description": "Scope: refund. The sum of refunds can never exceed the payment.",
                    "parameters": [id_param("id"), idem_param()],
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CreateRefund"}}}},
                    "responses": ok("Refund", "201")
                },
                "get": {
                    "operationId": "listRefunds",
                    "description": "Scope: read.",
                    "parameters": [id_param("id")],
                    "responses": ok("RefundList", "200")
                }
            },
            "/v1/payments/{id}/provider-calls": {
                "get": {
                    "operationId": "listProviderCalls",
                    "summary": "Every call made to the provider for this payment, redacted",
                    "description": "Scope: read.",
                    "parameters": [id_param("id")],
                    "responses": ok("ProviderCallList", "200")
                }
            },
            "/v1/payments/{id}/timeline": {
                "get": {
                    "operationId": "paymentTimeline",
                    "summary": "Queries, notifications and state changes of one payment",
                    "description": "Scope: read.",
                    "parameters": [id_param("id")],
                    "responses": ok("Timeline", "200")
                }
            },
            "/v1/refunds/{id}": {
                "get": {
                    "operationId": "getRefund",
                    "description": "Scope: read.",
                    "parameters": [id_param("id")],
                    "responses": ok("Refund", "200")
                }
            },
            "/v1/events": {
                "get": {
                    "operationId": "listEvents",
                    "summary": "The event feed of the key's mode, oldest first, for merchants who pull",
                    "description": "Scope: read.",
                    "parameters": [
                        {"name": "after", "in": "query", "schema": {"type": "string"}},
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}}
                    ],
                    "responses": ok("EventList", "200")
                }
            },
            "/v1/events/{id}/redeliver": {
                "post": {
                    "operationId": "redeliverEvent",
                    "summary": "Send an event to the webhook endpoints again",
                    "description": "Scope: write.",
                    "parameters": [id_param("id"), idem_param()],
                    "responses": ok("Redelivery", "200")
                }
            },
            "/healthz": {
                "get": {"operationId": "health", "security": [], "responses": {"200": {"description": "database reachable"}}}
            },
            "/openapi.json": {
                "get": {"operationId": "openapi", "security": [], "responses": {"200": {"description": "this document"}}}
            },
            "/notify/alipay/{account}": {
                "post": {"operationId": "notifyAlipay", "tags": ["provider"], "security": [], "summary": "Alipay asynchronous notifications", "parameters": [id_param("account")], "responses": {"200": {"description": "provider reply"}}}
            },
            "/notify/wechat/v2/{account}/pay": {
                "post": {"operationId": "notifyWechatV2Pay", "tags": ["provider"], "security": [], "parameters": [id_param("account")], "responses": {"200": {"description": "provider reply"}}}
            },
            "/notify/wechat/v2/{account}/refund": {
                "post": {"operationId": "notifyWechatV2Refund", "tags": ["provider"], "security": [], "parameters": [id_param("account")], "responses": {"200": {"description": "provider reply"}}}
            },
            "/notify/wechat/v3/{account}": {
                "post": {"operationId": "notifyWechatV3", "tags": ["provider"], "security": [], "parameters": [id_param("account")], "responses": {"200": {"description": "provider reply"}}}
            }
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "parameters": {
                "IdempotencyKey": {
                    "name": "Idempotency-Key", "in": "header", "required": true,
                    "description": "Same key and body: the first answer again. Same key, other body: 422 idempotency_key_reused.",
                    "schema": {"type": "string", "maxLength": 255}
                }
            },
            "responses": {
                "Problem": {
                    "description": "An RFC 9457 problem with a stable `code`",
                    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
                }
            },
            "schemas": {
                "Problem": {"type": "object", "required": ["code", "status", "detail"], "properties": {
                    "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
                    "code": {"type": "string", "enum": [
                        "unauthenticated", "invalid_api_key", "forbidden", "not_found", "validation_failed",
                        "idempotency_key_missing", "idempotency_key_reused", "idempotency_in_progress", "conflict",
                        "invalid_state", "refund_exceeds_payment", "provider_refused", "provider_outcome_unknown",
                        "unknown_account", "payload_too_large", "internal"]},
                    "detail": {"type": "string"}, "refundable": {"type": "integer"}
                }},
                "Channel": {"type": "string", "enum": ["alipay", "wechat"]},
                "Scene": {"type": "string", "enum": ["pc", "wap", "app", "qr", "jsapi", "barcode"]},
                "Mode": {"type": "string", "enum": ["live", "sandbox"]},
                "PaymentStatus": {"type": "string", "enum": ["created", "pending", "paid", "partially_refunded", "refunded", "closed", "failed"]},
                "RefundStatus": {"type": "string", "enum": ["pending", "succeeded", "failed"]},
                "CreatePayment": {"type": "object", "required": ["channel", "scene", "amount", "out_trade_no", "subject"], "properties": {
                    "account": {"type": "string", "description": "Config account id; optional when the key's mode has one account for the channel"},
                    "channel": {"$ref": "#/components/schemas/Channel"},
                    "scene": {"$ref": "#/components/schemas/Scene"},
                    "amount": {"type": "integer", "minimum": 1, "description": "fen"},
                    "out_trade_no": {"type": "string", "maxLength": 32, "pattern": "^[A-Za-z0-9_-]+$"},
                    "subject": {"type": "string", "maxLength": 128},
                    "description": {"type": "string"},
                    "expires_in": {"type": "integer", "description": "seconds until the buyer can no longer pay (60..86400*15, default 7200)"},
                    "return_url": {"type": "string"},
                    "client_ip": {"type": "string"},
                    "payer_id": {"type": "string", "description": "WeChat openid / Alipay buyer id (jsapi)"},
                    "auth_code": {"type": "string", "description": "buyer's code (barcode)"},
                    "metadata": {"type": "object"}
                }},
                "ClientAction": {"type": "object", "required": ["type"], "properties": {
                    "type": {"type": "string", "enum": ["redirect", "form", "qr_code", "app_order_string", "client_params", "trade_no", "barcode"]},
                    "url": {"type": "string"}, "html": {"type": "string"}, "code_url": {"type": "string"},
                    "order_string": {"type": "string"}, "params": {"type": "object", "additionalProperties": {"type": "string"}},
                    "trade_no": {"type": "string"}, "snapshot": {"type": "object"}
                }},
                "Payment": {"type": "object", "properties": {
                    "id": {"type": "string"}, "object": {"type": "string", "enum": ["payment"]},
                    "mode": {"$ref": "#/components/schemas/Mode"}, "account": {"type": "string"},
                    "channel": {"$ref": "#/components/schemas/Channel"}, "scene": {"$ref": "#/components/schemas/Scene"},
                    "out_trade_no": {"type": "string"}, "amount": {"type": "integer"}, "currency": {"type": "string"},
                    "subject": {"type": "string"}, "status": {"$ref": "#/components/schemas/PaymentStatus"},
                    "provider_trade_no": {"type": "string", "nullable": true},
                    "client_action": {"allOf": [{"$ref": "#/components/schemas/ClientAction"}], "nullable": true},
                    "paid_amount": {"type": "integer", "nullable": true}, "refunded_amount": {"type": "integer"},
                    "paid_at": {"type": "integer", "nullable": true, "description": "unix ms"},
                    "late_payment": {"type": "boolean"}, "expires_at": {"type": "integer", "nullable": true},
                    "metadata": {"type": "object"}, "created_at": {"type": "integer"}, "updated_at": {"type": "integer"}
                }},
                "PaymentList": {"type": "object", "properties": {"data": {"type": "array", "items": {"$ref": "#/components/schemas/Payment"}}, "next_cursor": {"type": "string", "nullable": true}}},
                "CreateRefund": {"type": "object", "required": ["amount"], "properties": {
                    "amount": {"type": "integer", "minimum": 1}, "out_refund_no": {"type": "string", "maxLength": 64}, "reason": {"type": "string"}
                }},
                "Refund": {"type": "object", "properties": {
                    "id": {"type": "string"}, "object": {"type": "string", "enum": ["refund"]}, "payment_id": {"type": "string"},
                    "mode": {"$ref": "#/components/schemas/Mode"}, "out_refund_no": {"type": "string"}, "amount": {"type": "integer"},
                    "status": {"$ref": "#/components/schemas/RefundStatus"}, "reason": {"type": "string", "nullable": true},
                    "provider_refund_no": {"type": "string", "nullable": true}, "failure_reason": {"type": "string", "nullable": true},
                    "created_at": {"type": "integer"}, "updated_at": {"type": "integer"}
                }},
                "RefundList": {"type": "object", "properties": {"data": {"type": "array", "items": {"$ref": "#/components/schemas/Refund"}}}},
                "Event": {"type": "object", "required": ["id", "type", "created", "mode", "data"], "properties": {
                    "id": {"type": "string"}, "type": {"type": "string", "enum": ["payment.paid", "payment.closed", "payment.failed", "refund.succeeded", "refund.failed"]},
                    "created": {"type": "integer", "description": "unix seconds"}, "mode": {"$ref": "#/components/schemas/Mode"}, "data": {"type": "object"}
                }},
                "EventList": {"type": "object", "properties": {"data": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}}, "next_cursor": {"type": "string", "nullable": true}}},
                "Redelivery": {"type": "object", "properties": {"event_id": {"type": "string"}, "deliveries": {"type": "integer"}}},
                "ProviderCallList": {"type": "object", "properties": {"data": {"type": "array", "items": {"type": "object", "properties": {
                    "id": {"type": "string"}, "operation": {"type": "string"}, "request": {"type": "string"}, "response": {"type": "string", "nullable": true},
                    "http_status": {"type": "integer", "nullable": true}, "latency_ms": {"type": "integer"}, "outcome": {"type": "string"}, "created_at": {"type": "integer"}
                }}}}},
                "Timeline": {"type": "object", "properties": {"data": {"type": "array", "items": {"type": "object"}}}}
            }
        }
    });
    super::reconcile::document(&mut doc);
    doc
}
