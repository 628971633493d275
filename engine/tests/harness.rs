//! Self-tests of the test helpers (no strait involved): the test upstream,
//! the raw client and the byte pattern. When these fail, the
//! other suites' failures say nothing about strait.

#![allow(clippy::unwrap_used)]

#[allow(unused_macros)]
#[macro_use]
mod common;

use common::*;
use std::time::Duration;

#[test]
fn upstream_and_client_speak_content_length_chunked_and_pipelining() {
    let up = Upstream::echo();
    let mut c = Client::connect(up.addr);
    c.send(
        "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello\
POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;e=1\r\nabc\r\n2\r\nde\r\n0\r\nT: v\r\n\r\n\
GET /c HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let a = c.read_response();
    let b = c.read_response();
    let g = c.read_response();
    assert_eq!((a.status, a.body_str()), (200, "hello".to_string()));
    assert_eq!(b.body_str(), "abcde");
    assert_eq!(g.header("x-target"), Some("/c"));
    let seen = up.requests();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[1].trailers, vec![("T".to_string(), "v".to_string())]);
    assert_eq!(up.connections(), 1);
    let h = c.request("HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(h.header("content-length"), Some("0"));
    let last = c.request("GET /d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(last.header("x-target"), Some("/d"));
    assert!(c.wait_close(Duration::from_secs(2)).is_closed());
}

#[test]
fn client_reads_chunked_and_close_delimited_responses() {
    let up = Upstream::start(|req, out| {
        req.body();
        if req.path() == "/chunked" {
            let _ = write_head(out, 200, &[("Transfer-Encoding", "chunked")]);
            let _ = write_chunk(out, b"one ");
            let _ = write_chunk(out, b"two");
            let _ = end_chunks(out);
        } else {
            let _ = std::io::Write::write_all(out, b"HTTP/1.1 200 OK\r\n\r\nto the end");
            req.close = true;
        }
    });
    let mut c = Client::connect(up.addr);
    let r = c.request("GET /chunked HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(r.chunked);
    assert_eq!(r.body_str(), "one two");
    let r = c.request("GET /close HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(r.close_delimited);
    assert_eq!(r.body_str(), "to the end");
}

#[test]
fn pattern_check_accepts_the_pattern_and_catches_changes() {
    let n = 5 * BLOCK as u64 + 123;
    let mut data = Vec::new();
    let mut p = Pattern::new(n);
    while let Some(piece) = p.next_piece() {
        data.extend_from_slice(piece);
    }
    assert_eq!(data.len() as u64, n);
    let mut ok = PatternCheck::new();
    for part in data.chunks(7777) {
        ok.feed(part);
    }
    assert_eq!(ok.verdict(n), Ok(n));
    assert_eq!(ok.checksum(), PatternCheck::expected_checksum(n));

    // Two blocks swapped.
    let mut swapped = data.clone();
    let (a, b) = swapped.split_at_mut(2 * BLOCK);
    a[BLOCK..2 * BLOCK].swap_with_slice(&mut b[..BLOCK]);
    let mut bad = PatternCheck::new();
    bad.feed(&swapped);
    assert_eq!(bad.first_mismatch, Some(BLOCK as u64));
    assert_ne!(bad.checksum(), PatternCheck::expected_checksum(n));

    // One byte lost in the middle.
    let mut lost = data.clone();
    lost.remove(100_000);
    let mut bad = PatternCheck::new();
    bad.feed(&lost);
    assert!(bad.verdict(n).is_err());
}

#[test]
fn free_port_is_refused() {
    let addr = free_port();
    assert!(wait_refused(addr, Duration::from_secs(1)));
}
