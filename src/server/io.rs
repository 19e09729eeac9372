//! A connection's bytes on their way to and from hyper, for the three things only the byte
//! stream shows:
//! - **Has the connection started?** The HTTP/2 preface counts as a start (an idle gRPC
//!   channel is a real client); the first request counts too (see `accept`). A connection
//!   that does neither within `http.header_timeout` is closed.
//! - **hyper's own error answers get the gateway's JSON shape.** When hyper cannot parse an
//!   HTTP/1.1 request head it answers by itself, before any service sees a request
//!   (hyper 1.x `proto/h1/conn.rs` `on_parse_error` → `role.rs` `Server::on_error`): 400
//!   (bad method, URI, version, or a header value with a control character), 414 (URI too
//!   long) or 431 (too many headers, or a head larger than the read buffer), written as a bare
//!   head — `content-length: 0`, `date`, maybe `connection: close`, nothing else — only while
//!   nothing else of that
//!   response was written, and the connection is closed right after. No hook or setting of
//!   hyper changes those bytes, and checking requests before hyper would mean parsing HTTP
//!   twice, so the head is recognised here as it is written and replaced by the same status
//!   with a `{error, code}` body and `connection: close`. Every response of the gateway's own
//!   carries `x-request-id` and a `content-type` (the request middleware sees to the first),
//!   so a head with only those two headers can only be hyper's.
//! - **Lingering close.** A connection closed while the client is still sending (an early
//!   401/413, a refused connection) would reset it, and a reset makes the client's kernel drop
//!   the answer it had not read yet. After the write side is shut, what the client still sends
//!   is read and dropped until it closes too, for at most [`LINGER`].

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use crate::error::ErrorCode;

/// The longest a closing connection reads what its client still sends.
pub const LINGER: Duration = Duration::from_secs(2);
/// ...and the most it reads (the time bound comes first on any real link).
const LINGER_BYTES: usize = 64 * 1024 * 1024;

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What the accept loop and the byte stream of one connection share.
#[derive(Default)]
pub struct Conn {
    started: AtomicBool,
}

impl Conn {
    /// A request arrived, or the HTTP/2 preface: the connection is a client's.
    pub fn start(&self) {
        self.started.store(true, Ordering::Relaxed);
    }

    pub fn started(&self) -> bool {
        self.started.load(Ordering::Relaxed)
    }
}

/// The answer written in place of one of hyper's own, and how much of it is out.
struct Replacing {
    bytes: Vec<u8>,
    written: usize,
    /// The length of hyper's head, reported to hyper as written once ours is out.
    replaces: usize,
}

pub struct EdgeIo<I> {
    inner: I,
    conn: Arc<Conn>,
    /// Bytes of the HTTP/2 preface matched so far; `None` once it cannot be one.
    preface: Option<usize>,
    replacing: Option<Replacing>,
    shut: bool,
    linger: Option<(Pin<Box<Sleep>>, usize)>,
}

impl<I> EdgeIo<I> {
    pub fn new(inner: I, conn: Arc<Conn>) -> Self {
        Self { inner, conn, preface: Some(0), replacing: None, shut: false, linger: None }
    }
}

/// hyper's own error answer at the start of `buf`: its head's length and status.
fn hypers_own(buf: &[u8]) -> Option<(usize, u16)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?;
    let status = status.strip_prefix("HTTP/1.1 ").or_else(|| status.strip_prefix("HTTP/1.0 "))?;
    let code: u16 = status.get(..3)?.parse().ok()?;
    if !matches!(code, 400 | 414 | 431) {
        return None;
    }
    for line in lines {
        let (name, value) = line.split_once(':')?;
        match (name.trim().to_ascii_lowercase().as_str(), value.trim()) {
            ("date", _) | ("content-length", "0") | ("connection", "close") => {}
            _ => return None,
        }
    }
    Some((end + 4, code))
}

/// The gateway's answer for hyper's `code` (GATEWAY.md §8 shape; the status stays hyper's).
fn answer(code: u16) -> Vec<u8> {
    let (reason, error, kind) = match code {
        414 => ("URI Too Long", "Request URI too long", ErrorCode::PayloadTooLarge),
        431 => (
            "Request Header Fields Too Large",
            "Request header fields too large (too many, or too big)",
            ErrorCode::PayloadTooLarge,
        ),
        _ => (
            "Bad Request",
            "Malformed request head (method, URI, version or a header value)",
            ErrorCode::InvalidArgument,
        ),
    };
    let body = serde_json::json!({ "error": error, "code": kind.as_str() }).to_string();
    format!(
        "HTTP/1.1 {code} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

impl<I: AsyncWrite + Unpin> EdgeIo<I> {
    /// Writes the replacement; hyper hears that its own head was written once ours is out.
    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let replacing = self.replacing.as_mut().expect("a replacement is being written");
        while replacing.written < replacing.bytes.len() {
            let rest = &replacing.bytes[replacing.written..];
            let written = ready!(Pin::new(&mut self.inner).poll_write(cx, rest))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            replacing.written += written;
        }
        let replaces = replacing.replaces;
        self.replacing = None;
        Poll::Ready(Ok(replaces))
    }

    /// True when `buf` (the start of a write) is hyper's own answer, now being replaced.
    fn replaces(&mut self, buf: &[u8]) -> bool {
        if self.replacing.is_none()
            && let Some((replaces, code)) = hypers_own(buf)
        {
            tracing::debug!(code, "answering hyper's own error in the JSON shape");
            self.replacing = Some(Replacing { bytes: answer(code), written: 0, replaces });
        }
        self.replacing.is_some()
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for EdgeIo<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        if let Some(matched) = self.preface {
            let new = &buf.filled()[before..];
            let want = &H2_PREFACE[matched..];
            let n = new.len().min(want.len());
            self.preface = if new[..n] != want[..n] {
                None
            } else if matched + n == H2_PREFACE.len() {
                self.conn.start();
                None
            } else {
                Some(matched + n)
            };
        }
        Poll::Ready(Ok(()))
    }
}

impl<I: AsyncRead + AsyncWrite + Unpin> AsyncWrite for EdgeIo<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.replaces(buf) {
            return self.poll_replacement(cx);
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // hyper queues a head as a buffer of its own: the first one of a write.
        let first = bufs.iter().find(|b| !b.is_empty()).map_or(&[][..], |b| &b[..]);
        if self.replaces(first) {
            return self.poll_replacement(cx);
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    /// Shuts the write side, then lingers: reads and drops what the client still sends
    /// until it closes, for at most [`LINGER`].
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.shut {
            ready!(Pin::new(&mut self.inner).poll_shutdown(cx))?;
            self.shut = true;
            self.linger = Some((Box::pin(tokio::time::sleep(LINGER)), LINGER_BYTES));
        }
        let this = &mut *self;
        let Some((until, budget)) = this.linger.as_mut() else { return Poll::Ready(Ok(())) };
        let mut scratch = [0u8; 8192];
        loop {
            if until.as_mut().poll(cx).is_ready() {
                break;
            }
            let mut read = ReadBuf::new(&mut scratch);
            match Pin::new(&mut this.inner).poll_read(cx, &mut read) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(())) if !read.filled().is_empty() => {
                    *budget = budget.saturating_sub(read.filled().len());
                    if *budget == 0 {
                        break;
                    }
                }
                // The client closed too (or the socket failed): done.
                Poll::Ready(_) => break,
            }
        }
        this.linger = None;
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_bare_error_heads_are_recognised() {
        let hyper = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\
                      date: Thu, 03 Dec 2026 13:44:00 GMT\r\n\r\n";
        assert_eq!(hypers_own(hyper), Some((hyper.len(), 431)));
        assert_eq!(
            hypers_own(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n").unwrap().1,
            400
        );
        // The gateway's own answers have more headers; other statuses are never hyper's.
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n\
                     x-request-id: 1\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(hypers_own(ours), None);
        assert_eq!(hypers_own(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"), None);
        assert_eq!(hypers_own(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n"), None);
        assert_eq!(hypers_own(b"data: HTTP/1.1 400\r\n\r\n"), None);
        let answer = String::from_utf8(answer(431)).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 ") && head.contains("connection: close"));
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["code"], "payload_too_large");
    }
}
