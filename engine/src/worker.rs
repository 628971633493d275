//! Worker threads: one per core, each with its own monoio runtime.
//!
//! A worker owns everything its requests touch (route table reference,
//! upstream pools, buffers); nothing is shared between workers but the
//! read-only snapshot and the shutdown signal. Each worker accepts on its own
//! `SO_REUSEPORT` socket, so the kernel spreads connections across cores.
//! A worker whose runtime panics is logged and started again by its
//! supervisor thread, on a new thread with new sockets on the same
//! addresses; its connections are shut down (their peers see the close at
//! once), the other workers are untouched.

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

/// Starts worker `spec.id`: a supervisor thread that runs the worker's
/// runtime on a thread of its own, and starts a new one if it panics.
pub fn spawn(spec: WorkerSpec) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("strait-supervisor-{}", spec.id))
        .spawn(move || supervise(spec))
}

/// How one runtime thread ended.
enum Exit {
    /// Drained after shutdown.
    Stopped,
    /// Could not run (driver or socket setup failed).
    Failed(String),
    /// A panic unwound out of the runtime; the listeners come back for the next one.
    Panicked {
        message: String,
        listeners: Vec<StdListener>,
    },
}

/// Restarts the worker after a panic, on a fresh thread with fresh listening
/// sockets. Not on the same thread: the dead runtime's tasks leak with it,
/// and a waker of theirs fired on that thread would schedule them into the
/// new runtime.
fn supervise(mut spec: WorkerSpec) {
    let mut listeners = std::mem::take(&mut spec.listeners);
    let spec = Arc::new(spec);
    let mut ready = Some(spec.ready.clone());
    loop {
        let thread_spec = spec.clone();
        let thread_ready = ready.take();
        let started = std::thread::Builder::new()
            .name(format!("strait-worker-{}", spec.id))
            .spawn(move || run_thread(&thread_spec, listeners, thread_ready));
        let exit = match started.map(std::thread::JoinHandle::join) {
            Ok(Ok(exit)) => exit,
            Ok(Err(_)) => Exit::Failed("the worker thread panicked outside its runtime".into()),
            Err(e) => Exit::Failed(format!("starting the worker thread: {e}")),
        };
        match exit {
            Exit::Stopped => return,
            Exit::Failed(e) => {
                let _ = spec.ready.send(Err(format!("worker {}: {e}", spec.id)));
                tracing::error!(worker = spec.id, "worker stopped: {e}");
                return;
            }
            Exit::Panicked {
                message,
                listeners: back,
            } => {
                tracing::error!(
                    worker = spec.id,
                    "worker panicked: {message}; restarting it"
                );
                spec.restarts.fetch_add(1, Ordering::Relaxed);
                if spec.shutdown.is_set() || back.is_empty() {
                    return;
                }
                match replace_listeners(back) {
                    Ok(fresh) => listeners = fresh,
                    Err(e) => {
                        tracing::error!(worker = spec.id, "worker not restarted: {e}");
                        return;
                    }
                }
            }
        }
    }
}

/// New listening sockets on the same addresses (they join the same
/// `SO_REUSEPORT` groups) for a restarted worker. The old ones are taken out
/// of service, or an accept the dead runtime left armed in io_uring would
/// take connections nobody serves. Connections waiting in the old sockets'
/// backlogs are reset.
fn replace_listeners(old: Vec<StdListener>) -> std::io::Result<Vec<StdListener>> {
    let mut fresh = Vec::with_capacity(old.len());
    for l in &old {
        fresh.push(crate::server::bind_reuseport(l.local_addr()?)?);
    }
    for l in &old {
        stop_listening(l);
    }
    Ok(fresh)
}

/// Takes a listening socket out of service at once: shutting it down makes
/// the kernel stop accepting on it (it leaves its `SO_REUSEPORT` group) and
/// completes every accept waiting on it, including one armed in io_uring.
fn stop_listening(l: &StdListener) {
    let _ = socket2::SockRef::from(l).shutdown(std::net::Shutdown::Both);
}

fn run_thread(spec: &WorkerSpec, listeners: Vec<StdListener>, ready: Ready) -> Exit {
    if let Some(cpu) = spec.cpu {
        if let Err(e) = pin_to_cpu(cpu) {
            tracing::warn!(worker = spec.id, cpu, "could not pin worker: {e}");
        }
    }
    let listeners = std::cell::RefCell::new(listeners);
    match std::panic::catch_unwind(AssertUnwindSafe(|| run_runtime(spec, &listeners, ready))) {
        Ok(Ok(())) => Exit::Stopped,
        Ok(Err(e)) => Exit::Failed(e.to_string()),
        Err(panic) => {
            // Their tasks leaked with the runtime: tell the peers now.
            let closed = sockets::shutdown_all();
            Exit::Panicked {
                message: format!(
                    "{} ({closed} connections shut down)",
                    proxy::panic_message(&*panic)
                ),
                listeners: listeners.into_inner(),
            }
        }
    }
}

/// The sockets a worker thread has open (client and upstream connections),
/// tracked so that they can be shut down when the runtime owning them dies.
///
/// One bit per fd in a thread-local bitset: registering and forgetting a
/// socket is a bit flip, once per connection, with no lock and no hashing.
pub mod sockets {
    use std::cell::RefCell;
    use std::os::fd::RawFd;

    thread_local! {
        static OPEN: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
    }

    /// Registration of one open socket; forgets it on drop. Drop it before
    /// the socket is closed (declare it first in a struct, last in a scope).
    pub struct Tracked(RawFd);

    impl Tracked {
        pub fn new(fd: RawFd) -> Tracked {
            if let Ok(i) = usize::try_from(fd) {
                OPEN.with_borrow_mut(|bits| {
                    if bits.len() <= i / 64 {
                        bits.resize(i / 64 + 1, 0);
                    }
                    bits[i / 64] |= 1 << (i % 64);
                });
            }
            Tracked(fd)
        }
    }

    impl Drop for Tracked {
        fn drop(&mut self) {
            if let Ok(i) = usize::try_from(self.0) {
                OPEN.with_borrow_mut(|bits| {
                    if let Some(word) = bits.get_mut(i / 64) {
                        *word &= !(1 << (i % 64));
                    }
                });
            }
        }
    }

    /// Shuts down (without closing: their owners leaked and still hold the
    /// fds) every socket registered on this thread; returns how many.
    pub fn shutdown_all() -> usize {
        let bits = OPEN.with_borrow_mut(std::mem::take);
        let mut n = 0;
        for (w, word) in bits.iter().enumerate() {
            for b in 0..64 {
                if word & (1 << b) != 0 {
                    // SAFETY: shutdown(2) on an fd number has no memory effects;
                    // the fd is still open (its owner leaked with the runtime).
                    unsafe { libc::shutdown((w * 64 + b) as RawFd, libc::SHUT_RDWR) };
                    n += 1;
                }
            }
        }
        n
    }
}

type Ready = Option<Sender<Result<usize, String>>>;

/// Submission queue size of a worker's io_uring.
const URING_ENTRIES: u32 = 1024;

/// Builds the worker's runtime and runs it until shutdown. io_uring is set up
/// with cooperative task running: completions are handled when the worker
/// next enters the kernel (which it does on every loop turn) instead of
/// interrupting it, which on a busy core costs an interrupt per completion.
fn run_runtime(
    spec: &WorkerSpec,
    listeners: &std::cell::RefCell<Vec<StdListener>>,
    ready: Ready,
) -> std::io::Result<()> {
    match spec.driver {
        Driver::IoUring => {
            let mut tuned = io_uring::IoUring::builder();
            tuned
                .setup_coop_taskrun()
                .setup_taskrun_flag()
                .setup_single_issuer();
            let runtime = RuntimeBuilder::<IoUringDriver>::new()
                .with_entries(URING_ENTRIES)
                .uring_builder(tuned)
                .enable_timer()
                .build();
            let mut runtime = match runtime {
                Ok(r) => r,
                // Kernels before 6.0 lack some of these flags.
                Err(e) => {
                    tracing::warn!(
                        worker = spec.id,
                        "io_uring without cooperative task running: {e}"
                    );
                    RuntimeBuilder::<IoUringDriver>::new()
                        .with_entries(URING_ENTRIES)
                        .enable_timer()
                        .build()?
                }
            };
            runtime.block_on(worker_main(spec, listeners, ready))
        }
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
    // The kernel refuses new connections from here on, while in-flight
    // requests finish. Dropping the accept loops is not enough: an accept
    // already submitted to io_uring keeps the socket listening.
    for l in listeners.borrow_mut().drain(..) {
        stop_listening(&l);
    }
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
