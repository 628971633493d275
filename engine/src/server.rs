//! Start-up and shutdown: the control plane's side of running strait.
//!
//! It applies command-line overrides to a validated config, builds the
//! snapshot, chooses the event-loop driver, binds every socket (one
//! `SO_REUSEPORT` socket per listener per worker, so bind errors surface
//! before anything runs), starts the workers and the admin listener, prints
//! the addresses, and waits for SIGTERM/SIGINT to drain and stop.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::atomic::AtomicUsize;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGINT, SIGTERM};
use socket2::{Domain, Protocol, Socket, Type};

use crate::admin::{self, AdminState};
use crate::config::{Config, CpuAffinity, RuntimeKind, Workers};
use crate::snapshot::Snapshot;
use crate::worker::{self, Driver, Shutdown, WorkerSpec};

/// Command-line settings that take precedence over the config.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub admin: Option<SocketAddr>,
    pub workers: Option<usize>,
    pub runtime: Option<RuntimeKind>,
}

pub fn apply(config: &mut Config, o: &Overrides) {
    if let (Some(addr), Some(first)) = (o.listen, config.listeners.first_mut()) {
        first.addr = addr;
    }
    if let Some(addr) = o.admin {
        config.admin = Some(addr);
    }
    if let Some(n) = o.workers {
        config.workers = Workers::Count(n);
    }
    if let Some(r) = o.runtime {
        config.runtime = r;
    }
}

pub fn choose_driver(kind: RuntimeKind) -> Result<Driver, String> {
    let uring = monoio::utils::detect_uring();
    match kind {
        RuntimeKind::Auto if uring => Ok(Driver::IoUring),
        RuntimeKind::Auto => Ok(Driver::Epoll),
        RuntimeKind::IoUring if uring => Ok(Driver::IoUring),
        RuntimeKind::IoUring => {
            Err("runtime: io_uring was requested but this kernel does not support it".into())
        }
        RuntimeKind::Epoll => Ok(Driver::Epoll),
    }
}

/// Backlog of every listening socket.
const LISTEN_BACKLOG: i32 = 4096;

pub(crate) fn bind_reuseport(addr: SocketAddr) -> std::io::Result<StdListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Runs strait until SIGTERM/SIGINT. Returns after every worker has drained.
pub fn run(config: Config) -> Result<(), String> {
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])
        .map_err(|e| format!("installing signal handlers: {e}"))?;
    let started = Instant::now();
    let driver = choose_driver(config.runtime)?;
    let cpus = worker::allowed_cpus();
    let workers = match config.workers {
        Workers::Auto => cpus.len().max(1),
        Workers::Count(n) => n.max(1),
    };
    let pins: Vec<Option<usize>> = (0..workers)
        .map(|i| match &config.cpu_affinity {
            CpuAffinity::Off => None,
            CpuAffinity::Auto => cpus.get(i % cpus.len().max(1)).copied(),
            CpuAffinity::List(list) => list.get(i % list.len().max(1)).copied(),
        })
        .collect();
    tracing::info!(
        driver = driver.name(),
        workers,
        config = %config.source,
        version = %config.version,
        "starting strait {}",
        env!("CARGO_PKG_VERSION")
    );

    let mut per_worker: Vec<Vec<StdListener>> = (0..workers).map(|_| Vec::new()).collect();
    let mut bound = Vec::new();
    for l in &config.listeners {
        let first = bind_reuseport(l.addr)
            .map_err(|e| format!("listener {:?}: binding {}: {e}", l.name, l.addr))?;
        let actual = first.local_addr().map_err(|e| e.to_string())?;
        per_worker[0].push(first);
        for sockets in per_worker.iter_mut().skip(1) {
            sockets.push(
                bind_reuseport(actual)
                    .map_err(|e| format!("listener {:?}: binding {actual}: {e}", l.name))?,
            );
        }
        bound.push(actual);
    }
    let admin_listener = match config.admin {
        Some(addr) => {
            Some(StdListener::bind(addr).map_err(|e| format!("admin: binding {addr}: {e}"))?)
        }
        None => None,
    };

    let snapshot = Arc::new(Snapshot::build(config)?);
    let shutdown = Arc::new(Shutdown::default());
    let restarts = Arc::new(AtomicUsize::new(0));
    let (ready_tx, ready_rx) = mpsc::channel();
    let mut handles = Vec::new();
    for (id, listeners) in per_worker.into_iter().enumerate() {
        let spec = WorkerSpec {
            id,
            snapshot: snapshot.clone(),
            listeners,
            cpu: pins[id],
            driver,
            shutdown: shutdown.clone(),
            restarts: restarts.clone(),
            ready: ready_tx.clone(),
        };
        handles.push(worker::spawn(spec).map_err(|e| format!("starting worker {id}: {e}"))?);
    }
    drop(ready_tx);
    for _ in 0..workers {
        match ready_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                shutdown.trigger();
                return Err(e);
            }
            Err(_) => {
                shutdown.trigger();
                return Err("workers did not start in time".into());
            }
        }
    }

    for addr in &bound {
        println!("strait: proxy listening on http://{addr}");
    }
    if let Some(listener) = admin_listener {
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let state = Arc::new(AdminState {
            started,
            workers,
            driver: driver.name(),
            config_version: snapshot.config.version.clone(),
            config_source: snapshot.config.source.clone(),
            listeners: bound.iter().map(|a| a.to_string()).collect(),
            worker_restarts: restarts.clone(),
        });
        admin::spawn(listener, state).map_err(|e| format!("starting admin listener: {e}"))?;
        println!("strait: admin listening on http://{addr}");
    }
    println!("strait: ready");
    tracing::info!(driver = driver.name(), workers, "ready");

    if let Some(signal) = signals.forever().next() {
        tracing::info!(
            signal,
            timeout_s = snapshot.config.shutdown_timeout.as_secs_f64(),
            "shutting down: no new connections, draining in-flight requests"
        );
    }
    shutdown.trigger();
    for h in handles {
        let _ = h.join();
    }
    tracing::info!("stopped");
    Ok(())
}
