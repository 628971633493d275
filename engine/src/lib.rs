//! strait: a thread-per-core HTTP/1.1 reverse proxy and AI gateway.
//!
//! Layout: `config` (YAML to a validated model), `snapshot` (what is compiled
//! from a config once), `router`, `http` (wire code), `upstream` (pools, TLS),
//! `proxy` (the per-connection pipeline), `worker` (threads and runtimes),
//! `admin`, and `server` (start-up and shutdown).

pub mod admin;
pub mod config;
pub mod http;
pub mod proxy;
pub mod router;
pub mod server;
pub mod snapshot;
pub mod upstream;
pub mod worker;
