//! The config loader: YAML text in, a validated [`Config`] out, or every problem
//! found, each with its file, line, column and field path.
//!
//! The YAML is parsed with `saphyr` into a tree whose every node carries its
//! position, then decoded by hand (see `reader.rs`) so that semantic errors —
//! an unknown upstream, a bad duration, a misspelt key — point at the exact
//! place in the file.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use saphyr::{MarkedYaml, YamlLoader};
use saphyr_parser::{Marker, Parser, ScanError};

use super::model::*;
use super::reader::{
    check_unique, field, index, is_null, item_name, join, kind, missing, parse_uint, resolve,
    section, split_host_port, Ctx, Kind, MapView, Node,
};
use super::routes::routes;

/// The configuration used when no file is given. Shown to users as an example.
pub const EMBEDDED_DEFAULT_YAML: &str = include_str!("default.yaml");

/// The `source` of the embedded default configuration.
const EMBEDDED_DEFAULT_SOURCE: &str = "<embedded default>";

/// One problem found in a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or other source name) the text came from.
    pub file: String,
    /// 1-based line; 0 when the problem is not in the text (e.g. unreadable file).
    pub line: usize,
    /// 1-based column (in characters); 0 when `line` is 0.
    pub column: usize,
    /// Dotted path of the field, like `routes[1].match.path_prefix`, or `(root)`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file, self.line, self.column, self.field, self.message
        )
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a configuration, in the order they appear in the text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Read and load the configuration file at `path`. Relative paths inside it
/// (such as `tls.ca_file`) are taken relative to the file's directory.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    let source = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => load(&text, &source, path.parent()),
        Err(e) => Err(ConfigErrors(vec![ConfigError {
            file: source,
            line: 0,
            column: 0,
            field: "(root)".to_string(),
            message: format!("cannot read the config file: {e}"),
        }])),
    }
}

/// Load a configuration from `text`; `source` names it in errors and in
/// [`Config::source`]. Relative paths inside it are relative to the current
/// directory.
pub fn load_str(text: &str, source: &str) -> Result<Config, ConfigErrors> {
    load(text, source, None)
}

/// The embedded default configuration ([`EMBEDDED_DEFAULT_YAML`]).
///
/// It is a bug if this fails; the error is returned rather than panicking so
/// that the caller can report it.
pub fn embedded_default() -> Result<Config, ConfigErrors> {
    load_str(EMBEDDED_DEFAULT_YAML, EMBEDDED_DEFAULT_SOURCE)
}

fn load(text: &str, source: &str, base_dir: Option<&Path>) -> Result<Config, ConfigErrors> {
    let mut ctx = Ctx::new(source);
    ctx.base_dir = base_dir.filter(|d| !d.as_os_str().is_empty());
    let docs = match parse_yaml(text) {
        Ok(docs) => docs,
        Err(e) => {
            ctx.error_at(*e.marker(), "", format!("invalid YAML: {}", e.info()));
            return Err(ConfigErrors(ctx.errors));
        }
    };
    if let Some(second) = docs.get(1) {
        ctx.error(
            second,
            "",
            "a config file holds a single YAML document; remove the `---` separator",
        );
    }
    let config = decode_root(&mut ctx, docs.first(), source, version_of(text));
    if ctx.errors.is_empty() {
        Ok(config)
    } else {
        let mut errors = ctx.errors;
        errors.sort_by_key(|e| (e.line, e.column));
        Err(ConfigErrors(errors))
    }
}

/// Parse without resolving scalars, so that every scalar keeps its text.
fn parse_yaml(text: &str) -> Result<Vec<Node<'_>>, ScanError> {
    let mut loader: YamlLoader<'_, MarkedYaml<'_>> = YamlLoader::default();
    loader.early_parse(false);
    let mut parser = Parser::new_from_str(text);
    parser.load(&mut loader, true)?;
    if let Some(e) = loader.error() {
        return Err(e.clone());
    }
    Ok(loader.into_documents())
}

/// FNV-1a 64 of the text, as 12 hex digits.
fn version_of(text: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let hex = format!("{hash:016x}");
    hex[..12].to_string()
}

// ---------------------------------------------------------------------------
// Sections
// ---------------------------------------------------------------------------

const ROOT_KEYS: &[&str] = &[
    "workers",
    "cpu_affinity",
    "runtime",
    "shutdown_timeout",
    "admin",
    "listeners",
    "upstreams",
    "routes",
];
const ADMIN_KEYS: &[&str] = &["listen"];
const LISTENER_KEYS: &[&str] = &["name", "listen", "limits", "timeouts"];
const LIMIT_KEYS: &[&str] = &["max_header_bytes", "max_headers", "max_body_bytes"];
const SERVER_TIMEOUT_KEYS: &[&str] = &["header_read", "body_read", "idle"];
const UPSTREAM_KEYS: &[&str] = &["name", "targets", "tls", "pool", "timeouts", "host_header"];
const TARGET_KEYS: &[&str] = &["address", "weight"];
const TLS_KEYS: &[&str] = &["sni", "roots", "ca_file"];
const POOL_KEYS: &[&str] = &["max_idle_per_target", "idle_timeout"];
pub(super) const UPSTREAM_TIMEOUT_KEYS: &[&str] = &["connect", "read"];

const DEFAULT_ADMIN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)), 9901);
const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)), 8080);
/// Largest target weight.
const MAX_WEIGHT: u64 = 1000;
const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

fn decode_root(
    ctx: &mut Ctx<'_>,
    root: Option<&Node<'_>>,
    source: &str,
    version: String,
) -> Config {
    let m = match root {
        None => MapView::empty(Marker::new(0, 1, 0)),
        Some(n) if is_null(n) => MapView::empty(n.span.start),
        Some(n) => ctx
            .map(n, "", Some(ROOT_KEYS))
            .unwrap_or_else(|| MapView::empty(n.span.start)),
    };

    let workers = field(ctx, &m, "", "workers", workers).unwrap_or(Workers::Auto);
    let cpu_affinity = field(ctx, &m, "", "cpu_affinity", cpu_affinity).unwrap_or(CpuAffinity::Off);
    let runtime = field(ctx, &m, "", "runtime", runtime).unwrap_or(RuntimeKind::Auto);
    let shutdown_timeout = field(ctx, &m, "", "shutdown_timeout", |c, n, p| {
        c.duration(n, p, true)
    })
    .unwrap_or(DEFAULT_SHUTDOWN_TIMEOUT);
    let admin = admin(ctx, &m);

    let listeners = match m.get("listeners") {
        None => vec![ListenerConfig {
            name: "main".to_string(),
            addr: DEFAULT_LISTEN,
            limits: Limits::default(),
            timeouts: ServerTimeouts::default(),
        }],
        Some(n) => listeners(ctx, n, admin),
    };

    let (upstreams, upstream_names) = match m.get("upstreams") {
        None => (Vec::new(), Some(Vec::new())),
        Some(n) => upstreams(ctx, n),
    };

    let routes = match m.get("routes") {
        None => Vec::new(),
        Some(n) => routes(ctx, n, upstream_names.as_deref()),
    };

    Config {
        source: source.to_string(),
        version,
        workers,
        cpu_affinity,
        runtime,
        shutdown_timeout,
        admin,
        listeners,
        upstreams,
        routes,
    }
}

fn workers(ctx: &mut Ctx<'_>, node: &Node<'_>, path: &str) -> Option<Workers> {
    if let Kind::Scalar(text, _) = kind(node) {
        let text = text.trim();
        if text == "auto" {
            return Some(Workers::Auto);
        }
        match parse_uint(text).map(usize::try_from) {
            Some(Ok(0)) => {
                ctx.error(node, path, "must be at least 1 (or `auto`)");
                return None;
            }
            Some(Ok(n)) => return Some(Workers::Count(n)),
            Some(Err(_)) | None => {}
        }
    }
    ctx.expected(node, path, "`auto` or a positive number of workers");
    None
}

fn cpu_affinity(ctx: &mut Ctx<'_>, node: &Node<'_>, path: &str) -> Option<CpuAffinity> {
    // CPU_SETSIZE: sched_setaffinity cannot name CPUs beyond it.
    const MAX_CPU: u64 = 1023;
    match kind(node) {
        Kind::Scalar(text, _) => match text.trim() {
            "true" | "True" | "TRUE" | "auto" => Some(CpuAffinity::Auto),
            "false" | "False" | "FALSE" | "off" => Some(CpuAffinity::Off),
            _ => {
                ctx.expected(
                    node,
                    path,
                    "`true`, `false` or a list of CPU numbers such as [0, 2, 4]",
                );
                None
            }
        },
        Kind::Seq(items) => {
            if items.is_empty() {
                ctx.error(node, path, "the list of CPUs must not be empty");
                return None;
            }
            let mut cpus = Vec::with_capacity(items.len());
            let mut ok = true;
            for (i, item) in items.iter().enumerate() {
                match ctx
                    .uint(item, &index(path, i), MAX_CPU)
                    .and_then(|v| usize::try_from(v).ok())
                {
                    Some(cpu) => cpus.push(cpu),
                    None => ok = false,
                }
            }
            ok.then_some(CpuAffinity::List(cpus))
        }
        _ => {
            ctx.expected(
                node,
                path,
                "`true`, `false` or a list of CPU numbers such as [0, 2, 4]",
            );
            None
        }
    }
}

fn runtime(ctx: &mut Ctx<'_>, node: &Node<'_>, path: &str) -> Option<RuntimeKind> {
    match ctx.text(node, path)?.trim() {
        "auto" => Some(RuntimeKind::Auto),
        "io_uring" => Some(RuntimeKind::IoUring),
        "epoll" => Some(RuntimeKind::Epoll),
        other => {
            ctx.error(
                node,
                path,
                format!("unknown runtime `{other}`; expected `auto`, `io_uring` or `epoll`"),
            );
            None
        }
    }
}

fn admin(ctx: &mut Ctx<'_>, m: &MapView<'_, '_>) -> Option<SocketAddr> {
    let Some(node) = m.get_raw("admin") else {
        return Some(DEFAULT_ADMIN);
    };
    match kind(node) {
        Kind::Null => None,
        Kind::Scalar(text, _) if matches!(text.trim(), "off" | "false" | "False" | "FALSE") => None,
        // Shorthand: `admin: 127.0.0.1:9901`.
        Kind::Scalar(..) => ctx.listen_addr(node, "admin"),
        Kind::Map(_) => {
            let am = ctx.map(node, "admin", Some(ADMIN_KEYS))?;
            match am.get("listen") {
                Some(n) => ctx.listen_addr(n, "admin.listen"),
                None => Some(DEFAULT_ADMIN),
            }
        }
        _ => {
            ctx.expected(
                node,
                "admin",
                "a mapping such as `{ listen: 127.0.0.1:9901 }`, or `off`",
            );
            None
        }
    }
}

fn listeners(ctx: &mut Ctx<'_>, node: &Node<'_>, admin: Option<SocketAddr>) -> Vec<ListenerConfig> {
    let Some(items) = ctx.seq(node, "listeners") else {
        return Vec::new();
    };
    if items.is_empty() {
        ctx.error(
            node,
            "listeners",
            "at least one listener is required (leave `listeners` out for the default 127.0.0.1:8080)",
        );
    }
    let mut out = Vec::with_capacity(items.len());
    let mut names = Vec::new();
    // (address, listener name) for the clash checks.
    let mut addrs: Vec<(SocketAddr, String)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = index("listeners", i);
        let Some(m) = ctx.map(item, &path, Some(LISTENER_KEYS)) else {
            continue;
        };
        let named = item_name(ctx, &m, &path, Some(format!("listener{i}")));
        let addr = match m.get("listen") {
            Some(n) => {
                let addr = ctx.listen_addr(n, &join(&path, "listen"));
                // Port 0 (any free port) cannot clash.
                if let Some(addr) = addr.filter(|a| a.port() != 0) {
                    let lpath = join(&path, "listen");
                    if let Some((_, other)) = addrs.iter().find(|(a, _)| *a == addr) {
                        let msg = format!("address {addr} is already used by listener `{other}`");
                        ctx.error(n, &lpath, msg);
                    } else if admin == Some(addr) {
                        ctx.error(
                            n,
                            &lpath,
                            format!("address {addr} is already used by the admin listener"),
                        );
                    }
                    let name = named.as_ref().map_or_else(String::new, |n| n.name.clone());
                    addrs.push((addr, name));
                }
                addr
            }
            None => {
                missing(ctx, &m, &path, "listen");
                None
            }
        };
        let limits = limits(ctx, &m, &path);
        let timeouts = server_timeouts(ctx, &m, &path);
        if let (Some(named), Some(addr)) = (named.as_ref(), addr) {
            out.push(ListenerConfig {
                name: named.name.clone(),
                addr,
                limits,
                timeouts,
            });
        }
        names.extend(named);
    }
    check_unique(ctx, &names, "listener");
    out
}

fn limits(ctx: &mut Ctx<'_>, m: &MapView<'_, '_>, path: &str) -> Limits {
    let mut limits = Limits::default();
    let Some(lm) = section(ctx, m, path, "limits", LIMIT_KEYS) else {
        return limits;
    };
    let path = join(path, "limits");
    if let Some(v) = field(ctx, &lm, &path, "max_header_bytes", |c, n, p| {
        c.size(n, p, 64, 64 << 20)
    }) {
        limits.max_header_bytes = usize::try_from(v).unwrap_or(usize::MAX);
    }
    if let Some(v) = field(ctx, &lm, &path, "max_headers", |c, n, p| {
        match c.uint(n, p, 10_000)? {
            0 => {
                c.error(n, p, "must be at least 1");
                None
            }
            v => Some(v),
        }
    }) {
        limits.max_headers = usize::try_from(v).unwrap_or(usize::MAX);
    }
    if let Some(v) = field(ctx, &lm, &path, "max_body_bytes", |c, n, p| {
        c.size(n, p, 0, u64::MAX)
    }) {
        limits.max_body_bytes = v;
    }
    limits
}

fn server_timeouts(ctx: &mut Ctx<'_>, m: &MapView<'_, '_>, path: &str) -> ServerTimeouts {
    let mut t = ServerTimeouts::default();
    let Some(tm) = section(ctx, m, path, "timeouts", SERVER_TIMEOUT_KEYS) else {
        return t;
    };
    let path = join(path, "timeouts");
    let dur = |c: &mut Ctx<'_>, n: &Node<'_>, p: &str| c.duration(n, p, false);
    if let Some(d) = field(ctx, &tm, &path, "header_read", dur) {
        t.header_read = d;
    }
    if let Some(d) = field(ctx, &tm, &path, "body_read", dur) {
        t.body_read = d;
    }
    if let Some(d) = field(ctx, &tm, &path, "idle", dur) {
        t.idle = d;
    }
    t
}

/// The upstreams, and (when the section was a list) every upstream name in
/// order, even of upstreams that had errors, so that routes are checked
/// against what the user meant.
fn upstreams(ctx: &mut Ctx<'_>, node: &Node<'_>) -> (Vec<UpstreamConfig>, Option<Vec<String>>) {
    let Some(items) = ctx.seq(node, "upstreams") else {
        return (Vec::new(), None);
    };
    let mut out = Vec::with_capacity(items.len());
    // Index-aligned with `items`; empty where the name is missing or bad.
    let mut names = Vec::with_capacity(items.len());
    let mut named = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = index("upstreams", i);
        let Some(m) = ctx.map(item, &path, Some(UPSTREAM_KEYS)) else {
            names.push(String::new());
            continue;
        };
        let name = item_name(ctx, &m, &path, None);
        if let Some(u) = upstream(ctx, &m, &path, name.as_ref().map(|n| n.name.as_str())) {
            out.push(u);
        }
        names.push(name.as_ref().map_or_else(String::new, |n| n.name.clone()));
        named.extend(name);
    }
    check_unique(ctx, &named, "upstream");
    (out, Some(names))
}

fn upstream(
    ctx: &mut Ctx<'_>,
    m: &MapView<'_, '_>,
    path: &str,
    name: Option<&str>,
) -> Option<UpstreamConfig> {
    let targets = match m.get("targets") {
        Some(n) => targets(ctx, n, &join(path, "targets")),
        None => {
            missing(ctx, m, path, "targets");
            None
        }
    };
    let tls = match m.get("tls") {
        Some(n) => tls(ctx, n, &join(path, "tls")),
        None => Ok(None),
    };

    let mut pool = PoolConfig::default();
    if let Some(pm) = section(ctx, m, path, "pool", POOL_KEYS) {
        let ppath = join(path, "pool");
        if let Some(v) = field(ctx, &pm, &ppath, "max_idle_per_target", |c, n, p| {
            c.uint(n, p, 1_000_000)
        }) {
            pool.max_idle_per_target = usize::try_from(v).unwrap_or(usize::MAX);
        }
        if let Some(d) = field(ctx, &pm, &ppath, "idle_timeout", |c, n, p| {
            c.duration(n, p, false)
        }) {
            pool.idle_timeout = d;
        }
    }

    let mut timeouts = UpstreamTimeouts::default();
    if let Some(tm) = section(ctx, m, path, "timeouts", UPSTREAM_TIMEOUT_KEYS) {
        let tpath = join(path, "timeouts");
        let dur = |c: &mut Ctx<'_>, n: &Node<'_>, p: &str| c.duration(n, p, false);
        if let Some(d) = field(ctx, &tm, &tpath, "connect", dur) {
            timeouts.connect = d;
        }
        if let Some(d) = field(ctx, &tm, &tpath, "read", dur) {
            timeouts.read = d;
        }
    }

    let host_header = field(ctx, m, path, "host_header", |c, n, p| {
        let value = c.header_value(n, p)?;
        match value.trim() {
            "target" => Some(HostHeader::Target),
            "preserve" => Some(HostHeader::Preserve),
            "" => {
                c.error(n, p, "must not be empty");
                None
            }
            fixed => Some(HostHeader::Fixed(fixed.to_string())),
        }
    });
    let host_header = match (m.get("host_header"), host_header) {
        (Some(_), None) => return None,
        (_, h) => h.unwrap_or(HostHeader::Target),
    };

    Some(UpstreamConfig {
        name: name?.to_string(),
        targets: targets?,
        tls: tls.ok()?,
        pool,
        timeouts,
        host_header,
    })
}

fn targets(ctx: &mut Ctx<'_>, node: &Node<'_>, path: &str) -> Option<Vec<TargetConfig>> {
    let items = ctx.seq(node, path)?;
    if items.is_empty() {
        ctx.error(node, path, "an upstream needs at least one target");
        return None;
    }
    let mut out = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        match target(ctx, item, &index(path, i)) {
            Some(t) => out.push(t),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn target(ctx: &mut Ctx<'_>, node: &Node<'_>, path: &str) -> Option<TargetConfig> {
    let (addr_node, addr_path, weight) = match kind(node) {
        Kind::Scalar(..) => (node, path.to_string(), Some(1)),
        Kind::Map(_) => {
            let m = ctx.map(node, path, Some(TARGET_KEYS))?;
            let weight = match m.get("weight") {
                Some(n) => {
                    let wpath = join(path, "weight");
                    // Capped: the balancer unrolls one cycle of sum(weights) slots.
                    match ctx.uint(n, &wpath, MAX_WEIGHT) {
                        Some(0) => {
                            ctx.error(n, &wpath, "must be at least 1");
                            None
                        }
                        w => w.and_then(|w| u32::try_from(w).ok()),
                    }
                }
                None => Some(1),
            };
            let Some(a) = m.get("address") else {
                missing(ctx, &m, path, "address");
                return None;
            };
            (a, join(path, "address"), weight)
        }
        _ => {
            ctx.expected(
                node,
                path,
                "`host:port` or a mapping such as `{ address: \"host:port\", weight: 2 }`",
            );
            return None;
        }
    };
    let text = ctx.text(addr_node, &addr_path)?.trim();
    let (host, port) = match split_host_port(text) {
        Ok(hp) => hp,
        Err(msg) => {
            ctx.error(addr_node, &addr_path, msg);
            return None;
        }
    };
    let addr = match resolve(&host, port) {
        Ok(addr) => addr,
        Err(msg) => {
            ctx.error(addr_node, &addr_path, msg);
            return None;
        }
    };
    Some(TargetConfig {
        host,
        port,
        addr,
        weight: weight?,
    })
}

/// `Ok(None)`: TLS off. `Err(())`: errors were recorded.
fn tls(ctx: &mut Ctx<'_>, node: &Node<'_>, path: &str) -> Result<Option<TlsConfig>, ()> {
    let webpki = TlsConfig {
        sni: None,
        roots: TlsRoots::Webpki,
        ca_file: None,
    };
    match kind(node) {
        Kind::Scalar(..) => match ctx.boolean(node, path) {
            Some(true) => Ok(Some(webpki)),
            Some(false) => Ok(None),
            None => Err(()),
        },
        Kind::Map(_) => {
            let m = ctx.map(node, path, Some(TLS_KEYS)).ok_or(())?;
            let mut ok = true;
            let sni = match m.get("sni") {
                Some(n) => {
                    let p = join(path, "sni");
                    match ctx.name(n, &p) {
                        Some(s) if s.contains(char::is_whitespace) => {
                            ctx.error(n, &p, "must be a host name (no spaces)");
                            ok = false;
                            None
                        }
                        Some(s) => Some(s),
                        None => {
                            ok = false;
                            None
                        }
                    }
                }
                None => None,
            };
            let roots = field(ctx, &m, path, "roots", |c, n, p| {
                match c.text(n, p)?.trim() {
                    "webpki" => Some(TlsRoots::Webpki),
                    "system" => Some(TlsRoots::System),
                    "none" => Some(TlsRoots::None),
                    other => {
                        c.error(
                            n,
                            p,
                            format!(
                                "unknown roots `{other}`; expected `webpki`, `system` or `none`"
                            ),
                        );
                        None
                    }
                }
            });
            if m.get("roots").is_some() && roots.is_none() {
                ok = false;
            }
            let roots = roots.unwrap_or(TlsRoots::Webpki);
            let ca_file = match m.get("ca_file") {
                Some(n) => {
                    let p = join(path, "ca_file");
                    let file = ca_file(ctx, n, &p);
                    ok &= file.is_some();
                    file
                }
                None => None,
            };
            if roots == TlsRoots::None && m.get("ca_file").is_none() {
                let at = m.get("roots").map_or(m.start, |n| n.span.start);
                ctx.error_at(
                    at,
                    &join(path, "roots"),
                    "`roots: none` trusts no certificate unless `ca_file` is set",
                );
                ok = false;
            }
            if ok {
                Ok(Some(TlsConfig {
                    sni,
                    roots,
                    ca_file,
                }))
            } else {
                Err(())
            }
        }
        _ => {
            ctx.expected(
                node,
                path,
                "`true`, `false` or a mapping such as `{ sni: api.example.com }`",
            );
            Err(())
        }
    }
}

/// A CA file path, made relative to the config file's directory, that must exist.
fn ca_file(ctx: &mut Ctx<'_>, node: &Node<'_>, path: &str) -> Option<PathBuf> {
    let text = ctx.name(node, path)?;
    let mut file = PathBuf::from(text);
    if file.is_relative() {
        if let Some(base) = ctx.base_dir {
            file = base.join(file);
        }
    }
    match std::fs::metadata(&file) {
        Ok(meta) if meta.is_file() => Some(file),
        Ok(_) => {
            ctx.error(node, path, format!("`{}` is not a file", file.display()));
            None
        }
        Err(e) => {
            ctx.error(node, path, format!("cannot open `{}`: {e}", file.display()));
            None
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // unwrap is the point of a test
mod tests {
    use super::*;

    fn load(yaml: &str) -> Result<Config, ConfigErrors> {
        load_str(yaml, "test.yaml")
    }

    fn errors(yaml: &str) -> Vec<ConfigError> {
        match load(yaml) {
            Ok(c) => panic!("expected errors, got {c:#?}"),
            Err(e) => e.0,
        }
    }

    /// Exactly one error, at `line`:`column` on `field`, whose message contains `needle`.
    #[track_caller]
    fn assert_error(yaml: &str, line: usize, column: usize, field: &str, needle: &str) {
        let errs = errors(yaml);
        assert_eq!(
            errs.len(),
            1,
            "expected one error, got:\n{}",
            ConfigErrors(errs.clone())
        );
        let e = &errs[0];
        assert_eq!(
            (e.line, e.column, e.field.as_str()),
            (line, column, field),
            "wrong place: {e}"
        );
        assert!(e.message.contains(needle), "`{needle}` not in: {e}");
        assert_eq!(e.file, "test.yaml");
    }

    const UPSTREAM: &str = "upstreams:\n  - name: backend\n    targets: [127.0.0.1:9000]\n";

    #[test]
    fn embedded_default_loads() {
        let c = embedded_default().unwrap();
        assert_eq!(c.source, "<embedded default>");
        assert_eq!(c.version.len(), 12);
        assert!(c.version.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(c.workers, Workers::Auto);
        assert_eq!(c.cpu_affinity, CpuAffinity::Off);
        assert_eq!(c.runtime, RuntimeKind::Auto);
        assert_eq!(c.shutdown_timeout, Duration::from_secs(30));
        assert_eq!(c.admin, Some("127.0.0.1:9901".parse().unwrap()));
        assert_eq!(c.listeners.len(), 1);
        assert_eq!(c.listeners[0].name, "main");
        assert_eq!(c.listeners[0].addr, "127.0.0.1:8080".parse().unwrap());
        assert!(c.upstreams.is_empty());
        assert_eq!(c.routes.len(), 1);
        let r = &c.routes[0];
        assert_eq!(r.name, "welcome");
        assert_eq!(r.matcher.path, PathMatch::Any);
        assert!(r.matcher.host.is_none() && r.matcher.methods.is_empty());
        match &r.action {
            RouteAction::Respond {
                status,
                content_type,
                body,
                headers,
            } => {
                assert_eq!(*status, 200);
                assert_eq!(content_type, "application/json");
                assert!(
                    body.starts_with(r#"{"service":"strait","status":"ok""#),
                    "{body}"
                );
                assert!(headers.is_empty());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn empty_text_gives_defaults() {
        for text in ["", "# nothing\n", "~\n", "{}\n"] {
            let c = load(text).unwrap();
            assert_eq!(c.workers, Workers::Auto);
            assert_eq!(c.admin, Some(DEFAULT_ADMIN));
            assert_eq!(c.listeners.len(), 1);
            assert_eq!(c.listeners[0].name, "main");
            assert_eq!(c.listeners[0].addr, DEFAULT_LISTEN);
            assert_eq!(c.listeners[0].limits.max_body_bytes, 64 << 20);
            assert!(c.upstreams.is_empty() && c.routes.is_empty());
        }
    }

    const FULL: &str = r#"
workers: 4
cpu_affinity: [0, 2, 4]
runtime: io_uring
shutdown_timeout: 1.5s
admin:
  listen: "[::1]:9999"
listeners:
  - name: public
    listen: 0.0.0.0:8080
    limits:
      max_header_bytes: 16KiB
      max_headers: 50
      max_body_bytes: 10MB
    timeouts:
      header_read: 500ms
      body_read: 2m
      idle: 1h
  - listen: localhost:8081
upstreams:
  - name: backend
    targets:
      - 127.0.0.1:9000
      - { address: "[::1]:9001", weight: 3 }
    pool: { max_idle_per_target: 0, idle_timeout: 45 }
    timeouts: { connect: 2s, read: 90s }
    host_header: preserve
  - name: api
    targets: ["localhost:443"]
    tls: { sni: api.example.com, roots: system }
    host_header: api.example.com
  - name: plain-tls
    targets: [127.0.0.1:8443]
    tls: true
routes:
  - name: api
    match:
      host: "*.Example.com"
      path_prefix: /v1/
      methods: [get, POST, GET]
      headers: { X-Tenant: acme, x-version: 1.10 }
    upstream: api
    strip_prefix: true
    timeouts: { connect: 1s, read: 10s }
    max_body_bytes: 1GiB
  - match: { host: "API.example.com:8443", path: /old, methods: DELETE }
    upstream: backend
    rewrite: /new
  - name: health
    match: { path: /healthz }
    respond:
      status: 204
      headers: { x-served-by: strait, cache-control: no-store }
  - name: fallback
    respond:
      status: 404
      body: |
        not here
"#;

    #[test]
    fn full_config_parses() {
        let c = load(FULL).unwrap();
        assert_eq!(c.source, "test.yaml");
        assert_eq!(c.workers, Workers::Count(4));
        assert_eq!(c.cpu_affinity, CpuAffinity::List(vec![0, 2, 4]));
        assert_eq!(c.runtime, RuntimeKind::IoUring);
        assert_eq!(c.shutdown_timeout, Duration::from_millis(1500));
        assert_eq!(c.admin, Some("[::1]:9999".parse().unwrap()));

        assert_eq!(c.listeners.len(), 2);
        let l = &c.listeners[0];
        assert_eq!(l.name, "public");
        assert_eq!(l.addr, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(l.limits.max_header_bytes, 16 * 1024);
        assert_eq!(l.limits.max_headers, 50);
        assert_eq!(l.limits.max_body_bytes, 10_000_000);
        assert_eq!(l.timeouts.header_read, Duration::from_millis(500));
        assert_eq!(l.timeouts.body_read, Duration::from_secs(120));
        assert_eq!(l.timeouts.idle, Duration::from_secs(3600));
        let l = &c.listeners[1];
        assert_eq!(l.name, "listener1");
        assert_eq!(l.addr.port(), 8081);
        assert!(l.addr.ip().is_loopback());
        assert_eq!(l.limits.max_headers, Limits::default().max_headers);
        assert_eq!(l.timeouts.idle, ServerTimeouts::default().idle);

        assert_eq!(c.upstreams.len(), 3);
        let u = &c.upstreams[0];
        assert_eq!(u.name, "backend");
        assert_eq!(u.targets.len(), 2);
        assert_eq!(u.targets[0].host, "127.0.0.1");
        assert_eq!(u.targets[0].port, 9000);
        assert_eq!(u.targets[0].addr, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(u.targets[0].weight, 1);
        assert_eq!(u.targets[1].host, "::1");
        assert_eq!(u.targets[1].addr, "[::1]:9001".parse().unwrap());
        assert_eq!(u.targets[1].weight, 3);
        assert!(u.tls.is_none());
        assert_eq!(u.pool.max_idle_per_target, 0);
        assert_eq!(u.pool.idle_timeout, Duration::from_secs(45));
        assert_eq!(u.timeouts.connect, Duration::from_secs(2));
        assert_eq!(u.timeouts.read, Duration::from_secs(90));
        assert_eq!(u.host_header, HostHeader::Preserve);
        let u = &c.upstreams[1];
        assert_eq!(u.targets[0].host, "localhost");
        assert_eq!(u.targets[0].addr.port(), 443);
        assert!(u.targets[0].addr.ip().is_loopback());
        let tls = u.tls.as_ref().unwrap();
        assert_eq!(tls.sni.as_deref(), Some("api.example.com"));
        assert_eq!(tls.roots, TlsRoots::System);
        assert!(tls.ca_file.is_none());
        assert_eq!(u.host_header, HostHeader::Fixed("api.example.com".into()));
        assert_eq!(
            u.pool.max_idle_per_target,
            PoolConfig::default().max_idle_per_target
        );
        assert_eq!(u.timeouts.read, UpstreamTimeouts::default().read);
        let u = &c.upstreams[2];
        let tls = u.tls.as_ref().unwrap();
        assert!(tls.sni.is_none() && tls.ca_file.is_none());
        assert_eq!(tls.roots, TlsRoots::Webpki);
        assert_eq!(u.host_header, HostHeader::Target);

        assert_eq!(c.routes.len(), 4);
        let r = &c.routes[0];
        assert_eq!(r.name, "api");
        assert_eq!(
            r.matcher.host,
            Some(HostMatch::Suffix(".example.com".into()))
        );
        assert_eq!(r.matcher.path, PathMatch::Prefix("/v1/".into()));
        assert_eq!(r.matcher.methods, vec!["GET", "POST"]);
        assert_eq!(
            r.matcher.headers,
            vec![
                ("x-tenant".to_string(), "acme".to_string()),
                ("x-version".to_string(), "1.10".to_string())
            ]
        );
        assert!(matches!(
            r.action,
            RouteAction::Proxy {
                upstream: 1,
                strip_prefix: true,
                rewrite: None
            }
        ));
        assert_eq!(r.connect_timeout, Some(Duration::from_secs(1)));
        assert_eq!(r.read_timeout, Some(Duration::from_secs(10)));
        assert_eq!(r.max_body_bytes, Some(1 << 30));

        let r = &c.routes[1];
        assert_eq!(r.name, "route1");
        assert_eq!(
            r.matcher.host,
            Some(HostMatch::Exact("api.example.com".into()))
        );
        assert_eq!(r.matcher.path, PathMatch::Exact("/old".into()));
        assert_eq!(r.matcher.methods, vec!["DELETE"]);
        match &r.action {
            RouteAction::Proxy {
                upstream,
                strip_prefix,
                rewrite,
            } => {
                assert_eq!(*upstream, 0);
                assert!(!strip_prefix);
                assert_eq!(rewrite.as_deref(), Some("/new"));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            (r.connect_timeout, r.read_timeout, r.max_body_bytes),
            (None, None, None)
        );

        match &c.routes[2].action {
            RouteAction::Respond {
                status,
                content_type,
                body,
                headers,
            } => {
                assert_eq!(*status, 204);
                assert_eq!(content_type, DEFAULT_CONTENT_TYPE_FOR_TESTS);
                assert_eq!(body, "");
                assert_eq!(
                    headers,
                    &vec![
                        ("x-served-by".to_string(), "strait".to_string()),
                        ("cache-control".to_string(), "no-store".to_string())
                    ]
                );
            }
            other => panic!("{other:?}"),
        }
        match &c.routes[3].action {
            RouteAction::Respond { status, body, .. } => {
                assert_eq!(*status, 404);
                assert_eq!(body, "not here\n");
            }
            other => panic!("{other:?}"),
        }
    }

    const DEFAULT_CONTENT_TYPE_FOR_TESTS: &str = "text/plain; charset=utf-8";

    #[test]
    fn version_is_a_hash_of_the_text() {
        let a = load("workers: 1\n").unwrap().version;
        let b = load("workers: 1\n").unwrap().version;
        let c = load("workers: 2\n").unwrap().version;
        assert_eq!(a, b);
        assert_ne!(a, c);
        // FNV-1a 64 of "" is the offset basis.
        assert_eq!(version_of(""), "cbf29ce48422");
        assert_eq!(version_of("a"), "af63dc4c8601");
    }

    #[test]
    fn scalar_forms() {
        let c = load("cpu_affinity: true\nadmin: off\nworkers: \"2\"\n").unwrap();
        assert_eq!(c.cpu_affinity, CpuAffinity::Auto);
        assert_eq!(c.admin, None);
        assert_eq!(c.workers, Workers::Count(2));
        assert_eq!(load("admin:\n").unwrap().admin, None);
        assert_eq!(load("admin: null\n").unwrap().admin, None);
        assert_eq!(load("admin: {}\n").unwrap().admin, Some(DEFAULT_ADMIN));
        assert_eq!(
            load("admin: 127.0.0.1:1\n").unwrap().admin,
            Some("127.0.0.1:1".parse().unwrap())
        );
        assert_eq!(
            load("cpu_affinity: false\n").unwrap().cpu_affinity,
            CpuAffinity::Off
        );
        assert_eq!(
            load("runtime: epoll\n").unwrap().runtime,
            RuntimeKind::Epoll
        );
        assert_eq!(
            load("shutdown_timeout: 0\n").unwrap().shutdown_timeout,
            Duration::ZERO
        );
        // `!!str` and quotes force text; a plain number is text where text is expected.
        let c = load("routes:\n  - respond: { body: !!str 12, content_type: 1.50 }\n").unwrap();
        match &c.routes[0].action {
            RouteAction::Respond {
                body, content_type, ..
            } => {
                assert_eq!(body, "12");
                assert_eq!(content_type, "1.50");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unknown_upstream() {
        let yaml = format!("{UPSTREAM}routes:\n  - name: r\n    upstream: backnd\n");
        assert_error(
            &yaml,
            6,
            15,
            "routes[0].upstream",
            "unknown upstream `backnd`; did you mean `backend`?",
        );
        assert_error(
            "routes:\n  - upstream: x\n",
            2,
            15,
            "routes[0].upstream",
            "unknown upstream `x` (no upstreams are defined)",
        );
        assert_error(
            &format!("{UPSTREAM}routes:\n  - upstream: zzz\n"),
            5,
            15,
            "routes[0].upstream",
            "(defined upstreams: backend)",
        );
    }

    #[test]
    fn unknown_keys() {
        assert_error("worker: 4\n", 1, 1, "worker", "did you mean `workers`?");
        assert_error(
            "routes:\n  - respond: {}\n    match: { pathprefix: /a }\n",
            3,
            14,
            "routes[0].match.pathprefix",
            "unknown field `pathprefix`; did you mean `path_prefix`?",
        );
        assert_error(
            &format!("{UPSTREAM}    bogus: 1\n"),
            4,
            5,
            "upstreams[0].bogus",
            "expected one of: name, targets, tls",
        );
        assert_error(
            "listeners:\n  - listen: 127.0.0.1:1\n    limits:\n      max_body: 1\n",
            4,
            7,
            "listeners[0].limits.max_body",
            "did you mean `max_body_bytes`?",
        );
    }

    #[test]
    fn bad_durations() {
        assert_error(
            "shutdown_timeout: 10 seconds\n",
            1,
            19,
            "shutdown_timeout",
            "expected a duration",
        );
        assert_error(
            &format!("{UPSTREAM}    timeouts: {{ connect: 0s }}\n"),
            4,
            26,
            "upstreams[0].timeouts.connect",
            "must be greater than zero",
        );
        assert_error(
            "listeners:\n  - listen: 127.0.0.1:1\n    timeouts:\n      idle: -5s\n",
            4,
            13,
            "listeners[0].timeouts.idle",
            "found `-5s`",
        );
        assert_error(
            &format!("{UPSTREAM}routes:\n  - upstream: backend\n    timeouts: {{ read: [1] }}\n"),
            6,
            23,
            "routes[0].timeouts.read",
            "found a list",
        );
    }

    #[test]
    fn bad_sizes() {
        assert_error(
            "listeners:\n  - listen: 127.0.0.1:1\n    limits: { max_body_bytes: 10 MiBs }\n",
            3,
            31,
            "listeners[0].limits.max_body_bytes",
            "expected a size",
        );
        assert_error(
            "routes:\n  - respond: {}\n    max_body_bytes: 1.5\n",
            3,
            21,
            "routes[0].max_body_bytes",
            "expected a size",
        );
        assert_error(
            "listeners:\n  - listen: 127.0.0.1:1\n    limits: { max_header_bytes: 8 }\n",
            3,
            33,
            "listeners[0].limits.max_header_bytes",
            "at least 64 bytes",
        );
    }

    #[test]
    fn bad_addresses() {
        assert_error(
            "listeners:\n  - listen: 127.0.0.1\n",
            2,
            13,
            "listeners[0].listen",
            "the port is required",
        );
        assert_error(
            "admin: { listen: \"127.0.0.1:70000\" }\n",
            1,
            18,
            "admin.listen",
            "from 1 to 65535",
        );
        assert_error(
            "upstreams:\n  - name: b\n    targets:\n      - 127.0.0.1:1\n      - ::1:80\n",
            5,
            9,
            "upstreams[0].targets[1]",
            "must be written in brackets",
        );
        assert_error(
            "upstreams:\n  - name: b\n    targets: [{ address: \"example.com\" }]\n",
            3,
            26,
            "upstreams[0].targets[0].address",
            "the port is required",
        );
        assert_error(
            "upstreams:\n  - name: b\n    targets: [{ address: \"127.0.0.1:1\", weight: 0 }]\n",
            3,
            49,
            "upstreams[0].targets[0].weight",
            "must be at least 1",
        );
    }

    #[test]
    fn path_and_path_prefix() {
        assert_error(
            "routes:\n  - respond: {}\n    match:\n      path: /a\n      path_prefix: /b\n",
            5,
            7,
            "routes[0].match.path_prefix",
            "cannot both be set",
        );
        assert_error(
            "routes:\n  - respond: {}\n    match: { path_prefix: /b, path: /a }\n",
            3,
            31,
            "routes[0].match.path",
            "cannot both be set",
        );
        assert_error(
            "routes:\n  - respond: {}\n    match: { path_prefix: v1 }\n",
            3,
            27,
            "routes[0].match.path_prefix",
            "must start with `/`",
        );
    }

    #[test]
    fn upstream_and_respond() {
        assert_error(
            &format!("{UPSTREAM}routes:\n  - upstream: backend\n    respond: {{ status: 200 }}\n"),
            6,
            5,
            "routes[0].respond",
            "cannot both be set",
        );
        assert_error(
            "routes:\n  - name: r\n",
            2,
            5,
            "routes[0]",
            "needs either `upstream`",
        );
        assert_error(
            "routes:\n  - respond: {}\n    strip_prefix: true\n",
            3,
            5,
            "routes[0].strip_prefix",
            "only applies to a route with `upstream`",
        );
        assert_error(
            &format!("{UPSTREAM}routes:\n  - upstream: backend\n    strip_prefix: true\n"),
            6,
            19,
            "routes[0].strip_prefix",
            "needs `match.path_prefix`",
        );
        assert_error(
            &format!("{UPSTREAM}routes:\n  - upstream: backend\n    rewrite: /x\n"),
            6,
            14,
            "routes[0].rewrite",
            "needs `match.path_prefix` or `match.path`",
        );
    }

    #[test]
    fn duplicate_names() {
        assert_error(
            &format!("{UPSTREAM}  - name: backend\n    targets: [127.0.0.1:1]\n"),
            4,
            11,
            "upstreams[1].name",
            "duplicate upstream name `backend` (first used at line 2)",
        );
        assert_error(
            "routes:\n  - name: a\n    respond: {}\n  - name: a\n    respond: {}\n",
            4,
            11,
            "routes[1].name",
            "duplicate route name `a`",
        );
        assert_error(
            "listeners:\n  - listen: 127.0.0.1:1\n  - name: listener0\n    listen: 127.0.0.1:2\n",
            3,
            11,
            "listeners[1].name",
            "duplicate listener name `listener0`",
        );
        assert_error(
            "listeners:\n  - listen: 127.0.0.1:1\n  - listen: 127.0.0.1:1\n",
            3,
            13,
            "listeners[1].listen",
            "already used by listener `listener0`",
        );
        assert_error(
            "admin: 127.0.0.1:9\nlisteners:\n  - listen: 127.0.0.1:9\n",
            3,
            13,
            "listeners[0].listen",
            "already used by the admin listener",
        );
        // Port 0 means any free port: no clash.
        load("admin: 127.0.0.1:0\nlisteners:\n  - listen: 127.0.0.1:0\n  - listen: 127.0.0.1:0\n")
            .unwrap();
        // The YAML layer itself rejects a repeated key.
        assert_error("workers: 1\nworkers: 2\n", 2, 1, "(root)", "duplicated key");
    }

    #[test]
    fn bad_yaml_syntax() {
        assert_error(
            "routes:\n  - name: a\n   respond: {}\n",
            3,
            4,
            "(root)",
            "invalid YAML",
        );
        assert_error("workers: [1, 2\n", 2, 1, "(root)", "invalid YAML");
        assert_error(
            "workers: 1\n---\nworkers: 2\n",
            3,
            1,
            "(root)",
            "single YAML document",
        );
        assert_error(
            "- 1\n- 2\n",
            1,
            1,
            "(root)",
            "expected a mapping, found a list",
        );
        assert_error("workers: !custom 3\n", 1, 10, "workers", "custom YAML tag");
    }

    #[test]
    fn other_checks() {
        assert_error("workers: 0\n", 1, 10, "workers", "at least 1");
        assert_error(
            "workers: many\n",
            1,
            10,
            "workers",
            "`auto` or a positive number",
        );
        assert_error(
            "cpu_affinity: []\n",
            1,
            15,
            "cpu_affinity",
            "must not be empty",
        );
        assert_error(
            "cpu_affinity: [0, x]\n",
            1,
            19,
            "cpu_affinity[1]",
            "integer",
        );
        assert_error(
            "runtime: uring\n",
            1,
            10,
            "runtime",
            "unknown runtime `uring`",
        );
        assert_error(
            "listeners: []\n",
            1,
            12,
            "listeners",
            "at least one listener",
        );
        assert_error(
            "upstreams:\n  - name: b\n    targets: []\n",
            3,
            14,
            "upstreams[0].targets",
            "at least one target",
        );
        assert_error(
            "upstreams:\n  - targets: [127.0.0.1:1]\n",
            2,
            5,
            "upstreams[0].name",
            "missing required field `name`",
        );
        assert_error(
            "upstreams:\n  - name: b\n",
            2,
            5,
            "upstreams[0].targets",
            "missing required field `targets`",
        );
        assert_error(
            "upstreams:\n  - name: b\n    targets: [127.0.0.1:1]\n    tls: { roots: none }\n",
            4,
            19,
            "upstreams[0].tls.roots",
            "unless `ca_file` is set",
        );
        assert_error(
            "upstreams:\n  - name: b\n    targets: [127.0.0.1:1]\n    tls: { ca_file: /nonexistent/ca.pem }\n",
            4,
            21,
            "upstreams[0].tls.ca_file",
            "cannot open",
        );
        assert_error(
            "routes:\n  - respond: { status: 600 }\n",
            2,
            24,
            "routes[0].respond.status",
            "expected 100 to 599",
        );
        assert_error(
            "routes:\n  - respond: { status: 204, body: x }\n",
            2,
            35,
            "routes[0].respond.body",
            "cannot have a body",
        );
        assert_error(
            "routes:\n  - respond: { headers: { Content-Length: 3 } }\n",
            2,
            27,
            "routes[0].respond.headers.Content-Length",
            "set by the server",
        );
        assert_error(
            "routes:\n  - respond: {}\n    match: { host: \"a.*.com\" }\n",
            3,
            20,
            "routes[0].match.host",
            "wildcard",
        );
        assert_error(
            "routes:\n  - respond: {}\n    match: { methods: [GET, \"NO PE\"] }\n",
            3,
            29,
            "routes[0].match.methods[1]",
            "not an HTTP method",
        );
        assert_error(
            "routes:\n  - respond: {}\n    match: { headers: { \"bad name\": x } }\n",
            3,
            25,
            "routes[0].match.headers.bad name",
            "not a valid header name",
        );
    }

    #[test]
    fn all_errors_are_reported_in_order() {
        let yaml = "\
workers: 0
runtime: fast
upstreams:
  - name: b
    targets: [nope]
routes:
  - upstream: missing
    match: { path: x }
  - bogus: 1
";
        let errs = errors(yaml);
        let places: Vec<(usize, &str)> = errs.iter().map(|e| (e.line, e.field.as_str())).collect();
        assert_eq!(
            places,
            vec![
                (1, "workers"),
                (2, "runtime"),
                (5, "upstreams[0].targets[0]"),
                (7, "routes[0].upstream"),
                (8, "routes[0].match.path"),
                (9, "routes[1].bogus"),
                (9, "routes[1]"),
            ],
            "{}",
            ConfigErrors(errs.clone())
        );
    }

    #[test]
    fn display_formats() {
        let errs = errors("workers: 0\nruntime: fast\n");
        let text = ConfigErrors(errs).to_string();
        assert_eq!(
            text,
            "test.yaml:1:10: workers: must be at least 1 (or `auto`)\n\
             test.yaml:2:10: runtime: unknown runtime `fast`; expected `auto`, `io_uring` or `epoll`"
        );
    }

    #[test]
    fn load_file_reads_and_resolves_relative_paths() {
        let dir = std::env::temp_dir().join(format!("strait-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ca.pem"), "not checked here").unwrap();
        let path = dir.join("strait.yaml");
        std::fs::write(
            &path,
            "upstreams:\n  - name: b\n    targets: [127.0.0.1:1]\n    tls: { ca_file: ca.pem, roots: none }\n",
        )
        .unwrap();
        let c = load_file(&path).unwrap();
        assert_eq!(c.source, path.display().to_string());
        let tls = c.upstreams[0].tls.as_ref().unwrap();
        assert_eq!(tls.ca_file.as_deref(), Some(dir.join("ca.pem").as_path()));
        assert_eq!(tls.roots, TlsRoots::None);

        let missing = dir.join("missing.yaml");
        let errs = load_file(&missing).unwrap_err().0;
        assert_eq!(errs.len(), 1);
        assert_eq!((errs[0].line, errs[0].column), (0, 0));
        assert_eq!(errs[0].file, missing.display().to_string());
        assert!(errs[0].message.contains("cannot read"), "{}", errs[0]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
