//! Streaming: 1 GiB bodies both ways with strait's peak RSS under 64 MiB,
//! backpressure against slow peers, and server-sent events delivered as the
//! upstream sends them.
//!
//! `STRAIT_TEST_BIG_BYTES=N` changes the size of the big bodies (default 1 GiB).

#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use common::*;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// Peak RSS budget for strait while moving big bodies.
const RSS_LIMIT_KIB: u64 = 64 * 1024;

/// The big transfers run one at a time so their throughput figures mean something.
static BIG: Mutex<()> = Mutex::new(());

fn big_lock() -> MutexGuard<'static, ()> {
    BIG.lock().unwrap_or_else(|e| e.into_inner())
}

/// Generous upstream read timeout (the upstream answers an upload only after
/// reading all of it) and body_read timeout (backpressure pauses the client).
fn streaming_config(up: &Upstream) -> String {
    config(up.addr)
        .replace(
            "timeouts: { connect: 1s, read: 1s }",
            "timeouts: { connect: 1s, read: 30s }",
        )
        .replace("body_read: 1s", "body_read: 5s")
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn mb_per_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

/// An upstream that verifies `/big/upload` bodies against the pattern and
/// answers `BYTES CHECKSUM` (or `MISMATCH ...`), and serves `/big/download?N`
/// as N pattern bytes with a Content-Length. `pause` delays reading uploads.
fn pattern_upstream(pause: Duration) -> Upstream {
    Upstream::start(move |req, out| {
        if req.path() == "/big/upload" {
            thread::sleep(pause);
            let mut check = PatternCheck::new();
            let n = match req.consume_body(|d| check.feed(d)) {
                Ok(n) => n,
                Err(e) => {
                    eprintln!("[upstream] upload body failed: {e}");
                    req.close = true;
                    return;
                }
            };
            let verdict = match check.first_mismatch {
                None => format!("{} {:016x}", n, check.checksum()),
                Some(at) => format!("MISMATCH at {at} after {n} bytes"),
            };
            respond(out, 200, &[], verdict.as_bytes());
        } else if req.path() == "/big/download" {
            req.body();
            let n: u64 = req
                .target
                .split('?')
                .nth(1)
                .and_then(|q| q.parse().ok())
                .unwrap_or(0);
            if write_head(
                out,
                200,
                &[
                    ("Content-Length", &n.to_string()),
                    ("Content-Type", "application/octet-stream"),
                ],
            )
            .is_err()
                || Pattern::new(n).write_all_to(out).is_err()
            {
                req.close = true;
            }
        } else {
            req.body();
            respond(out, 404, &[], b"unknown");
        }
    })
}

/// Uploads `n` pattern bytes through strait; returns the upstream's answer.
fn upload(strait: &Strait, n: u64) -> (Response, Duration) {
    let mut c = strait.client();
    c.set_read_timeout(Duration::from_secs(60));
    let start = Instant::now();
    c.send(format!(
        "POST /big/upload HTTP/1.1\r\nHost: x\r\nContent-Length: {n}\r\n\r\n"
    ));
    let mut w = c.stream.try_clone().expect("clone");
    let writer = thread::spawn(move || Pattern::new(n).write_all_to(&mut w));
    let resp = c.read_response();
    let took = start.elapsed();
    let sent = writer.join().expect("writer thread");
    assert!(
        sent.is_ok(),
        "client could not send the whole body: {sent:?}; response: {}{}",
        resp.head,
        resp.body_str()
    );
    (resp, took)
}

/// Downloads `n` pattern bytes through strait and verifies them.
fn download(strait: &Strait, n: u64, pause: Duration) -> (PatternCheck, Duration) {
    let mut c = strait.client();
    c.set_read_timeout(Duration::from_secs(60));
    let start = Instant::now();
    c.send(format!("GET /big/download?{n} HTTP/1.1\r\nHost: x\r\n\r\n"));
    let head = c.read_head().expect("download response head");
    assert_eq!(head.status, 200, "{}", head.head);
    thread::sleep(pause);
    let mut check = PatternCheck::new();
    let got = c.stream_body(&head, |d| check.feed(d));
    let took = start.elapsed();
    assert!(
        got.is_ok(),
        "download failed after {} bytes: {got:?}",
        check.offset
    );
    (check, took)
}

both_drivers! {
    fn gigabyte_upload_streams_intact_with_bounded_memory(rt) {
        let _serial = big_lock();
        let n = big_bytes();
        let up = pattern_upstream(Duration::ZERO);
        let strait = Strait::start(&streaming_config(&up), rt);
        let (resp, took) = upload(&strait, n);
        let peak = strait.peak_rss_kib();
        println!(
            "[{rt}] upload {} MiB in {:.2?}: {:.0} MB/s, strait peak RSS {:.1} MiB",
            n >> 20, took, mb_per_s(n, took), mib(peak)
        );
        assert_eq!(resp.status, 200, "{}{}", resp.head, resp.body_str());
        let answer = resp.body_str();
        assert!(
            answer.starts_with(&format!("{n} ")),
            "upstream reported {answer:?}, want {n} bytes matching the pattern"
        );
        assert_eq!(answer, format!("{n} {:016x}", PatternCheck::expected_checksum(n)), "checksum differs");
        assert!(peak < RSS_LIMIT_KIB, "strait peak RSS {:.1} MiB >= 64 MiB", mib(peak));
    }

    fn gigabyte_download_streams_intact_with_bounded_memory(rt) {
        let _serial = big_lock();
        let n = big_bytes();
        let up = pattern_upstream(Duration::ZERO);
        let strait = Strait::start(&streaming_config(&up), rt);
        let (check, took) = download(&strait, n, Duration::ZERO);
        let peak = strait.peak_rss_kib();
        println!(
            "[{rt}] download {} MiB in {:.2?}: {:.0} MB/s, strait peak RSS {:.1} MiB, checksum {:016x}",
            n >> 20, took, mb_per_s(n, took), mib(peak), check.checksum()
        );
        if let Err(e) = check.verdict(n) {
            panic!("downloaded body wrong: {e}");
        }
        assert_eq!(check.checksum(), PatternCheck::expected_checksum(n), "checksum differs");
        assert!(peak < RSS_LIMIT_KIB, "strait peak RSS {:.1} MiB >= 64 MiB", mib(peak));
    }

    fn slow_client_download_is_backpressured(rt) {
        // The client stops reading for 1.5 s while the upstream could send
        // 256 MiB: strait must stop reading the upstream instead of buffering.
        let _serial = big_lock();
        let n = (256u64 << 20).min(big_bytes());
        let up = pattern_upstream(Duration::ZERO);
        let strait = Strait::start(&streaming_config(&up), rt);
        let (check, took) = download(&strait, n, Duration::from_millis(1500));
        let peak = strait.peak_rss_kib();
        println!("[{rt}] slow-reader download {} MiB in {:.2?}, strait peak RSS {:.1} MiB", n >> 20, took, mib(peak));
        if let Err(e) = check.verdict(n) {
            panic!("downloaded body wrong: {e}");
        }
        assert!(peak < RSS_LIMIT_KIB, "strait peak RSS {:.1} MiB >= 64 MiB: response buffered", mib(peak));
    }

    fn slow_upstream_upload_is_backpressured(rt) {
        // The upstream waits 1.5 s before reading the body: strait must stop
        // reading the client instead of buffering the upload.
        let _serial = big_lock();
        let n = (256u64 << 20).min(big_bytes());
        let up = pattern_upstream(Duration::from_millis(1500));
        let strait = Strait::start(&streaming_config(&up), rt);
        let (resp, took) = upload(&strait, n);
        let peak = strait.peak_rss_kib();
        println!("[{rt}] slow-upstream upload {} MiB in {:.2?}, strait peak RSS {:.1} MiB", n >> 20, took, mib(peak));
        assert_eq!(resp.status, 200, "{}{}", resp.head, resp.body_str());
        assert!(resp.body_str().starts_with(&format!("{n} ")), "upstream reported {:?}", resp.body_str());
        assert!(peak < RSS_LIMIT_KIB, "strait peak RSS {:.1} MiB >= 64 MiB: request buffered", mib(peak));
    }

    fn server_sent_events_are_delivered_as_sent(rt) {
        let sent_at: Arc<Mutex<Vec<Instant>>> = Arc::new(Mutex::new(Vec::new()));
        let sent = sent_at.clone();
        let up = Upstream::start(move |req, out| {
            req.body();
            if write_head(
                out,
                200,
                &[("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache"), ("Transfer-Encoding", "chunked")],
            )
            .is_err()
            {
                return;
            }
            for i in 0..5 {
                if i > 0 {
                    thread::sleep(Duration::from_millis(200));
                }
                let ev = format!("id: {i}\ndata: event {i}\n\n");
                if write_chunk(out, ev.as_bytes()).is_err() {
                    req.close = true;
                    return;
                }
                if let Ok(mut v) = sent.lock() {
                    v.push(Instant::now());
                }
            }
            let _ = end_chunks(out);
        });
        let strait = Strait::start(&config(up.addr), rt);
        let mut c = strait.client();
        c.send("GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n");
        let head = c.read_head().expect("SSE response head");
        assert_eq!(head.status, 200, "{}", head.head);
        assert!(
            head.header("content-type").unwrap_or("").starts_with("text/event-stream"),
            "{}",
            head.head
        );
        let mut text = Vec::new();
        let mut arrivals: Vec<Instant> = Vec::new();
        let mut events_seen = 0;
        let mut on_data = |d: &[u8]| {
            text.extend_from_slice(d);
            let complete = text.windows(2).filter(|w| w == b"\n\n").count();
            while events_seen < complete {
                arrivals.push(Instant::now());
                events_seen += 1;
            }
            events_seen
        };
        if head.chunked {
            while let Some(chunk) = c.read_chunk().expect("SSE chunk") {
                on_data(&chunk);
            }
        } else {
            let mut buf = [0u8; 4096];
            loop {
                let n = c.read_some(&mut buf).expect("SSE bytes");
                if n == 0 {
                    break;
                }
                if on_data(&buf[..n]) == 5 {
                    break;
                }
            }
        }
        let want: String = (0..5).map(|i| format!("id: {i}\ndata: event {i}\n\n")).collect();
        assert_eq!(String::from_utf8_lossy(&text), want);
        let sent = sent_at.lock().expect("lock").clone();
        assert_eq!(sent.len(), 5);
        assert_eq!(arrivals.len(), 5);
        for (i, (s, a)) in sent.iter().zip(&arrivals).enumerate() {
            eprintln!("event {i}: sent +{:?}, received +{:?} (lag {:?})",
                s.duration_since(sent[0]), a.saturating_duration_since(sent[0]), a.saturating_duration_since(*s));
        }
        assert!(
            arrivals[0] < sent[4],
            "the first event arrived {:?} after the upstream sent the last one: events are buffered",
            arrivals[0].duration_since(sent[4])
        );
        for i in 0..4 {
            assert!(
                arrivals[i] < sent[i + 1],
                "event {i} arrived only after event {} was sent: events are buffered",
                i + 1
            );
        }
    }
}
