//! Forwarding one request to an upstream and relaying the response.
//!
//! Bodies stream both ways through the two connections' buffers and are never
//! held whole: at most one read's worth (64 KiB) is in memory per direction.
//! Small pieces are coalesced into a single write (the head with the first
//! body bytes), and whatever is queued is written before strait waits for
//! more input, so server-sent events reach the client as they are produced.
//!
//! Errors before the response head reaches the client become a JSON 502
//! (upstream unreachable or broken) or 504 (upstream too slow); after that the
//! only honest signal left is closing the client connection. A request without
//! a body that fails on a pooled connection the upstream had silently closed is
//! retried once on a fresh connection.

use std::cell::Cell;
use std::io;
use std::time::Duration;

use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::time::timeout;

use super::{ClientConn, Next, Target};
use crate::config::{HostHeader, RouteAction};
use crate::http::chunked::{self, ChunkedParser, Piece};
use crate::http::head::{is_hop_by_hop, response_framing, tokens};
use crate::http::{self, write_vec, BodyKind, Framing, Head, HeadError, ReadBuf};
use crate::router::Route;
use crate::upstream::{ConnectError, Stream, UpstreamConn, UpstreamPool};

/// Bytes copied into one write instead of written separately.
const COALESCE: usize = 16 * 1024;
/// Most bytes read at once from either side.
const READ_CHUNK: usize = 64 * 1024;
/// Largest upstream response head accepted.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

pub(crate) struct Request<'a> {
    pub route: &'a Route,
    pub pool: &'a UpstreamPool,
    pub framing: Framing,
    pub target: Target,
    /// The client's host (absolute-form target or Host header), with port.
    pub host: Option<http::head::Span>,
    pub body_limit: u64,
    pub keep_alive: bool,
    pub is_head: bool,
    pub draining: &'a Cell<bool>,
}

/// Failures of one exchange with an upstream.
#[derive(Debug)]
enum Failure {
    /// A pooled connection turned out closed before any response byte.
    Stale,
    /// The upstream could not be reached or broke before its response head.
    Upstream(&'static str),
    UpstreamTimeout,
    BadResponse(&'static str),
    /// The client's request body was invalid, too large, slow or cut off.
    Client(BodyError),
    /// Something went wrong after the response started, or the client left.
    Abort,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum BodyError {
    Timeout,
    TooLarge,
    Invalid(&'static str),
    ClientClosed,
    /// Writing to the destination failed.
    Sink,
}

struct Outcome {
    upstream_reusable: bool,
    client_keep_alive: bool,
}

/// How the response body is written to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Relay {
    None,
    Length(u64),
    /// Chunked from upstream, relayed as is.
    Chunked,
    /// Chunked from upstream, payload only (HTTP/1.0 client).
    Dechunk,
    /// Close-delimited from upstream, chunked to the client.
    Enchunk,
    /// Close-delimited both ways (HTTP/1.0 client).
    Raw,
}

impl ClientConn {
    pub(super) async fn forward(&mut self, req: &Request<'_>) -> Next {
        let pool = req.pool;
        let spec = &pool.spec.config;
        let connect_timeout = req.route.connect_timeout.unwrap_or(spec.timeouts.connect);
        let read_timeout = req.route.read_timeout.unwrap_or(spec.timeouts.read);
        let has_body = req.framing.body != BodyKind::None;
        let mut fresh_only = false;
        loop {
            let mut conn = match self
                .acquire(pool, connect_timeout, has_body, fresh_only)
                .await
            {
                Ok(conn) => conn,
                Err((status, kind, message)) => {
                    let keep =
                        req.keep_alive && (self.body_done || self.drain_unsent_body(req).await);
                    return self.answer_error(status, kind, message, keep).await;
                }
            };
            self.up_out.clear();
            write_upstream_head(
                &mut self.up_out,
                &self.head,
                req,
                pool,
                conn.target,
                &self.peer_ip,
            );
            let result = match &mut conn.stream {
                Stream::Plain(s) => self.exchange_with(s, &mut conn.rb, req, read_timeout).await,
                Stream::Tls(s) => {
                    self.exchange_with(&mut **s, &mut conn.rb, req, read_timeout)
                        .await
                }
            };
            match result {
                Ok(outcome) => {
                    if outcome.upstream_reusable {
                        pool.checkin(conn);
                    }
                    return if outcome.client_keep_alive {
                        Next::KeepAlive
                    } else {
                        Next::Close
                    };
                }
                Err(Failure::Stale) if conn.reused && !has_body && !fresh_only => {
                    fresh_only = true;
                    continue;
                }
                Err(Failure::Stale) | Err(Failure::Upstream(_)) => {
                    let message = match result {
                        Err(Failure::Upstream(m)) => m,
                        _ => "upstream closed the connection",
                    };
                    let keep = req.keep_alive && self.body_done;
                    return self
                        .answer_error(502, "upstream_error", message, keep)
                        .await;
                }
                Err(Failure::UpstreamTimeout) => {
                    let keep = req.keep_alive && self.body_done;
                    return self
                        .answer_error(
                            504,
                            "upstream_timeout",
                            "upstream did not answer in time",
                            keep,
                        )
                        .await;
                }
                Err(Failure::BadResponse(m)) => {
                    let keep = req.keep_alive && self.body_done;
                    return self
                        .answer_error(502, "bad_upstream_response", m, keep)
                        .await;
                }
                Err(Failure::Client(e)) => return self.body_failed(e).await,
                Err(Failure::Abort) => return Next::Close,
            }
        }
    }

    async fn body_failed(&mut self, e: BodyError) -> Next {
        match e {
            BodyError::Timeout => {
                self.fail(408, "request_timeout", "request body not received in time")
                    .await
            }
            BodyError::TooLarge => {
                self.fail(
                    413,
                    "request_body_too_large",
                    "request body exceeds the size limit",
                )
                .await
            }
            BodyError::Invalid(m) => self.fail(400, "invalid_request", m).await,
            BodyError::Sink => {
                self.fail(
                    502,
                    "upstream_error",
                    "upstream failed while receiving the request body",
                )
                .await
            }
            BodyError::ClientClosed => Next::Close,
        }
    }

    /// A connection to one of the upstream's targets: pooled if possible,
    /// else new, trying each target once. On failure: status, kind, message.
    async fn acquire(
        &mut self,
        pool: &UpstreamPool,
        connect_timeout: Duration,
        probe: bool,
        fresh_only: bool,
    ) -> Result<UpstreamConn, (u16, &'static str, &'static str)> {
        let mut timed_out = false;
        for _ in 0..pool.target_count() {
            let target = pool.pick();
            if !fresh_only {
                if let Some(conn) = pool.checkout(target, probe) {
                    return Ok(conn);
                }
            }
            match pool.connect(target, connect_timeout).await {
                Ok(conn) => return Ok(conn),
                Err(ConnectError::Timeout) => timed_out = true,
                Err(ConnectError::Io(e)) => {
                    tracing::debug!(target_index = target, "upstream connect failed: {e}");
                }
            }
        }
        if timed_out {
            Err((
                504,
                "upstream_timeout",
                "connecting to the upstream timed out",
            ))
        } else {
            Err((
                502,
                "upstream_unavailable",
                "the upstream refused the connection",
            ))
        }
    }

    /// Reads and drops a request body that was never sent upstream, so the
    /// connection can carry the next request. Not when the client is waiting
    /// for `100 Continue`: then it never sent the body and we close instead.
    async fn drain_unsent_body(&mut self, req: &Request<'_>) -> bool {
        if req.framing.expect_continue {
            return false;
        }
        self.discard_body(req.framing.body, req.body_limit).await
    }

    async fn exchange_with<S: AsyncReadRent + AsyncWriteRent>(
        &mut self,
        up: &mut S,
        urb: &mut ReadBuf,
        req: &Request<'_>,
        read_timeout: Duration,
    ) -> Result<Outcome, Failure> {
        let has_body = req.framing.body != BodyKind::None;
        if has_body {
            if req.framing.expect_continue {
                self.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                write_vec(&mut self.stream, &mut self.out)
                    .await
                    .map_err(|_| Failure::Abort)?;
            }
            let mut up_out = std::mem::take(&mut self.up_out);
            let sent =
                copy_request_body(self, up, &mut up_out, req.framing.body, req.body_limit).await;
            self.up_out = up_out;
            match sent {
                Ok(()) => {}
                Err(BodyError::Sink) if self.body_done => {
                    return Err(Failure::Upstream("upstream closed the connection"))
                }
                Err(e) => return Err(Failure::Client(e)),
            }
        } else if write_vec(up, &mut self.up_out).await.is_err() {
            return Err(Failure::Stale);
        }

        let mut resp = Head::default();
        let framing = read_response_head(up, urb, &mut resp, read_timeout, req.is_head).await?;
        if resp.status == 101 {
            return Err(Failure::BadResponse("protocol upgrades are not supported"));
        }

        let client_http10 = self.head.minor_version == 0;
        let relay = match framing.body {
            BodyKind::None => Relay::None,
            BodyKind::Length(n) => Relay::Length(n),
            BodyKind::Chunked if client_http10 => Relay::Dechunk,
            BodyKind::Chunked => Relay::Chunked,
            BodyKind::UntilClose if client_http10 => Relay::Raw,
            BodyKind::UntilClose => Relay::Enchunk,
        };
        let client_keep_alive = req.keep_alive
            && !req.draining.get()
            && !matches!(relay, Relay::Dechunk | Relay::Raw)
            && self.body_done;
        write_response_head(
            &mut self.out,
            &resp,
            relay,
            client_keep_alive,
            client_http10,
        );
        self.response_started = true;
        relay_body(
            up,
            urb,
            &mut self.stream,
            &mut self.out,
            relay,
            read_timeout,
        )
        .await?;
        write_vec(&mut self.stream, &mut self.out)
            .await
            .map_err(|_| Failure::Abort)?;
        Ok(Outcome {
            upstream_reusable: framing.keep_alive && self.body_done && urb.is_empty(),
            client_keep_alive,
        })
    }
}

/// Reads a response head, skipping interim (1xx) responses other than 101.
async fn read_response_head<S: AsyncReadRent>(
    up: &mut S,
    urb: &mut ReadBuf,
    resp: &mut Head,
    read_timeout: Duration,
    is_head: bool,
) -> Result<Framing, Failure> {
    let mut received_any = false;
    loop {
        match resp.parse_response(urb.data()) {
            Ok(Some(n)) => {
                urb.consume(n);
                received_any = true;
                if (100..200).contains(&resp.status) && resp.status != 101 {
                    continue;
                }
                return response_framing(resp, is_head).map_err(|e| match e {
                    HeadError::Invalid(m) | HeadError::NotImplemented(m) => Failure::BadResponse(m),
                    _ => Failure::BadResponse("invalid upstream response head"),
                });
            }
            Ok(None) => {}
            Err(_) => return Err(Failure::BadResponse("invalid upstream response head")),
        }
        if urb.len() >= MAX_RESPONSE_HEAD {
            return Err(Failure::BadResponse("upstream response head too large"));
        }
        match timeout(read_timeout, urb.fill(up, MAX_RESPONSE_HEAD)).await {
            Err(_) => return Err(Failure::UpstreamTimeout),
            Ok(Ok(0)) | Ok(Err(_)) if !received_any && urb.is_empty() => {
                return Err(Failure::Stale)
            }
            Ok(Ok(0)) | Ok(Err(_)) => {
                return Err(Failure::Upstream(
                    "upstream closed the connection mid-response",
                ))
            }
            Ok(Ok(_)) => received_any = true,
        }
    }
}

/// Queues `n` bytes of `src` for `w`: copied into `out` when small, else
/// `out` is flushed and the bytes written straight from `src`'s buffer.
async fn emit<W: AsyncWriteRent>(
    w: &mut W,
    out: &mut Vec<u8>,
    src: &mut ReadBuf,
    n: usize,
) -> io::Result<()> {
    if out.len() + n <= COALESCE {
        out.extend_from_slice(&src.data()[..n]);
        src.consume(n);
        Ok(())
    } else {
        write_vec(w, out).await?;
        src.write_to(w, n).await
    }
}

/// Copies the client's request body (`conn.rb` then the socket) to `sink`,
/// Content-Length bodies as they are, chunked bodies re-chunked without
/// extensions or trailers. `out` holds bytes already queued for `sink` (the
/// request head) and is flushed before each wait for the client.
pub(crate) async fn copy_request_body<W: AsyncWriteRent>(
    conn: &mut ClientConn,
    sink: &mut W,
    out: &mut Vec<u8>,
    kind: BodyKind,
    limit: u64,
) -> Result<(), BodyError> {
    let body_timeout = conn.timeouts.body_read;
    match kind {
        BodyKind::None | BodyKind::UntilClose => {}
        BodyKind::Length(total) => {
            let mut left = total;
            while left > 0 {
                if conn.rb.is_empty() {
                    write_vec(sink, out).await.map_err(|_| BodyError::Sink)?;
                    fill_client(conn, body_timeout).await?;
                }
                let n = (conn.rb.len() as u64).min(left) as usize;
                emit(sink, out, &mut conn.rb, n)
                    .await
                    .map_err(|_| BodyError::Sink)?;
                left -= n as u64;
            }
        }
        BodyKind::Chunked => {
            let mut parser = ChunkedParser::new();
            let mut total = 0u64;
            while !parser.is_done() {
                if conn.rb.is_empty() {
                    write_vec(sink, out).await.map_err(|_| BodyError::Sink)?;
                    fill_client(conn, body_timeout).await?;
                }
                match parser.next(conn.rb.data()) {
                    Err(e) => return Err(BodyError::Invalid(e.0)),
                    Ok(Some(Piece::Data(n))) => {
                        total += n as u64;
                        if total > limit {
                            return Err(BodyError::TooLarge);
                        }
                        chunked::write_chunk_header(out, n);
                        emit(sink, out, &mut conn.rb, n)
                            .await
                            .map_err(|_| BodyError::Sink)?;
                        out.extend_from_slice(b"\r\n");
                    }
                    Ok(Some(Piece::Frame(n))) => conn.rb.consume(n),
                    Ok(Some(Piece::End(n))) => {
                        conn.rb.consume(n);
                        out.extend_from_slice(chunked::LAST_CHUNK);
                    }
                    Ok(None) => {}
                }
            }
        }
    }
    conn.body_done = true;
    write_vec(sink, out).await.map_err(|_| BodyError::Sink)
}

async fn fill_client(conn: &mut ClientConn, body_timeout: Duration) -> Result<(), BodyError> {
    match timeout(body_timeout, conn.rb.fill(&mut conn.stream, READ_CHUNK)).await {
        Err(_) => Err(BodyError::Timeout),
        Ok(Ok(0)) | Ok(Err(_)) => Err(BodyError::ClientClosed),
        Ok(Ok(_)) => Ok(()),
    }
}

/// Streams the response body from the upstream to the client.
async fn relay_body<S: AsyncReadRent, W: AsyncWriteRent>(
    up: &mut S,
    urb: &mut ReadBuf,
    client: &mut W,
    out: &mut Vec<u8>,
    relay: Relay,
    read_timeout: Duration,
) -> Result<(), Failure> {
    let abort = |_| Failure::Abort;
    match relay {
        Relay::None => {}
        Relay::Length(total) => {
            let mut left = total;
            while left > 0 {
                if urb.is_empty() {
                    write_vec(client, out).await.map_err(abort)?;
                    fill_upstream(up, urb, read_timeout).await?;
                }
                let n = (urb.len() as u64).min(left) as usize;
                emit(client, out, urb, n).await.map_err(abort)?;
                left -= n as u64;
            }
        }
        Relay::Chunked | Relay::Dechunk => {
            let mut parser = ChunkedParser::new();
            while !parser.is_done() {
                if urb.is_empty() {
                    write_vec(client, out).await.map_err(abort)?;
                    fill_upstream(up, urb, read_timeout).await?;
                }
                let piece = parser
                    .next(urb.data())
                    .map_err(|_| Failure::Abort)?
                    .unwrap_or(Piece::Frame(0));
                match (relay, piece) {
                    (Relay::Chunked, Piece::Data(n) | Piece::Frame(n) | Piece::End(n)) => {
                        emit(client, out, urb, n).await.map_err(abort)?;
                    }
                    (_, Piece::Data(n)) => emit(client, out, urb, n).await.map_err(abort)?,
                    (_, Piece::Frame(n) | Piece::End(n)) => urb.consume(n),
                }
            }
        }
        Relay::Enchunk | Relay::Raw => loop {
            if urb.is_empty() {
                write_vec(client, out).await.map_err(abort)?;
                match timeout(read_timeout, urb.fill(up, READ_CHUNK)).await {
                    Err(_) => return Err(Failure::Abort),
                    Ok(Ok(0)) | Ok(Err(_)) => break,
                    Ok(Ok(_)) => {}
                }
            }
            let n = urb.len();
            if relay == Relay::Enchunk {
                chunked::write_chunk_header(out, n);
                emit(client, out, urb, n).await.map_err(abort)?;
                out.extend_from_slice(b"\r\n");
            } else {
                emit(client, out, urb, n).await.map_err(abort)?;
            }
        },
    }
    if relay == Relay::Enchunk {
        out.extend_from_slice(chunked::LAST_CHUNK);
    }
    Ok(())
}

async fn fill_upstream<S: AsyncReadRent>(
    up: &mut S,
    urb: &mut ReadBuf,
    read_timeout: Duration,
) -> Result<(), Failure> {
    match timeout(read_timeout, urb.fill(up, READ_CHUNK)).await {
        Ok(Ok(n)) if n > 0 => Ok(()),
        _ => Err(Failure::Abort),
    }
}

/// Does this request carry `Connection` tokens other than close/keep-alive?
fn has_connection_options(head: &Head) -> bool {
    head.fields
        .iter()
        .filter(|f| head.name(f).eq_ignore_ascii_case(b"connection"))
        .flat_map(|f| tokens(head.value(f)))
        .any(|t| !t.eq_ignore_ascii_case(b"close") && !t.eq_ignore_ascii_case(b"keep-alive"))
}

fn skip_end_to_end(head: &Head, name: &[u8], connection_options: bool) -> bool {
    is_hop_by_hop(name) || (connection_options && http::head::named_in_connection(head, name))
}

/// The request head sent upstream: origin-form target, `Host` per the
/// upstream's setting, hop-by-hop fields removed, forwarding fields set, and
/// our own framing header.
fn write_upstream_head(
    out: &mut Vec<u8>,
    head: &Head,
    req: &Request<'_>,
    pool: &UpstreamPool,
    target: usize,
    peer_ip: &str,
) {
    let options = has_connection_options(head);
    out.extend_from_slice(head.method());
    out.push(b' ');
    let path = head.get(req.target.path);
    let path: &[u8] = if path.is_empty() { b"/" } else { path };
    req.route
        .write_upstream_target(out, path, head.get(req.target.query));
    out.extend_from_slice(b" HTTP/1.1\r\n");

    let client_host = req.host.map(|s| head.get(s));
    out.extend_from_slice(b"host: ");
    match &pool.spec.config.host_header {
        HostHeader::Target => out.extend_from_slice(pool.spec.authorities[target].as_bytes()),
        HostHeader::Preserve => {
            out.extend_from_slice(client_host.unwrap_or(pool.spec.authorities[target].as_bytes()))
        }
        HostHeader::Fixed(v) => out.extend_from_slice(v.as_bytes()),
    }
    out.extend_from_slice(b"\r\n");

    let mut xff_seen = false;
    let mut via_seen = false;
    let mut xfh_seen = false;
    for f in &head.fields {
        let name = head.name(f);
        let special = name.eq_ignore_ascii_case(b"host")
            || name.eq_ignore_ascii_case(b"content-length")
            || name.eq_ignore_ascii_case(b"expect")
            || name.eq_ignore_ascii_case(b"x-forwarded-proto")
            || name.eq_ignore_ascii_case(b"x-forwarded-for")
            || name.eq_ignore_ascii_case(b"via");
        xff_seen |= name.eq_ignore_ascii_case(b"x-forwarded-for");
        via_seen |= name.eq_ignore_ascii_case(b"via");
        xfh_seen |= name.eq_ignore_ascii_case(b"x-forwarded-host");
        if special || skip_end_to_end(head, name, options) {
            continue;
        }
        http::write_header(out, name, head.value(f));
    }
    out.extend_from_slice(b"x-forwarded-for: ");
    if xff_seen {
        join_values(out, head, b"x-forwarded-for");
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(peer_ip.as_bytes());
    out.extend_from_slice(b"\r\nx-forwarded-proto: http\r\nvia: ");
    if via_seen {
        join_values(out, head, b"via");
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(b"1.1 strait\r\n");
    if let (false, Some(h), false) = (
        matches!(pool.spec.config.host_header, HostHeader::Preserve),
        client_host,
        xfh_seen,
    ) {
        http::write_header(out, b"x-forwarded-host", h);
    }
    match req.framing.body {
        BodyKind::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            http::push_decimal(out, n);
            out.extend_from_slice(b"\r\n");
        }
        BodyKind::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        BodyKind::None | BodyKind::UntilClose => {
            let m = head.method();
            if m == b"POST" || m == b"PUT" || m == b"PATCH" {
                out.extend_from_slice(b"content-length: 0\r\n");
            }
        }
    }
    out.extend_from_slice(b"\r\n");
    debug_assert!(matches!(req.route.action, RouteAction::Proxy { .. }));
}

fn join_values(out: &mut Vec<u8>, head: &Head, name: &[u8]) {
    let mut first = true;
    for f in head
        .fields
        .iter()
        .filter(|f| head.name(f).eq_ignore_ascii_case(name))
    {
        if !first {
            out.extend_from_slice(b", ");
        }
        first = false;
        out.extend_from_slice(head.value(f));
    }
}

/// The response head sent to the client.
fn write_response_head(
    out: &mut Vec<u8>,
    resp: &Head,
    relay: Relay,
    keep_alive: bool,
    client_http10: bool,
) {
    http::write_status_line(out, resp.status);
    let options = has_connection_options(resp);
    for f in &resp.fields {
        let name = resp.name(f);
        if skip_end_to_end(resp, name, options) {
            continue;
        }
        if name.eq_ignore_ascii_case(b"content-length") && relay != Relay::None {
            continue;
        }
        http::write_header(out, name, resp.value(f));
    }
    match relay {
        Relay::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            http::push_decimal(out, n);
            out.extend_from_slice(b"\r\n");
        }
        Relay::Chunked | Relay::Enchunk => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Relay::None | Relay::Dechunk | Relay::Raw => {}
    }
    if !keep_alive {
        out.extend_from_slice(b"connection: close\r\n");
    } else if client_http10 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
}
