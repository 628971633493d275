//! The request pipeline of one client connection, on one core.
//!
//! A connection is served by one task on the worker that accepted it: read a
//! head (within the header-read timeout and size limits), decide its framing,
//! route it, then answer it locally or forward it (`forward`). Requests on a
//! connection are handled one after another, so pipelined requests are
//! answered in order. Every error strait produces is a JSON body with the
//! status that fits; a panic while serving a request is caught here, answered
//! with 500 when nothing was sent yet, and never takes the worker down.
//!
//! Nothing here takes a lock or parses config: the route table and upstream
//! settings come pre-compiled in the snapshot.

mod forward;

use std::cell::Cell;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::sync::Arc;

use futures_util::FutureExt;
use monoio::io::AsyncWriteRentExt;
use monoio::net::TcpStream;
use monoio::time::{timeout, timeout_at, Instant};

use crate::config::{Limits, RouteAction, ServerTimeouts};
use crate::http::head::{request_framing, Span};
use crate::http::{self, write_vec, Answer, BodyKind, Head, HeadError, ReadBuf};
use crate::snapshot::Snapshot;
use crate::upstream::UpstreamPool;

/// Client read buffer; also the most body bytes read from a client at once.
const CLIENT_BUF: usize = 64 * 1024;

/// Everything one worker (core) owns.
pub struct Core {
    pub id: usize,
    pub snapshot: Arc<Snapshot>,
    pub pools: Vec<UpstreamPool>,
    /// Requests between head parsed and response finished.
    pub in_flight: Cell<usize>,
    /// Set on shutdown: responses carry `Connection: close`.
    pub draining: Cell<bool>,
}

impl Core {
    pub fn new(id: usize, snapshot: Arc<Snapshot>) -> Core {
        Core {
            id,
            pools: snapshot
                .upstreams
                .iter()
                .cloned()
                .map(UpstreamPool::new)
                .collect(),
            snapshot,
            in_flight: Cell::new(0),
            draining: Cell::new(false),
        }
    }
}

struct InFlight<'a>(&'a Cell<usize>);

impl<'a> InFlight<'a> {
    fn enter(c: &'a Cell<usize>) -> Self {
        c.set(c.get() + 1);
        InFlight(c)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

/// What happens to the connection after an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    KeepAlive,
    Close,
}

/// Where the request's path, query and (absolute-form) host are in its head.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target {
    pub path: Span,
    pub query: Span,
    pub host: Option<Span>,
}

pub(crate) struct ClientConn {
    pub stream: TcpStream,
    pub rb: ReadBuf,
    pub head: Head,
    /// Bytes queued for the client.
    pub out: Vec<u8>,
    /// Bytes queued for the upstream.
    pub up_out: Vec<u8>,
    pub peer_ip: String,
    pub limits: Limits,
    pub timeouts: ServerTimeouts,
    /// Something of the current response has been written.
    pub response_started: bool,
    /// The current request's body has been read to its end.
    pub body_done: bool,
}

/// Serves one accepted connection until it closes.
pub async fn serve(stream: TcpStream, peer: SocketAddr, core: Rc<Core>, listener: usize) {
    let _ = stream.set_nodelay(true);
    let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
    let Some(lc) = core.snapshot.config.listeners.get(listener) else {
        return;
    };
    let mut conn = ClientConn {
        stream,
        rb: ReadBuf::with_capacity(8 * 1024),
        head: Head::default(),
        out: Vec::with_capacity(8 * 1024),
        up_out: Vec::with_capacity(4 * 1024),
        peer_ip: peer.ip().to_string(),
        limits: lc.limits,
        timeouts: lc.timeouts,
        response_started: false,
        body_done: true,
    };
    // Declared after `conn`, so it is dropped before the socket closes.
    let _tracked = crate::worker::sockets::Tracked::new(fd);
    loop {
        conn.response_started = false;
        match AssertUnwindSafe(conn.exchange(&core)).catch_unwind().await {
            Ok(Next::KeepAlive) => continue,
            Ok(Next::Close) => break,
            Err(panic) => {
                tracing::error!(
                    worker = core.id,
                    "request handler panicked: {}",
                    panic_message(&*panic)
                );
                if !conn.response_started {
                    let mut out = Vec::new();
                    http::write_error(
                        &mut out,
                        500,
                        "internal_error",
                        "internal error",
                        false,
                        false,
                    );
                    let _ = conn.stream.write_all(out).await;
                }
                break;
            }
        }
    }
}

pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

impl ClientConn {
    /// Reads, routes and answers one request.
    async fn exchange(&mut self, core: &Core) -> Next {
        if self.rb.is_empty() {
            match timeout(
                self.timeouts.idle,
                self.rb.fill(&mut self.stream, CLIENT_BUF),
            )
            .await
            {
                Ok(Ok(n)) if n > 0 => {}
                _ => return Next::Close,
            }
        }
        let deadline = Instant::now() + self.timeouts.header_read;
        let head_len = loop {
            match self
                .head
                .parse_request(self.rb.data(), self.limits.max_headers)
            {
                Ok(Some(n)) => break n,
                Ok(None) => {
                    if self.rb.len() >= self.limits.max_header_bytes {
                        return self.head_too_large().await;
                    }
                    let limit = self.limits.max_header_bytes;
                    match timeout_at(deadline, self.rb.fill(&mut self.stream, limit)).await {
                        Err(_) => {
                            return self
                                .fail(408, "request_timeout", "request head not received in time")
                                .await;
                        }
                        Ok(Ok(0)) | Ok(Err(_)) => return Next::Close,
                        Ok(Ok(_)) => {}
                    }
                }
                Err(e) => return self.refuse(e).await,
            }
        };
        if head_len > self.limits.max_header_bytes {
            return self.head_too_large().await;
        }
        self.rb.consume(head_len);
        let framing = match request_framing(&self.head) {
            Ok(f) => f,
            Err(e) => return self.refuse(e).await,
        };
        self.body_done = framing.body == BodyKind::None;
        let Some(target) = split_target(&self.head) else {
            return self
                .fail(400, "invalid_request", "invalid request target")
                .await;
        };
        let host_span = target.host.or_else(|| {
            self.head
                .fields
                .iter()
                .find(|f| self.head.name(f).eq_ignore_ascii_case(b"host"))
                .map(|f| f.value)
        });
        let host = host_span
            .map(|s| strip_port(self.head.get(s)))
            .unwrap_or(b"");
        let snapshot = &core.snapshot;
        let Some(route) = snapshot
            .router
            .find(&self.head, host, self.head.get(target.path))
        else {
            let keep = framing.keep_alive && self.body_done && !core.draining.get();
            return self
                .answer_error(
                    404,
                    "route_not_found",
                    "no route matches this request",
                    keep,
                )
                .await;
        };
        let body_limit = route.max_body_bytes.unwrap_or(self.limits.max_body_bytes);
        if let BodyKind::Length(n) = framing.body {
            if n > body_limit {
                return self
                    .fail(
                        413,
                        "request_body_too_large",
                        "request body exceeds the size limit",
                    )
                    .await;
            }
        }
        let _in_flight = InFlight::enter(&core.in_flight);
        #[cfg(feature = "fault-injection")]
        inject_fault(&self.head);
        let keep_alive = framing.keep_alive && !core.draining.get();
        let is_head = self.head.method() == b"HEAD";
        match &route.action {
            RouteAction::Respond {
                status,
                content_type,
                body,
                headers,
            } => {
                let mut keep = keep_alive;
                if !self.body_done {
                    keep = keep
                        && !framing.expect_continue
                        && self.discard_body(framing.body, body_limit).await;
                }
                http::write_answer(
                    &mut self.out,
                    &Answer {
                        status: *status,
                        content_type,
                        body: body.as_bytes(),
                        extra_headers: headers,
                        keep_alive: keep,
                        head_only: is_head,
                    },
                );
                self.finish(keep).await
            }
            RouteAction::Proxy { upstream, .. } => {
                let req = forward::Request {
                    route,
                    pool: &core.pools[*upstream],
                    framing,
                    target,
                    host: host_span,
                    body_limit,
                    keep_alive,
                    is_head,
                    draining: &core.draining,
                };
                self.forward(&req).await
            }
        }
    }

    /// Writes what is queued and says whether the connection goes on.
    async fn finish(&mut self, keep_alive: bool) -> Next {
        self.response_started = true;
        match write_vec(&mut self.stream, &mut self.out).await {
            Ok(()) if keep_alive => Next::KeepAlive,
            _ => Next::Close,
        }
    }

    async fn head_too_large(&mut self) -> Next {
        self.fail(
            431,
            "request_header_too_large",
            "request head exceeds the size limit",
        )
        .await
    }

    /// Answers a request whose head was refused, and closes the connection.
    async fn refuse(&mut self, e: HeadError) -> Next {
        match e {
            HeadError::TooManyHeaders => {
                self.fail(431, "request_header_too_large", "too many header fields")
                    .await
            }
            HeadError::UnsupportedExpectation => {
                self.fail(
                    417,
                    "expectation_failed",
                    "only Expect: 100-continue is supported",
                )
                .await
            }
            HeadError::Invalid(m) | HeadError::NotImplemented(m) => {
                self.fail(400, "invalid_request", m).await
            }
        }
    }

    /// Answers with a JSON error and closes the connection.
    async fn fail(&mut self, status: u16, kind: &str, message: &str) -> Next {
        self.answer_error(status, kind, message, false).await
    }

    async fn answer_error(
        &mut self,
        status: u16,
        kind: &str,
        message: &str,
        keep_alive: bool,
    ) -> Next {
        if self.response_started {
            return Next::Close;
        }
        self.out.clear();
        let head_only = self.head.method() == b"HEAD";
        http::write_error(&mut self.out, status, kind, message, keep_alive, head_only);
        self.finish(keep_alive).await
    }

    /// Reads and drops the rest of the request body, within its limit and
    /// timeout. True when the body was read to its end.
    async fn discard_body(&mut self, kind: BodyKind, limit: u64) -> bool {
        let mut sink = Discard;
        let mut out = Vec::new();
        let ok = forward::copy_request_body(self, &mut sink, &mut out, kind, limit)
            .await
            .is_ok();
        self.body_done = ok;
        ok
    }
}

/// Test-only faults, asked for by the `x-strait-fault` request header:
/// `panic` panics inside the request handler (the connection's guard catches
/// it), `panic-worker` panics in a task of its own, which unwinds out of the
/// worker's runtime (the worker thread's guard restarts the runtime).
#[cfg(feature = "fault-injection")]
fn inject_fault(head: &Head) {
    match head.header("x-strait-fault") {
        Some(b"panic") => panic!("fault injected: panic in request handler"),
        Some(b"panic-worker") => {
            monoio::spawn(async { panic!("fault injected: panic in worker runtime") });
        }
        _ => {}
    }
}

/// A writer that drops everything (for bodies nobody will read).
struct Discard;

impl monoio::io::AsyncWriteRent for Discard {
    async fn write<T: monoio::buf::IoBuf>(&mut self, buf: T) -> monoio::BufResult<usize, T> {
        let n = buf.bytes_init();
        (Ok(n), buf)
    }

    async fn writev<T: monoio::buf::IoVecBuf>(&mut self, buf: T) -> monoio::BufResult<usize, T> {
        let n = (0..buf.read_iovec_len())
            .map(|i| {
                // SAFETY: `i` is within the length the buffer reports.
                unsafe { (*buf.read_iovec_ptr().add(i)).iov_len }
            })
            .sum();
        (Ok(n), buf)
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }

    async fn shutdown(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Host without its port (and without IPv6 brackets' port).
fn strip_port(host: &[u8]) -> &[u8] {
    let host = http::head::trim(host);
    if host.starts_with(b"[") {
        return match host.iter().position(|b| *b == b']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.iter().rposition(|b| *b == b':') {
        Some(i) => &host[..i],
        None => host,
    }
}

/// Splits the request target into path and query; accepts origin-form,
/// absolute-form (`http://host/path`) and `*` for OPTIONS.
fn split_target(head: &Head) -> Option<Target> {
    let t = head.target();
    let whole = head.target;
    let (start, host) = if t.starts_with(b"/") {
        (0, None)
    } else if t == b"*" && head.method() == b"OPTIONS" {
        return Some(Target {
            path: whole,
            query: whole.sub(1, 1),
            host: None,
        });
    } else {
        let lower_scheme = |s: &[u8]| t.len() >= s.len() && t[..s.len()].eq_ignore_ascii_case(s);
        let skip = if lower_scheme(b"http://") {
            7
        } else if lower_scheme(b"https://") {
            8
        } else {
            return None;
        };
        let end = t[skip..]
            .iter()
            .position(|b| *b == b'/' || *b == b'?')
            .map_or(t.len(), |p| skip + p);
        if end == skip {
            return None;
        }
        (end, Some(whole.sub(skip, end)))
    };
    let q = t[start..]
        .iter()
        .position(|b| *b == b'?')
        .map_or(t.len(), |p| start + p);
    if start == t.len() || t[start] == b'?' {
        // `http://host` or `http://host?q`: path "/" is implied; use an empty
        // path span and let routing see "/" through the prefix rules.
        return Some(Target {
            path: whole.sub(start, q),
            query: whole.sub(q, t.len()),
            host,
        });
    }
    Some(Target {
        path: whole.sub(start, q),
        query: whole.sub(q, t.len()),
        host,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_port_handles_ipv6_and_names() {
        assert_eq!(strip_port(b"example.com:8080"), b"example.com");
        assert_eq!(strip_port(b"example.com"), b"example.com");
        assert_eq!(strip_port(b"[::1]:80"), b"[::1]");
    }

    #[test]
    fn absolute_form_target_is_split() {
        let mut h = Head::default();
        h.parse_request(
            b"GET http://Example.com/a/b?x=1 HTTP/1.1\r\nHost: other\r\n\r\n",
            10,
        )
        .unwrap()
        .unwrap();
        let t = split_target(&h).unwrap();
        assert_eq!(h.get(t.path), b"/a/b");
        assert_eq!(h.get(t.query), b"?x=1");
        assert_eq!(h.get(t.host.unwrap()), b"Example.com");
    }
}
