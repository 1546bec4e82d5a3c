//! The OpenAPI 3.1 document served at `/openapi.json`, generated from the handlers'
//! `#[utoipa::path]` annotations and the typed views they answer with, so it cannot drift from
//! the responses. Conventions shared by every merchant route (bearer auth, `Idempotency-Key` on
//! POSTs, RFC 9457 problems) are added in one place by [`Conventions`].

use serde_json::Value;
use utoipa::openapi::path::{Operation, Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Required, ResponseBuilder, Schema, Type};
use utoipa::{Modify, OpenApi};

use super::views;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "paybridge gateway",
        description = "One API over Alipay and WeChat Pay. Amounts are integer fen. Every POST needs an Idempotency-Key header. API keys are bound to one mode (live or sandbox) and carry scopes read, write and refund."
    ),
    paths(
        super::healthz,
        super::readyz,
        super::metrics,
        openapi_json,
        super::create_payment,
        super::list_payments,
        super::get_payment,
        super::get_cashier,
        super::close_payment,
        super::create_refund,
        super::list_refunds,
        super::provider_calls,
        super::timeline,
        super::get_refund,
        super::list_events,
        super::redeliver,
        super::notify_alipay,
        super::notify_wechat_v2_pay,
        super::notify_wechat_v2_refund,
        super::notify_wechat_v3,
        super::reconcile::create,
        super::reconcile::show,
    ),
    components(schemas(views::Problem)),
    modifiers(&Conventions),
    security(("bearer" = []))
)]
pub struct ApiDoc;

/// The document as served, with every response object closed (see [`close_responses`]).
pub fn document() -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or(Value::Null);
    close_responses(&mut doc);
    doc
}

/// Makes the response schemas say exactly what the gateway sends: no property the schema does
/// not name (`additionalProperties: false`), and every nullable property required, because the
/// views serialize `None` as `null` rather than leaving the field out. A property that may be
/// absent is declared non-nullable and not required (`Problem.refundable`). Request bodies are
/// left as derived: there a field may be omitted or `null`.
fn close_responses(doc: &mut Value) {
    let mut requests = Vec::new();
    if let Some(paths) = doc["paths"].as_object() {
        for item in paths.values() {
            for op in item.as_object().into_iter().flat_map(|o| o.values()) {
                let content = &op["requestBody"]["content"];
                for media in content.as_object().into_iter().flat_map(|c| c.values()) {
                    if let Some(r) = media["schema"]["$ref"].as_str() {
                        requests.push(r.rsplit('/').next().unwrap_or_default().to_string());
                    }
                }
            }
        }
    }
    // A request body of alternatives (`oneOf` of references): each alternative is a request.
    if let Some(schemas) = doc["components"]["schemas"].as_object() {
        let alternatives: Vec<String> = requests
            .iter()
            .filter_map(|name| schemas.get(name))
            .flat_map(|s| s["oneOf"].as_array().cloned().unwrap_or_default())
            .filter_map(|alt| alt["$ref"].as_str().map(str::to_string))
            .map(|r| r.rsplit('/').next().unwrap_or_default().to_string())
            .collect();
        requests.extend(alternatives);
    }
    let Some(schemas) = doc["components"]["schemas"].as_object_mut() else {
        return;
    };
    for (name, schema) in schemas.iter_mut() {
        if requests.contains(name) {
            continue;
        }
        let Some(obj) = schema.as_object_mut() else {
            continue;
        };
        let Some(props) = obj.get("properties").and_then(Value::as_object) else {
            continue;
        };
        let nullable: Vec<Value> = props
            .iter()
            .filter(|(_, p)| allows_null(p))
            .map(|(k, _)| Value::String(k.clone()))
            .collect();
        let required = obj
            .entry("required")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Some(list) = required.as_array_mut() {
            for n in nullable {
                if !list.contains(&n) {
                    list.push(n);
                }
            }
        }
        obj.insert("additionalProperties".to_string(), Value::Bool(false));
    }
}

fn allows_null(schema: &Value) -> bool {
    let is_null = |t: &Value| t == "null";
    match &schema["type"] {
        Value::Array(types) if types.iter().any(is_null) => return true,
        t if is_null(t) => return true,
        _ => {}
    }
    ["oneOf", "anyOf"].iter().any(|k| {
        schema[*k]
            .as_array()
            .is_some_and(|alts| alts.iter().any(allows_null))
    })
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", operation_id = "openapi", security(()),
    responses((status = 200, description = "this document", content_type = "application/json")))]
pub(super) async fn openapi_json() -> axum::Json<Value> {
    axum::Json(document())
}

/// Statuses every merchant route may answer with a problem.
const PROBLEM_STATUSES: [&str; 7] = ["400", "401", "403", "404", "409", "413", "422"];

struct Conventions;

impl Modify for Conventions {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.security_schemes.insert(
            "bearer".to_string(),
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.responses.insert(
            "Problem".to_string(),
            RefOr::T(
                ResponseBuilder::new()
                    .description("An RFC 9457 problem with a stable `code`")
                    .content(
                        "application/problem+json",
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("Problem")))
                            .build(),
                    )
                    .build(),
            ),
        );
        for (path, item) in doc.paths.paths.iter_mut() {
            if !path.starts_with("/v1/") {
                continue;
            }
            if let Some(op) = item.get.as_mut() {
                add_problems(op);
            }
            if let Some(op) = item.post.as_mut() {
                add_problems(op);
                op.parameters
                    .get_or_insert_with(Vec::new)
                    .push(idempotency_key());
            }
        }
    }
}

fn add_problems(op: &mut Operation) {
    for status in PROBLEM_STATUSES {
        op.responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| RefOr::Ref(Ref::new("#/components/responses/Problem")));
    }
}

fn idempotency_key() -> Parameter {
    let schema = utoipa::openapi::ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(255))
        .build();
    ParameterBuilder::new()
        .name("Idempotency-Key")
        .parameter_in(ParameterIn::Header)
        .required(Required::True)
        .description(Some(
            "Same key and body: the first answer again. Same key, other body: 422 idempotency_key_reused.",
        ))
        .schema(Some(RefOr::T(Schema::Object(schema))))
        .build()
}
