//! The admin listener: a small blocking HTTP server on its own thread, off the
//! data path. `GET /status` reports version, workers, driver, uptime and the
//! config version.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::http;

pub struct AdminState {
    pub started: Instant,
    pub workers: usize,
    pub driver: &'static str,
    pub config_version: String,
    pub config_source: String,
    pub listeners: Vec<String>,
    pub worker_restarts: Arc<AtomicUsize>,
}

pub fn spawn(listener: TcpListener, state: Arc<AdminState>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("strait-admin".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = handle(stream, &state);
            }
        })?;
    Ok(())
}

fn handle(mut stream: TcpStream, state: &AdminState) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = vec![0u8; 8192];
    let mut len = 0;
    let (method, path) = loop {
        let n = stream.read(&mut buf[len..])?;
        if n == 0 {
            return Ok(());
        }
        len += n;
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf[..len]) {
            Ok(httparse::Status::Complete(_)) => {
                break (
                    req.method.unwrap_or("").to_string(),
                    req.path.unwrap_or("").to_string(),
                )
            }
            Ok(httparse::Status::Partial) if len < buf.len() => continue,
            _ => {
                let mut out = Vec::new();
                http::write_error(
                    &mut out,
                    400,
                    "invalid_request",
                    "bad request",
                    false,
                    false,
                );
                return stream.write_all(&out);
            }
        }
    };
    let mut out = Vec::new();
    let path = path.split('?').next().unwrap_or("");
    match (method.as_str(), path) {
        ("GET", "/status") => {
            let body = serde_json::json!({
                "service": "strait",
                "version": env!("CARGO_PKG_VERSION"),
                "workers": state.workers,
                "driver": state.driver,
                "uptime_seconds": state.started.elapsed().as_secs_f64(),
                "config_version": state.config_version,
                "config_source": state.config_source,
                "listeners": state.listeners,
                "worker_restarts": state.worker_restarts.load(Ordering::Relaxed),
            })
            .to_string();
            http::write_answer(
                &mut out,
                &http::Answer {
                    status: 200,
                    content_type: "application/json",
                    body: body.as_bytes(),
                    extra_headers: &[],
                    keep_alive: false,
                    head_only: false,
                },
            );
        }
        (_, "/status") => {
            http::write_error(&mut out, 405, "method_not_allowed", "use GET", false, false)
        }
        _ => http::write_error(
            &mut out,
            404,
            "not_found",
            "unknown admin endpoint",
            false,
            false,
        ),
    }
    stream.write_all(&out)
}
