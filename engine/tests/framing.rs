//! Request framing: ambiguous framing (request smuggling vectors) is answered
//! with 400 + `Connection: close` and the connection is closed; valid framing
//! forwards the body intact.

#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use common::*;
use std::time::Duration;

/// Sends `raw` on a fresh connection and asserts the contract for ambiguous
/// framing: 400 JSON error, `Connection: close`, connection closed, and (when
/// `nothing_upstream`) no request reached the upstream.
fn assert_rejected(rt: &str, raw: &[u8], nothing_upstream: bool) {
    let up = Upstream::echo();
    let strait = Strait::start(&config(up.addr), rt);
    let mut c = strait.client();
    c.send(raw);
    let resp = c.read_response();
    resp.assert_error(400);
    assert!(
        resp.connection_has("close"),
        "400 for ambiguous framing must carry `Connection: close`:\n{}",
        resp.head
    );
    c.assert_closed(Duration::from_secs(3));
    if nothing_upstream {
        let seen = up.requests();
        assert!(
            seen.is_empty(),
            "the rejected request (or what followed it) reached the upstream: {:?}",
            seen.iter().map(|r| r.head.clone()).collect::<Vec<_>>()
        );
    }
}

both_drivers! {
    fn content_length_with_transfer_encoding_is_rejected(rt) {
        // The classic CL.TE smuggling shape: a second request hides in the body.
        assert_rejected(
            rt,
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 38\r\nTransfer-Encoding: chunked\r\n\r\n\
0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
            true,
        );
    }

    fn transfer_encoding_before_content_length_is_rejected(rt) {
        assert_rejected(
            rt,
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
            true,
        );
    }

    fn differing_content_lengths_are_rejected(rt) {
        assert_rejected(
            rt,
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
            true,
        );
    }

    fn content_length_list_with_differing_values_is_rejected(rt) {
        assert_rejected(
            rt,
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 6\r\n\r\nhello!",
            true,
        );
    }

    fn invalid_chunk_size_is_rejected(rt) {
        // The head is fine, so strait may already have contacted the upstream.
        assert_rejected(
            rt,
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
            false,
        );
    }

    fn overflowing_chunk_size_is_rejected(rt) {
        // 17 hex digits do not fit in 64 bits.
        assert_rejected(
            rt,
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\n",
            false,
        );
    }

    fn obs_fold_header_line_is_rejected(rt) {
        assert_rejected(
            rt,
            b"GET / HTTP/1.1\r\nHost: x\r\nX-Folded: first\r\n  second\r\n\r\n",
            true,
        );
    }

    fn obs_fold_with_tab_is_rejected(rt) {
        assert_rejected(
            rt,
            b"GET / HTTP/1.1\r\nHost: x\r\nX-Folded: first\r\n\tsecond\r\n\r\n",
            true,
        );
    }

    fn whitespace_between_header_name_and_colon_is_rejected(rt) {
        assert_rejected(
            rt,
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\nhello",
            true,
        );
    }

    fn transfer_encoding_not_ending_in_chunked_is_rejected(rt) {
        assert_rejected(
            rt,
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            true,
        );
    }

    fn transfer_encoding_without_chunked_is_rejected(rt) {
        assert_rejected(
            rt,
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nhello",
            true,
        );
    }

    fn chunked_body_with_extensions_and_trailers_is_forwarded_intact(rt) {
        let up = Upstream::echo();
        let strait = Strait::start(&config(up.addr), rt);
        let mut c = strait.client();
        c.send(
            "POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
5;ext=1\r\nhello\r\n\
6;name=\"quoted value\";flag\r\n world\r\n\
A\r\n, 0123456\n\r\n\
0;last=yes\r\nX-Trailer: t1\r\nX-Other-Trailer: t2\r\n\r\n",
        );
        let resp = c.read_response();
        assert_eq!(resp.status, 200, "{}{}", resp.head, resp.body_str());
        assert_eq!(resp.body_str(), "hello world, 0123456\n");
        let seen = up.requests();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].body.as_deref(), Some(&b"hello world, 0123456\n"[..]));
        eprintln!(
            "upstream got framing: content-length={:?} transfer-encoding={:?} trailers={:?}",
            seen[0].header("content-length"),
            seen[0].header("transfer-encoding"),
            seen[0].trailers
        );
        // The trailers were consumed: the connection is in sync for the next request.
        let next = c.request("GET /after HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(next.status, 200, "{}{}", next.head, next.body_str());
        assert_eq!(next.header("x-target"), Some("/after"));
    }

    fn content_length_body_is_forwarded_intact(rt) {
        let up = Upstream::echo();
        let strait = Strait::start(&config(up.addr), rt);
        let mut c = strait.client();
        // Every byte value, 200 KiB in all (over one read buffer, under the limit).
        let body: Vec<u8> = (0..200 * 1024u32).map(|i| (i % 256) as u8).collect();
        let mut raw = format!(
            "POST /cl HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        raw.extend_from_slice(&body);
        c.send(&raw);
        let resp = c.read_response();
        assert_eq!(resp.status, 200, "{}", resp.head);
        assert!(resp.body == body, "echoed body differs ({} bytes back)", resp.body.len());
        let seen = up.requests();
        assert_eq!(seen.len(), 1);
        assert!(seen[0].body.as_deref() == Some(&body[..]), "upstream body differs");
        // Keep-alive still in sync.
        let next = c.request("GET /after HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(next.status, 200);
        assert_eq!(next.header("x-target"), Some("/after"));
    }

    fn duplicate_identical_content_length_is_accepted(rt) {
        let up = Upstream::echo();
        let strait = Strait::start(&config(up.addr), rt);
        let mut c = strait.client();
        let resp = c.request(
            "POST /dup HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        );
        assert_eq!(resp.status, 200, "{}{}", resp.head, resp.body_str());
        assert_eq!(resp.body_str(), "hello");
        let seen = up.requests();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].body.as_deref(), Some(&b"hello"[..]));
        let cls = seen[0].header_all("content-length");
        assert!(
            cls.iter().all(|v| v.trim() == "5"),
            "upstream got Content-Length values {cls:?}"
        );
        let next = c.request("GET /after HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(next.status, 200);
    }

    fn chunked_response_from_upstream_reaches_client_intact(rt) {
        let up = Upstream::start(|req, out| {
            req.body();
            let _ = write_head(out, 200, &[("Transfer-Encoding", "chunked"), ("Content-Type", "text/plain")]);
            for part in ["alpha,", "beta,", "gamma"] {
                let _ = write_chunk(out, part.as_bytes());
            }
            let _ = end_chunks(out);
        });
        let strait = Strait::start(&config(up.addr), rt);
        let mut c = strait.client();
        let resp = c.request("GET /chunks HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body_str(), "alpha,beta,gamma");
        let next = c.request("GET /chunks HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(next.body_str(), "alpha,beta,gamma");
    }
}
