//! HTTP/1.1 wire code shared by the server side and the upstream client:
//! buffers, head parsing and framing rules, the chunked coding, and the
//! responses strait writes itself (errors, static answers).

pub mod buf;
pub mod chunked;
pub mod head;

pub use buf::{write_vec, ReadBuf};
pub use head::{BodyKind, Framing, Head, HeadError};

/// Canonical reason phrase of a status code.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        417 => "Expectation Failed",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

/// Appends a status line.
pub fn write_status_line(out: &mut Vec<u8>, status: u16) {
    out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(out, u64::from(status));
    out.push(b' ');
    out.extend_from_slice(reason(status).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends `name: value\r\n`.
pub fn write_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

pub fn push_decimal(out: &mut Vec<u8>, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// A complete response strait answers by itself.
pub struct Answer<'a> {
    pub status: u16,
    pub content_type: &'a str,
    pub body: &'a [u8],
    pub extra_headers: &'a [(String, String)],
    pub keep_alive: bool,
    /// HEAD request: headers only.
    pub head_only: bool,
}

pub fn write_answer(out: &mut Vec<u8>, a: &Answer<'_>) {
    write_status_line(out, a.status);
    write_header(out, b"content-type", a.content_type.as_bytes());
    out.extend_from_slice(b"content-length: ");
    push_decimal(out, a.body.len() as u64);
    out.extend_from_slice(b"\r\n");
    for (name, value) in a.extra_headers {
        write_header(out, name.as_bytes(), value.as_bytes());
    }
    if !a.keep_alive {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !a.head_only {
        out.extend_from_slice(a.body);
    }
}

/// The JSON error body every strait-generated error carries:
/// `{"error":{"type":"...","message":"...","status":N}}`.
pub fn error_body(status: u16, kind: &str, message: &str) -> Vec<u8> {
    let v = serde_json::json!({
        "error": { "type": kind, "message": message, "status": status }
    });
    v.to_string().into_bytes()
}

/// Appends a complete JSON error response.
pub fn write_error(
    out: &mut Vec<u8>,
    status: u16,
    kind: &str,
    message: &str,
    keep_alive: bool,
    head_only: bool,
) {
    let body = error_body(status, kind, message);
    write_answer(
        out,
        &Answer {
            status,
            content_type: "application/json",
            body: &body,
            extra_headers: &[],
            keep_alive,
            head_only,
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_response_is_json_with_length() {
        let mut out = Vec::new();
        write_error(
            &mut out,
            502,
            "upstream_unavailable",
            "connection \"refused\"",
            true,
            false,
        );
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 502 Bad Gateway\r\n"));
        let body = text.split("\r\n\r\n").nth(1).unwrap();
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["status"], 502);
        assert!(text.contains(&format!("content-length: {}\r\n", body.len())));
        assert!(!text.contains("connection: close"));
    }
}
