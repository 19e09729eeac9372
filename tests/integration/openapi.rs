//! `GET /openapi.json` kept in step with the router: every method and path the router serves
//! is in the document with the security the router enforces, and the document has nothing
//! else, for the configurations that change the routes (page, webhook base and secret,
//! public metrics). A handler added without its `#[utoipa::path]` fails here.

use std::collections::BTreeMap;

use axum::body::Body;
use http::{Method, Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt;

use crate::common::Gateway;

/// (method, path with every parameter as `{}`) → whether it needs credentials.
type Routes = BTreeMap<(String, String), bool>;

fn methods() -> Vec<Method> {
    vec![Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE]
}

/// `/sessions/{key}/queue/{message_id}` and `{*route}` alike as `/sessions/{}/queue/{}`.
fn shape(path: &str) -> String {
    regex::Regex::new(r"\{[^}]*\}").unwrap().replace_all(path, "{}").into_owned()
}

/// The paths `http::router` registered. axum has no route listing, so they are read from the
/// router's `Debug` form, whose path router lists `RouteId(n): "/path"` before the fallback
/// router does; `assert_in_step` checks known routes are found, so a change of that form
/// fails rather than passing on an empty list.
fn router_paths(router: &axum::Router) -> Vec<String> {
    let debug = format!("{router:?}");
    let own = debug.split("fallback_router").next().unwrap();
    let route = regex::Regex::new(r#"RouteId\(\d+\): "([^"]*)""#).unwrap();
    route.captures_iter(own).map(|c| c[1].to_string()).collect()
}

/// What the router really serves: each of its paths asked with each method and no
/// credentials. 405 means no such route; 401 means the route needs credentials.
async fn served(router: &axum::Router) -> Routes {
    let mut routes = Routes::new();
    for path in router_paths(router) {
        let uri = shape(&path).replace("{}", "probe");
        for method in methods() {
            let request =
                Request::builder().method(method.clone()).uri(&uri).body(Body::empty()).unwrap();
            let status = router.clone().oneshot(request).await.unwrap().status();
            assert_ne!(status, StatusCode::NOT_FOUND, "{method} {uri}: a registered path is 404");
            if status != StatusCode::METHOD_NOT_ALLOWED {
                routes
                    .insert((method.to_string(), shape(&path)), status == StatusCode::UNAUTHORIZED);
            }
        }
    }
    routes
}

/// What the document says: its operations, and whether each has a security requirement.
fn documented(document: &Value) -> Routes {
    let mut routes = Routes::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let method = method.to_uppercase();
            assert!(methods().iter().any(|m| m.as_str() == method), "{method} {path}");
            let security = operation["security"].as_array().expect("every operation says");
            routes.insert((method, shape(path)), !security.is_empty());
        }
    }
    routes
}

async fn assert_in_step(settings: &[(&str, &str)]) -> Value {
    let gateway = Gateway::with(settings).await;
    let router = agent_gateway::http::router(gateway.state.clone());
    let served = served(&router).await;
    for known in [("GET", "/health"), ("GET", "/sessions/{}"), ("POST", "/memory/search")] {
        let known = (known.0.to_string(), known.1.to_string());
        assert!(served.contains_key(&known), "the router's paths were not read: {served:?}");
    }
    let response = gateway.http.get(gateway.url("/openapi.json")).send().await.unwrap();
    assert_eq!(response.status(), 200, "the document is public");
    let content_type = response.headers()[http::header::CONTENT_TYPE].to_str().unwrap();
    assert_eq!(content_type, "application/json");
    let document: Value = response.json().await.unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    let documented = documented(&document);
    let missing: Vec<_> = served.keys().filter(|r| !documented.contains_key(*r)).collect();
    let extra: Vec<_> = documented.keys().filter(|r| !served.contains_key(*r)).collect();
    assert!(missing.is_empty(), "served but not documented: {missing:?}");
    assert!(extra.is_empty(), "documented but not served: {extra:?}");
    assert_eq!(documented, served, "the document's security is the router's");
    gateway.stop().await;
    document
}

#[tokio::test]
async fn the_document_lists_every_route_with_its_security() {
    let document = assert_in_step(&[
        ("bearer_token", "t0ken"),
        ("web_ui", "true"),
        ("webhook.enabled", "true"),
        ("metrics.public", "false"),
    ])
    .await;
    let hook = &document["paths"]["/webhooks/{route}"]["post"];
    assert_eq!(hook["security"], serde_json::json!([{"bearer": []}]), "no secret: the token");
    let metrics = &document["paths"]["/metrics"]["get"]["security"];
    assert_eq!(metrics, &serde_json::json!([{"bearer": []}]));
}

#[tokio::test]
async fn the_document_follows_the_configured_routes() {
    let document = assert_in_step(&[
        ("bearer_token", "t0ken"),
        ("web_ui", "false"),
        ("webhook.enabled", "true"),
        ("webhook.base_path", "/hooks"),
        ("webhook.secret", "s3cret"),
        ("metrics.public", "true"),
    ])
    .await;
    let paths = document["paths"].as_object().unwrap();
    assert!(!paths.contains_key("/") && !paths.contains_key("/webhooks"));
    let hook = &paths["/hooks/{route}"]["post"]["security"];
    assert_eq!(hook, &serde_json::json!([{"webhookSecret": []}, {"webhookSignature": []}]));
    assert_eq!(paths["/metrics"]["get"]["security"], serde_json::json!([]));
}

/// The shapes come from the serde types: a field the snapshot serializes is in its schema.
#[tokio::test]
async fn schemas_are_the_serialized_shapes() {
    let gateway = Gateway::start().await;
    let (status, document) = gateway.get("/openapi.json").await;
    assert_eq!(status, 200);
    let (_, session) = gateway.get("/sessions/main").await;
    let schemas = &document["components"]["schemas"];
    let snapshot = schemas["Snapshot"]["properties"].as_object().unwrap();
    for field in session["session"].as_object().unwrap().keys() {
        assert!(snapshot.contains_key(field), "Snapshot schema lacks {field}");
    }
    let part = serde_json::to_string(&schemas["Part"]).unwrap();
    for kind in ["text", "reasoning", "tool-invocation", "media", "error"] {
        assert!(part.contains(&format!("\"{kind}\"")), "Part schema lacks {kind}: {part}");
    }
    let error = &document["components"]["responses"]["Unauthorized"];
    assert_eq!(
        error["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ErrorBody"
    );
    gateway.stop().await;
}
