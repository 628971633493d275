//! Listener limits and timeouts: 431 for big heads, 413 for big bodies, 408 for
//! slow heads and bodies (then close), silent close of idle keep-alive
//! connections.
//!
//! The config used: max_header_bytes 8KiB, max_headers 50, max_body_bytes 1MiB,
//! header_read 1s, body_read 1s, idle 2s (1s in the idle test).

#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use common::*;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

both_drivers! {
    fn head_over_max_header_bytes_gets_431(rt) {
        let up = Upstream::echo();
        let strait = Strait::start(&config(up.addr), rt);
        let mut c = strait.client();
        // One 9000-byte header value: the head is over 8 KiB.
        let raw = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(9000));
        let resp = c.request(&raw);
        resp.assert_error(431);
        assert!(up.requests().is_empty(), "the oversized head reached the upstream");
    }

    fn head_just_under_max_header_bytes_is_accepted(rt) {
        let up = Upstream::echo();
        let strait = Strait::start(&config(up.addr), rt);
        let mut c = strait.client();
        // About 7 KiB in all: under the 8 KiB limit.
        let raw = format!("GET /ok HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(7000));
        let resp = c.request(&raw);
        assert_eq!(resp.status, 200, "{}{}", resp.head, resp.body_str());
        let seen = up.requests();
        assert_eq!(seen[0].header("x-big").map(str::len), Some(7000));
    }

    fn too_many_headers_gets_431(rt) {
        let up = Upstream::echo();
        let strait = Strait::start(&config(up.addr), rt);
        let mut c = strait.client();
        let mut raw = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
        for i in 0..60 {
            raw.push_str(&format!("X-H{i}: v\r\n"));
        }
        raw.push_str("\r\n");
        assert!(raw.len() < 8 * 1024, "the head itself must be under max_header_bytes");
        let resp = c.request(&raw);
        resp.assert_error(431);
        assert!(up.requests().is_empty(), "the request reached the upstream");
    }

    fn body_over_limit_by_content_length_gets_413(rt) {
        let up = Upstream::echo();
        let strait = Strait::start(&config(up.addr), rt);
        let mut c = strait.client();
        // Only the head is sent: strait must answer from Content-Length alone.
        let resp = c.request("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n");
        resp.assert_error(413);
        assert!(up.requests().is_empty(), "the oversized request reached the upstream");
    }

    fn body_at_limit_by_content_length_is_accepted(rt) {
        let up = Upstream::start(|req, out| {
            let n = req.consume_body(|_| {}).unwrap_or(0);
            respond(out, 200, &[], n.to_string().as_bytes());
        });
        let strait = Strait::start(&config(up.addr), rt);
        let mut c = strait.client();
        let body = vec![b'x'; 1024 * 1024];
        c.send(format!("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", body.len()));
        c.send(&body);
        let resp = c.read_response();
        assert_eq!(resp.status, 200, "{}{}", resp.head, resp.body_str());
        assert_eq!(resp.body_str(), (1024 * 1024).to_string());
    }

    fn chunked_body_over_limit_gets_413(rt) {
        let up = Upstream::start(|req, out| {
            let n = req.consume_body(|_| {}).unwrap_or(0);
            respond(out, 200, &[], n.to_string().as_bytes());
        });
        let strait = Strait::start(&config(up.addr), rt);
        let mut c = strait.client();
        c.send("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
        // 17 chunks of 64 KiB = 1 MiB + 64 KiB, written from a thread so that an
        // early 413 can be read while the client is still sending.
        let mut w = c.stream.try_clone().expect("clone");
        let writer = thread::spawn(move || {
            let chunk = vec![b'y'; 64 * 1024];
            for _ in 0..17 {
                let mut piece = format!("{:x}\r\n", chunk.len()).into_bytes();
                piece.extend_from_slice(&chunk);
                piece.extend_from_slice(b"\r\n");
                if w.write_all(&piece).is_err() {
                    return;
                }
            }
            let _ = w.write_all(b"0\r\n\r\n");
        });
        let resp = c.read_response();
        resp.assert_error(413);
        let _ = writer.join();
    }

    fn slowloris_head_gets_408_after_header_read_timeout(rt) {
        let up = Upstream::echo();
        let strait = Strait::start(&config(up.addr), rt);
        let mut c = strait.client();
        let stop = Arc::new(AtomicBool::new(false));
        let mut w = c.stream.try_clone().expect("clone");
        let stop2 = stop.clone();
        let start = Instant::now();
        // A partial head, then one more header line every 250 ms for up to 4 s:
        // the header_read timeout (1 s) counts from the first byte, so trickling
        // must not keep the connection alive.
        let writer = thread::spawn(move || {
            if w.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").is_err() {
                return;
            }
            for i in 0..16 {
                thread::sleep(Duration::from_millis(250));
                if stop2.load(Ordering::SeqCst) {
                    return;
                }
                if w.write_all(format!("X-Slow-{i}: y\r\n").as_bytes()).is_err() {
                    return;
                }
            }
        });
        let resp = c.read_response();
        let took = start.elapsed();
        stop.store(true, Ordering::SeqCst);
        eprintln!("408 after {took:?} (header_read: 1s)");
        resp.assert_error(408);
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
            "408 came after {took:?}; header_read is 1s from the first byte"
        );
        c.assert_closed(Duration::from_secs(3));
        let _ = writer.join();
        assert!(up.requests().is_empty(), "an unfinished head reached the upstream");
    }

    fn partial_head_then_silence_gets_408(rt) {
        let up = Upstream::echo();
        let strait = Strait::start(&config(up.addr), rt);
        let mut c = strait.client();
        let start = Instant::now();
        c.send("GET / HTTP/1.1\r\nHost: x\r\nX-Unfinished: ");
        let resp = c.read_response();
        let took = start.elapsed();
        eprintln!("408 after {took:?} (header_read: 1s)");
        resp.assert_error(408);
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
            "408 came after {took:?}"
        );
        c.assert_closed(Duration::from_secs(3));
    }

    fn stalled_body_gets_408_after_body_read_timeout(rt) {
        let up = Upstream::echo();
        let strait = Strait::start(&config(up.addr), rt);
        let mut c = strait.client();
        c.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello");
        let start = Instant::now();
        let resp = c.read_response();
        let took = start.elapsed();
        eprintln!("408 after {took:?} (body_read: 1s)");
        resp.assert_error(408);
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
            "408 came after {took:?}"
        );
        c.assert_closed(Duration::from_secs(3));
    }

    fn stalled_chunked_body_gets_408(rt) {
        let up = Upstream::echo();
        let strait = Strait::start(&config(up.addr), rt);
        let mut c = strait.client();
        c.send("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
        let start = Instant::now();
        let resp = c.read_response();
        let took = start.elapsed();
        eprintln!("408 after {took:?} (body_read: 1s)");
        resp.assert_error(408);
        assert!(took < Duration::from_millis(2500), "408 came after {took:?}");
        c.assert_closed(Duration::from_secs(3));
    }

    fn idle_keepalive_connection_is_closed_silently(rt) {
        let up = Upstream::fixed("ok");
        let yaml = config(up.addr).replace("idle: 2s", "idle: 1s");
        let strait = Strait::start(&yaml, rt);
        let mut c = strait.client();
        let resp = c.request("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body_str(), "ok");
        let start = Instant::now();
        let outcome = c.wait_close(Duration::from_secs(5));
        let took = start.elapsed();
        eprintln!("idle connection closed after {took:?} (idle: 1s): {outcome:?}");
        assert_eq!(outcome, CloseOutcome::Eof, "idle close must be silent (no bytes, no reset)");
        assert!(
            took >= Duration::from_millis(800) && took < Duration::from_millis(3000),
            "idle close after {took:?}, idle is 1s"
        );
    }

    fn active_keepalive_connection_outlives_idle_timeout(rt) {
        // Requests every 400 ms for 2.4 s on one connection with idle: 1s: the
        // idle timer restarts after each response.
        let up = Upstream::fixed("ok");
        let yaml = config(up.addr).replace("idle: 2s", "idle: 1s");
        let strait = Strait::start(&yaml, rt);
        let mut c = strait.client();
        for _ in 0..6 {
            let resp = c.request("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
            assert_eq!(resp.status, 200);
            thread::sleep(Duration::from_millis(400));
        }
    }
}
