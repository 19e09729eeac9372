//! TLS on the one port (GATEWAY.md §10): `tls.cert` and `tls.key` (PEM) make the listener
//! speak TLS with ALPN `h2` and `http/1.1`, so native gRPC, grpc-web, REST, SSE and the web
//! page all work over it as they do in plain text.
//!
//! Each handshake runs in its connection's own task (`server::accept`): a client that stalls
//! mid-handshake never holds up the next connection. A failed handshake is logged and dropped.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::server::TlsStream;
use tracing::debug;

/// How long a client may take over its handshake.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// The TLS settings from the PEM files; the error names the file and what is wrong with it.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, String> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| format!("tls: cannot read {}: {e}", path.display()))
    };
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut &read(cert)?[..])
        .collect::<Result<_, _>>()
        .map_err(|e| format!("tls.cert {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("tls.cert {}: no PEM certificate in it", cert.display()));
    }
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut &read(key)?[..])
        .map_err(|e| format!("tls.key {}: {e}", key.display()))?
        .ok_or_else(|| format!("tls.key {}: no PEM private key in it", key.display()))?;
    // The provider named, not the process default: other crates in the tree may enable a
    // second one, and then rustls cannot pick.
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("tls: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The TLS handshake of one accepted connection, within [`HANDSHAKE`]; `None` (logged) if it
/// fails or stalls.
pub async fn handshake(
    acceptor: &TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
) -> Option<TlsStream<TcpStream>> {
    match tokio::time::timeout(HANDSHAKE, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(e)) => {
            debug!(%peer, error = %e, "tls handshake failed");
            None
        }
        Err(_) => {
            debug!(%peer, "tls handshake timed out");
            None
        }
    }
}
