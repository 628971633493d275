//! Panics never reach a client as a hang or take strait down: a panic inside
//! a request handler is answered with a JSON 500 and the worker goes on; a
//! panic that unwinds out of a worker's runtime is logged and the worker is
//! restarted on the same sockets. The panics are injected through the
//! `fault-injection` feature's `x-strait-fault` request header.

#![cfg(feature = "fault-injection")]
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use common::*;
use std::time::Duration;

fn restarts(strait: &Strait) -> f64 {
    let status = strait.admin_get("/status");
    status.json()["worker_restarts"]
        .as_f64()
        .expect("worker_restarts is a number")
}

both_drivers! {
    fn panic_in_request_handler_gets_500_json_and_worker_keeps_serving(rt) {
        let up = Upstream::fixed("ok");
        let strait = Strait::start(&config(up.addr).replace("workers: 2", "workers: 1"), rt);
        let mut c = strait.client();
        let resp = c.request("GET / HTTP/1.1\r\nHost: x\r\nx-strait-fault: panic\r\n\r\n");
        resp.assert_error(500);
        assert!(resp.connection_has("close"), "{}", resp.head);
        for i in 0..3 {
            let resp = strait.client().request("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
            assert_eq!(resp.status, 200, "request {i} after the panic: {}{}", resp.head, resp.body_str());
        }
        assert_eq!(restarts(&strait), 0.0, "a handler panic must not restart the worker");
        assert!(strait.stderr().contains("request handler panicked"), "stderr: {}", strait.stderr());
    }

    fn panic_in_worker_runtime_restarts_the_worker(rt) {
        let up = Upstream::fixed("ok");
        let strait = Strait::start(&config(up.addr).replace("workers: 2", "workers: 1"), rt);
        let mut c = strait.client();
        c.set_read_timeout(Duration::from_secs(5));
        c.send("GET / HTTP/1.1\r\nHost: x\r\nx-strait-fault: panic-worker\r\n\r\n");
        // The connection belonged to the runtime that unwound: it is shut
        // down, not left hanging (a response may or may not have made it).
        let outcome = c.wait_close(Duration::from_secs(5));
        assert!(!matches!(outcome, CloseOutcome::Open), "connection left open after the worker died");
        assert!(
            wait_until(Duration::from_secs(5), || restarts(&strait) == 1.0),
            "worker_restarts did not reach 1; stderr: {}",
            strait.stderr()
        );
        // The one worker serves again, on the same listener.
        for i in 0..3 {
            let resp = strait.client().request("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
            assert_eq!(resp.status, 200, "request {i} after the restart: {}{}", resp.head, resp.body_str());
        }
        let log = strait.stderr();
        assert!(log.contains("worker panicked") && log.contains("restarting"), "stderr: {log}");
    }
}
