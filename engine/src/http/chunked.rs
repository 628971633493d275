//! A resumable, strict parser of the chunked transfer coding.
//!
//! It never copies: given the bytes at hand it says what the next ones are
//! (payload, framing, or the end of the message), so callers can either relay
//! the coding verbatim or forward the payload alone. It keeps a few integers of
//! state, so a size line or trailer split across reads is fine. Anything a
//! lenient parser might read differently is an error: non-hex or overlong
//! sizes, bare LF, control bytes in extensions, a missing CRLF after data.

/// Longest chunk-size line (size plus extensions) accepted.
const MAX_SIZE_LINE: usize = 4096;
/// Largest total size of trailer fields accepted.
const MAX_TRAILERS: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece {
    /// The next `n` bytes are payload.
    Data(usize),
    /// The next `n` bytes are framing (size lines, CRLFs, trailers).
    Frame(usize),
    /// The next `n` bytes are framing and end the message.
    End(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkError(pub &'static str);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    SizeStart,
    Size,
    SizeWs,
    Ext,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    Trailer,
    TrailerLf,
    EndLf,
    Done,
}

#[derive(Debug, Clone)]
pub struct ChunkedParser {
    state: State,
    size: u64,
    digits: u8,
    line: usize,
    trailers: usize,
}

impl Default for ChunkedParser {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedParser {
    pub fn new() -> Self {
        ChunkedParser {
            state: State::SizeStart,
            size: 0,
            digits: 0,
            line: 0,
            trailers: 0,
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Classifies the bytes at the start of `input`. `Ok(None)` only when
    /// `input` is empty or the message is already complete.
    pub fn next(&mut self, input: &[u8]) -> Result<Option<Piece>, ChunkError> {
        if input.is_empty() || self.state == State::Done {
            return Ok(None);
        }
        if self.state == State::Data {
            let n = (input.len() as u64).min(self.size) as usize;
            self.size -= n as u64;
            if self.size == 0 {
                self.state = State::DataCr;
            }
            return Ok(Some(Piece::Data(n)));
        }
        for (i, &b) in input.iter().enumerate() {
            self.step(b)?;
            match self.state {
                State::Done => return Ok(Some(Piece::End(i + 1))),
                State::Data => return Ok(Some(Piece::Frame(i + 1))),
                _ => {}
            }
        }
        Ok(Some(Piece::Frame(input.len())))
    }

    fn step(&mut self, b: u8) -> Result<(), ChunkError> {
        use State::*;
        if matches!(self.state, SizeStart | Size | SizeWs | Ext) {
            self.line += 1;
            if self.line > MAX_SIZE_LINE {
                return Err(ChunkError("chunk size line too long"));
            }
        }
        if matches!(self.state, TrailerStart | Trailer | TrailerLf | EndLf) {
            self.trailers += 1;
            if self.trailers > MAX_TRAILERS {
                return Err(ChunkError("chunked trailers too large"));
            }
        }
        self.state = match (self.state, b) {
            (SizeStart, _) => {
                let d = hex(b).ok_or(ChunkError("invalid chunk size"))?;
                self.size = u64::from(d);
                self.digits = 1;
                Size
            }
            (Size, b';') => Ext,
            (Size, b' ' | b'\t') => SizeWs,
            (Size, b'\r') => SizeLf,
            (Size, _) => {
                let d = hex(b).ok_or(ChunkError("invalid chunk size"))?;
                self.digits += 1;
                if self.digits > 15 {
                    return Err(ChunkError("chunk size too large"));
                }
                self.size = (self.size << 4) | u64::from(d);
                Size
            }
            (SizeWs, b' ' | b'\t') => SizeWs,
            (SizeWs, b';') => Ext,
            (SizeWs, b'\r') => SizeLf,
            (SizeWs, _) => return Err(ChunkError("invalid chunk size")),
            (Ext, b'\r') => SizeLf,
            (Ext, b'\t') => Ext,
            (Ext, c) if c < 0x20 || c == 0x7f => return Err(ChunkError("invalid chunk extension")),
            (Ext, _) => Ext,
            (SizeLf, b'\n') => {
                self.line = 0;
                if self.size == 0 {
                    TrailerStart
                } else {
                    Data
                }
            }
            (SizeLf, _) => return Err(ChunkError("chunk size line not ended by CRLF")),
            (DataCr, b'\r') => DataLf,
            (DataCr, _) => return Err(ChunkError("chunk data not followed by CRLF")),
            (DataLf, b'\n') => SizeStart,
            (DataLf, _) => return Err(ChunkError("chunk data not followed by CRLF")),
            (TrailerStart, b'\r') => EndLf,
            (TrailerStart, c) if is_tchar(c) => Trailer,
            (TrailerStart, _) => return Err(ChunkError("invalid trailer field")),
            (Trailer, b'\r') => TrailerLf,
            (Trailer, b'\n') => return Err(ChunkError("bare LF in trailer")),
            (Trailer, _) => Trailer,
            (TrailerLf, b'\n') => TrailerStart,
            (TrailerLf, _) => return Err(ChunkError("trailer line not ended by CRLF")),
            (EndLf, b'\n') => Done,
            (EndLf, _) => return Err(ChunkError("chunked body not ended by CRLF")),
            (Data, _) | (Done, _) => return Err(ChunkError("internal chunk parser state")),
        };
        Ok(())
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Appends the chunk-size line for a chunk of `n` bytes.
pub fn write_chunk_header(out: &mut Vec<u8>, n: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [0u8; 16];
    let mut i = digits.len();
    let mut v = n;
    loop {
        i -= 1;
        digits[i] = HEX[v & 0xf];
        v >>= 4;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
    out.extend_from_slice(b"\r\n");
}

pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes; returns the payload.
    fn decode(input: &[u8], step: usize) -> Result<(Vec<u8>, bool), ChunkError> {
        let mut p = ChunkedParser::new();
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < input.len() && !p.is_done() {
            let end = (pos + step).min(input.len());
            let mut window = &input[pos..end];
            while let Some(piece) = p.next(window)? {
                let n = match piece {
                    Piece::Data(n) => {
                        out.extend_from_slice(&window[..n]);
                        n
                    }
                    Piece::Frame(n) | Piece::End(n) => n,
                };
                pos += n;
                window = &window[n..];
            }
        }
        Ok((out, p.is_done()))
    }

    #[test]
    fn decodes_across_any_split() {
        let body = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: 1\r\n\r\n";
        for step in 1..body.len() {
            assert_eq!(
                decode(body, step),
                Ok((b"hello world".to_vec(), true)),
                "step {step}"
            );
        }
    }

    #[test]
    fn rejects_invalid_sizes_and_missing_crlf() {
        for bad in [
            &b"0x5\r\nhello\r\n0\r\n\r\n"[..],
            b"-1\r\n",
            b"\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\nhelloXX0\r\n\r\n",
            b"1 0\r\n",
            b"ffffffffffffffff1\r\n",
            b"5;a\x01\r\n",
            b"0\r\n bad\r\n\r\n",
        ] {
            assert!(
                decode(bad, 3).is_err(),
                "accepted {:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn chunk_header_is_lower_hex() {
        let mut v = Vec::new();
        write_chunk_header(&mut v, 255);
        write_chunk_header(&mut v, 0);
        assert_eq!(v, b"ff\r\n0\r\n");
    }
}
