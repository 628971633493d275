//! Process lifecycle and command line: graceful drain on SIGTERM/SIGINT,
//! `--listen` / `--admin` / `--workers` overrides, `--help`, `validate`.

#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use common::*;
use std::thread;
use std::time::{Duration, Instant};

/// An upstream whose `/slow` answers after `delay`; everything else at once.
fn slow_upstream(delay: Duration) -> Upstream {
    Upstream::start(move |req, out| {
        req.body();
        if req.path() == "/slow" {
            thread::sleep(delay);
            respond(out, 200, &[], b"finished slowly");
        } else {
            respond(out, 200, &[], b"quick");
        }
    })
}

fn lifecycle_config(up: &Upstream, shutdown_timeout: &str) -> String {
    config(up.addr)
        .replace(
            "shutdown_timeout: 5s",
            &format!("shutdown_timeout: {shutdown_timeout}"),
        )
        .replace(
            "timeouts: { connect: 1s, read: 1s }",
            "timeouts: { connect: 1s, read: 10s }",
        )
}

fn graceful_drain(rt: &str, signal: fn(&Strait)) {
    let up = slow_upstream(Duration::from_secs(1));
    let mut strait = Strait::start(&lifecycle_config(&up, "5s"), rt);
    let mut c = strait.client();
    c.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        up.wait_requests(1, Duration::from_secs(5)),
        "the slow request never reached the upstream"
    );
    let t0 = Instant::now();
    signal(&strait);
    // New connections are refused while the in-flight request still runs.
    let refused = wait_refused(strait.proxy, Duration::from_millis(800));
    let refused_after = t0.elapsed();
    let resp = c.read_response();
    let answered_after = t0.elapsed();
    let status = strait.wait_exit(Duration::from_secs(6));
    let exited_after = t0.elapsed();
    eprintln!(
        "drain: refused new connections after {refused_after:?} ({refused}), in-flight answered after \
         {answered_after:?}, exit {status:?} after {exited_after:?}"
    );
    assert_eq!(
        resp.status,
        200,
        "in-flight request not completed: {}{}",
        resp.head,
        resp.body_str()
    );
    assert_eq!(resp.body_str(), "finished slowly");
    assert!(
        refused,
        "new connections were still accepted {refused_after:?} after the signal"
    );
    let status = status.expect("strait did not exit within shutdown_timeout (5s) + 1s");
    assert!(status.success(), "strait exited with {status:?}, want 0");
    assert!(exited_after < Duration::from_secs(6));
}

both_drivers! {
    fn sigterm_drains_in_flight_request_then_exits_zero(rt) {
        graceful_drain(rt, Strait::sigterm);
    }

    fn sigint_drains_in_flight_request_then_exits_zero(rt) {
        graceful_drain(rt, Strait::sigint);
    }

    fn idle_keepalive_connections_do_not_delay_shutdown(rt) {
        let up = slow_upstream(Duration::from_secs(1));
        let mut strait = Strait::start(&lifecycle_config(&up, "5s"), rt);
        let mut c = strait.client();
        let resp = c.request("GET /quick HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(resp.status, 200);
        let t0 = Instant::now();
        strait.sigterm();
        let status = strait.wait_exit(Duration::from_secs(6));
        let took = t0.elapsed();
        eprintln!("exit {status:?} after {took:?} with one idle keep-alive connection");
        let status = status.expect("strait did not exit");
        assert!(status.success(), "exit status {status:?}");
        assert!(took < Duration::from_secs(2), "an idle connection held shutdown for {took:?}");
        assert!(c.wait_close(Duration::from_secs(1)).is_closed(), "idle client connection not closed");
    }

    fn shutdown_timeout_bounds_the_drain(rt) {
        // The in-flight request needs 5 s; shutdown_timeout is 1 s.
        let up = slow_upstream(Duration::from_secs(5));
        let mut strait = Strait::start(&lifecycle_config(&up, "1s"), rt);
        let mut c = strait.client();
        c.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(up.wait_requests(1, Duration::from_secs(5)));
        let t0 = Instant::now();
        strait.sigterm();
        let status = strait.wait_exit(Duration::from_secs(4));
        let took = t0.elapsed();
        eprintln!("exit {status:?} after {took:?} (shutdown_timeout 1s, request needs 5s)");
        let status = status.expect("strait did not exit within shutdown_timeout + 3s");
        assert!(status.success(), "exit status {status:?}, want 0");
        assert!(took >= Duration::from_millis(900), "exited after {took:?}: did not wait for the in-flight request");
        assert!(took < Duration::from_millis(2500), "exited after {took:?}, shutdown_timeout is 1s");
        // The client sees its connection end (no hang).
        let _ = c.wait_close(Duration::from_secs(2));
    }

    fn listen_admin_and_workers_flags_override_config(rt) {
        let up = Upstream::fixed("flagged");
        let listen = free_port();
        let configured_admin = free_port();
        let yaml = config(up.addr)
            .replace("admin: { listen: 127.0.0.1:0 }", &format!("admin: {{ listen: {configured_admin} }}"));
        let strait = Strait::start_with_args(
            &yaml,
            rt,
            &["--listen", &listen.to_string(), "--admin", "127.0.0.1:0", "--workers", "1"],
        );
        assert_eq!(strait.proxy, listen, "--listen not applied; stdout: {:?}", strait.stdout_lines);
        let admin = strait.admin.expect("admin address printed");
        assert_ne!(admin, configured_admin, "--admin not applied");
        assert_ne!(admin.port(), 0, "admin printed port 0 instead of the bound port");
        let mut c = strait.client();
        assert_eq!(c.request("GET / HTTP/1.1\r\nHost: x\r\n\r\n").body_str(), "flagged");
        let status = strait.admin_get("/status").json();
        assert_eq!(status["workers"].as_f64(), Some(1.0), "--workers not applied");
    }

    fn startup_prints_listeners_admin_and_ready(rt) {
        let up = Upstream::fixed("ok");
        let strait = Strait::start(&config(up.addr), rt);
        let lines = &strait.stdout_lines;
        assert_eq!(lines.len(), 3, "stdout lines: {lines:?}");
        assert_eq!(lines[0], format!("strait: proxy listening on http://{}", strait.proxy));
        assert_ne!(strait.proxy.port(), 0);
        let admin = strait.admin.expect("admin");
        assert_ne!(admin.port(), 0);
        assert_eq!(lines[1], format!("strait: admin listening on http://{admin}"));
        assert_eq!(lines[2], "strait: ready");
    }
}

#[test]
fn help_lists_subcommands() {
    let (st, out, err) = run_strait(&["--help"]);
    assert!(st.success(), "strait --help: {st:?}\n{out}{err}");
    assert!(out.contains("run"), "`run` missing from --help:\n{out}");
    assert!(
        out.contains("validate"),
        "`validate` missing from --help:\n{out}"
    );
}

#[test]
fn run_help_lists_options() {
    let (st, out, err) = run_strait(&["run", "--help"]);
    assert!(st.success(), "strait run --help: {st:?}\n{out}{err}");
    for opt in ["--config", "--listen", "--admin", "--workers", "--runtime"] {
        assert!(
            out.contains(opt),
            "`{opt}` missing from `strait run --help`:\n{out}"
        );
    }
    assert!(
        out.contains("-c"),
        "`-c` missing from `strait run --help`:\n{out}"
    );
}

#[test]
fn validate_accepts_good_config() {
    let path = write_temp(&config("127.0.0.1:9".parse().expect("addr")), "yaml");
    let p = path.to_string_lossy().into_owned();
    let (st, out, err) = run_strait(&["validate", "-c", &p]);
    let _ = std::fs::remove_file(&path);
    assert!(
        st.success(),
        "validate of a good config: {st:?}\nstdout:\n{out}\nstderr:\n{err}"
    );
}

#[test]
fn validate_rejects_unknown_upstream_with_file_and_line() {
    let yaml = config("127.0.0.1:9".parse().expect("addr")).replace(
        "    rewrite: /new/\n",
        "    rewrite: /new/\n  - name: broken\n    match: { path_prefix: /broken/ }\n    upstream: no-such-upstream\n",
    );
    let line = yaml
        .lines()
        .position(|l| l.contains("no-such-upstream"))
        .expect("line of the bad reference")
        + 1;
    let path = write_temp(&yaml, "yaml");
    let p = path.to_string_lossy().into_owned();
    let (st, out, err) = run_strait(&["validate", "-c", &p]);
    let _ = std::fs::remove_file(&path);
    eprintln!("validate output:\nstdout:\n{out}\nstderr:\n{err}");
    assert!(!st.success(), "validate accepted an unknown upstream");
    let all = format!("{out}{err}");
    let want = format!("{p}:{line}:");
    assert!(
        all.contains(&want),
        "want `{want}` (the line of `upstream: no-such-upstream`) in:\n{all}"
    );
    assert!(
        all.contains("no-such-upstream"),
        "the message should name the unknown upstream:\n{all}"
    );
}

#[test]
fn validate_rejects_missing_file() {
    let path = temp_path("yaml");
    let p = path.to_string_lossy().into_owned();
    let (st, out, err) = run_strait(&["validate", "-c", &p]);
    assert!(
        !st.success(),
        "validate of a missing file succeeded:\n{out}{err}"
    );
}

#[test]
fn run_with_unknown_upstream_fails_to_start() {
    let yaml = config("127.0.0.1:9".parse().expect("addr")).replace(
        "upstream: backend\n    rewrite",
        "upstream: nope\n    rewrite",
    );
    match Strait::try_start_with_args(&yaml, "epoll", &[]) {
        Ok(_) => panic!("strait started with an unknown upstream in a route"),
        Err(msg) => eprintln!("refused as expected:\n{msg}"),
    }
}
