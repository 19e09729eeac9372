//! TLS on the one port (GATEWAY.md §10) with a self-signed certificate made by the test:
//! HTTPS over HTTP/2 and HTTP/1.1 (REST and SSE), and native gRPC with the real grpcurl.

use std::process::Command;

use serde_json::json;

use crate::common::*;

struct Certificate {
    dir: tempfile::TempDir,
    pem: String,
}

impl Certificate {
    fn new() -> Self {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("a self-signed certificate");
        let dir = tempfile::tempdir().unwrap();
        let pem = made.cert.pem();
        std::fs::write(dir.path().join("cert.pem"), &pem).unwrap();
        std::fs::write(dir.path().join("key.pem"), made.signing_key.serialize_pem()).unwrap();
        Self { dir, pem }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

#[tokio::test]
async fn every_protocol_is_served_over_tls() {
    let certificate = Certificate::new();
    let (cert, key) = (certificate.path("cert.pem"), certificate.path("key.pem"));
    let gw = Gateway::with(&[("tls.cert", &cert), ("tls.key", &key)]).await;
    let root = reqwest::Certificate::from_pem(certificate.pem.as_bytes()).unwrap();
    let https = reqwest::Client::builder().add_root_certificate(root.clone()).build().unwrap();
    let url = |path: &str| format!("https://127.0.0.1:{}{path}", gw.addr.port());

    let response = https.get(url("/health")).send().await.unwrap();
    assert_eq!(response.version(), http::Version::HTTP_2, "ALPN picks h2");
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap(),
        json!({"ok": true, "ready": true})
    );
    let http1 = reqwest::Client::builder().add_root_certificate(root).http1_only().build().unwrap();
    let request = http1.post(url("/sessions/tls/messages")).json(&json!({"text": "over tls"}));
    let response = request.send().await.unwrap();
    assert_eq!(response.version(), http::Version::HTTP_11);
    let (status, answer) = read(response).await;
    assert_eq!((status, text_of(&answer["response"])), (200, "over tls".into()));
    let mut events = Sse::open_with(http1.get(url("/sessions/tls/events"))).await;
    assert_eq!(events.event().await.unwrap().1["type"], "hello");

    // Native gRPC through TLS: the real grpcurl, trusting only our certificate.
    let addr = format!("127.0.0.1:{}", gw.addr.port());
    let call = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            Command::new(crate::grpcurl::grpcurl()).args(args).output()
        })
    };
    let body = r#"{"session_key":"tls","text":"grpc over tls"}"#;
    let output = call(vec![
        "-cacert".into(),
        cert.clone(),
        "-d".into(),
        body.into(),
        addr.clone(),
        "agentgateway.v1.Chat/SendMessage".into(),
    ])
    .await
    .unwrap()
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let answer: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!((&answer["ok"], &answer["response"]), (&json!(true), &json!("grpc over tls")));
    // Without our certificate, the handshake is refused; plain text gets no answer either.
    let untrusted = call(vec![addr.clone(), "list".into()]).await.unwrap().unwrap();
    assert!(!untrusted.status.success());
    let plain =
        call(vec!["-plaintext".into(), "-max-time".into(), "2".into(), addr, "list".into()]);
    assert!(!plain.await.unwrap().unwrap().status.success());
    gw.stop().await;
}

#[tokio::test]
async fn bad_tls_files_stop_the_start_naming_them() {
    use agent_gateway::app::AppState;
    use agent_gateway::config::{Config, Sources};
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let certificate = Certificate::new();
    let (cert, key, missing) = (
        certificate.path("cert.pem"),
        certificate.path("key.pem"),
        certificate.path("missing.pem"),
    );
    let junk = junk.display().to_string();
    for (cert, key, error, named) in [
        (&junk, &key, "no PEM certificate", &junk),
        (&cert, &junk, "no PEM private key", &junk),
        (&missing, &key, "cannot read", &missing),
    ] {
        let overrides = vec![
            ("tls.cert".to_string(), cert.clone()),
            ("tls.key".to_string(), key.clone()),
            ("persist".to_string(), "false".to_string()),
            ("data_dir".to_string(), dir.path().join("data").display().to_string()),
        ];
        let config = Config::load(&Sources { overrides, ..Default::default() }).unwrap();
        let message = AppState::open(config).await.err().expect("refused");
        assert!(message.contains(error) && message.contains(named.as_str()), "{message}");
    }
    let only_cert = Sources {
        overrides: vec![("tls.cert".into(), certificate.path("cert.pem"))],
        ..Default::default()
    };
    assert!(Config::load(&only_cert).unwrap_err().to_string().contains("go together"));
}
