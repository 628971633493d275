//! A config snapshot: the validated config plus everything compiled from it
//! (route table, upstream specs with their TLS settings). Built once on the
//! control plane, shared read-only by every worker through an `Arc`.

use std::sync::Arc;

use crate::config::Config;
use crate::router::Router;
use crate::upstream::UpstreamSpec;

#[derive(Debug)]
pub struct Snapshot {
    pub config: Config,
    pub router: Router,
    pub upstreams: Vec<Arc<UpstreamSpec>>,
}

impl Snapshot {
    pub fn build(config: Config) -> Result<Snapshot, String> {
        let upstreams = config
            .upstreams
            .iter()
            .map(|u| {
                UpstreamSpec::build(u)
                    .map(Arc::new)
                    .map_err(|e| format!("upstream {:?}: {e}", u.name))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Snapshot {
            router: Router::new(&config),
            upstreams,
            config,
        })
    }
}
