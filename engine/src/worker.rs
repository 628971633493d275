//! Worker threads: one per core, each with its own monoio runtime.
//!
//! A worker owns everything its requests touch (route table reference,
//! upstream pools, buffers); nothing is shared between workers but the
//! read-only snapshot and the shutdown signal. Each worker accepts on its own
//! `SO_REUSEPORT` socket, so the kernel spreads connections across cores.
//! A worker whose runtime panics is logged and started again on the same
//! sockets; its in-flight requests are lost, the other workers are untouched.

use std::future::Future;
use std::net::TcpListener as StdListener;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use monoio::{IoUringDriver, LegacyDriver, RuntimeBuilder};

use crate::proxy::{self, Core};
use crate::snapshot::Snapshot;

/// The event-loop driver a worker runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    IoUring,
    Epoll,
}

impl Driver {
    pub fn name(self) -> &'static str {
        match self {
            Driver::IoUring => "io_uring",
            Driver::Epoll => "epoll",
        }
    }
}

/// A cross-thread, one-way signal: set once, wakes every waiter.
#[derive(Default)]
pub struct Shutdown {
    set: AtomicBool,
    wakers: Mutex<Vec<Waker>>,
}

impl Shutdown {
    pub fn trigger(&self) {
        self.set.store(true, Ordering::SeqCst);
        let wakers = match self.wakers.lock() {
            Ok(mut w) => std::mem::take(&mut *w),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        for w in wakers {
            w.wake();
        }
    }

    pub fn is_set(&self) -> bool {
        self.set.load(Ordering::SeqCst)
    }

    /// Resolves once `trigger` has been called. Polled rarely (once per
    /// worker start), so the mutex is off every request path.
    pub fn wait(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx: &mut Context<'_>| {
            if self.is_set() {
                return Poll::Ready(());
            }
            if let Ok(mut w) = self.wakers.lock() {
                w.push(cx.waker().clone());
            }
            if self.is_set() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }
}

/// What the control plane hands a worker thread.
pub struct WorkerSpec {
    pub id: usize,
    pub snapshot: Arc<Snapshot>,
    /// One socket per configured listener, this worker's own.
    pub listeners: Vec<StdListener>,
    pub cpu: Option<usize>,
    pub driver: Driver,
    pub shutdown: Arc<Shutdown>,
    pub restarts: Arc<AtomicUsize>,
    /// Told once, when the worker accepts (or failed to start).
    pub ready: Sender<Result<usize, String>>,
}

pub fn spawn(spec: WorkerSpec) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("strait-worker-{}", spec.id))
        .spawn(move || run_thread(spec))
}

fn run_thread(mut spec: WorkerSpec) {
    if let Some(cpu) = spec.cpu {
        if let Err(e) = pin_to_cpu(cpu) {
            tracing::warn!(worker = spec.id, cpu, "could not pin worker: {e}");
        }
    }
    let listeners = std::cell::RefCell::new(std::mem::take(&mut spec.listeners));
    let mut first = true;
    loop {
        let ready = if first {
            Some(spec.ready.clone())
        } else {
            None
        };
        first = false;
        let run =
            std::panic::catch_unwind(AssertUnwindSafe(|| run_runtime(&spec, &listeners, ready)));
        match run {
            Ok(Ok(())) => break,
            Ok(Err(e)) => {
                let _ = spec.ready.send(Err(format!("worker {}: {e}", spec.id)));
                tracing::error!(worker = spec.id, "worker stopped: {e}");
                break;
            }
            Err(panic) => {
                tracing::error!(
                    worker = spec.id,
                    "worker panicked: {}; restarting it",
                    proxy::panic_message(&*panic)
                );
                spec.restarts.fetch_add(1, Ordering::Relaxed);
                if spec.shutdown.is_set() || listeners.borrow().is_empty() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

type Ready = Option<Sender<Result<usize, String>>>;

fn run_runtime(
    spec: &WorkerSpec,
    listeners: &std::cell::RefCell<Vec<StdListener>>,
    ready: Ready,
) -> std::io::Result<()> {
    match spec.driver {
        Driver::IoUring => RuntimeBuilder::<IoUringDriver>::new()
            .with_entries(1024)
            .enable_timer()
            .build()?
            .block_on(worker_main(spec, listeners, ready)),
        Driver::Epoll => RuntimeBuilder::<LegacyDriver>::new()
            .enable_timer()
            .build()?
            .block_on(worker_main(spec, listeners, ready)),
    }
}

async fn worker_main(
    spec: &WorkerSpec,
    listeners: &std::cell::RefCell<Vec<StdListener>>,
    ready: Ready,
) -> std::io::Result<()> {
    let core = Rc::new(Core::new(spec.id, spec.snapshot.clone()));
    let mut accepts: Vec<Pin<Box<dyn Future<Output = ()>>>> = Vec::new();
    for (index, std_listener) in listeners.borrow().iter().enumerate() {
        let listener = monoio::net::TcpListener::from_std(std_listener.try_clone()?)?;
        accepts.push(Box::pin(accept_loop(listener, core.clone(), index)));
    }
    monoio::spawn(sweep_pools(core.clone()));
    if let Some(ready) = ready {
        let _ = ready.send(Ok(spec.id));
    }
    monoio::select! {
        _ = futures_util::future::join_all(accepts) => {}
        _ = spec.shutdown.wait() => {}
    }
    // The accept loops (and their sockets) are gone; close the originals so
    // the kernel refuses new connections while in-flight requests finish.
    listeners.borrow_mut().clear();
    core.draining.set(true);
    let deadline = monoio::time::Instant::now() + spec.snapshot.config.shutdown_timeout;
    while core.in_flight.get() > 0 && monoio::time::Instant::now() < deadline {
        monoio::time::sleep(Duration::from_millis(10)).await;
    }
    if core.in_flight.get() > 0 {
        tracing::warn!(
            worker = spec.id,
            in_flight = core.in_flight.get(),
            "shutdown deadline reached with requests in flight"
        );
    }
    Ok(())
}

async fn accept_loop(listener: monoio::net::TcpListener, core: Rc<Core>, index: usize) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                monoio::spawn(proxy::serve(stream, peer, core.clone(), index));
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(worker = core.id, "accept failed: {e}");
                monoio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn sweep_pools(core: Rc<Core>) {
    loop {
        monoio::time::sleep(Duration::from_secs(1)).await;
        for pool in &core.pools {
            pool.sweep();
        }
    }
}

/// The CPUs this process may run on, in order.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity fills it for pid 0
    // (this thread) and we only read it with CPU_ISSET within its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|c| libc::CPU_ISSET(*c, &set))
            .collect()
    }
}

fn pin_to_cpu(cpu: usize) -> std::io::Result<()> {
    // SAFETY: as above; sched_setaffinity(0) applies to the calling thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
