//! Request and response heads: parsing with httparse, and the framing rules.
//!
//! A head is copied out of the connection buffer into its own reusable `Vec`
//! and described by byte spans, so the connection buffer is free for body I/O
//! while the head is in use. Framing is decided here, strictly: anything a
//! second parser could read differently (both Content-Length and
//! Transfer-Encoding, differing lengths, a final coding other than chunked,
//! obs-fold, whitespace before a colon) is refused, because a proxy that
//! disagrees with its upstream about where a message ends can be smuggled past.

use std::mem::MaybeUninit;

/// Largest number of header fields any head may carry, whatever the config says.
pub const MAX_HEADERS: usize = 256;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Span {
    start: u32,
    end: u32,
}

impl Span {
    /// The part of this span from byte `from` to byte `to` (relative).
    pub fn sub(self, from: usize, to: usize) -> Span {
        Span {
            start: self.start + from as u32,
            end: self.start + to as u32,
        }
    }

    pub fn len(self) -> usize {
        (self.end - self.start) as usize
    }

    pub fn is_empty(self) -> bool {
        self.end == self.start
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: Span,
    pub value: Span,
}

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    None,
    Length(u64),
    Chunked,
    /// Response only: the body ends when the upstream closes.
    UntilClose,
}

/// Why a head was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// Malformed or ambiguous: 400.
    Invalid(&'static str),
    /// Too many header fields: 431.
    TooManyHeaders,
    /// An `Expect` other than `100-continue`: 417.
    UnsupportedExpectation,
    /// A Transfer-Encoding we do not implement in a response: 502.
    NotImplemented(&'static str),
}

/// A parsed head, owning a copy of its bytes.
#[derive(Debug, Default)]
pub struct Head {
    bytes: Vec<u8>,
    pub method: Span,
    pub target: Span,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    pub status: u16,
    pub fields: Vec<Field>,
}

impl Head {
    pub fn get(&self, span: Span) -> &[u8] {
        &self.bytes[span.start as usize..span.end as usize]
    }

    pub fn method(&self) -> &[u8] {
        self.get(self.method)
    }

    pub fn target(&self) -> &[u8] {
        self.get(self.target)
    }

    pub fn name(&self, f: &Field) -> &[u8] {
        self.get(f.name)
    }

    pub fn value(&self, f: &Field) -> &[u8] {
        self.get(f.value)
    }

    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|f| self.name(f).eq_ignore_ascii_case(name.as_bytes()))
            .map(|f| self.value(f))
    }

    /// Parses a request head from the start of `data`. `Ok(None)`: incomplete.
    /// `Ok(Some(n))`: the head is the first `n` bytes.
    pub fn parse_request(
        &mut self,
        data: &[u8],
        max_headers: usize,
    ) -> Result<Option<usize>, HeadError> {
        let mut storage = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let slots = &mut storage[..max_headers.clamp(1, MAX_HEADERS)];
        let mut req = httparse::Request::new(&mut []);
        let len = match req.parse_with_uninit_headers(data, slots) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
            Err(e) => return Err(HeadError::Invalid(parse_error_text(e))),
        };
        self.method = req
            .method
            .map(|m| span_in(data, m.as_bytes()))
            .unwrap_or_default();
        self.target = req
            .path
            .map(|p| span_in(data, p.as_bytes()))
            .unwrap_or_default();
        self.minor_version = req.version.unwrap_or(1);
        self.status = 0;
        self.store(data, len, req.headers);
        Ok(Some(len))
    }

    /// Parses a response head from the start of `data`.
    pub fn parse_response(&mut self, data: &[u8]) -> Result<Option<usize>, HeadError> {
        let mut storage = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut []);
        let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut resp,
            data,
            &mut storage,
        ) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
            Err(e) => return Err(HeadError::Invalid(parse_error_text(e))),
        };
        self.method = Span::default();
        self.target = Span::default();
        self.minor_version = resp.version.unwrap_or(1);
        self.status = resp.code.unwrap_or(0);
        self.store(data, len, resp.headers);
        Ok(Some(len))
    }

    /// Records the header fields (as spans) and copies the head's `len` bytes.
    fn store(&mut self, data: &[u8], len: usize, headers: &[httparse::Header<'_>]) {
        self.fields.clear();
        self.fields.extend(headers.iter().map(|h| Field {
            name: span_in(data, h.name.as_bytes()),
            value: span_in(data, h.value),
        }));
        self.bytes.clear();
        self.bytes.extend_from_slice(&data[..len]);
    }
}

/// Where `part`, a subslice of `whole`, lies in it.
fn span_in(whole: &[u8], part: &[u8]) -> Span {
    let start = part.as_ptr() as usize - whole.as_ptr() as usize;
    Span {
        start: start as u32,
        end: (start + part.len()) as u32,
    }
}

fn parse_error_text(e: httparse::Error) -> &'static str {
    match e {
        httparse::Error::HeaderName => {
            "invalid header name (whitespace before the colon is not allowed)"
        }
        httparse::Error::HeaderValue => {
            "invalid header value (obs-fold line continuations are not allowed)"
        }
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Status => "invalid status line",
        httparse::Error::Token => "invalid token in request line",
        httparse::Error::Version => "unsupported HTTP version",
        httparse::Error::TooManyHeaders => "too many header fields",
    }
}

/// What the framing headers of a message say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framing {
    pub body: BodyKind,
    /// The peer wants the connection kept open after this message.
    pub keep_alive: bool,
    pub expect_continue: bool,
}

/// Is `name` a hop-by-hop header that is never forwarded?
pub fn is_hop_by_hop(name: &[u8]) -> bool {
    const HOP: [&[u8]; 9] = [
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authenticate",
        b"proxy-authorization",
    ];
    HOP.iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// Is `name` listed as a token in any `Connection` header of `head`?
pub fn named_in_connection(head: &Head, name: &[u8]) -> bool {
    head.fields
        .iter()
        .filter(|f| head.name(f).eq_ignore_ascii_case(b"connection"))
        .any(|f| tokens(head.value(f)).any(|t| t.eq_ignore_ascii_case(name)))
}

/// Comma-separated list elements, trimmed of optional whitespace.
pub fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|b| *b == b',')
        .map(trim)
        .filter(|t| !t.is_empty())
}

pub fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &b| {
        if b.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

/// Reads Content-Length and Transfer-Encoding of a message, refusing
/// ambiguity. Shared by requests and responses.
fn body_framing(head: &Head) -> Result<(Option<u64>, bool), HeadError> {
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut has_te = false;
    for f in &head.fields {
        let name = head.name(f);
        if name.eq_ignore_ascii_case(b"content-length") {
            for item in head.value(f).split(|b| *b == b',') {
                let n = parse_decimal(trim(item))
                    .ok_or(HeadError::Invalid("invalid Content-Length"))?;
                match length {
                    Some(prev) if prev != n => {
                        return Err(HeadError::Invalid("differing Content-Length values"));
                    }
                    _ => length = Some(n),
                }
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            if chunked {
                // Anything after "chunked" means chunked is no longer final.
                return Err(HeadError::Invalid(
                    "Transfer-Encoding: chunked must be the final coding",
                ));
            }
            has_te = true;
            let value = head.value(f);
            if tokens(value).next().is_none() {
                return Err(HeadError::Invalid("empty Transfer-Encoding"));
            }
            for (i, coding) in tokens(value).enumerate() {
                let is_chunked = coding.eq_ignore_ascii_case(b"chunked");
                let last = i + 1 == tokens(value).count();
                if is_chunked && !last {
                    return Err(HeadError::Invalid(
                        "Transfer-Encoding: chunked must be the final coding",
                    ));
                }
                chunked = is_chunked && last;
            }
        }
    }
    if has_te && length.is_some() {
        return Err(HeadError::Invalid(
            "both Content-Length and Transfer-Encoding",
        ));
    }
    if has_te && !chunked {
        return Err(HeadError::Invalid(
            "Transfer-Encoding whose final coding is not chunked",
        ));
    }
    Ok((length, chunked))
}

fn connection_keep_alive(head: &Head) -> bool {
    let mut close = false;
    let mut keep = false;
    for f in &head.fields {
        if head.name(f).eq_ignore_ascii_case(b"connection") {
            for t in tokens(head.value(f)) {
                close |= t.eq_ignore_ascii_case(b"close");
                keep |= t.eq_ignore_ascii_case(b"keep-alive");
            }
        }
    }
    if head.minor_version == 0 {
        keep && !close
    } else {
        !close
    }
}

/// Framing of a client request.
pub fn request_framing(head: &Head) -> Result<Framing, HeadError> {
    let (length, chunked) = body_framing(head)?;
    if chunked && head.minor_version == 0 {
        return Err(HeadError::Invalid(
            "Transfer-Encoding in an HTTP/1.0 request",
        ));
    }
    let mut hosts = 0;
    let mut expect_continue = false;
    for f in &head.fields {
        let name = head.name(f);
        if name.eq_ignore_ascii_case(b"host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case(b"expect") {
            if trim(head.value(f)).eq_ignore_ascii_case(b"100-continue") {
                expect_continue = head.minor_version == 1;
            } else {
                return Err(HeadError::UnsupportedExpectation);
            }
        }
    }
    if hosts > 1 {
        return Err(HeadError::Invalid("more than one Host header"));
    }
    if hosts == 0 && head.minor_version == 1 {
        return Err(HeadError::Invalid("missing Host header"));
    }
    let body = match (chunked, length) {
        (true, _) => BodyKind::Chunked,
        (false, Some(0)) | (false, None) => BodyKind::None,
        (false, Some(n)) => BodyKind::Length(n),
    };
    Ok(Framing {
        body,
        keep_alive: connection_keep_alive(head),
        expect_continue: expect_continue && body != BodyKind::None,
    })
}

/// Framing of an upstream response to a request with method `method`.
pub fn response_framing(head: &Head, request_was_head: bool) -> Result<Framing, HeadError> {
    let (length, chunked) = match body_framing(head) {
        Ok(v) => v,
        Err(HeadError::Invalid(m)) if m.starts_with("Transfer-Encoding whose") => {
            return Err(HeadError::NotImplemented(
                "upstream used a Transfer-Encoding other than chunked",
            ));
        }
        Err(e) => return Err(e),
    };
    let status = head.status;
    let no_body =
        request_was_head || (100..200).contains(&status) || status == 204 || status == 304;
    let body = if no_body {
        BodyKind::None
    } else if chunked {
        BodyKind::Chunked
    } else if let Some(n) = length {
        if n == 0 {
            BodyKind::None
        } else {
            BodyKind::Length(n)
        }
    } else {
        BodyKind::UntilClose
    };
    Ok(Framing {
        body,
        keep_alive: connection_keep_alive(head) && body != BodyKind::UntilClose,
        expect_continue: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(raw: &str) -> Result<Framing, HeadError> {
        let mut h = Head::default();
        match h.parse_request(raw.as_bytes(), 100)? {
            Some(_) => request_framing(&h),
            None => Err(HeadError::Invalid("incomplete")),
        }
    }

    #[test]
    fn content_length_and_chunked_framing() {
        assert_eq!(
            req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n").map(|f| f.body),
            Ok(BodyKind::Length(5))
        );
        assert_eq!(
            req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n").map(|f| f.body),
            Ok(BodyKind::Chunked)
        );
        assert_eq!(
            req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n")
                .map(|f| f.body),
            Ok(BodyKind::Length(5))
        );
        assert_eq!(
            req("GET / HTTP/1.1\r\nHost: a\r\n\r\n").map(|f| f.body),
            Ok(BodyKind::None)
        );
    }

    #[test]
    fn ambiguous_framing_is_refused() {
        for raw in [
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nFoo: bar\r\n baz\r\n\r\n",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\n",
            "GET / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        ] {
            assert!(matches!(req(raw), Err(HeadError::Invalid(_))), "accepted: {raw:?}");
        }
    }

    #[test]
    fn keep_alive_defaults_by_version() {
        assert!(req("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .map(|f| f.keep_alive)
            .unwrap_or(false));
        assert!(
            !req("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
                .map(|f| f.keep_alive)
                .unwrap_or(true)
        );
        assert!(!req("GET / HTTP/1.0\r\n\r\n")
            .map(|f| f.keep_alive)
            .unwrap_or(true));
        assert!(req("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .map(|f| f.keep_alive)
            .unwrap_or(false));
    }
}
