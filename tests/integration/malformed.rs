//! Malformed gRPC input (GATEWAY.md §8, issue 16 item 7): every broken frame, body or message
//! gets INVALID_ARGUMENT and every oversize one RESOURCE_EXHAUSTED, never INTERNAL or
//! OUT_OF_RANGE, on native gRPC, grpc-web and grpc-web-text, for unary and streaming methods;
//! unknown services and methods get UNIMPLEMENTED; the gateway's own answers keep their codes.

use agent_gateway::proto as pb;
use prost::Message;
use serde_json::json;

use crate::common::raw::*;
use crate::common::*;

const INVALID_ARGUMENT: i32 = 3;
const RESOURCE_EXHAUSTED: i32 = 8;
const UNIMPLEMENTED: i32 = 12;

/// A unary method, server-streaming ones (the generated server's and our own Subscribe) and
/// the health check: every method shape the gateway serves with one request message.
const METHODS: &[&str] = &[
    "/agentgateway.v1.Sessions/GetSession",
    "/agentgateway.v1.Chat/StreamChat",
    "/agentgateway.v1.Sessions/Subscribe",
    "/grpc.health.v1.Health/Check",
];

/// (what it is, body, expected code); field 1 is a string in every request above.
fn cases() -> Vec<(&'static str, Vec<u8>, i32)> {
    let mut compressed = frame(&[0x0a, 0x01, b'k']);
    compressed[0] = 1;
    let mut bad_flag = frame(&[0x0a, 0x01, b'k']);
    bad_flag[0] = 0x42;
    let mut truncated = frame(&[0x0a, 0x05, b'k', b'e', b'y', b's', b'!']);
    truncated.truncate(7);
    let big = frame(&vec![0u8; 5 * 1024 * 1024]);
    vec![
        ("compressed flag without grpc-encoding", compressed, INVALID_ARGUMENT),
        ("invalid flag byte", bad_flag, INVALID_ARGUMENT),
        ("truncated frame", truncated, INVALID_ARGUMENT),
        ("header cut short", vec![0, 0, 0], INVALID_ARGUMENT),
        ("garbage protobuf", frame(&[0x0f, 0xff, 0xff, 0xff]), INVALID_ARGUMENT),
        ("invalid UTF-8 in a string field", frame(&[0x0a, 0x02, 0xc3, 0x28]), INVALID_ARGUMENT),
        (
            "garbage after a good message",
            [frame(&[]), frame(&[0x0f, 0xff])].concat(),
            INVALID_ARGUMENT,
        ),
        ("empty body", vec![], INVALID_ARGUMENT),
        ("5 MiB message", big, RESOURCE_EXHAUSTED),
        ("length prefix 0xFFFFFFFF", vec![0, 0xff, 0xff, 0xff, 0xff], RESOURCE_EXHAUSTED),
    ]
}

#[tokio::test]
async fn malformed_requests_are_invalid_argument_and_oversize_resource_exhausted() {
    let gw = Gateway::start().await;
    for method in METHODS {
        for (what, body, expected) in cases() {
            for wire in WIRES {
                let answer = grpc_call(&gw, wire, method, body.clone()).await;
                assert_eq!(
                    (answer.http, answer.code),
                    (200, Some(expected)),
                    "{what} to {method} over {wire:?}: {answer:?}"
                );
                assert!(!answer.message.is_empty(), "{what}: a message says why");
            }
        }
    }
    well_formed_calls_keep_their_codes(&gw).await;
}

/// Well-formed calls, and the gateway's own refusals, keep their codes on every wire.
async fn well_formed_calls_keep_their_codes(gw: &Gateway) {
    let path = "/agentgateway.v1.Sessions/GetSession";
    let known = frame(&pb::GetSessionRequest { session_key: "main".into() }.encode_to_vec());
    let unknown = frame(&pb::GetSessionRequest { session_key: "nobody".into() }.encode_to_vec());
    let empty_key = frame(&pb::GetSessionRequest { session_key: String::new() }.encode_to_vec());
    for wire in WIRES {
        assert_eq!(grpc_call(gw, wire, path, known.clone()).await.code, Some(0), "{wire:?}");
        let answer = grpc_call(gw, wire, path, unknown.clone()).await;
        assert_eq!((answer.code, answer.message.as_str()), (Some(5), "Session not found: nobody"));
        let answer = grpc_call(gw, wire, path, empty_key.clone()).await;
        assert_eq!(answer.code, Some(INVALID_ARGUMENT), "{wire:?}: {answer:?}");
    }
}

#[tokio::test]
async fn garbage_grpc_web_and_bad_base64_are_invalid_argument() {
    let gw = Gateway::start().await;
    let path = "/agentgateway.v1.Sessions/GetSession";
    for (wire, body, raw_text) in [
        (Wire::Web, b"this is not a grpc-web body at all".to_vec(), false),
        (Wire::Web, vec![0x80, 0, 0, 0, 3, b'a', b':', b'b'], false),
        (Wire::WebText, b"!!!! not base64 ????".to_vec(), true),
        (Wire::WebText, b"AAAAAA".to_vec(), true),
        (Wire::WebText, b"AAAAAAIKAWs=AAAA@@@@".to_vec(), true),
    ] {
        let answer = grpc_call_with(&gw, wire, path, body.clone(), raw_text).await;
        assert_eq!(
            (answer.http, answer.code),
            (200, Some(INVALID_ARGUMENT)),
            "{:?} over {wire:?}: {answer:?}",
            String::from_utf8_lossy(&body)
        );
    }
}

#[tokio::test]
async fn unknown_services_and_methods_are_unimplemented() {
    let gw = Gateway::start().await;
    let request = frame(&pb::GetSessionRequest { session_key: "main".into() }.encode_to_vec());
    for path in [
        "/agentgateway.v1.Nope/GetSession",
        "/no.such.Service/Method",
        "/agentgateway.v1.Sessions/NoSuchMethod",
        "/grpc.health.v1.Health/Nope",
    ] {
        for wire in WIRES {
            let answer = grpc_call(&gw, wire, path, request.clone()).await;
            assert_eq!((answer.http, answer.code), (200, Some(UNIMPLEMENTED)), "{path} {wire:?}");
        }
    }
    // Plain HTTP to an unknown path is still the JSON 404.
    let (status, body) = gw.get("/agentgateway.v1.Nope/GetSession").await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
}

/// A reply over the 4 MiB limit fails in the trailers, after the handler ran: tonic says
/// OUT_OF_RANGE there, the gateway RESOURCE_EXHAUSTED, on every wire.
#[tokio::test]
async fn a_reply_too_big_to_send_is_resource_exhausted_in_the_trailers() {
    let gw = Gateway::with(&[("limits.max_text", "2000000"), ("http.max_body", "4000000")]).await;
    let text = "x".repeat(1_500_000);
    for _ in 0..2 {
        let (status, _) = gw.post("/sessions/big/messages", json!({ "text": text })).await;
        assert_eq!(status, 200);
    }
    let request =
        pb::GetHistoryRequest { session_key: "big".into(), limit: 0, cursor: String::new() };
    let mut client = gw.sessions().await;
    let status = client.get_history(request.clone()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    for wire in WIRES {
        let answer = grpc_call(
            &gw,
            wire,
            "/agentgateway.v1.Sessions/GetHistory",
            frame(&request.encode_to_vec()),
        )
        .await;
        assert_eq!(answer.code, Some(RESOURCE_EXHAUSTED), "{wire:?}: {answer:?}");
        assert_ne!(answer.place, "headers", "{wire:?}: the status came after the reply began");
    }
}
