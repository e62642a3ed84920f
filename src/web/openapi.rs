//! The OpenAPI 3.1 document of `/api/v1`, generated from the route table and the request and
//! response types' JSON Schemas, so it cannot drift from the routes.

use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use super::error::Problem;
use super::routes::{Access, RouteDoc, Surface, schema};

pub fn document(routes: &[&RouteDoc]) -> Value {
    let mut generator = SchemaSettings::draft2020_12()
        .with(|s| s.definitions_path = "/components/schemas".into())
        .into_generator();
    let problem = schema::<Problem>(&mut generator);
    let mut paths = Map::new();
    for doc in routes.iter().filter(|d| d.surface == Surface::Api) {
        let mut operation = Map::new();
        operation.insert("summary".into(), json!(doc.summary));
        operation.insert(
            "operationId".into(),
            json!(operation_id(doc.method.as_str(), doc.path)),
        );
        if let Access::Role(role) = doc.access {
            operation.insert("x-siteward-min-role".into(), json!(role.as_str()));
        }
        let mut parameters: Vec<Value> = doc
            .params()
            .into_iter()
            .map(|name| {
                json!({"name": name, "in": "path", "required": true,
                       "schema": {"type": "integer", "format": "int64", "minimum": 1}})
            })
            .collect();
        if doc.paginated {
            parameters.push(json!({"name": "limit", "in": "query", "required": false,
                "description": "Items per page, 1–200 (default 50)",
                "schema": {"type": "integer", "minimum": 1, "maximum": 200}}));
            parameters.push(json!({"name": "cursor", "in": "query", "required": false,
                "description": "`next_cursor` of the previous page",
                "schema": {"type": "string"}}));
        }
        if !parameters.is_empty() {
            operation.insert("parameters".into(), Value::Array(parameters));
        }
        if let Some(request) = doc.request {
            let mut media = json!({"schema": request(&mut generator)});
            if let Ok(example) = serde_json::from_str::<Value>(doc.example) {
                media["example"] = example;
            }
            operation.insert(
                "requestBody".into(),
                json!({"required": true, "content": {"application/json": media}}),
            );
        }
        let mut responses = Map::new();
        let success = match doc.response {
            Some(response) if doc.success != 204 => json!({
                "description": "Success",
                "content": {"application/json": {"schema": response(&mut generator)}}
            }),
            _ => json!({"description": "Success, no content"}),
        };
        responses.insert(doc.success.to_string(), success);
        for (status, why) in [
            ("401", "No valid API key"),
            ("403", "The key's scope does not allow this"),
            ("404", "No such object in the key's organization"),
            ("422", "Invalid input; `errors` lists the fields"),
            ("429", "Too many requests; see Retry-After"),
        ] {
            responses.insert(
                status.into(),
                json!({"description": why,
                       "content": {"application/problem+json": {"schema": problem.clone()}}}),
            );
        }
        operation.insert("responses".into(), Value::Object(responses));
        let path = paths
            .entry(doc.path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        path[doc.method.as_str().to_ascii_lowercase()] = Value::Object(operation);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "siteward API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Clients, targets, members, API keys and the audit log of one organization. \
                Authenticate with `Authorization: Bearer sw_<prefix>_<secret>`; read keys act as members, \
                read-write keys as admins. Errors are RFC 9457 problem details. Lists use cursor pagination.",
        },
        "servers": [{"url": "/"}],
        "security": [{"apiKey": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer", "bearerFormat": "sw_<prefix>_<secret>"}},
            "schemas": generator.take_definitions(true),
        }
    })
}

fn operation_id(method: &str, path: &str) -> String {
    let mut id = method.to_ascii_lowercase();
    for part in path.trim_start_matches("/api/v1/").split('/') {
        let part = part.trim_matches(|c| c == '{' || c == '}');
        id.push('_');
        id.push_str(&part.replace('-', "_"));
    }
    id
}
