//! TLS to upstreams: strait verifies the upstream's certificate against the
//! configured CA, sends SNI, and refuses (502) an upstream it cannot trust.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::thread;

use common::*;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

struct TlsUpstream {
    addr: SocketAddr,
    ca_pem: String,
    server_names: Arc<Mutex<Vec<String>>>,
}

/// A TLS upstream with a certificate for `localhost` signed by a fresh CA.
/// Answers every request with `secure <path>` and keeps connections alive.
fn tls_upstream() -> TlsUpstream {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    let chain = vec![CertificateDer::from(leaf.der().to_vec())];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server_names = Arc::new(Mutex::new(Vec::new()));
    let names = server_names.clone();
    thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let config = config.clone();
            let names = names.clone();
            thread::spawn(move || {
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while let Some(end) = find(&buf, b"\r\n\r\n") {
                        if let Some(sni) = tls.conn.server_name() {
                            names.lock().unwrap().push(sni.to_string());
                        }
                        let head = String::from_utf8_lossy(&buf[..end]).to_string();
                        let path = head.split(' ').nth(1).unwrap_or("").to_string();
                        buf.drain(..end + 4);
                        let body = format!("secure {path}");
                        let resp = format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if tls.write_all(resp.as_bytes()).is_err() {
                            return;
                        }
                    }
                    match read_retrying(&mut tls, &mut chunk) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    TlsUpstream {
        addr,
        ca_pem: ca.pem(),
        server_names,
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn tls_config(port: u16, ca_file: &std::path::Path) -> String {
    format!(
        r#"workers: 1
admin: {{ listen: "127.0.0.1:0" }}
listeners:
  - listen: "127.0.0.1:0"
upstreams:
  - name: secure
    targets: ["localhost:{port}"]
    tls: {{ roots: none, ca_file: "{}" }}
    timeouts: {{ connect: 2s, read: 2s }}
routes:
  - name: all
    upstream: secure
"#,
        ca_file.display()
    )
}

both_drivers! {
    fn requests_reach_a_tls_upstream_with_sni_and_verified_certificate(rt) {
        let up = tls_upstream();
        let ca = write_temp(&up.ca_pem, "pem");
        let strait = Strait::start(&tls_config(up.addr.port(), &ca), rt);
        let mut c = strait.client();
        for i in 0..3 {
            let r = c.request(&format!("GET /hello/{i} HTTP/1.1\r\nHost: example\r\n\r\n"));
            assert_eq!(r.status, 200);
            assert_eq!(r.body, format!("secure /hello/{i}").as_bytes());
        }
        let names = up.server_names.lock().unwrap().clone();
        assert!(!names.is_empty());
        assert!(names.iter().all(|n| n == "localhost"), "SNI seen: {names:?}");
        // Three requests on one client connection, one upstream TLS connection:
        // SNI is recorded per request, so all three came over the pooled session.
        assert_eq!(names.len(), 3);
    }

    fn an_upstream_with_an_untrusted_certificate_gets_502(rt) {
        let up = tls_upstream();
        let other = tls_upstream();
        let wrong_ca = write_temp(&other.ca_pem, "pem");
        let strait = Strait::start(&tls_config(up.addr.port(), &wrong_ca), rt);
        let mut c = strait.client();
        let r = c.request("GET / HTTP/1.1\r\nHost: example\r\n\r\n");
        assert_eq!(r.status, 502);
        assert!(String::from_utf8_lossy(&r.body).contains("\"error\""));
        // The client connection survives the upstream failure.
        let r = c.request("GET / HTTP/1.1\r\nHost: example\r\n\r\n");
        assert_eq!(r.status, 502);
    }
}
