//! Reading a marked YAML tree: typed accessors that record every problem, with
//! its line, column and dotted field path, instead of stopping at the first.
//!
//! The tree is loaded with scalar resolution turned off, so every scalar keeps
//! the exact text and quoting it was written with. This module decides what a
//! scalar means (null, boolean, number, text) according to the field that reads
//! it, which gives precise messages and no YAML 1.1 surprises.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

use saphyr::{AnnotatedMapping, MarkedYaml, ScalarStyle, YamlData};
use saphyr_parser::Marker;

use super::load::ConfigError;

/// A node of the marked YAML tree.
pub(super) type Node<'i> = MarkedYaml<'i>;

/// What a node holds, as this loader sees it.
pub(super) enum Kind<'n, 'i> {
    /// An explicit or implicit null (`~`, `null`, or nothing at all).
    Null,
    /// Any other scalar: its text as written (quotes removed), and whether it
    /// was a plain (unquoted) scalar.
    Scalar(&'n str, bool),
    Seq(&'n [Node<'i>]),
    Map(&'n AnnotatedMapping<'i, Node<'i>>),
    /// Something this loader does not accept (a custom tag, a bad alias).
    Unsupported(&'static str),
}

pub(super) fn kind<'n, 'i>(node: &'n Node<'i>) -> Kind<'n, 'i> {
    match &node.data {
        YamlData::Representation(text, style, tag) => {
            let forced_str = match tag {
                Some(tag) if tag.is_yaml_core_schema() => tag.suffix == "str",
                Some(_) => return Kind::Unsupported("a value with a custom YAML tag"),
                None => false,
            };
            let plain = *style == ScalarStyle::Plain && !forced_str;
            if plain && matches!(text.as_ref(), "" | "~" | "null" | "Null" | "NULL") {
                Kind::Null
            } else {
                Kind::Scalar(text.as_ref(), plain)
            }
        }
        // Scalars are never resolved (early parsing is off); only for completeness.
        YamlData::Value(_) => Kind::Unsupported("an unexpected value"),
        YamlData::Sequence(items) => Kind::Seq(items.as_slice()),
        YamlData::Mapping(map) => Kind::Map(map),
        YamlData::Tagged(..) => Kind::Unsupported("a value with a custom YAML tag"),
        YamlData::Alias(_) | YamlData::BadValue => Kind::Unsupported("an unresolvable value"),
    }
}

pub(super) fn is_null(node: &Node<'_>) -> bool {
    matches!(kind(node), Kind::Null)
}

/// A short description of what a node is, for "expected X, found Y" messages.
fn found(node: &Node<'_>) -> String {
    match kind(node) {
        Kind::Null => "nothing (null)".to_string(),
        Kind::Scalar(text, _) => format!("`{}`", shorten(text)),
        Kind::Seq(_) => "a list".to_string(),
        Kind::Map(_) => "a mapping".to_string(),
        Kind::Unsupported(what) => what.to_string(),
    }
}

fn shorten(text: &str) -> String {
    const MAX: usize = 40;
    if text.chars().count() <= MAX {
        text.to_string()
    } else {
        let cut: String = text.chars().take(MAX).collect();
        format!("{cut}...")
    }
}

/// `parent.key`, or `key` at the root.
pub(super) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// `parent[index]`.
pub(super) fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// A mapping whose keys have been checked: all text, all known (when a list of
/// known keys was given), none repeated.
pub(super) struct MapView<'n, 'i> {
    pub start: Marker,
    entries: Vec<(&'n str, &'n Node<'i>, &'n Node<'i>)>,
}

impl<'n, 'i> MapView<'n, 'i> {
    /// An empty view (for an absent section), positioned at `start`.
    pub fn empty(start: Marker) -> Self {
        MapView {
            start,
            entries: Vec::new(),
        }
    }

    /// The value of `key`, unless it is absent or null.
    pub fn get(&self, key: &str) -> Option<&'n Node<'i>> {
        self.get_raw(key).filter(|v| !is_null(v))
    }

    /// The value of `key`, null included.
    pub fn get_raw(&self, key: &str) -> Option<&'n Node<'i>> {
        self.entries
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|(_, _, v)| *v)
    }

    /// The key node of `key`, for pointing at the key rather than its value.
    pub fn key_node(&self, key: &str) -> Option<&'n Node<'i>> {
        self.entries
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|(_, k, _)| *k)
    }

    /// All entries in document order: key text, key node, value node.
    pub fn entries(&self) -> &[(&'n str, &'n Node<'i>, &'n Node<'i>)] {
        &self.entries
    }
}

/// Collects errors while a configuration is decoded.
pub(super) struct Ctx<'s> {
    pub file: &'s str,
    pub errors: Vec<ConfigError>,
    /// Directory that relative file paths in the config are relative to.
    pub base_dir: Option<&'s Path>,
}

impl<'s> Ctx<'s> {
    pub fn new(file: &'s str) -> Self {
        Ctx {
            file,
            errors: Vec::new(),
            base_dir: None,
        }
    }

    /// Record an error at `at` (1-based line; the column is made 1-based here).
    pub fn error_at(&mut self, at: Marker, path: &str, message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.to_string(),
            line: at.line(),
            column: at.col() + 1,
            field: if path.is_empty() {
                "(root)".to_string()
            } else {
                path.to_string()
            },
            message: message.into(),
        });
    }

    /// Record an error at the start of `node`.
    pub fn error(&mut self, node: &Node<'_>, path: &str, message: impl Into<String>) {
        self.error_at(node.span.start, path, message);
    }

    /// "expected {what}, found ..." at `node`.
    pub fn expected(&mut self, node: &Node<'_>, path: &str, what: &str) {
        let msg = format!("expected {what}, found {}", found(node));
        self.error(node, path, msg);
    }

    /// Check that `node` is a mapping whose keys are all in `known` (any key
    /// is accepted when `known` is `None`).
    pub fn map<'n, 'i>(
        &mut self,
        node: &'n Node<'i>,
        path: &str,
        known: Option<&[&str]>,
    ) -> Option<MapView<'n, 'i>> {
        let Kind::Map(map) = kind(node) else {
            self.expected(node, path, "a mapping");
            return None;
        };
        let mut entries: Vec<(&'n str, &'n Node<'i>, &'n Node<'i>)> = Vec::new();
        for (k, v) in map.iter() {
            let key = match kind(k) {
                Kind::Scalar(text, _) => text,
                _ => {
                    let msg = format!("keys must be text, found {}", found(k));
                    self.error(k, path, msg);
                    continue;
                }
            };
            let field = join(path, key);
            if let Some(known) = known {
                if !known.contains(&key) {
                    let msg = unknown_key_message(key, known);
                    self.error(k, &field, msg);
                    continue;
                }
            }
            if entries.iter().any(|(seen, _, _)| *seen == key) {
                self.error(k, &field, format!("duplicate key `{key}`"));
                continue;
            }
            entries.push((key, k, v));
        }
        Some(MapView {
            start: node.span.start,
            entries,
        })
    }

    /// Check that `node` is a list.
    pub fn seq<'n, 'i>(&mut self, node: &'n Node<'i>, path: &str) -> Option<&'n [Node<'i>]> {
        match kind(node) {
            Kind::Seq(items) => Some(items),
            _ => {
                self.expected(node, path, "a list");
                None
            }
        }
    }

    /// Any non-null scalar, as its text.
    pub fn text<'n>(&mut self, node: &'n Node<'_>, path: &str) -> Option<&'n str> {
        match kind(node) {
            Kind::Scalar(text, _) => Some(text),
            _ => {
                self.expected(node, path, "a text value");
                None
            }
        }
    }

    /// A non-empty text value without control characters.
    pub fn name(&mut self, node: &Node<'_>, path: &str) -> Option<String> {
        let text = self.text(node, path)?;
        if text.trim().is_empty() {
            self.error(node, path, "must not be empty");
            return None;
        }
        if text.chars().any(char::is_control) {
            self.error(node, path, "must not contain control characters");
            return None;
        }
        Some(text.to_string())
    }

    /// Text usable as an HTTP header value (no CR, LF or other control characters
    /// except tab).
    pub fn header_value(&mut self, node: &Node<'_>, path: &str) -> Option<String> {
        let text = self.text(node, path)?;
        if text.chars().any(|c| c.is_control() && c != '\t') {
            self.error(
                node,
                path,
                "must not contain control characters (such as a line break)",
            );
            return None;
        }
        Some(text.to_string())
    }

    /// `true` or `false`.
    pub fn boolean(&mut self, node: &Node<'_>, path: &str) -> Option<bool> {
        match kind(node) {
            Kind::Scalar(text, true) => match text {
                "true" | "True" | "TRUE" => Some(true),
                "false" | "False" | "FALSE" => Some(false),
                _ => {
                    self.expected(node, path, "true or false");
                    None
                }
            },
            _ => {
                self.expected(node, path, "true or false");
                None
            }
        }
    }

    /// A non-negative integer no larger than `max`.
    pub fn uint(&mut self, node: &Node<'_>, path: &str, max: u64) -> Option<u64> {
        let text = match kind(node) {
            Kind::Scalar(text, _) => text.trim(),
            _ => {
                self.expected(node, path, "a non-negative integer");
                return None;
            }
        };
        match parse_uint(text) {
            Some(v) if v <= max => Some(v),
            Some(_) => {
                self.error(node, path, format!("must be at most {max}"));
                None
            }
            None => {
                self.expected(node, path, "a non-negative integer");
                None
            }
        }
    }

    /// A duration: integer seconds, or a number with a unit (`ms`, `s`, `m`, `h`).
    pub fn duration(&mut self, node: &Node<'_>, path: &str, allow_zero: bool) -> Option<Duration> {
        const WHAT: &str = "a duration such as `30s`, `500ms`, `1.5s`, `2m` or `1h`";
        let text = match kind(node) {
            Kind::Scalar(text, _) => text,
            _ => {
                self.expected(node, path, WHAT);
                return None;
            }
        };
        match parse_duration(text) {
            Some(d) if d.is_zero() && !allow_zero => {
                self.error(node, path, "must be greater than zero");
                None
            }
            Some(d) => Some(d),
            None => {
                self.expected(node, path, WHAT);
                None
            }
        }
    }

    /// A size in bytes: an integer, or a number with a unit (`B`, `KB`, `MB`,
    /// `GB`, `TB`, `KiB`, `MiB`, `GiB`, `TiB`; any case).
    pub fn size(&mut self, node: &Node<'_>, path: &str, min: u64, max: u64) -> Option<u64> {
        const WHAT: &str = "a size such as `65536`, `64KiB`, `10MB` or `1GiB`";
        let text = match kind(node) {
            Kind::Scalar(text, _) => text,
            _ => {
                self.expected(node, path, WHAT);
                return None;
            }
        };
        match parse_size(text) {
            Some(v) if v < min => {
                self.error(node, path, format!("must be at least {min} bytes"));
                None
            }
            Some(v) if v > max => {
                self.error(node, path, format!("must be at most {max} bytes"));
                None
            }
            Some(v) => Some(v),
            None => {
                self.expected(node, path, WHAT);
                None
            }
        }
    }

    /// A socket address to listen on: `IP:port` (`[IPv6]:port`), or `name:port`
    /// resolved now (IPv4 preferred).
    pub fn listen_addr(&mut self, node: &Node<'_>, path: &str) -> Option<SocketAddr> {
        let text = self.text(node, path)?.trim();
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return Some(addr);
        }
        match split_host_port(text) {
            Ok((host, port)) => match resolve(&host, port) {
                Ok(addr) => Some(addr),
                Err(msg) => {
                    self.error(node, path, msg);
                    None
                }
            },
            Err(msg) => {
                self.error(node, path, msg);
                None
            }
        }
    }
}

/// Decode the optional field `key` of `m` with `f`, given its dotted path.
pub(super) fn field<'n, 'i, T>(
    ctx: &mut Ctx<'_>,
    m: &MapView<'n, 'i>,
    path: &str,
    key: &str,
    f: impl FnOnce(&mut Ctx<'_>, &'n Node<'i>, &str) -> Option<T>,
) -> Option<T> {
    let node = m.get(key)?;
    f(ctx, node, &join(path, key))
}

/// The mapping in the optional field `key`, checked against `known`.
pub(super) fn section<'n, 'i>(
    ctx: &mut Ctx<'_>,
    m: &MapView<'n, 'i>,
    path: &str,
    key: &str,
    known: &[&str],
) -> Option<MapView<'n, 'i>> {
    field(ctx, m, path, key, |ctx, n, p| ctx.map(n, p, Some(known)))
}

/// "missing required field" at the start of the mapping.
pub(super) fn missing(ctx: &mut Ctx<'_>, m: &MapView<'_, '_>, path: &str, key: &str) {
    ctx.error_at(
        m.start,
        &join(path, key),
        format!("missing required field `{key}`"),
    );
}

/// A name and where it was written, for the uniqueness check.
pub(super) struct Named {
    pub name: String,
    pub at: Marker,
    pub path: String,
}

/// Report every name that was already used by an earlier item.
pub(super) fn check_unique(ctx: &mut Ctx<'_>, names: &[Named], what: &str) {
    let mut first: HashMap<&str, usize> = HashMap::new();
    for (i, n) in names.iter().enumerate() {
        if let Some(&j) = first.get(n.name.as_str()) {
            ctx.error_at(
                n.at,
                &n.path,
                format!(
                    "duplicate {what} name `{}` (first used at line {})",
                    n.name,
                    names[j].at.line()
                ),
            );
        } else {
            first.insert(&n.name, i);
        }
    }
}

/// The `name` of an item, or `default` when absent, with its position.
pub(super) fn item_name(
    ctx: &mut Ctx<'_>,
    m: &MapView<'_, '_>,
    path: &str,
    default: Option<String>,
) -> Option<Named> {
    let name_path = join(path, "name");
    match m.get("name") {
        Some(n) => ctx.name(n, &name_path).map(|name| Named {
            name,
            at: n.span.start,
            path: name_path,
        }),
        None => match default {
            Some(name) => Some(Named {
                name,
                at: m.start,
                path: name_path,
            }),
            None => {
                missing(ctx, m, path, "name");
                None
            }
        },
    }
}

/// "unknown field `x`", with a suggestion when a known key is close.
fn unknown_key_message(key: &str, known: &[&str]) -> String {
    let best = known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .min_by_key(|(d, _)| *d);
    // A known key that starts with what was written (`max_body` for
    // `max_body_bytes`) is a good guess too.
    let prefixed = known
        .iter()
        .find(|k| key.len() >= 4 && k.starts_with(key))
        .map(|k| (0, *k));
    match best.filter(|(d, _)| *d <= 2).or(prefixed).or(best) {
        Some((d, k)) if d <= 2 || (d <= 3 && key.len() > 8) => {
            format!("unknown field `{key}`; did you mean `{k}`?")
        }
        _ if known.is_empty() => format!("unknown field `{key}`"),
        _ => format!(
            "unknown field `{key}`; expected one of: {}",
            known.join(", ")
        ),
    }
}

/// Levenshtein distance, for "did you mean" suggestions.
pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Decimal digits only (an optional leading `+`), no overflow.
pub(super) fn parse_uint(text: &str) -> Option<u64> {
    let digits = text.strip_prefix('+').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// `12`, `12.5`: integer part and fraction digits (at most 9 of them).
fn parse_decimal(text: &str) -> Option<(u64, &str)> {
    let (int, frac) = match text.split_once('.') {
        Some((int, frac)) => {
            if frac.is_empty() || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            (int, frac)
        }
        None => (text, ""),
    };
    let int = if int.is_empty() && !frac.is_empty() {
        0
    } else {
        parse_uint(int)?
    };
    Some((int, frac))
}

/// `int.frac * unit`, rounded down, without floating point.
fn scale(int: u64, frac: &str, unit: u128) -> Option<u128> {
    let whole = u128::from(int).checked_mul(unit)?;
    if frac.is_empty() {
        return Some(whole);
    }
    let frac_value: u128 = frac.parse().ok()?;
    let denom = 10u128.checked_pow(u32::try_from(frac.len()).ok()?)?;
    whole.checked_add(frac_value.checked_mul(unit)? / denom)
}

/// Split `12.5ms` into `12.5` and `ms` (spaces between are allowed).
fn split_number_unit(text: &str) -> (&str, &str) {
    let text = text.trim();
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+'))
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(end);
    (num, unit.trim())
}

/// Integer seconds, or a decimal number with a unit: `ms`, `s`, `m`, `h`.
pub(super) fn parse_duration(text: &str) -> Option<Duration> {
    let (num, unit) = split_number_unit(text);
    let (int, frac) = parse_decimal(num)?;
    let unit_nanos: u128 = match unit {
        "ms" => 1_000_000,
        "" | "s" => 1_000_000_000,
        "m" => 60 * 1_000_000_000,
        "h" => 3600 * 1_000_000_000,
        _ => return None,
    };
    // A bare number is whole seconds.
    if unit.is_empty() && !frac.is_empty() {
        return None;
    }
    let nanos = scale(int, frac, unit_nanos)?;
    let secs = u64::try_from(nanos / 1_000_000_000).ok()?;
    // Anything above ~100 years is a mistake, and would overflow `Instant` math.
    if secs > 100 * 365 * 24 * 3600 {
        return None;
    }
    let sub = u32::try_from(nanos % 1_000_000_000).ok()?;
    Some(Duration::new(secs, sub))
}

/// Integer bytes, or a decimal number with a unit (case-insensitive):
/// `B`, `KB`/`MB`/`GB`/`TB` (powers of 1000), `KiB`/`MiB`/`GiB`/`TiB` (powers of 1024).
pub(super) fn parse_size(text: &str) -> Option<u64> {
    let (num, unit) = split_number_unit(text);
    let (int, frac) = parse_decimal(num)?;
    let unit_bytes: u128 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => return None,
    };
    if unit_bytes == 1 && !frac.is_empty() {
        return None;
    }
    u64::try_from(scale(int, frac, unit_bytes)?).ok()
}

/// Split `host:port` or `[v6]:port`. The host is returned without brackets.
pub(super) fn split_host_port(text: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return Err(format!("`{text}`: missing `]` after the IPv6 address"));
        };
        let Some(port) = after.strip_prefix(':') else {
            return Err(format!(
                "`{text}`: expected `[IPv6]:port`, with a port after the brackets"
            ));
        };
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("`{host}` is not an IPv6 address"));
        }
        (host, port)
    } else {
        let Some((host, port)) = text.rsplit_once(':') else {
            return Err(format!(
                "`{text}`: expected `host:port` (the port is required)"
            ));
        };
        if host.contains(':') {
            return Err(format!(
                "`{text}`: an IPv6 address must be written in brackets, as in `[::1]:8080`"
            ));
        }
        (host, port)
    };
    if host.is_empty() {
        return Err(format!("`{text}`: the host is empty"));
    }
    if host
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '/')
    {
        return Err(format!("`{text}`: not a valid host name"));
    }
    match parse_uint(port).and_then(|p| u16::try_from(p).ok()) {
        Some(0) | None => Err(format!(
            "`{text}`: the port must be a number from 1 to 65535"
        )),
        Some(port) => Ok((host.to_string(), port)),
    }
}

/// Resolve `host` now; an IP literal needs no lookup. IPv4 is preferred.
pub(super) fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    match (host, port).to_socket_addrs() {
        Ok(addrs) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            addrs
                .iter()
                .find(|a| a.is_ipv4())
                .or_else(|| addrs.first())
                .copied()
                .ok_or_else(|| format!("`{host}` resolved to no address"))
        }
        Err(e) => Err(format!("cannot resolve `{host}`: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0.25h"), Some(Duration::from_secs(900)));
        assert_eq!(parse_duration("10 s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        for bad in [
            "",
            "s",
            "1.5",
            "-1s",
            "10x",
            "1.s",
            "1e3s",
            "10sec",
            "1ms5",
            "99999999999999h",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024"), Some(1024));
        assert_eq!(parse_size("32KiB"), Some(32 * 1024));
        assert_eq!(parse_size("32kib"), Some(32 * 1024));
        assert_eq!(parse_size("64 MiB"), Some(64 << 20));
        assert_eq!(parse_size("1GiB"), Some(1 << 30));
        assert_eq!(parse_size("10KB"), Some(10_000));
        assert_eq!(parse_size("1.5MB"), Some(1_500_000));
        assert_eq!(parse_size("2gb"), Some(2_000_000_000));
        assert_eq!(parse_size("7B"), Some(7));
        for bad in [
            "",
            "KiB",
            "1.5",
            "1.5B",
            "-1",
            "10 KiBs",
            "1kbit",
            "99999999TiB",
        ] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }

    #[test]
    fn host_ports() {
        assert_eq!(
            split_host_port("example.com:443"),
            Ok(("example.com".to_string(), 443))
        );
        assert_eq!(split_host_port("[::1]:9000"), Ok(("::1".to_string(), 9000)));
        for bad in [
            "example.com",
            "example.com:0",
            "example.com:65536",
            ":80",
            "::1:80",
            "[::1]",
            "[::1:80",
            "[nope]:80",
            "a b:80",
        ] {
            assert!(split_host_port(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn suggestions() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(
            unknown_key_message("pathprefix", &["path", "path_prefix"]),
            "unknown field `pathprefix`; did you mean `path_prefix`?"
        );
        assert_eq!(
            unknown_key_message("zzz", &["a", "b"]),
            "unknown field `zzz`; expected one of: a, b"
        );
    }
}
