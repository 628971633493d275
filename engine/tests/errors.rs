//! Upstream failures (502, 504) as JSON errors on a connection that stays
//! usable, stale pooled connections, and the admin `/status` document.

#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use common::*;
use std::io::Write;
use std::thread;
use std::time::{Duration, Instant};

/// The example config plus an upstream `down` (nothing listens there) routed
/// from `/down/`.
fn config_with_down_upstream(up: &Upstream) -> String {
    let down = free_port();
    config(up.addr)
        .replace(
            "upstreams:\n",
            &format!(
                "upstreams:\n  - name: down\n    targets: [\"{down}\"]\n    timeouts: {{ connect: 1s, read: 1s }}\n"
            ),
        )
        .replace(
            "routes:\n",
            "routes:\n  - name: down\n    match: { path_prefix: /down/ }\n    upstream: down\n",
        )
}

both_drivers! {
    fn upstream_down_gets_502_json_and_connection_stays_usable(rt) {
        let up = Upstream::fixed("alive");
        let strait = Strait::start(&config_with_down_upstream(&up), rt);
        let mut c = strait.client();
        let start = Instant::now();
        let resp = c.request("GET /down/x HTTP/1.1\r\nHost: x\r\n\r\n");
        eprintln!("502 after {:?}: {}", start.elapsed(), resp.body_str());
        resp.assert_error(502);
        assert!(!resp.connection_has("close"), "502 must keep the client connection:\n{}", resp.head);
        let next = c.request("GET /up HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(next.status, 200, "{}{}", next.head, next.body_str());
        assert_eq!(next.body_str(), "alive");
        // And again, to be sure the failure left nothing behind.
        let again = c.request("GET /down/y HTTP/1.1\r\nHost: x\r\n\r\n");
        again.assert_error(502);
        let last = c.request("GET /up HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(last.body_str(), "alive");
    }

    fn upstream_down_with_request_body_gets_502_and_connection_stays_usable(rt) {
        // The body must be consumed (or the connection closed), never parsed
        // as the next request.
        let up = Upstream::fixed("alive");
        let strait = Strait::start(&config_with_down_upstream(&up), rt);
        let mut c = strait.client();
        let resp = c.request(
            "POST /down/x HTTP/1.1\r\nHost: x\r\nContent-Length: 33\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
        );
        resp.assert_error(502);
        let next = c.request("GET /up HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(next.status, 200, "{}{}", next.head, next.body_str());
        assert_eq!(next.body_str(), "alive");
        assert!(
            up.requests().iter().all(|r| r.target != "/smuggled"),
            "the body of the failed request was parsed as a request"
        );
    }

    fn slow_upstream_gets_504_json_and_connection_stays_usable(rt) {
        let up = Upstream::start(|req, out| {
            req.body();
            if req.path().starts_with("/slow") {
                thread::sleep(Duration::from_millis(1800));
                respond(out, 200, &[], b"slow");
            } else {
                respond(out, 200, &[], b"fast");
            }
        });
        let strait = Strait::start(&config(up.addr), rt);
        let mut c = strait.client();
        let start = Instant::now();
        let resp = c.request("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
        let took = start.elapsed();
        eprintln!("504 after {took:?} (read timeout 1s): {}", resp.body_str());
        resp.assert_error(504);
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_millis(1700),
            "504 after {took:?}, the upstream read timeout is 1s"
        );
        assert!(!resp.connection_has("close"), "504 must keep the client connection:\n{}", resp.head);
        // The timed-out upstream connection must not be pooled: its late
        // "slow" answer must never show up here.
        for _ in 0..3 {
            let next = c.request("GET /fast HTTP/1.1\r\nHost: x\r\n\r\n");
            assert_eq!(next.status, 200, "{}{}", next.head, next.body_str());
            assert_eq!(next.body_str(), "fast");
        }
        thread::sleep(Duration::from_millis(1000)); // past the late answer
        let late = c.request("GET /fast HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(late.body_str(), "fast");
    }

    fn upstream_closing_without_response_gets_502(rt) {
        let up = Upstream::start(|req, out| {
            req.body();
            if req.path() == "/hangup" {
                req.close = true; // no answer at all
            } else {
                respond(out, 200, &[], b"fine");
            }
        });
        let strait = Strait::start(&config(up.addr), rt);
        let mut c = strait.client();
        let resp = c.request("GET /hangup HTTP/1.1\r\nHost: x\r\n\r\n");
        resp.assert_error(502);
        let next = c.request("GET /fine HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(next.status, 200, "{}", next.head);
        assert_eq!(next.body_str(), "fine");
    }

    fn upstream_invalid_response_gets_502(rt) {
        let up = Upstream::start(|req, out| {
            req.body();
            if req.path() == "/garbage" {
                let _ = out.write_all(b"NOT HTTP AT ALL\r\n\r\n");
                req.close = true;
            } else {
                respond(out, 200, &[], b"fine");
            }
        });
        let strait = Strait::start(&config(up.addr), rt);
        let mut c = strait.client();
        let resp = c.request("GET /garbage HTTP/1.1\r\nHost: x\r\n\r\n");
        resp.assert_error(502);
        let next = c.request("GET /fine HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(next.body_str(), "fine");
    }

    fn stale_pooled_connection_is_not_used(rt) {
        // The upstream closes every connection right after answering, without
        // saying `Connection: close` (as an upstream idle timeout would).
        let up = Upstream::start(|req, out| {
            req.body();
            respond(out, 200, &[], b"ok");
            req.close = true;
        });
        let yaml = config(up.addr).replace("workers: 2", "workers: 1");
        let strait = Strait::start(&yaml, rt);
        let mut c = strait.client();
        for i in 0..3 {
            let resp = c.request("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
            assert_eq!(resp.status, 200, "request {i}: {}{}", resp.head, resp.body_str());
            assert_eq!(resp.body_str(), "ok");
            // Let the upstream's close reach strait's pooled connection.
            assert!(wait_until(Duration::from_secs(2), || up.open_connections() == 0));
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn admin_status_reports_version_workers_driver_uptime_config(rt) {
        let up = Upstream::fixed("ok");
        let strait = Strait::start(&config(up.addr), rt);
        let resp = strait.admin_get("/status");
        assert_eq!(resp.status, 200, "{}{}", resp.head, resp.body_str());
        assert!(
            resp.header("content-type").unwrap_or("").starts_with("application/json"),
            "{}",
            resp.head
        );
        eprintln!("/status: {}", resp.body_str());
        let j = resp.json();
        assert!(j["version"].as_str().is_some_and(|v| !v.is_empty()), "version: {}", resp.body_str());
        assert_eq!(j["workers"].as_f64(), Some(2.0), "workers: {}", resp.body_str());
        assert_eq!(j["driver"].as_str(), Some(rt), "driver: {}", resp.body_str());
        let up1 = j["uptime_seconds"].as_f64().expect("uptime_seconds is a number");
        assert!(up1 >= 0.0);
        assert!(!j["config_version"].is_null(), "config_version: {}", resp.body_str());
        // Uptime advances.
        thread::sleep(Duration::from_millis(1100));
        let j2 = strait.admin_get("/status").json();
        let up2 = j2["uptime_seconds"].as_f64().expect("uptime_seconds");
        assert!(up2 > up1, "uptime_seconds did not advance: {up1} -> {up2}");
        assert_eq!(j2["config_version"], j["config_version"]);
    }
}
