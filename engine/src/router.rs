//! The route table, compiled once per config snapshot.
//!
//! Matching walks the routes in config order and stops at the first whose
//! host, path, method and header conditions all hold. Everything a match
//! compares is pre-lowered and stored as bytes when the snapshot is built, so a
//! lookup allocates nothing and parses nothing.

use crate::config::{Config, HostMatch, PathMatch, RouteAction, RouteConfig};
use crate::http::Head;

/// A header name (lowercase) and the value it must have.
type HeaderMatch = (Box<[u8]>, Box<[u8]>);

#[derive(Debug)]
pub struct Route {
    pub name: String,
    host: Option<HostMatch>,
    path: PathMatch,
    methods: Vec<Box<[u8]>>,
    headers: Vec<HeaderMatch>,
    pub action: RouteAction,
    pub connect_timeout: Option<std::time::Duration>,
    pub read_timeout: Option<std::time::Duration>,
    pub max_body_bytes: Option<u64>,
}

#[derive(Debug, Default)]
pub struct Router {
    routes: Vec<Route>,
}

impl Router {
    pub fn new(config: &Config) -> Router {
        Router {
            routes: config.routes.iter().map(compile).collect(),
        }
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The first route matching a request. `host` is the request's host
    /// without port; `path` excludes the query string.
    pub fn find(&self, head: &Head, host: &[u8], path: &[u8]) -> Option<&Route> {
        self.routes.iter().find(|r| r.matches(head, host, path))
    }
}

fn compile(r: &RouteConfig) -> Route {
    Route {
        name: r.name.clone(),
        host: r.matcher.host.clone(),
        path: r.matcher.path.clone(),
        methods: r
            .matcher
            .methods
            .iter()
            .map(|m| m.as_bytes().to_vec().into_boxed_slice())
            .collect(),
        headers: r
            .matcher
            .headers
            .iter()
            .map(|(n, v)| (n.as_bytes().into(), v.as_bytes().into()))
            .collect(),
        action: r.action.clone(),
        connect_timeout: r.connect_timeout,
        read_timeout: r.read_timeout,
        max_body_bytes: r.max_body_bytes,
    }
}

impl Route {
    fn matches(&self, head: &Head, host: &[u8], path: &[u8]) -> bool {
        let host_ok = match &self.host {
            None => true,
            Some(HostMatch::Exact(h)) => host.eq_ignore_ascii_case(h.as_bytes()),
            Some(HostMatch::Suffix(s)) => {
                host.len() > s.len()
                    && host[host.len() - s.len()..].eq_ignore_ascii_case(s.as_bytes())
            }
        };
        let path_ok = match &self.path {
            PathMatch::Any => true,
            PathMatch::Prefix(p) => path.starts_with(p.as_bytes()),
            PathMatch::Exact(p) => path == p.as_bytes(),
        };
        host_ok
            && path_ok
            && (self.methods.is_empty() || self.methods.iter().any(|m| **m == *head.method()))
            && self.headers.iter().all(|(name, value)| {
                head.fields
                    .iter()
                    .any(|f| head.name(f).eq_ignore_ascii_case(name) && head.value(f) == &**value)
            })
    }

    /// Appends the path (and query) to send upstream for `path` + `query`.
    pub fn write_upstream_target(&self, out: &mut Vec<u8>, path: &[u8], query: &[u8]) {
        match &self.action {
            RouteAction::Proxy {
                strip_prefix,
                rewrite,
                ..
            } => {
                let rest = match &self.path {
                    PathMatch::Prefix(p) if *strip_prefix || rewrite.is_some() => {
                        Some(&path[p.len()..])
                    }
                    PathMatch::Exact(_) if rewrite.is_some() => Some(&b""[..]),
                    _ => None,
                };
                match (rest, rewrite) {
                    (Some(rest), Some(new)) => {
                        out.extend_from_slice(new.as_bytes());
                        if new.ends_with('/') && rest.starts_with(b"/") {
                            out.extend_from_slice(&rest[1..]);
                        } else {
                            out.extend_from_slice(rest);
                        }
                    }
                    (Some(rest), None) => {
                        if !rest.starts_with(b"/") {
                            out.push(b'/');
                        }
                        out.extend_from_slice(rest);
                    }
                    (None, _) => out.extend_from_slice(path),
                }
            }
            RouteAction::Respond { .. } => out.extend_from_slice(path),
        }
        out.extend_from_slice(query);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{RouteConfig, RouteMatch};

    fn route(path: PathMatch, strip_prefix: bool, rewrite: Option<&str>) -> Route {
        compile(&RouteConfig {
            name: "r".into(),
            matcher: RouteMatch {
                path,
                ..Default::default()
            },
            action: RouteAction::Proxy {
                upstream: 0,
                strip_prefix,
                rewrite: rewrite.map(String::from),
            },
            connect_timeout: None,
            read_timeout: None,
            max_body_bytes: None,
        })
    }

    fn target(r: &Route, path: &str, query: &str) -> String {
        let mut out = Vec::new();
        r.write_upstream_target(&mut out, path.as_bytes(), query.as_bytes());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn strip_and_rewrite_paths() {
        let strip = route(PathMatch::Prefix("/api/".into()), true, None);
        assert_eq!(target(&strip, "/api/users", "?a=1"), "/users?a=1");
        assert_eq!(target(&strip, "/api/", ""), "/");
        let strip2 = route(PathMatch::Prefix("/api".into()), true, None);
        assert_eq!(target(&strip2, "/api/users", ""), "/users");
        let rw = route(PathMatch::Prefix("/old/".into()), false, Some("/new/"));
        assert_eq!(target(&rw, "/old/x/y", "?q"), "/new/x/y?q");
        let exact = route(PathMatch::Exact("/ping".into()), false, Some("/health"));
        assert_eq!(target(&exact, "/ping", ""), "/health");
        let plain = route(PathMatch::Prefix("/".into()), false, None);
        assert_eq!(target(&plain, "/a/b", "?z"), "/a/b?z");
    }
}
