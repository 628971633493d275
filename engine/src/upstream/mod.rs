//! Upstreams as a worker sees them: target choice, connecting (TCP or TLS)
//! and the per-core keep-alive pool.
//!
//! Each worker owns its pools outright (`RefCell`, no locks, no sharing): a
//! connection opened on a core is only ever used by that core. A connection
//! goes back to the pool only when its last response was read to the end and
//! neither side asked to close; it is dropped when it has been idle longer
//! than the pool's idle timeout or the pool for its target is full.

pub mod tls;

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use monoio::net::TcpStream;
use monoio_rustls::{ClientTlsStream, TlsConnector};

use crate::config::UpstreamConfig;
use crate::http::ReadBuf;
use crate::worker::sockets::Tracked;

/// Per-connection read buffer for upstream responses.
const UPSTREAM_BUF: usize = 16 * 1024;

/// An upstream as built into a snapshot (shared by all workers, read-only).
#[derive(Debug)]
pub struct UpstreamSpec {
    pub config: UpstreamConfig,
    pub tls: Option<tls::TlsClient>,
    /// Target indices in smooth weighted round-robin order.
    pub schedule: Vec<usize>,
    /// `Host` header value per target (`host` or `host:port`).
    pub authorities: Vec<String>,
}

impl UpstreamSpec {
    pub fn build(config: &UpstreamConfig) -> Result<UpstreamSpec, String> {
        let hosts: Vec<&str> = config.targets.iter().map(|t| t.host.as_str()).collect();
        let tls = match &config.tls {
            Some(t) => Some(tls::build(t, &hosts)?),
            None => None,
        };
        let default_port = if tls.is_some() { 443 } else { 80 };
        let authorities = config
            .targets
            .iter()
            .map(|t| {
                let host = if t.host.contains(':') && !t.host.starts_with('[') {
                    format!("[{}]", t.host)
                } else {
                    t.host.clone()
                };
                if t.port == default_port {
                    host
                } else {
                    format!("{host}:{}", t.port)
                }
            })
            .collect();
        Ok(UpstreamSpec {
            schedule: smooth_weighted_schedule(
                &config.targets.iter().map(|t| t.weight).collect::<Vec<_>>(),
            ),
            config: config.clone(),
            tls,
            authorities,
        })
    }
}

/// Nginx-style smooth weighted round robin, unrolled into one cycle.
fn smooth_weighted_schedule(weights: &[u32]) -> Vec<usize> {
    let total: i64 = weights.iter().map(|w| i64::from(*w)).sum();
    let mut current = vec![0i64; weights.len()];
    let mut order = Vec::with_capacity(total.max(1) as usize);
    for _ in 0..total.max(1) {
        let mut best = 0;
        for (i, w) in weights.iter().enumerate() {
            current[i] += i64::from(*w);
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        order.push(best);
    }
    order
}

pub enum Stream {
    Plain(TcpStream),
    Tls(Box<ClientTlsStream<TcpStream>>),
}

/// A connection to one target, with its own read buffer.
pub struct UpstreamConn {
    /// First field: dropped before the socket closes.
    _tracked: Tracked,
    pub stream: Stream,
    pub rb: ReadBuf,
    pub target: usize,
    /// Taken from the pool rather than freshly opened.
    pub reused: bool,
    fd: RawFd,
    idle_since: Instant,
}

/// Why a connection could not be opened.
#[derive(Debug)]
pub enum ConnectError {
    Timeout,
    Io(io::Error),
}

/// One upstream's state on one worker.
pub struct UpstreamPool {
    pub spec: Arc<UpstreamSpec>,
    next: Cell<usize>,
    idle: RefCell<Vec<Vec<UpstreamConn>>>,
    tls: Option<TlsConnector>,
}

impl UpstreamPool {
    pub fn new(spec: Arc<UpstreamSpec>) -> UpstreamPool {
        let targets = spec.config.targets.len();
        let tls = spec
            .tls
            .as_ref()
            .map(|t| TlsConnector::from(t.config.clone()));
        UpstreamPool {
            spec,
            next: Cell::new(0),
            idle: RefCell::new((0..targets).map(|_| Vec::new()).collect()),
            tls,
        }
    }

    pub fn target_count(&self) -> usize {
        self.spec.config.targets.len()
    }

    /// The next target in weighted round-robin order.
    pub fn pick(&self) -> usize {
        let i = self.next.get();
        self.next.set(i.wrapping_add(1));
        self.spec.schedule[i % self.spec.schedule.len()]
    }

    /// A pooled connection to `target`, if a fresh enough one is idle. With
    /// `probe`, connections the upstream has closed meanwhile are skipped.
    pub fn checkout(&self, target: usize, probe: bool) -> Option<UpstreamConn> {
        let max_idle = self.spec.config.pool.idle_timeout;
        let mut idle = self.idle.borrow_mut();
        let list = idle.get_mut(target)?;
        while let Some(mut conn) = list.pop() {
            if conn.idle_since.elapsed() >= max_idle {
                continue;
            }
            if probe && !conn.looks_alive() {
                continue;
            }
            conn.reused = true;
            return Some(conn);
        }
        None
    }

    /// Returns a connection whose last exchange ended cleanly.
    pub fn checkin(&self, mut conn: UpstreamConn) {
        let max = self.spec.config.pool.max_idle_per_target;
        let mut idle = self.idle.borrow_mut();
        if let Some(list) = idle.get_mut(conn.target) {
            if list.len() < max {
                conn.rb.clear();
                conn.idle_since = Instant::now();
                list.push(conn);
            }
        }
    }

    /// Drops connections idle for longer than the idle timeout.
    pub fn sweep(&self) {
        let max_idle = self.spec.config.pool.idle_timeout;
        for list in self.idle.borrow_mut().iter_mut() {
            list.retain(|c| c.idle_since.elapsed() < max_idle);
        }
    }

    pub fn idle_count(&self) -> usize {
        self.idle.borrow().iter().map(Vec::len).sum()
    }

    /// Opens a new connection to `target` within `timeout`.
    pub async fn connect(
        &self,
        target: usize,
        timeout: Duration,
    ) -> Result<UpstreamConn, ConnectError> {
        let addr = self.spec.config.targets[target].addr;
        let opened = monoio::time::timeout(timeout, async {
            let tcp = TcpStream::connect_addr(addr).await?;
            tcp.set_nodelay(true)?;
            let fd = tcp.as_raw_fd();
            let stream = match (&self.tls, &self.spec.tls) {
                (Some(connector), Some(tls)) => {
                    let name = tls.names[target].clone();
                    let s = connector.connect(name, tcp).await.map_err(|e| {
                        io::Error::new(io::ErrorKind::ConnectionAborted, e.to_string())
                    })?;
                    Stream::Tls(Box::new(s))
                }
                _ => Stream::Plain(tcp),
            };
            Ok::<_, io::Error>((stream, fd))
        })
        .await;
        match opened {
            Err(_) => Err(ConnectError::Timeout),
            Ok(Err(e)) => Err(ConnectError::Io(e)),
            Ok(Ok((stream, fd))) => Ok(UpstreamConn {
                _tracked: Tracked::new(fd),
                stream,
                rb: ReadBuf::with_capacity(UPSTREAM_BUF),
                target,
                reused: false,
                fd,
                idle_since: Instant::now(),
            }),
        }
    }
}

impl UpstreamConn {
    /// A non-blocking peek: false when the peer has closed or sent bytes
    /// nobody asked for (either way the connection is unusable).
    fn looks_alive(&self) -> bool {
        let mut byte = 0u8;
        // SAFETY: `fd` is the open socket owned by `self.stream`; the buffer is
        // one valid byte; MSG_PEEK|MSG_DONTWAIT neither consumes nor blocks.
        let n = unsafe {
            libc::recv(
                self.fd,
                (&mut byte as *mut u8).cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_schedule_is_smooth_and_proportional() {
        let s = smooth_weighted_schedule(&[5, 1, 1]);
        assert_eq!(s.len(), 7);
        assert_eq!(s.iter().filter(|t| **t == 0).count(), 5);
        assert_eq!(s, vec![0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(smooth_weighted_schedule(&[1, 1]), vec![0, 1]);
    }
}
