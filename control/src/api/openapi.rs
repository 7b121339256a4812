//! The OpenAPI 3.0 document of the API, served at `/api/openapi.json`.
//!
//! Written by hand: the model types live in `dataplane-common`, which does not depend on an
//! OpenAPI generator, so a derive could not describe them without mirror types. The schemas
//! follow the model's serde shapes (`deny_unknown_fields` is `additionalProperties: false`)
//! and its `Validate` limits; `tests/api.rs` checks that every documented operation is
//! routed, and `tests/schemathesis.rs` fuzzes the API from this document.

use super::page::{DEFAULT_LIMIT, MAX_LIMIT};
use axum::Json;
use dataplane_common::model::{MAX_TTL, MAX_WEIGHT};
use serde_json::{Map, Value, json};
use std::sync::LazyLock;

static DOCUMENT: LazyLock<Value> = LazyLock::new(build);

/// The document.
pub fn document() -> &'static Value {
    &DOCUMENT
}

/// `GET /api/openapi.json`.
pub(crate) async fn serve() -> Json<&'static Value> {
    Json(document())
}

fn build() -> Value {
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "dataplane control API",
            "version": "1",
            "description": "User zones, record sets and VIPs; health state and nodes (read-only). \
                Objects derived from Kubernetes (`source: kubernetes`) are read-only. \
                Optimistic concurrency: every object has an ETag (its store revision); \
                PUT without If-Match creates (409 if it exists), PUT or DELETE with \
                If-Match replaces or deletes only at that revision (412 otherwise). \
                Errors are `{\"error\", \"reason\", \"field\"}`."
        },
        "security": [{"bearer": []}, {}],
        "paths": paths(),
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": schemas(),
            "parameters": parameters(),
            "responses": error_responses(),
        }
    })
}

fn reference(kind: &str, name: &str) -> Value {
    json!({"$ref": format!("#/components/{kind}/{name}")})
}

fn schema(name: &str) -> Value {
    reference("schemas", name)
}

/// The error responses an operation can give, by status.
fn errors(statuses: &[u16]) -> Map<String, Value> {
    statuses
        .iter()
        .map(|s| (s.to_string(), reference("responses", &s.to_string())))
        .collect()
}

/// Errors every `/api/v1` operation can give.
const COMMON: [u16; 5] = [400, 401, 403, 405, 503];
/// And those of a write with a body.
const WRITE: [u16; 4] = [409, 413, 415, 422];

fn ok(description: &str, body: Value, etag: bool) -> Value {
    let mut response = json!({
        "description": description,
        "content": {"application/json": {"schema": body}}
    });
    if etag {
        response["headers"] = json!({
            "ETag": {"description": "The object's store revision, quoted.", "schema": {"type": "string"}}
        });
    }
    response
}

fn operation(
    summary: &str,
    parameters: Vec<Value>,
    body: Option<&str>,
    success: &[(&str, Value)],
    extra_errors: &[u16],
) -> Value {
    let mut responses: Map<String, Value> = success
        .iter()
        .map(|(status, r)| ((*status).to_owned(), r.clone()))
        .collect();
    responses.extend(errors(&COMMON));
    responses.extend(errors(extra_errors));
    let mut op = json!({
        "summary": summary,
        "parameters": parameters,
        "responses": responses,
    });
    if let Some(body) = body {
        op["requestBody"] = json!({
            "required": true,
            "content": {"application/json": {"schema": schema(body)}}
        });
    }
    op
}

fn param(name: &str) -> Value {
    reference("parameters", name)
}

/// The operations of one collection and its items (`name` is the schema).
fn collection(name: &str, item_params: &[&str], list_params: &[&str]) -> (Value, Value) {
    let page = format!("{name}Page");
    let list_parameters: Vec<Value> = list_params
        .iter()
        .chain(&["limit", "continue"])
        .map(|p| param(p))
        .collect();
    let collection = json!({
        "get": operation(
            &format!("List {name} objects, in key order, a page at a time"),
            list_parameters,
            None,
            &[("200", ok("A page.", schema(&page), false))],
            &[],
        ),
        "post": operation(
            &format!("Create a {name}; 409 if it exists"),
            vec![],
            Some(name),
            &[("201", ok("Created.", schema(name), true))],
            &WRITE,
        ),
    });
    let path: Vec<Value> = item_params.iter().map(|p| param(p)).collect();
    let with_if_match = |mut v: Vec<Value>| {
        v.push(param("If-Match"));
        v
    };
    let item = json!({
        "get": operation(
            &format!("Read a {name} and its ETag"),
            path.clone(),
            None,
            &[("200", ok("The object.", schema(name), true))],
            &[404],
        ),
        "put": operation(
            &format!(
                "Create a {name} (no If-Match; 409 if it exists) or replace it \
                 (If-Match: its ETag or `*`; 412 if stale or absent)"
            ),
            with_if_match(path.clone()),
            Some(name),
            &[
                ("200", ok("Replaced.", schema(name), true)),
                ("201", ok("Created.", schema(name), true)),
            ],
            &[404, 409, 412, 413, 415, 422],
        ),
        "delete": operation(
            &format!("Delete a {name} (If-Match optional)"),
            with_if_match(path),
            None,
            &[("204", json!({"description": "Deleted."}))],
            &[404, 409, 412],
        ),
    });
    (collection, item)
}

fn paths() -> Value {
    let (zones, zone) = collection("Zone", &["origin"], &[]);
    let (records, record) = collection("RecordSet", &["name", "type"], &["zone", "nameFilter"]);
    let (vips, vip) = collection("Vip", &["address", "port", "protocol"], &[]);
    let page_params = || vec![param("limit"), param("continue")];
    json!({
        "/api/openapi.json": {
            "get": {
                "summary": "This document",
                "security": [],
                "responses": {"200": {
                    "description": "The OpenAPI document.",
                    "content": {"application/json": {"schema": {"type": "object"}}}
                }}
            }
        },
        "/api/v1/zones": zones,
        "/api/v1/zones/{origin}": zone,
        "/api/v1/records": records,
        "/api/v1/records/{name}/{type}": record,
        "/api/v1/vips": vips,
        "/api/v1/vips/{address}/{port}/{protocol}": vip,
        "/api/v1/health": {"get": operation(
            "List health states (read-only)",
            page_params(),
            None,
            &[("200", ok("A page.", schema("HealthPage"), false))],
            &[],
        )},
        "/api/v1/health/{address}": {"get": operation(
            "Read the health of one address",
            vec![param("healthAddress")],
            None,
            &[("200", ok("Its health.", schema("Health"), true))],
            &[404],
        )},
        "/api/v1/nodes": {"get": operation(
            "List registered nodes (read-only)",
            page_params(),
            None,
            &[("200", ok("A page.", schema("NodePage"), false))],
            &[],
        )},
        "/api/v1/inspect": {"get": operation(
            "Each inspector's latest round of checks (read-only)",
            page_params(),
            None,
            &[("200", ok("A page.", schema("InspectReportPage"), false))],
            &[],
        )},
        "/api/v1/alerts": {"get": operation(
            "Each evaluator's firing alerts and health scores (read-only)",
            page_params(),
            None,
            &[("200", ok("A page.", schema("AlertViewPage"), false))],
            &[],
        )},
        "/api/v1/silences": {
            "get": operation(
                "List silences",
                page_params(),
                None,
                &[("200", ok("A page.", schema("SilencePage"), false))],
                &[],
            ),
            "post": operation(
                "Create a silence (the id is assigned)",
                vec![],
                Some("Silence"),
                &[("201", ok("Created.", schema("Silence"), true))],
                &WRITE,
            ),
        },
        "/api/v1/silences/{id}": {
            "get": operation(
                "Read a silence",
                vec![param("silenceId")],
                None,
                &[("200", ok("The silence.", schema("Silence"), true))],
                &[404],
            ),
            "delete": operation(
                "Delete a silence (If-Match optional)",
                vec![param("silenceId"), param("If-Match")],
                None,
                &[("204", json!({"description": "Deleted."}))],
                &[404, 409, 412],
            ),
        },
        "/api/v1/status": {"get": operation(
            "Whether the store answers, its revision, objects by kind",
            vec![],
            None,
            &[("200", ok("The status.", schema("Status"), false))],
            &[],
        )},
    })
}

fn path_param(name: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": description, "schema": schema})
}

fn parameters() -> Value {
    json!({
        "origin": path_param("origin", "The zone's apex (a trailing dot is optional).", schema("Origin")),
        "name": path_param("name", "The owner name.", schema("Name")),
        "type": path_param("type", "The record type (case-insensitive; SOA is part of the zone).", json!({
            "type": "string", "enum": ["A", "AAAA", "CNAME", "SRV", "MX", "TXT", "NS", "PTR"]
        })),
        "address": path_param("address", "The VIP's address.", schema("IpAddress")),
        "silenceId": path_param("id", "The silence's id.", json!({"type": "string", "minLength": 1, "pattern": "^[^/]+$"})),
        "healthAddress": path_param("address", "The address checked.", schema("IpAddress")),
        "port": path_param("port", "The VIP's port.", json!({"type": "integer", "minimum": 1, "maximum": 65535})),
        "protocol": path_param("protocol", "tcp or udp (case-insensitive).", json!({"type": "string", "enum": ["tcp", "udp"]})),
        "limit": {"name": "limit", "in": "query", "required": false,
            "description": format!("Items per page (default {DEFAULT_LIMIT})."),
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}},
        "continue": {"name": "continue", "in": "query", "required": false,
            "description": "The `continue` of the previous page.",
            "schema": {"type": "string"}},
        "zone": {"name": "zone", "in": "query", "required": false,
            "description": "Only record sets at or below this zone origin.",
            "schema": schema("Origin")},
        "nameFilter": {"name": "name", "in": "query", "required": false,
            "description": "Only record sets of this owner name.",
            "schema": schema("Name")},
        "If-Match": {"name": "If-Match", "in": "header", "required": false,
            "description": "The ETag the change is based on, or `*` for any existing revision.",
            "schema": {"type": "string"}},
    })
}

fn error_responses() -> Value {
    let described = [
        (
            400,
            "Not JSON, not the expected shape, or a bad path or query parameter.",
        ),
        (401, "No token, or a token the API does not know."),
        (
            403,
            "A read token writing, writes with no tokens configured, or a Kubernetes-owned object.",
        ),
        (404, "No such object."),
        (405, "The path does not take this method."),
        (409, "The object exists already (create)."),
        (
            412,
            "If-Match does not name the current revision, or the object changed meanwhile.",
        ),
        (413, "The body is too large."),
        (415, "The body is not JSON."),
        (422, "Well-formed but invalid; `field` names the bad field."),
        (503, "The store is unavailable."),
    ];
    described
        .iter()
        .map(|(status, description)| {
            (
                status.to_string(),
                json!({
                    "description": description,
                    "content": {"application/json": {"schema": schema("Error")}}
                }),
            )
        })
        .collect::<Map<String, Value>>()
        .into()
}

fn uint(max: u64) -> Value {
    json!({"type": "integer", "minimum": 0, "maximum": max})
}

fn object(required: &[&str], properties: Value) -> Value {
    json!({
        "type": "object",
        "required": required,
        "additionalProperties": false,
        "properties": properties,
    })
}

fn rdata(kind: &str, fields: Value) -> Value {
    let mut properties = json!({"type": {"type": "string", "enum": [kind]}});
    let mut required = vec!["type".to_owned()];
    if let (Some(p), Some(f)) = (properties.as_object_mut(), fields.as_object()) {
        for (k, v) in f {
            p.insert(k.clone(), v.clone());
            required.push(k.clone());
        }
    }
    json!({
        "type": "object",
        "required": required,
        "additionalProperties": false,
        "properties": properties,
    })
}

fn page_of(item: &str) -> Value {
    object(
        &["items", "revision"],
        json!({
            "items": {"type": "array", "items": schema(item)},
            "continue": {"type": "string", "description": "The next page's token; absent on the last page."},
            "revision": {"type": "integer", "description": "The store revision the page was read at."},
        }),
    )
}

fn schemas() -> Value {
    let u16_ = uint(u64::from(u16::MAX));
    let ttl = uint(u64::from(MAX_TTL));
    json!({
        "Error": {
            "type": "object",
            "required": ["error", "reason"],
            "properties": {
                "error": {"type": "string", "description": "A short code: bad_request, bad_parameter, unauthorized, forbidden, not_found, method_not_allowed, conflict, precondition_failed, too_large, unsupported_media_type, invalid, store_unavailable."},
                "reason": {"type": "string"},
                "field": {"type": "string", "description": "The field or parameter to blame (`records[0].address`)."},
            }
        },
        "Name": {
            "type": "string",
            "description": "A domain name (absolute; a trailing dot is optional on input). Labels of letters, digits and hyphens, optionally starting with `_`; `*` only as the whole first label.",
            "minLength": 1,
            "maxLength": 254,
            "pattern": r"^(\.|(\*|_?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\._?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?)$",
        },
        "Origin": {
            "type": "string",
            "description": "A zone apex: a domain name without a wildcard label.",
            "minLength": 1,
            "maxLength": 254,
            "pattern": r"^(\.|_?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\._?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?)$",
        },
        "IpAddress": {
            "type": "string",
            "description": "An IPv4 or IPv6 address.",
            "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}],
        },
        "Soa": object(
            &["mname", "rname", "serial", "refresh", "retry", "expire", "minimum"],
            json!({
                "mname": schema("Name"),
                "rname": schema("Name"),
                "serial": uint(u64::from(u32::MAX)),
                "refresh": uint(u64::from(u32::MAX)),
                "retry": uint(u64::from(u32::MAX)),
                "expire": uint(u64::from(u32::MAX)),
                "minimum": ttl,
            }),
        ),
        "Zone": object(
            &["origin", "ttl", "soa"],
            json!({
                "origin": schema("Origin"),
                "ttl": ttl,
                "soa": schema("Soa"),
                "ns": {"type": "array", "items": schema("Name")},
            }),
        ),
        "RData": {
            "oneOf": [
                schema("RDataA"), schema("RDataAAAA"), schema("RDataCNAME"), schema("RDataSRV"),
                schema("RDataMX"), schema("RDataTXT"), schema("RDataNS"), schema("RDataPTR"),
            ],
            "discriminator": {
                "propertyName": "type",
                "mapping": {
                    "A": "#/components/schemas/RDataA",
                    "AAAA": "#/components/schemas/RDataAAAA",
                    "CNAME": "#/components/schemas/RDataCNAME",
                    "SRV": "#/components/schemas/RDataSRV",
                    "MX": "#/components/schemas/RDataMX",
                    "TXT": "#/components/schemas/RDataTXT",
                    "NS": "#/components/schemas/RDataNS",
                    "PTR": "#/components/schemas/RDataPTR",
                }
            }
        },
        "RDataA": rdata("A", json!({"address": {"type": "string", "format": "ipv4"}})),
        "RDataAAAA": rdata("AAAA", json!({"address": {"type": "string", "format": "ipv6"}})),
        "RDataCNAME": rdata("CNAME", json!({"target": schema("Name")})),
        "RDataSRV": rdata("SRV", json!({
            "priority": u16_, "weight": u16_, "port": u16_, "target": schema("Name"),
        })),
        "RDataMX": rdata("MX", json!({"preference": u16_, "exchange": schema("Name")})),
        "RDataTXT": rdata("TXT", json!({
            "strings": {"type": "array", "items": {"type": "string", "maxLength": 255}},
        })),
        "RDataNS": rdata("NS", json!({"host": schema("Name")})),
        "RDataPTR": rdata("PTR", json!({"target": schema("Name")})),
        "RecordSet": object(
            &["name", "ttl", "records"],
            json!({
                "name": schema("Name"),
                "ttl": ttl,
                "records": {
                    "type": "array", "minItems": 1, "items": schema("RData"),
                    "description": "All of one type; a CNAME set holds exactly one record.",
                },
                "policy": {"type": "string", "enum": ["all", "one-persistent", "one-round-robin"], "default": "all"},
                "affinity_timeout": {"type": "integer", "minimum": 0, "nullable": true,
                    "description": "Seconds a client keeps its pick (one-persistent)."},
                "source": {"type": "string", "enum": ["user", "kubernetes"], "default": "user",
                    "description": "Only `user` sets are written through the API."},
            }),
        ),
        "RealServer": object(
            &["address", "port", "weight"],
            json!({
                "address": schema("IpAddress"),
                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                "weight": uint(u64::from(MAX_WEIGHT)),
            }),
        ),
        "Vip": object(
            &["address", "port", "protocol"],
            json!({
                "address": schema("IpAddress"),
                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                "protocol": {"type": "string", "enum": ["TCP", "UDP"]},
                "scheduler": {"type": "string", "enum": ["maglev", "weighted-round-robin", "weighted-least-connections", "source-hash"], "default": "maglev"},
                "mode": {"type": "string", "enum": ["full-nat", "dr"], "default": "full-nat"},
                "persistence": {"type": "integer", "minimum": 1, "maximum": 86400, "nullable": true,
                    "description": "Client affinity in seconds; absent is off."},
                "real_servers": {"type": "array", "items": schema("RealServer")},
                "source": {"type": "string", "enum": ["user", "kubernetes"], "default": "user",
                    "description": "Only `user` VIPs are written through the API."},
            }),
        ),
        "Health": object(
            &["address", "state", "since", "by"],
            json!({
                "address": schema("IpAddress"),
                "state": {"type": "string", "enum": ["up", "down"]},
                "since": {"type": "integer", "minimum": 0, "description": "Unix seconds."},
                "by": {"type": "string", "minLength": 1},
            }),
        ),
        "Node": object(
            &["name", "registration", "leased"],
            json!({
                "name": {"type": "string"},
                "registration": {"description": "As stored: JSON, or text."},
                "leased": {"type": "boolean"},
            }),
        ),
        "Status": object(
            &["store", "revision", "counts"],
            json!({
                "store": {"type": "string", "enum": ["ok"]},
                "revision": {"type": "integer"},
                "counts": object(
                    &["zones", "records", "vips", "health", "nodes"],
                    json!({
                        "zones": {"type": "integer"}, "records": {"type": "integer"},
                        "vips": {"type": "integer"}, "health": {"type": "integer"},
                        "nodes": {"type": "integer"},
                    }),
                ),
            }),
        ),
        "Labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "CheckResult": object(
            &["id", "kind", "ok"],
            json!({
                "id": {"type": "string"},
                "kind": {"type": "string", "enum": ["real_server", "vip", "dns", "consistency"]},
                "ok": {"type": "boolean"},
                "detail": {"type": "string"},
            }),
        ),
        "InspectReport": object(
            &["by", "members", "results"],
            json!({
                "by": {"type": "string"},
                "members": {"type": "array", "items": {"type": "string"}},
                "results": {"type": "array", "items": schema("CheckResult")},
            }),
        ),
        "Alert": object(
            &["fingerprint", "labels", "annotations", "active_since", "state"],
            json!({
                "fingerprint": {"type": "string"},
                "labels": schema("Labels"),
                "annotations": schema("Labels"),
                "active_since": {"type": "string", "format": "date-time"},
                "state": {"type": "string", "enum": ["notified", "folded", "silenced"]},
                "folded_under": {"type": "string"},
                "silenced_by": {"type": "string"},
                "folded": {"type": "array", "items": schema("Labels")},
            }),
        ),
        "AlertView": object(
            &["by", "alerts", "scores"],
            json!({
                "by": {"type": "string"},
                "alerts": {"type": "array", "items": schema("Alert")},
                "scores": {"type": "array", "items": object(&["entity", "score"], json!({
                    "entity": {"type": "string"},
                    "score": {"type": "integer", "minimum": 0, "maximum": 100},
                }))},
            }),
        ),
        "Silence": object(
            &["matchers", "ends_at", "created_by"],
            json!({
                "id": {"type": "string", "description": "Assigned by the API; leave it out when creating."},
                "matchers": {"type": "array", "minItems": 1, "items": object(&["name", "value"], json!({
                    "name": {"type": "string", "minLength": 1},
                    "op": {"type": "string", "enum": ["=", "!="], "default": "="},
                    "value": {"type": "string"},
                }))},
                "starts_at": {"type": "integer", "minimum": 0, "description": "Unix seconds; default now."},
                "ends_at": {"type": "integer", "minimum": 1, "description": "Unix seconds, after starts_at."},
                "created_by": {"type": "string", "minLength": 1},
                "comment": {"type": "string"},
            }),
        ),
        "InspectReportPage": page_of("InspectReport"),
        "AlertViewPage": page_of("AlertView"),
        "SilencePage": page_of("Silence"),
        "ZonePage": page_of("Zone"),
        "RecordSetPage": page_of("RecordSet"),
        "VipPage": page_of("Vip"),
        "HealthPage": page_of("Health"),
        "NodePage": page_of("Node"),
    })
}
