//! Shared helpers for the integration tests of the `strait` binary.
//!
//! Everything here is plain `std`: a handle on a running `strait` process
//! ([`Strait`]), a small threaded HTTP/1.1 test upstream ([`Upstream`]), a raw
//! client on `TcpStream` ([`Client`], [`Response`]), a tiny JSON reader
//! (`serde_json` for JSON bodies), a deterministic byte pattern for big bodies ([`Pattern`],
//! [`PatternCheck`]) and the [`both_drivers!`] macro that runs a test once on
//! io_uring and once on epoll.
//!
//! Environment knobs:
//! - `STRAIT_TEST_RUNTIMES=epoll` (comma list) restricts the drivers tested.
//! - `STRAIT_TEST_BIG_BYTES=N` changes the size of the "1 GB" bodies.

#![allow(clippy::unwrap_used)]
#![allow(dead_code)]

use std::collections::hash_map::DefaultHasher;
use std::fmt::Write as _;
use std::hash::Hasher;
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Runs the test body once per driver: generates `mod NAME { fn io_uring(); fn epoll(); }`.
///
/// ```ignore
/// both_drivers! {
///     fn pipelined_requests_are_answered_in_order(rt) { ... }
/// }
/// ```
/// The test names become `NAME::io_uring` and `NAME::epoll`.
macro_rules! both_drivers {
    ($( $(#[$meta:meta])* fn $name:ident($rt:ident) $body:block )*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                #[allow(unused_variables)]
                fn run($rt: &str) $body

                $(#[$meta])*
                #[test]
                fn io_uring() {
                    if $crate::common::runtime_enabled("io_uring") {
                        run("io_uring")
                    }
                }

                $(#[$meta])*
                #[test]
                fn epoll() {
                    if $crate::common::runtime_enabled("epoll") {
                        run("epoll")
                    }
                }
            }
        )*
    };
}

// Importable by path too (`use common::*;`), not only through `#[macro_use]`.
#[allow(unused_imports)]
pub(crate) use both_drivers;

/// `read`, retried when a signal interrupts it (the test process gets
/// SIGCHLD from the strait processes other tests start and stop).
pub fn read_retrying(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match r.read(buf) {
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Whether the kernel lets this process set up an io_uring instance.
pub fn io_uring_available() -> bool {
    // SAFETY: io_uring_setup with 1 entry writes only into `params`, a zeroed
    // struct of the size the kernel expects (120 bytes); the fd is closed.
    unsafe {
        let mut params = [0u8; 120];
        let fd = libc::syscall(libc::SYS_io_uring_setup, 1u32, params.as_mut_ptr());
        if fd < 0 {
            return false;
        }
        libc::close(fd as i32);
        true
    }
}

/// Whether the driver is selected by `STRAIT_TEST_RUNTIMES` (all when unset)
/// and, for io_uring, allowed by the kernel (a loud skip where it is not).
pub fn runtime_enabled(rt: &str) -> bool {
    if rt == "io_uring" && !io_uring_available() {
        eprintln!(
            "SKIPPED: this kernel refuses io_uring_setup; the io_uring variant cannot run here"
        );
        return false;
    }
    match std::env::var("STRAIT_TEST_RUNTIMES") {
        Ok(list) if !list.trim().is_empty() => {
            let on = list.split(',').any(|s| s.trim() == rt);
            if !on {
                eprintln!("skipped: runtime {rt} not in STRAIT_TEST_RUNTIMES={list}");
            }
            on
        }
        _ => true,
    }
}

/// The path of the binary under test.
pub fn strait_bin() -> &'static str {
    env!("CARGO_BIN_EXE_strait")
}

static UNIQUE: AtomicUsize = AtomicUsize::new(0);

/// A fresh path under the temp dir: `strait-test-PID-N-NANOS.EXT`.
pub fn temp_path(ext: &str) -> PathBuf {
    let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    std::env::temp_dir().join(format!(
        "strait-test-{}-{}-{}.{}",
        std::process::id(),
        n,
        nanos,
        ext
    ))
}

/// Writes `text` to a fresh temp file and returns its path.
pub fn write_temp(text: &str, ext: &str) -> PathBuf {
    let path = temp_path(ext);
    std::fs::write(&path, text).expect("write temp file");
    path
}

/// An address on 127.0.0.1 where nothing listens (bound, then released).
pub fn free_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = l.local_addr().expect("local_addr");
    drop(l);
    addr
}

/// The example configuration of the contract, pointing `backend` at `upstream`.
///
/// Tests adapt it with `.replace(..)` on the literal lines, e.g.
/// `config(up).replace("workers: 2", "workers: 1")`.
pub fn config(upstream: SocketAddr) -> String {
    format!(
        r#"workers: 2
runtime: epoll
shutdown_timeout: 5s
admin: {{ listen: 127.0.0.1:0 }}
listeners:
  - name: main
    listen: 127.0.0.1:0
    limits: {{ max_header_bytes: 8KiB, max_headers: 50, max_body_bytes: 1MiB }}
    timeouts: {{ header_read: 1s, body_read: 1s, idle: 2s }}
upstreams:
  - name: backend
    targets: ["{upstream}"]
    pool: {{ max_idle_per_target: 16, idle_timeout: 30s }}
    timeouts: {{ connect: 1s, read: 1s }}
routes:
  - name: big
    match: {{ path_prefix: /big/ }}
    upstream: backend
    max_body_bytes: 2GiB
  - name: rewritten
    match: {{ path_prefix: /old/ }}
    upstream: backend
    rewrite: /new/
  - name: stripped
    match: {{ path_prefix: /strip/ }}
    upstream: backend
    strip_prefix: true
  - name: hosted
    match: {{ host: "*.example.com", methods: [GET], headers: {{ x-tenant: acme }} }}
    respond: {{ status: 200, content_type: text/plain, body: "tenant acme" }}
  - name: all
    match: {{ path_prefix: / }}
    upstream: backend
"#
    )
}

// ---------------------------------------------------------------------------
// The strait process
// ---------------------------------------------------------------------------

/// A running `strait run` process; killed on drop.
pub struct Strait {
    child: Child,
    /// The first listener's address.
    pub proxy: SocketAddr,
    /// All listener addresses, in the order printed.
    pub listeners: Vec<SocketAddr>,
    /// The admin address, when strait printed one.
    pub admin: Option<SocketAddr>,
    /// Everything strait printed on stdout up to and including `strait: ready`.
    pub stdout_lines: Vec<String>,
    pub config_path: PathBuf,
    stderr_buf: Arc<Mutex<String>>,
    exit: Option<ExitStatus>,
}

impl Strait {
    /// `strait run -c FILE --runtime RT` with `yaml` as the config file.
    pub fn start(yaml: &str, runtime: &str) -> Strait {
        Strait::start_with_args(yaml, runtime, &[])
    }

    /// Like [`Strait::start`] with extra command-line arguments after the usual ones.
    pub fn start_with_args(yaml: &str, runtime: &str, extra: &[&str]) -> Strait {
        match Strait::try_start_with_args(yaml, runtime, extra) {
            Ok(s) => s,
            Err(msg) => panic!("{msg}"),
        }
    }

    /// Starts strait; `Err` carries the reason and strait's stderr.
    pub fn try_start_with_args(
        yaml: &str,
        runtime: &str,
        extra: &[&str],
    ) -> Result<Strait, String> {
        let config_path = write_temp(yaml, "yaml");
        let mut cmd = Command::new(strait_bin());
        cmd.arg("run")
            .arg("-c")
            .arg(&config_path)
            .arg("--runtime")
            .arg(runtime)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env("RUST_LOG", "info");
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", strait_bin()))?;
        let pid = child.id();

        // stderr: forwarded to the test's stderr (captured per test) and kept.
        let stderr_buf = Arc::new(Mutex::new(String::new()));
        if let Some(err) = child.stderr.take() {
            let buf = stderr_buf.clone();
            thread::spawn(move || {
                let mut r = BufReader::new(err);
                let mut line = String::new();
                loop {
                    line.clear();
                    match r.read_line(&mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            eprint!("[strait {pid}] {line}");
                            if let Ok(mut b) = buf.lock() {
                                b.push_str(&line);
                            }
                        }
                    }
                }
            });
        }

        // stdout: lines go through a channel; the thread keeps draining after ready.
        let (tx, rx) = mpsc::channel::<String>();
        if let Some(out) = child.stdout.take() {
            thread::spawn(move || {
                let mut r = BufReader::new(out);
                let mut line = String::new();
                loop {
                    line.clear();
                    match r.read_line(&mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            let l = line.trim_end().to_string();
                            if tx.send(l.clone()).is_err() {
                                eprintln!("[strait {pid} stdout] {l}");
                            }
                        }
                    }
                }
            });
        }

        let mut s = Strait {
            child,
            proxy: "0.0.0.0:0".parse().expect("addr"),
            listeners: Vec::new(),
            admin: None,
            stdout_lines: Vec::new(),
            config_path,
            stderr_buf,
            exit: None,
        };

        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(s.fail("no `strait: ready` on stdout within 20 s"));
            }
            match rx.recv_timeout(left) {
                Ok(line) => {
                    s.stdout_lines.push(line.clone());
                    if let Some(rest) = line.strip_prefix("strait: proxy listening on http://") {
                        let addr = rest
                            .trim()
                            .parse()
                            .map_err(|_| s.fail(&format!("bad listener line {line:?}")))?;
                        s.listeners.push(addr);
                    } else if let Some(rest) =
                        line.strip_prefix("strait: admin listening on http://")
                    {
                        let addr = rest
                            .trim()
                            .parse()
                            .map_err(|_| s.fail(&format!("bad admin line {line:?}")))?;
                        s.admin = Some(addr);
                    } else if line == "strait: ready" {
                        break;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(s.fail("no `strait: ready` on stdout within 20 s"));
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // stdout closed: the process most likely exited.
                    let _ = s.wait_exit(Duration::from_secs(2));
                    return Err(s.fail("stdout closed before `strait: ready`"));
                }
            }
        }
        // Keep draining stdout so strait never blocks on a full pipe.
        thread::spawn(move || {
            while let Ok(l) = rx.recv() {
                eprintln!("[strait {pid} stdout] {l}");
            }
        });
        match s.listeners.first() {
            Some(a) => s.proxy = *a,
            None => return Err(s.fail("`strait: ready` without any `proxy listening on` line")),
        }
        Ok(s)
    }

    fn fail(&mut self, why: &str) -> String {
        let _ = self.child.kill();
        let status = self.wait_exit(Duration::from_secs(2));
        // Give the stderr thread a moment to collect the last lines.
        thread::sleep(Duration::from_millis(100));
        format!(
            "strait failed to start: {why}\nconfig: {}\nexit: {:?}\nstdout:\n{}\nstderr:\n{}",
            self.config_path.display(),
            status,
            self.stdout_lines.join("\n"),
            self.stderr()
        )
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What strait wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr_buf
            .lock()
            .map(|b| b.clone())
            .unwrap_or_default()
    }

    /// Peak resident set size (VmHWM) in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        proc_status_kib(self.pid(), "VmHWM:").expect("VmHWM in /proc/PID/status")
    }

    /// Current resident set size (VmRSS) in KiB.
    pub fn rss_kib(&self) -> u64 {
        proc_status_kib(self.pid(), "VmRSS:").expect("VmRSS in /proc/PID/status")
    }

    pub fn sigterm(&self) {
        self.signal("TERM");
    }

    pub fn sigint(&self) {
        self.signal("INT");
    }

    fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill");
        assert!(st.success(), "kill -{sig} {} failed", self.pid());
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if self.exit.is_some() {
            return self.exit;
        }
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(st)) => {
                    self.exit = Some(st);
                    return self.exit;
                }
                Ok(None) => {}
                Err(_) => return None,
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// `GET path` on the admin listener.
    pub fn admin_get(&self, path: &str) -> Response {
        let admin = self.admin.expect("strait printed no admin address");
        let mut c = Client::connect(admin);
        c.request(&format!(
            "GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n"
        ))
    }

    /// A client connected to the first listener.
    pub fn client(&self) -> Client {
        Client::connect(self.proxy)
    }
}

impl Drop for Strait {
    fn drop(&mut self) {
        if self.exit.is_none() {
            if let Ok(None) = self.child.try_wait() {
                let _ = self.child.kill();
            }
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_file(&self.config_path);
    }
}

/// Reads a `KEY: N kB` line of /proc/PID/status.
pub fn proc_status_kib(pid: u32, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

/// Runs the binary with `args` and returns (status, stdout, stderr).
pub fn run_strait(args: &[&str]) -> (ExitStatus, String, String) {
    let out = Command::new(strait_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run strait");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Polls `cond` every 5 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(5));
    }
}

// ---------------------------------------------------------------------------
// The test upstream
// ---------------------------------------------------------------------------

/// A request as the upstream received it (kept for assertions).
#[derive(Clone, Debug, Default)]
pub struct Recorded {
    /// Which accepted connection (0-based, in accept order) carried it.
    pub conn: usize,
    pub method: String,
    pub target: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
    /// The raw head, request line to the blank line included.
    pub head: String,
    /// Filled when the handler read the body with [`Req::body`].
    pub body: Option<Vec<u8>>,
    /// Trailer fields of a chunked body (once it was read to its end).
    pub trailers: Vec<(String, String)>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// Every value of header `name` (case-insensitive), in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        find_headers(&self.headers, name)
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.header(name).is_some()
    }
}

enum BodyState {
    /// Bytes still to read.
    Length(u64),
    /// Expecting a chunk-size line.
    ChunkSize,
    /// Bytes left in the current data chunk.
    ChunkData(u64),
    /// Expecting the CRLF after a data chunk.
    ChunkCrlf,
    Done,
}

/// A request being handled by the upstream; the body is read on demand.
pub struct Req<'a> {
    pub conn: usize,
    pub method: String,
    pub target: String,
    pub version: String,
    pub headers: Vec<(String, String)>,
    pub head: String,
    /// Set by the handler to close the connection after it returns.
    pub close: bool,
    /// Trailer fields (after a chunked body was read to its end).
    pub trailers: Vec<(String, String)>,
    body: BodyState,
    rd: &'a mut BufReader<TcpStream>,
    record: Arc<Mutex<Vec<Recorded>>>,
    index: usize,
}

impl<'a> Req<'a> {
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// Reads the next piece of the body into `buf`; 0 at its end.
    pub fn read_body_chunk(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.body {
                BodyState::Done => return Ok(0),
                BodyState::Length(0) => {
                    self.body = BodyState::Done;
                    return Ok(0);
                }
                BodyState::Length(left) => {
                    let want = buf.len().min(left.min(usize::MAX as u64) as usize);
                    let n = read_retrying(&mut self.rd, &mut buf[..want])?;
                    if n == 0 {
                        return Err(io::Error::new(ErrorKind::UnexpectedEof, "body cut short"));
                    }
                    self.body = BodyState::Length(left - n as u64);
                    return Ok(n);
                }
                BodyState::ChunkCrlf => {
                    let mut crlf = [0u8; 2];
                    self.rd.read_exact(&mut crlf)?;
                    if &crlf != b"\r\n" {
                        return Err(io::Error::new(
                            ErrorKind::InvalidData,
                            "chunk not followed by CRLF",
                        ));
                    }
                    self.body = BodyState::ChunkSize;
                }
                BodyState::ChunkSize => {
                    let line = read_line(self.rd, 64 * 1024)?;
                    let size_txt = line.split(';').next().unwrap_or("").trim();
                    let size = u64::from_str_radix(size_txt, 16).map_err(|_| {
                        io::Error::new(
                            ErrorKind::InvalidData,
                            format!("bad chunk size line {line:?}"),
                        )
                    })?;
                    if size > 0 {
                        self.body = BodyState::ChunkData(size);
                        continue;
                    }
                    let mut trailers = Vec::new();
                    loop {
                        let l = read_line(self.rd, 64 * 1024)?;
                        if l.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = l.split_once(':') {
                            trailers.push((k.trim().to_string(), v.trim().to_string()));
                        }
                    }
                    self.trailers = trailers.clone();
                    if let Ok(mut r) = self.record.lock() {
                        r[self.index].trailers = trailers;
                    }
                    self.body = BodyState::Done;
                    return Ok(0);
                }
                BodyState::ChunkData(left) => {
                    let want = buf.len().min(left.min(usize::MAX as u64) as usize);
                    let n = read_retrying(&mut self.rd, &mut buf[..want])?;
                    if n == 0 {
                        return Err(io::Error::new(ErrorKind::UnexpectedEof, "chunk cut short"));
                    }
                    let rest = left - n as u64;
                    self.body = if rest == 0 {
                        BodyState::ChunkCrlf
                    } else {
                        BodyState::ChunkData(rest)
                    };
                    return Ok(n);
                }
            }
        }
    }

    /// Reads the whole body (and records it).
    pub fn body(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match self.read_body_chunk(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) => {
                    eprintln!("[upstream] reading body: {e}");
                    self.close = true;
                    break;
                }
            }
        }
        if let Ok(mut r) = self.record.lock() {
            r[self.index].body = Some(out.clone());
        }
        out
    }

    /// Streams the body through `check`; returns the byte count (not recorded).
    pub fn consume_body(&mut self, mut each: impl FnMut(&[u8])) -> io::Result<u64> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut total = 0u64;
        loop {
            let n = self.read_body_chunk(&mut buf)?;
            if n == 0 {
                return Ok(total);
            }
            total += n as u64;
            each(&buf[..n]);
        }
    }

    fn wants_close(&self) -> bool {
        let conn = self.header("connection").unwrap_or("").to_ascii_lowercase();
        if conn.split(',').any(|t| t.trim() == "close") {
            return true;
        }
        self.version == "HTTP/1.0" && !conn.split(',').any(|t| t.trim() == "keep-alive")
    }
}

/// Reads one CRLF- (or LF-) terminated line without the terminator.
fn read_line(rd: &mut impl BufRead, max: usize) -> io::Result<String> {
    let mut line = Vec::new();
    let n = rd.by_ref().take(max as u64).read_until(b'\n', &mut line)?;
    if n == 0 {
        return Err(io::Error::new(ErrorKind::UnexpectedEof, "eof reading line"));
    }
    if line.last() != Some(&b'\n') {
        return Err(io::Error::new(
            ErrorKind::InvalidData,
            "line too long or cut short",
        ));
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

pub type Handler = dyn Fn(&mut Req<'_>, &mut TcpStream) + Send + Sync + 'static;

struct UpstreamShared {
    connections: AtomicUsize,
    open: AtomicUsize,
    requests: Arc<Mutex<Vec<Recorded>>>,
    stop: AtomicBool,
}

/// A threaded HTTP/1.1 upstream on 127.0.0.1:0 (one thread per connection).
pub struct Upstream {
    pub addr: SocketAddr,
    shared: Arc<UpstreamShared>,
}

impl Upstream {
    /// Starts an upstream whose every request goes to `handler`. After the handler
    /// returns, the unread rest of the request body is drained and the connection
    /// is kept alive unless the handler set `req.close` or the request asked to close.
    pub fn start<F>(handler: F) -> Upstream
    where
        F: Fn(&mut Req<'_>, &mut TcpStream) + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind upstream");
        let addr = listener.local_addr().expect("upstream addr");
        let shared = Arc::new(UpstreamShared {
            connections: AtomicUsize::new(0),
            open: AtomicUsize::new(0),
            requests: Arc::new(Mutex::new(Vec::new())),
            stop: AtomicBool::new(false),
        });
        let handler: Arc<Handler> = Arc::new(handler);
        let sh = shared.clone();
        thread::spawn(move || {
            for conn in listener.incoming() {
                if sh.stop.load(Ordering::SeqCst) {
                    break;
                }
                let stream = match conn {
                    Ok(s) => s,
                    Err(_) => continue,
                };
                let id = sh.connections.fetch_add(1, Ordering::SeqCst);
                sh.open.fetch_add(1, Ordering::SeqCst);
                let sh2 = sh.clone();
                let h = handler.clone();
                thread::spawn(move || {
                    serve_conn(id, stream, &sh2, &*h);
                    sh2.open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Upstream { addr, shared }
    }

    /// Answers every request with `200 OK` and `body` (reads the request body first).
    pub fn fixed(body: &'static str) -> Upstream {
        Upstream::start(move |req, out| {
            req.body();
            respond(out, 200, &[("Content-Type", "text/plain")], body.as_bytes());
        })
    }

    /// Answers every request with `200 OK`, the request body as response body, and
    /// `X-Target` / `X-Method` telling what was received.
    pub fn echo() -> Upstream {
        Upstream::start(|req, out| {
            let body = req.body();
            let target = req.target.clone();
            let method = req.method.clone();
            respond(
                out,
                200,
                &[
                    ("Content-Type", "application/octet-stream"),
                    ("X-Target", &target),
                    ("X-Method", &method),
                ],
                &body,
            );
        })
    }

    /// How many connections were accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// How many accepted connections are still open (on the upstream's side).
    pub fn open_connections(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// Every request head received so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared
            .requests
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// Waits until at least `n` requests arrived.
    pub fn wait_requests(&self, n: usize, timeout: Duration) -> bool {
        wait_until(timeout, || self.requests().len() >= n)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

fn serve_conn(id: usize, stream: TcpStream, sh: &UpstreamShared, handler: &Handler) {
    let _ = stream.set_nodelay(true);
    let mut out = match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    };
    let mut rd = BufReader::with_capacity(64 * 1024, stream);
    loop {
        // Head.
        let mut head = Vec::new();
        loop {
            let mut line = Vec::new();
            match rd.by_ref().take(1 << 20).read_until(b'\n', &mut line) {
                Ok(0) => {
                    if !head.is_empty() {
                        eprintln!("[upstream conn {id}] eof inside a request head");
                    }
                    return;
                }
                Ok(_) => {}
                Err(_) => return,
            }
            if head.is_empty() && (line == b"\r\n" || line == b"\n") {
                continue; // tolerated empty line before a request
            }
            head.extend_from_slice(&line);
            if line == b"\r\n" || line == b"\n" {
                break;
            }
            if head.len() > 1 << 20 {
                eprintln!("[upstream conn {id}] head too long");
                return;
            }
        }
        let head_txt = String::from_utf8_lossy(&head).into_owned();
        let mut lines = head_txt.split("\r\n").flat_map(|l| l.split('\n'));
        let request_line = lines.next().unwrap_or("");
        let mut parts = request_line.split(' ');
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("").to_string();
        let version = parts.next().unwrap_or("").to_string();
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_string(), v.trim().to_string()))
            .collect();

        let te = find_headers(&headers, "transfer-encoding")
            .join(",")
            .to_ascii_lowercase();
        let body = if te.split(',').any(|t| t.trim() == "chunked") {
            BodyState::ChunkSize
        } else if let Some(cl) = find_header(&headers, "content-length") {
            match cl.trim().parse::<u64>() {
                Ok(n) => BodyState::Length(n),
                Err(_) => {
                    eprintln!("[upstream conn {id}] bad Content-Length {cl:?}");
                    return;
                }
            }
        } else {
            BodyState::Done
        };

        let index = {
            let mut r = match sh.requests.lock() {
                Ok(r) => r,
                Err(_) => return,
            };
            r.push(Recorded {
                conn: id,
                method: method.clone(),
                target: target.clone(),
                version: version.clone(),
                headers: headers.clone(),
                head: head_txt.clone(),
                body: None,
                trailers: Vec::new(),
            });
            r.len() - 1
        };

        let mut req = Req {
            conn: id,
            method,
            target,
            version,
            headers,
            head: head_txt,
            close: false,
            trailers: Vec::new(),
            body,
            rd: &mut rd,
            record: sh.requests.clone(),
            index,
        };
        handler(&mut req, &mut out);
        let _ = out.flush();
        if req.close || req.wants_close() {
            let _ = out.shutdown(Shutdown::Both);
            return;
        }
        // Drain what the handler left of the body.
        if req.consume_body(|_| {}).is_err() {
            return;
        }
    }
}

/// The usual reason phrase for a status code.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        304 => "Not Modified",
        400 => "Bad Request",
        404 => "Not Found",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Whatever",
    }
}

/// Writes a whole response. Adds `Content-Length` unless `headers` has a
/// Content-Length or Transfer-Encoding, or the status has no body.
pub fn respond(out: &mut impl Write, status: u16, headers: &[(&str, &str)], body: &[u8]) {
    let mut head = format!("HTTP/1.1 {} {}\r\n", status, reason(status));
    let mut framed = false;
    for (k, v) in headers {
        if k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("transfer-encoding") {
            framed = true;
        }
        let _ = write!(head, "{k}: {v}\r\n");
    }
    let bodyless = status < 200 || status == 204 || status == 304;
    if !framed && !bodyless {
        let _ = write!(head, "Content-Length: {}\r\n", body.len());
    }
    head.push_str("\r\n");
    let mut all = head.into_bytes();
    all.extend_from_slice(body);
    let _ = out.write_all(&all);
    let _ = out.flush();
}

/// Writes a response head only (status line, headers, blank line).
pub fn write_head(out: &mut impl Write, status: u16, headers: &[(&str, &str)]) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {} {}\r\n", status, reason(status));
    for (k, v) in headers {
        let _ = write!(head, "{k}: {v}\r\n");
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    out.flush()
}

/// Writes one chunk of a chunked body (empty data is skipped: use [`end_chunks`]).
pub fn write_chunk(out: &mut impl Write, data: &[u8]) -> io::Result<()> {
    if data.is_empty() {
        return Ok(());
    }
    let mut v = format!("{:x}\r\n", data.len()).into_bytes();
    v.extend_from_slice(data);
    v.extend_from_slice(b"\r\n");
    out.write_all(&v)?;
    out.flush()
}

/// Writes the last chunk and the end of a chunked body.
pub fn end_chunks(out: &mut impl Write) -> io::Result<()> {
    out.write_all(b"0\r\n\r\n")?;
    out.flush()
}

// ---------------------------------------------------------------------------
// Raw client
// ---------------------------------------------------------------------------

/// A parsed HTTP response.
#[derive(Clone, Debug, Default)]
pub struct Response {
    pub version: String,
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub trailers: Vec<(String, String)>,
    /// The raw head, status line to the blank line included.
    pub head: String,
    /// The body came chunked.
    pub chunked: bool,
    /// The body was delimited by the connection closing.
    pub close_delimited: bool,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    pub fn header_all(&self, name: &str) -> Vec<&str> {
        find_headers(&self.headers, name)
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.header(name).is_some()
    }

    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        match serde_json::from_slice(&self.body) {
            Ok(j) => j,
            Err(e) => panic!(
                "response body is not JSON ({e}):\n{}{}",
                self.head,
                self.body_str()
            ),
        }
    }

    /// Whether `Connection` lists `token`.
    pub fn connection_has(&self, token: &str) -> bool {
        self.header_all("connection")
            .iter()
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// Asserts the contract's error shape: the status, `Content-Type:
    /// application/json`, `{"error":{"type":STR,"message":STR,"status":N}}`.
    pub fn assert_error(&self, status: u16) {
        assert_eq!(
            self.status,
            status,
            "expected a {status} error, got:\n{}{}",
            self.head,
            self.body_str()
        );
        let ct = self.header("content-type").unwrap_or("");
        assert!(
            ct.to_ascii_lowercase().starts_with("application/json"),
            "error Content-Type is {ct:?}, want application/json:\n{}",
            self.head
        );
        let j = self.json();
        let err = &j["error"];
        assert!(
            err["type"].as_str().is_some_and(|s| !s.is_empty()),
            "error.type missing or not a non-empty string: {}",
            self.body_str()
        );
        assert!(
            err["message"].as_str().is_some(),
            "error.message missing or not a string: {}",
            self.body_str()
        );
        assert_eq!(
            err["status"].as_f64(),
            Some(status as f64),
            "error.status wrong in {}",
            self.body_str()
        );
    }
}

/// What a read on a connection expected to close found.
#[derive(Debug, PartialEq, Eq)]
pub enum CloseOutcome {
    /// Orderly EOF.
    Eof,
    /// ECONNRESET / EPIPE.
    Reset,
    /// Still open after the wait.
    Open,
    /// Bytes arrived instead.
    Data(String),
}

impl CloseOutcome {
    pub fn is_closed(&self) -> bool {
        matches!(self, CloseOutcome::Eof | CloseOutcome::Reset)
    }
}

/// A raw HTTP/1.1 client connection.
pub struct Client {
    pub stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Client {
    /// Connects with a 10 s read timeout (so a broken proxy fails instead of hanging).
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        Client::from_stream(stream)
    }

    pub fn from_stream(stream: TcpStream) -> Client {
        let _ = stream.set_nodelay(true);
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("set_read_timeout");
        stream
            .set_write_timeout(Some(Duration::from_secs(30)))
            .expect("set_write_timeout");
        let reader = BufReader::with_capacity(64 * 1024, stream.try_clone().expect("clone"));
        Client { stream, reader }
    }

    pub fn set_read_timeout(&self, d: Duration) {
        self.stream
            .set_read_timeout(Some(d))
            .expect("set_read_timeout");
    }

    /// Writes all of `bytes` (panics on error).
    pub fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.stream
            .write_all(bytes.as_ref())
            .unwrap_or_else(|e| panic!("client write failed: {e}"));
    }

    pub fn try_send(&mut self, bytes: impl AsRef<[u8]>) -> io::Result<()> {
        self.stream.write_all(bytes.as_ref())
    }

    /// Sends `raw` and reads one response (HEAD-aware from the request line).
    pub fn request(&mut self, raw: &str) -> Response {
        self.send(raw.as_bytes());
        self.read_response_for(raw.starts_with("HEAD "))
    }

    /// Reads the next response (panics with context on error).
    pub fn read_response(&mut self) -> Response {
        self.read_response_for(false)
    }

    /// Reads the next response; `head_request` means "it answers a HEAD" (no body).
    pub fn read_response_for(&mut self, head_request: bool) -> Response {
        match self.try_read_response(head_request) {
            Ok(r) => r,
            Err(e) => panic!("reading a response failed: {e}"),
        }
    }

    pub fn try_read_response(&mut self, head_request: bool) -> io::Result<Response> {
        let mut resp = self.read_head()?;
        let no_body = head_request || resp.status < 200 || resp.status == 204 || resp.status == 304;
        if no_body {
            return Ok(resp);
        }
        if resp.chunked {
            let mut body = Vec::new();
            while let Some(c) = self.read_chunk_into(&mut resp)? {
                body.extend_from_slice(&c);
            }
            resp.body = body;
        } else if let Some(cl) = resp.header("content-length") {
            let n: usize = cl.trim().parse().map_err(|_| {
                io::Error::new(ErrorKind::InvalidData, format!("bad Content-Length {cl:?}"))
            })?;
            let mut body = vec![0u8; n];
            self.reader.read_exact(&mut body)?;
            resp.body = body;
        } else {
            resp.close_delimited = true;
            let mut body = Vec::new();
            self.reader.read_to_end(&mut body)?;
            resp.body = body;
        }
        Ok(resp)
    }

    /// Reads a response head only; the body is left on the connection.
    pub fn read_head(&mut self) -> io::Result<Response> {
        let mut head = String::new();
        let status_line = read_line(&mut self.reader, 64 * 1024)?;
        head.push_str(&status_line);
        head.push_str("\r\n");
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or("").to_string();
        let status: u16 = parts.next().unwrap_or("").parse().map_err(|_| {
            io::Error::new(
                ErrorKind::InvalidData,
                format!("bad status line {status_line:?}"),
            )
        })?;
        let reason = parts.next().unwrap_or("").to_string();
        let mut headers = Vec::new();
        loop {
            let l = read_line(&mut self.reader, 64 * 1024)?;
            head.push_str(&l);
            head.push_str("\r\n");
            if l.is_empty() {
                break;
            }
            match l.split_once(':') {
                Some((k, v)) => headers.push((k.to_string(), v.trim().to_string())),
                None => {
                    return Err(io::Error::new(
                        ErrorKind::InvalidData,
                        format!("bad header line {l:?}"),
                    ));
                }
            }
        }
        let te = find_headers(&headers, "transfer-encoding")
            .join(",")
            .to_ascii_lowercase();
        let chunked = te.split(',').any(|t| t.trim() == "chunked");
        Ok(Response {
            version,
            status,
            reason,
            headers,
            head,
            chunked,
            ..Response::default()
        })
    }

    /// Reads one chunk of a chunked body; `None` after the last chunk (trailers
    /// are read and dropped).
    pub fn read_chunk(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut dummy = Response::default();
        self.read_chunk_into(&mut dummy)
    }

    fn read_chunk_into(&mut self, resp: &mut Response) -> io::Result<Option<Vec<u8>>> {
        let line = read_line(&mut self.reader, 64 * 1024)?;
        let size_txt = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_txt, 16).map_err(|_| {
            io::Error::new(
                ErrorKind::InvalidData,
                format!("bad chunk size line {line:?}"),
            )
        })?;
        if size == 0 {
            loop {
                let l = read_line(&mut self.reader, 64 * 1024)?;
                if l.is_empty() {
                    break;
                }
                if let Some((k, v)) = l.split_once(':') {
                    resp.trailers.push((k.to_string(), v.trim().to_string()));
                }
            }
            return Ok(None);
        }
        let mut data = vec![0u8; size];
        self.reader.read_exact(&mut data)?;
        let mut crlf = [0u8; 2];
        self.reader.read_exact(&mut crlf)?;
        if &crlf != b"\r\n" {
            return Err(io::Error::new(
                ErrorKind::InvalidData,
                "chunk data not followed by CRLF",
            ));
        }
        Ok(Some(data))
    }

    /// Reads whatever body bytes are available (raw, not de-chunked).
    pub fn read_some(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        read_retrying(&mut self.reader, buf)
    }

    /// Streams a body whose head was read with [`Client::read_head`] through
    /// `each` (de-chunked / length- / close-delimited); returns the byte count.
    pub fn stream_body(&mut self, head: &Response, mut each: impl FnMut(&[u8])) -> io::Result<u64> {
        let mut total = 0u64;
        if head.chunked {
            while let Some(c) = self.read_chunk()? {
                total += c.len() as u64;
                each(&c);
            }
            return Ok(total);
        }
        let limit = head
            .header("content-length")
            .and_then(|v| v.trim().parse::<u64>().ok());
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let want = match limit {
                Some(l) if l - total == 0 => return Ok(total),
                Some(l) => buf.len().min((l - total).min(usize::MAX as u64) as usize),
                None => buf.len(),
            };
            let n = read_retrying(&mut self.reader, &mut buf[..want])?;
            if n == 0 {
                if limit.is_some() {
                    return Err(io::Error::new(
                        ErrorKind::UnexpectedEof,
                        format!("body cut short after {total} bytes"),
                    ));
                }
                return Ok(total);
            }
            total += n as u64;
            each(&buf[..n]);
        }
    }

    /// Waits up to `within` for the peer to close; reports what happened.
    pub fn wait_close(&mut self, within: Duration) -> CloseOutcome {
        let _ = self.stream.set_read_timeout(Some(within));
        let mut buf = [0u8; 4096];
        let out = match read_retrying(&mut self.reader, &mut buf) {
            Ok(0) => CloseOutcome::Eof,
            Ok(n) => CloseOutcome::Data(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                CloseOutcome::Open
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionReset
                        | ErrorKind::BrokenPipe
                        | ErrorKind::ConnectionAborted
                ) =>
            {
                CloseOutcome::Reset
            }
            Err(e) => CloseOutcome::Data(format!("<read error {e}>")),
        };
        let _ = self.stream.set_read_timeout(Some(Duration::from_secs(10)));
        out
    }

    /// Asserts the connection gets closed by strait within `within`, with no
    /// further bytes.
    pub fn assert_closed(&mut self, within: Duration) {
        let got = self.wait_close(within);
        assert!(
            got.is_closed(),
            "expected strait to close the connection, got {got:?}"
        );
    }
}

pub fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

pub fn find_headers<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// Waits until connecting to `addr` is refused (true) or `timeout` passes (false).
pub fn wait_refused(addr: SocketAddr, timeout: Duration) -> bool {
    wait_until(timeout, || {
        matches!(
            TcpStream::connect_timeout(&addr, Duration::from_millis(200)),
            Err(ref e) if e.kind() == ErrorKind::ConnectionRefused
        )
    })
}

// ---------------------------------------------------------------------------
// Big bodies: a deterministic pattern that is cheap to produce and to verify
// ---------------------------------------------------------------------------

/// Block size of the pattern (and the I/O buffer size of big transfers).
pub const BLOCK: usize = 64 * 1024;

/// The size of the "1 GB" bodies (`STRAIT_TEST_BIG_BYTES` overrides; default 1 GiB).
pub fn big_bytes() -> u64 {
    std::env::var("STRAIT_TEST_BIG_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1 << 30)
}

fn base_block() -> Vec<u8> {
    let mut b = vec![0u8; BLOCK];
    let mut x: u32 = 0x1234_5678;
    for v in b.iter_mut() {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        *v = (x >> 24) as u8;
    }
    b
}

/// Produces `total` bytes: 64 KiB pseudo-random blocks, each stamped with its
/// index in its first 8 bytes (so lost, duplicated or reordered data shows).
pub struct Pattern {
    block: Vec<u8>,
    next_block: u64,
    total: u64,
    sent: u64,
}

impl Pattern {
    pub fn new(total: u64) -> Pattern {
        Pattern {
            block: base_block(),
            next_block: 0,
            total,
            sent: 0,
        }
    }

    /// The next piece (at most one block), or `None` at the end.
    pub fn next_piece(&mut self) -> Option<&[u8]> {
        if self.sent >= self.total {
            return None;
        }
        let n = (self.total - self.sent).min(BLOCK as u64) as usize;
        self.block[..8].copy_from_slice(&self.next_block.to_le_bytes());
        self.next_block += 1;
        self.sent += n as u64;
        Some(&self.block[..n])
    }

    /// Writes the whole pattern to `out`.
    pub fn write_all_to(mut self, out: &mut impl Write) -> io::Result<u64> {
        let mut n = 0u64;
        while let Some(p) = self.next_piece() {
            out.write_all(p)?;
            n += p.len() as u64;
        }
        out.flush()?;
        Ok(n)
    }
}

/// Verifies a byte stream against [`Pattern`] byte for byte (memcmp per
/// block) and keeps a cheap checksum of it.
pub struct PatternCheck {
    block: Vec<u8>,
    cur_block: u64,
    pub offset: u64,
    /// Offset of the first byte that differs from the pattern.
    pub first_mismatch: Option<u64>,
    hasher: DefaultHasher,
}

impl Default for PatternCheck {
    fn default() -> Self {
        PatternCheck::new()
    }
}

impl PatternCheck {
    pub fn new() -> PatternCheck {
        PatternCheck {
            block: base_block(),
            cur_block: u64::MAX,
            offset: 0,
            first_mismatch: None,
            hasher: DefaultHasher::new(),
        }
    }

    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let b = self.offset / BLOCK as u64;
            let inner = (self.offset % BLOCK as u64) as usize;
            if b != self.cur_block {
                self.block[..8].copy_from_slice(&b.to_le_bytes());
                self.cur_block = b;
                self.hasher.write_u64(b);
            }
            let n = data.len().min(BLOCK - inner);
            if self.first_mismatch.is_none() && data[..n] != self.block[inner..inner + n] {
                let at = data[..n]
                    .iter()
                    .zip(&self.block[inner..inner + n])
                    .position(|(a, b)| a != b)
                    .unwrap_or(0);
                self.first_mismatch = Some(self.offset + at as u64);
            }
            self.offset += n as u64;
            data = &data[n..];
        }
    }

    /// `Ok(bytes)` when exactly `expected` bytes matched the pattern.
    pub fn verdict(&self, expected: u64) -> Result<u64, String> {
        if let Some(at) = self.first_mismatch {
            return Err(format!("data differs from the pattern at offset {at}"));
        }
        if self.offset != expected {
            return Err(format!("got {} bytes, want {expected}", self.offset));
        }
        Ok(self.offset)
    }

    /// A checksum of the stream: a hash of the block stamps seen and the
    /// length, salted with the first mismatch (content is compared exactly).
    pub fn checksum(&self) -> u64 {
        let mut h = self.hasher.clone();
        h.write_u64(self.offset);
        if let Some(at) = self.first_mismatch {
            h.write_u64(at ^ 0xdead_beef);
        }
        h.finish()
    }

    /// The checksum [`PatternCheck::checksum`] gives for `n` correct bytes.
    pub fn expected_checksum(n: u64) -> u64 {
        let mut h = DefaultHasher::new();
        for b in 0..n.div_ceil(BLOCK as u64) {
            h.write_u64(b);
        }
        h.write_u64(n);
        h.finish()
    }
}

/// Shared counters for transfers observed in another thread.
#[derive(Default)]
pub struct Progress {
    pub bytes: AtomicU64,
}
