//! The validated configuration model: what a config snapshot is made of.
//!
//! These types are produced by the loader (`config::load`) after every field has
//! been checked; nothing downstream re-validates or re-parses them. Host names
//! of upstream targets are resolved to socket addresses at load time so that no
//! worker ever blocks on DNS.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// One whole, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it came from: a file path, or `<embedded default>`.
    pub source: String,
    /// A short, stable identifier of the configuration text (hex of a hash).
    pub version: String,
    pub workers: Workers,
    pub cpu_affinity: CpuAffinity,
    pub runtime: RuntimeKind,
    /// How long in-flight requests may take to finish after SIGTERM/SIGINT.
    pub shutdown_timeout: Duration,
    /// Address of the admin listener; `None` disables it.
    pub admin: Option<SocketAddr>,
    pub listeners: Vec<ListenerConfig>,
    pub upstreams: Vec<UpstreamConfig>,
    pub routes: Vec<RouteConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workers {
    /// One worker per CPU the process may run on.
    Auto,
    Count(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CpuAffinity {
    /// Workers are not pinned.
    Off,
    /// Worker `i` is pinned to the `i`-th CPU the process may run on.
    Auto,
    /// Worker `i` is pinned to `cpus[i % cpus.len()]`.
    List(Vec<usize>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeKind {
    /// io_uring when the kernel supports it, epoll otherwise.
    Auto,
    IoUring,
    Epoll,
}

#[derive(Debug, Clone)]
pub struct ListenerConfig {
    pub name: String,
    pub addr: SocketAddr,
    pub limits: Limits,
    pub timeouts: ServerTimeouts,
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Request line plus headers; over it: 431.
    pub max_header_bytes: usize,
    /// Number of header fields; over it: 431.
    pub max_headers: usize,
    /// Request body; over it: 413.
    pub max_body_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: 32 * 1024,
            max_headers: 100,
            max_body_bytes: 64 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ServerTimeouts {
    /// From the first byte of a request to the end of its head; over it: 408.
    pub header_read: Duration,
    /// Longest wait for the next piece of a request body; over it: 408.
    pub body_read: Duration,
    /// Longest wait for the next request on a kept-alive connection; then close.
    pub idle: Duration,
}

impl Default for ServerTimeouts {
    fn default() -> Self {
        ServerTimeouts {
            header_read: Duration::from_secs(10),
            body_read: Duration::from_secs(30),
            idle: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub name: String,
    pub targets: Vec<TargetConfig>,
    /// `Some` when the upstream is spoken to over TLS.
    pub tls: Option<TlsConfig>,
    pub pool: PoolConfig,
    pub timeouts: UpstreamTimeouts,
    pub host_header: HostHeader,
}

#[derive(Debug, Clone)]
pub struct TargetConfig {
    /// Host as written in the config (a name or an IP literal), for SNI and Host.
    pub host: String,
    pub port: u16,
    /// Resolved once, at load time.
    pub addr: SocketAddr,
    pub weight: u32,
}

#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// Server name sent in SNI and verified; defaults to the target's host.
    pub sni: Option<String>,
    pub roots: TlsRoots,
    /// Extra PEM CA certificates trusted for this upstream.
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsRoots {
    /// Mozilla's roots compiled into the binary.
    Webpki,
    /// The operating system's certificate store.
    System,
    /// Only `ca_file`.
    None,
}

#[derive(Debug, Clone, Copy)]
pub struct PoolConfig {
    pub max_idle_per_target: usize,
    pub idle_timeout: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_idle_per_target: 128,
            idle_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct UpstreamTimeouts {
    pub connect: Duration,
    /// Longest wait for the next bytes of an upstream response; over it: 504.
    pub read: Duration,
}

impl Default for UpstreamTimeouts {
    fn default() -> Self {
        UpstreamTimeouts {
            connect: Duration::from_secs(5),
            read: Duration::from_secs(60),
        }
    }
}

/// What the `Host` header sent upstream is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostHeader {
    /// `host[:port]` of the target (the default; right for TLS and hosted APIs).
    Target,
    /// The client's own `Host` header.
    Preserve,
    /// A fixed value.
    Fixed(String),
}

#[derive(Debug, Clone)]
pub struct RouteConfig {
    pub name: String,
    pub matcher: RouteMatch,
    pub action: RouteAction,
    /// Overrides of the upstream's timeouts for this route.
    pub connect_timeout: Option<Duration>,
    pub read_timeout: Option<Duration>,
    /// Overrides the listener's body limit for this route.
    pub max_body_bytes: Option<u64>,
}

#[derive(Debug, Clone, Default)]
pub struct RouteMatch {
    pub host: Option<HostMatch>,
    pub path: PathMatch,
    /// Upper-case method names; empty means any method.
    pub methods: Vec<String>,
    /// Lower-case header name and the exact value it must have.
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    /// Lower-case host without port.
    Exact(String),
    /// `*.example.com` is stored as `.example.com`: any host ending in it.
    Suffix(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PathMatch {
    #[default]
    Any,
    Prefix(String),
    Exact(String),
}

#[derive(Debug, Clone)]
pub enum RouteAction {
    Proxy {
        /// Index into `Config::upstreams`.
        upstream: usize,
        /// Remove the matched path prefix before forwarding.
        strip_prefix: bool,
        /// Replace the matched path (prefix or exact) with this.
        rewrite: Option<String>,
    },
    /// Answer directly, without an upstream.
    Respond {
        status: u16,
        content_type: String,
        body: String,
        headers: Vec<(String, String)>,
    },
}
