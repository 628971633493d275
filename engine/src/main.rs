//! The `strait` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use strait::config::{self, RuntimeKind};
use strait::server::{self, Overrides};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// strait: a thread-per-core HTTP/1.1 reverse proxy and AI gateway.
///
/// With no command, runs on the embedded default config (like `strait run`).
#[derive(Parser)]
#[command(name = "strait", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway. Without -c, runs on the embedded default config
    /// (listens on 127.0.0.1:8080, admin on 127.0.0.1:9901, answers offline).
    Run(RunArgs),
    /// Check a config file; report every error as FILE:LINE:COLUMN: FIELD: MESSAGE.
    Validate {
        /// The YAML config file to check.
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Print the embedded default config (a commented example to start from).
    DefaultConfig,
}

#[derive(clap::Args, Default)]
struct RunArgs {
    /// YAML config file; the embedded default when absent.
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// Address of the first listener, overriding the config (port 0: any free port).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Address of the admin listener, overriding the config.
    #[arg(long)]
    admin: Option<SocketAddr>,
    /// Number of worker threads, overriding the config.
    #[arg(long)]
    workers: Option<usize>,
    /// Event-loop driver, overriding the config.
    #[arg(long, value_enum)]
    runtime: Option<RuntimeArg>,
}

#[derive(Clone, Copy, ValueEnum)]
enum RuntimeArg {
    Auto,
    #[value(name = "io_uring")]
    IoUring,
    Epoll,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STRAIT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run(RunArgs::default())) {
        Command::Run(args) => run(args),
        Command::Validate { config } => match config::load_file(&config) {
            Ok(c) => {
                println!(
                    "{}: ok ({} listeners, {} upstreams, {} routes; version {})",
                    config.display(),
                    c.listeners.len(),
                    c.upstreams.len(),
                    c.routes.len(),
                    c.version
                );
                ExitCode::SUCCESS
            }
            Err(errors) => {
                eprintln!("{errors}");
                ExitCode::FAILURE
            }
        },
        Command::DefaultConfig => {
            print!("{}", config::EMBEDDED_DEFAULT_YAML);
            ExitCode::SUCCESS
        }
    }
}

fn run(args: RunArgs) -> ExitCode {
    let loaded = match &args.config {
        Some(path) => config::load_file(path),
        None => config::embedded_default(),
    };
    let mut config = match loaded {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::FAILURE;
        }
    };
    let overrides = Overrides {
        listen: args.listen,
        admin: args.admin,
        workers: args.workers,
        runtime: args.runtime.map(|r| match r {
            RuntimeArg::Auto => RuntimeKind::Auto,
            RuntimeArg::IoUring => RuntimeKind::IoUring,
            RuntimeArg::Epoll => RuntimeKind::Epoll,
        }),
    };
    server::apply(&mut config, &overrides);
    match server::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("strait: {e}");
            ExitCode::FAILURE
        }
    }
}
