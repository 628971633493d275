//! `ReadBuf`: the per-connection input buffer for rent-style (owned-buffer) I/O.
//!
//! monoio moves a buffer into each read and hands it back; this type keeps one
//! `Vec<u8>` per connection, reads into its spare capacity, and lets callers
//! write a window of it to another stream without copying (the Vec is moved
//! into the write as a `Slice` and taken back). It never grows past the limit
//! a caller gives, so a slow or hostile peer cannot make it allocate more.

use std::io;

use monoio::buf::{IoBuf, IoBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};

/// Smallest free space handed to a read.
const MIN_READ: usize = 4096;

#[derive(Debug)]
pub struct ReadBuf {
    buf: Vec<u8>,
    start: usize,
}

impl ReadBuf {
    pub fn with_capacity(capacity: usize) -> Self {
        ReadBuf {
            buf: Vec::with_capacity(capacity.max(MIN_READ)),
            start: 0,
        }
    }

    /// Bytes read and not yet consumed.
    pub fn data(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    pub fn len(&self) -> usize {
        self.buf.len() - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn consume(&mut self, n: usize) {
        self.start += n.min(self.len());
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
    }

    pub fn clear(&mut self) {
        self.buf.clear();
        self.start = 0;
    }

    /// Reads once more from `stream`, keeping at most `limit` unconsumed bytes.
    /// Returns the number of bytes read; 0 means end of stream. Fails with
    /// `OutOfMemory` when the unconsumed data already fills `limit`.
    pub async fn fill<S: AsyncReadRent>(
        &mut self,
        stream: &mut S,
        limit: usize,
    ) -> io::Result<usize> {
        let pending = self.len();
        if pending >= limit {
            return Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                "buffer limit reached",
            ));
        }
        if self.start > 0 && (self.buf.capacity() - self.buf.len() < MIN_READ || pending == 0) {
            self.buf.copy_within(self.start.., 0);
            self.buf.truncate(pending);
            self.start = 0;
        }
        let want = (limit - pending).clamp(1, 64 * 1024);
        let spare = self.buf.capacity() - self.buf.len();
        if spare < want.min(MIN_READ) {
            self.buf.reserve(want);
        }
        let buf = std::mem::take(&mut self.buf);
        let len = buf.len();
        let max_end = (self.start + limit).min(buf.capacity());
        let (res, slice) = stream.read(buf.slice_mut(len..max_end.max(len + 1))).await;
        self.buf = slice.into_inner();
        res
    }

    /// Writes the first `n` unconsumed bytes to `out` without copying them, then
    /// consumes them.
    pub async fn write_to<W: AsyncWriteRent>(&mut self, out: &mut W, n: usize) -> io::Result<()> {
        let n = n.min(self.len());
        if n == 0 {
            return Ok(());
        }
        let buf = std::mem::take(&mut self.buf);
        let range = self.start..self.start + n;
        let (res, slice) = out.write_all(buf.slice(range)).await;
        self.buf = slice.into_inner();
        res?;
        self.consume(n);
        Ok(())
    }
}

/// Writes all of `out` and hands the buffer back cleared, keeping its capacity.
pub async fn write_vec<W: AsyncWriteRent>(w: &mut W, out: &mut Vec<u8>) -> io::Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    let buf = std::mem::take(out);
    let (res, mut buf) = w.write_all(buf).await;
    buf.clear();
    *out = buf;
    res.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consume_resets_when_drained() {
        let mut rb = ReadBuf::with_capacity(16);
        rb.buf.extend_from_slice(b"hello");
        rb.consume(2);
        assert_eq!(rb.data(), b"llo");
        rb.consume(10);
        assert!(rb.is_empty());
        assert_eq!(rb.start, 0);
    }

    #[test]
    fn buffer_write_ptr_is_spare_capacity() {
        let mut v = Vec::with_capacity(8);
        v.extend_from_slice(b"ab");
        let mut s = v.slice_mut(2..);
        assert_eq!(s.bytes_total(), 6);
        assert!(!s.write_ptr().is_null());
        let _ = IoBuf::bytes_init(&s);
    }
}
