//! TLS client settings for upstreams, built once per config snapshot.
//!
//! Loading root stores and CA files is blocking file I/O; it happens on the
//! control plane when a snapshot is built, never on a worker.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};

use crate::config::{TlsConfig, TlsRoots};

/// Everything a worker needs to open TLS connections to one upstream.
#[derive(Clone)]
pub struct TlsClient {
    pub config: Arc<ClientConfig>,
    /// Server name per target (SNI override or the target's host).
    pub names: Vec<ServerName<'static>>,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient")
            .field("names", &self.names)
            .finish()
    }
}

pub fn build(tls: &TlsConfig, target_hosts: &[&str]) -> Result<TlsClient, String> {
    let mut roots = RootCertStore::empty();
    match tls.roots {
        TlsRoots::Webpki => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        TlsRoots::System => {
            let found = rustls_native_certs::load_native_certs();
            if found.certs.is_empty() {
                return Err(format!(
                    "no system root certificates found: {:?}",
                    found.errors
                ));
            }
            let (_added, _ignored) = roots.add_parsable_certificates(found.certs);
        }
        TlsRoots::None => {}
    }
    if let Some(path) = &tls.ca_file {
        let pem =
            std::fs::read(path).map_err(|e| format!("reading ca_file {}: {e}", path.display()))?;
        let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut pem.as_slice())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("parsing ca_file {}: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!("ca_file {} holds no certificate", path.display()));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
        }
    }
    if roots.is_empty() {
        return Err("no trusted roots: set roots or ca_file".into());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let names = target_hosts
        .iter()
        .map(|host| {
            let name = tls.sni.as_deref().unwrap_or(host);
            let name = name.trim_start_matches('[').trim_end_matches(']');
            ServerName::try_from(name.to_string())
                .map_err(|e| format!("invalid TLS server name {name:?}: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(TlsClient {
        config: Arc::new(config),
        names,
    })
}
