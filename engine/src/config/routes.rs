//! Decoding of the `routes` section: matchers, and the proxy or static-answer
//! action of each route.

use std::time::Duration;

use super::load::UPSTREAM_TIMEOUT_KEYS;
use super::model::*;
use super::reader::{
    check_unique, edit_distance, field, index, item_name, join, kind, section, Ctx, Kind, MapView,
    Node,
};

const ROUTE_KEYS: &[&str] = &[
    "name",
    "match",
    "upstream",
    "strip_prefix",
    "rewrite",
    "timeouts",
    "max_body_bytes",
    "respond",
];
const MATCH_KEYS: &[&str] = &["host", "path_prefix", "path", "methods", "headers"];
const RESPOND_KEYS: &[&str] = &["status", "content_type", "body", "headers"];
const DEFAULT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

pub(super) fn routes(
    ctx: &mut Ctx<'_>,
    node: &Node<'_>,
    upstreams: Option<&[String]>,
) -> Vec<RouteConfig> {
    let Some(items) = ctx.seq(node, "routes") else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(items.len());
    let mut names = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = index("routes", i);
        let Some(m) = ctx.map(item, &path, Some(ROUTE_KEYS)) else {
            continue;
        };
        let named = item_name(ctx, &m, &path, Some(format!("route{i}")));
        let route = route(ctx, &m, &path, upstreams);
        let (connect_timeout, read_timeout) = route_timeouts(ctx, &m, &path);
        let max_body_bytes = field(ctx, &m, &path, "max_body_bytes", |c, n, p| {
            c.size(n, p, 0, u64::MAX)
        });
        if let (Some(named), Some((matcher, action))) = (named.as_ref(), route) {
            out.push(RouteConfig {
                name: named.name.clone(),
                matcher,
                action,
                connect_timeout,
                read_timeout,
                max_body_bytes,
            });
        }
        names.extend(named);
    }
    check_unique(ctx, &names, "route");
    out
}

fn route_timeouts(
    ctx: &mut Ctx<'_>,
    m: &MapView<'_, '_>,
    path: &str,
) -> (Option<Duration>, Option<Duration>) {
    let Some(tm) = section(ctx, m, path, "timeouts", UPSTREAM_TIMEOUT_KEYS) else {
        return (None, None);
    };
    let tpath = join(path, "timeouts");
    let dur = |c: &mut Ctx<'_>, n: &Node<'_>, p: &str| c.duration(n, p, false);
    let connect = field(ctx, &tm, &tpath, "connect", dur);
    let read = field(ctx, &tm, &tpath, "read", dur);
    (connect, read)
}

/// The key (of `a`, `b`) written later in the file, with its key node.
fn second_of<'n, 'i>(
    m: &MapView<'n, 'i>,
    a: &'static str,
    b: &'static str,
) -> Option<(&'static str, &'n Node<'i>)> {
    let ka = m.key_node(a)?;
    let kb = m.key_node(b)?;
    if kb.span.start.index() >= ka.span.start.index() {
        Some((b, kb))
    } else {
        Some((a, ka))
    }
}

fn route(
    ctx: &mut Ctx<'_>,
    m: &MapView<'_, '_>,
    path: &str,
    upstreams: Option<&[String]>,
) -> Option<(RouteMatch, RouteAction)> {
    let matcher = match m.get("match") {
        Some(n) => route_match(ctx, n, &join(path, "match")),
        None => Some(RouteMatch::default()),
    };

    let action = match (m.get_raw("upstream"), m.get_raw("respond")) {
        (Some(_), Some(_)) => {
            if let Some((key, k)) = second_of(m, "upstream", "respond") {
                ctx.error(
                    k,
                    &join(path, key),
                    "`upstream` and `respond` cannot both be set: a route either proxies or responds",
                );
            }
            None
        }
        (None, None) => {
            ctx.error_at(
                m.start,
                path,
                "a route needs either `upstream` (to proxy) or `respond` (to answer directly)",
            );
            None
        }
        (Some(up), None) => proxy_action(ctx, m, up, path, upstreams, matcher.as_ref()),
        (None, Some(resp)) => {
            for key in ["strip_prefix", "rewrite", "timeouts"] {
                if let Some(k) = m.key_node(key) {
                    ctx.error(
                        k,
                        &join(path, key),
                        format!("`{key}` only applies to a route with `upstream`"),
                    );
                }
            }
            respond_action(ctx, resp, &join(path, "respond"))
        }
    };
    Some((matcher?, action?))
}

fn proxy_action(
    ctx: &mut Ctx<'_>,
    m: &MapView<'_, '_>,
    up: &Node<'_>,
    path: &str,
    upstreams: Option<&[String]>,
    matcher: Option<&RouteMatch>,
) -> Option<RouteAction> {
    let up_path = join(path, "upstream");
    let upstream = ctx.name(up, &up_path).and_then(|name| {
        // When the `upstreams` section itself is broken, do not pile up errors.
        let names = upstreams?;
        match names.iter().position(|n| *n == name) {
            Some(i) => Some(i),
            None => {
                let mut known: Vec<&str> = Vec::new();
                for n in names {
                    if !n.is_empty() && !known.contains(&n.as_str()) {
                        known.push(n);
                    }
                }
                let hint = known
                    .iter()
                    .map(|k| (edit_distance(&name, k), *k))
                    .min_by_key(|(d, _)| *d)
                    .filter(|(d, _)| *d <= 2)
                    .map(|(_, k)| format!("; did you mean `{k}`?"))
                    .unwrap_or_else(|| {
                        if known.is_empty() {
                            " (no upstreams are defined)".to_string()
                        } else {
                            format!(" (defined upstreams: {})", known.join(", "))
                        }
                    });
                ctx.error(up, &up_path, format!("unknown upstream `{name}`{hint}"));
                None
            }
        }
    });

    let path_match = matcher.map(|mt| &mt.path);
    let strip_prefix = field(ctx, m, path, "strip_prefix", |c, n, p| c.boolean(n, p));
    let strip_ok = m.get("strip_prefix").is_none() || strip_prefix.is_some();
    let strip_prefix = strip_prefix.unwrap_or(false);
    let mut ok = strip_ok;
    if strip_prefix && !matches!(path_match, Some(PathMatch::Prefix(_)) | None) {
        if let Some(n) = m.get("strip_prefix") {
            ctx.error(
                n,
                &join(path, "strip_prefix"),
                "`strip_prefix` needs `match.path_prefix`",
            );
        }
        ok = false;
    }

    let rewrite = match m.get("rewrite") {
        Some(n) => {
            let p = join(path, "rewrite");
            match url_path(ctx, n, &p) {
                Some(r) => {
                    if strip_prefix {
                        ctx.error(n, &p, "`strip_prefix` and `rewrite` cannot both be set");
                        ok = false;
                    } else if matches!(path_match, Some(PathMatch::Any)) {
                        ctx.error(
                            n,
                            &p,
                            "`rewrite` needs `match.path_prefix` or `match.path` (it replaces the matched part)",
                        );
                        ok = false;
                    }
                    Some(r)
                }
                None => {
                    ok = false;
                    None
                }
            }
        }
        None => None,
    };
    if !ok {
        return None;
    }
    Some(RouteAction::Proxy {
        upstream: upstream?,
        strip_prefix,
        rewrite,
    })
}

/// A path that starts with `/`, without spaces, control characters, `?` or `#`.
fn url_path(ctx: &mut Ctx<'_>, node: &Node<'_>, path: &str) -> Option<String> {
    let text = ctx.text(node, path)?;
    if !text.starts_with('/') {
        ctx.error(node, path, format!("`{text}` must start with `/`"));
        return None;
    }
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        ctx.error(node, path, "must not contain spaces or control characters");
        return None;
    }
    if text.contains(['?', '#']) {
        ctx.error(
            node,
            path,
            "must be a path only, without `?` query or `#` fragment",
        );
        return None;
    }
    Some(text.to_string())
}

/// An HTTP token (method or header name).
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn route_match(ctx: &mut Ctx<'_>, node: &Node<'_>, path: &str) -> Option<RouteMatch> {
    let m = ctx.map(node, path, Some(MATCH_KEYS))?;
    let mut ok = true;
    let mut out = RouteMatch::default();

    if let Some(n) = m.get("host") {
        match host_match(ctx, n, &join(path, "host")) {
            Some(h) => out.host = h,
            None => ok = false,
        }
    }

    if let Some((key, k)) = second_of(&m, "path_prefix", "path") {
        ctx.error(
            k,
            &join(path, key),
            "`path_prefix` and `path` cannot both be set",
        );
        ok = false;
    } else if let Some(n) = m.get("path_prefix") {
        match url_path(ctx, n, &join(path, "path_prefix")) {
            Some(p) => out.path = PathMatch::Prefix(p),
            None => ok = false,
        }
    } else if let Some(n) = m.get("path") {
        match url_path(ctx, n, &join(path, "path")) {
            Some(p) => out.path = PathMatch::Exact(p),
            None => ok = false,
        }
    }

    if let Some(n) = m.get("methods") {
        let mpath = join(path, "methods");
        let items: Vec<(&Node<'_>, String)> = match kind(n) {
            Kind::Scalar(..) => vec![(n, mpath.clone())],
            Kind::Seq(items) => {
                if items.is_empty() {
                    ctx.error(
                        n,
                        &mpath,
                        "must not be empty (leave `methods` out to match any method)",
                    );
                    ok = false;
                }
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| (item, index(&mpath, i)))
                    .collect()
            }
            _ => {
                ctx.expected(
                    n,
                    &mpath,
                    "a method or a list of methods, such as [GET, POST]",
                );
                ok = false;
                Vec::new()
            }
        };
        for (item, ipath) in items {
            let Some(text) = ctx.text(item, &ipath) else {
                ok = false;
                continue;
            };
            let method = text.trim().to_ascii_uppercase();
            if !is_token(&method) {
                ctx.error(item, &ipath, format!("`{text}` is not an HTTP method"));
                ok = false;
            } else if !out.methods.contains(&method) {
                out.methods.push(method);
            }
        }
    }

    if let Some(n) = m.get("headers") {
        match header_map(ctx, n, &join(path, "headers"), |_| None) {
            Some(h) => {
                out.headers = h
                    .into_iter()
                    .map(|(name, value)| (name.to_ascii_lowercase(), value))
                    .collect();
            }
            None => ok = false,
        }
    }

    ok.then_some(out)
}

/// `Ok`: `None` for "any host".
fn host_match(ctx: &mut Ctx<'_>, node: &Node<'_>, path: &str) -> Option<Option<HostMatch>> {
    let text = ctx.text(node, path)?.trim().to_ascii_lowercase();
    if text == "*" {
        return Some(None);
    }
    // Strip a port: `[v6]:port` or `name:port`.
    let host = if text.starts_with('[') {
        match text.find(']') {
            Some(i) => text[..=i].to_string(),
            None => text.clone(),
        }
    } else {
        match text.split_once(':') {
            Some((h, _)) => h.to_string(),
            None => text.clone(),
        }
    };
    let (suffix, name) = match host.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, host.as_str()),
    };
    if name.contains('*') {
        ctx.error(
            node,
            path,
            "a wildcard is only allowed as the whole first label, as in `*.example.com`",
        );
        return None;
    }
    let valid = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '[' | ']' | ':'));
    if !valid {
        ctx.error(node, path, format!("`{text}` is not a valid host name"));
        return None;
    }
    Some(Some(if suffix {
        HostMatch::Suffix(format!(".{name}"))
    } else {
        HostMatch::Exact(name.to_string())
    }))
}

/// A mapping of header names (HTTP tokens) to values, in order.
fn header_map(
    ctx: &mut Ctx<'_>,
    node: &Node<'_>,
    path: &str,
    forbidden: fn(&str) -> Option<&'static str>,
) -> Option<Vec<(String, String)>> {
    let m = ctx.map(node, path, None)?;
    let mut ok = true;
    let mut out = Vec::new();
    for (name, key, value) in m.entries() {
        let p = join(path, name);
        if !is_token(name) {
            ctx.error(key, &p, format!("`{name}` is not a valid header name"));
            ok = false;
            continue;
        }
        if let Some(why) = forbidden(&name.to_ascii_lowercase()) {
            ctx.error(key, &p, format!("`{name}` cannot be set here: {why}"));
            ok = false;
            continue;
        }
        if out
            .iter()
            .any(|(n, _): &(String, String)| n.eq_ignore_ascii_case(name))
        {
            ctx.error(key, &p, format!("duplicate header `{name}`"));
            ok = false;
            continue;
        }
        match ctx.header_value(value, &p) {
            Some(v) => out.push((name.to_string(), v)),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn respond_action(ctx: &mut Ctx<'_>, node: &Node<'_>, path: &str) -> Option<RouteAction> {
    let m = ctx.map(node, path, Some(RESPOND_KEYS))?;
    let mut ok = true;

    let status = match m.get("status") {
        Some(n) => {
            let p = join(path, "status");
            match ctx.uint(n, &p, u64::MAX) {
                Some(s @ 100..=599) => u16::try_from(s).ok(),
                Some(s) => {
                    ctx.error(
                        n,
                        &p,
                        format!("{s} is not an HTTP status; expected 100 to 599"),
                    );
                    None
                }
                None => None,
            }
        }
        None => Some(200),
    };
    ok &= status.is_some();

    let content_type = match m.get("content_type") {
        Some(n) => {
            let v = ctx.header_value(n, &join(path, "content_type"));
            ok &= v.is_some();
            v.unwrap_or_default()
        }
        None => DEFAULT_CONTENT_TYPE.to_string(),
    };

    let body = match m.get("body") {
        Some(n) => {
            let p = join(path, "body");
            let v = ctx.text(n, &p).map(str::to_string);
            if let (Some(body), Some(s)) = (&v, status) {
                if !body.is_empty() && (s < 200 || s == 204 || s == 304) {
                    ctx.error(n, &p, format!("a {s} response cannot have a body"));
                    ok = false;
                }
            }
            ok &= v.is_some();
            v.unwrap_or_default()
        }
        None => String::new(),
    };

    let headers = match m.get("headers") {
        Some(n) => {
            let hpath = join(path, "headers");
            match header_map(ctx, n, &hpath, forbidden_response_header) {
                Some(h) => h,
                None => {
                    ok = false;
                    Vec::new()
                }
            }
        }
        None => Vec::new(),
    };

    if !ok {
        return None;
    }
    Some(RouteAction::Respond {
        status: status?,
        content_type,
        body,
        headers,
    })
}

/// Response headers a static answer must not set, and why.
fn forbidden_response_header(lower: &str) -> Option<&'static str> {
    match lower {
        "content-type" => Some("set it with `content_type`"),
        "content-length" | "transfer-encoding" | "connection" => Some("it is set by the server"),
        _ => None,
    }
}
