//! Framing: watch events are JSON documents, one per line. Chunks arrive cut anywhere; this module
//! turns them into complete lines straight from the byte buffer, with a bound on line length.
//!
//! A line is handed out as [`Bytes`] sharing the buffer (no copy, no `String`). A line longer than
//! the limit is reported once and its bytes are dropped up to the next newline, so memory stays
//! bounded whatever the server sends.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

/// One item out of the framer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Frame {
    /// A complete line, without its `\n` (and without a trailing `\r`). Never empty.
    Line(Bytes),
    /// A line longer than the limit was dropped; `len` is how many bytes it had when given up on
    /// (at least the limit).
    TooLong {
        /// Bytes seen before the line was dropped.
        len: usize,
    },
}

/// Splits a byte stream into lines.
#[derive(Debug)]
pub(crate) struct LineFramer {
    /// The start of a line cut by a chunk boundary (never holds a `\n`).
    buf: BytesMut,
    max_line: usize,
    /// Dropping an over-long line until its end.
    discarding: bool,
}

impl LineFramer {
    /// A framer that refuses lines longer than `max_line` bytes.
    pub(crate) fn new(max_line: usize) -> Self {
        LineFramer {
            buf: BytesMut::new(),
            max_line: max_line.max(1),
            discarding: false,
        }
    }

    /// Adds a chunk and appends every frame it completes to `out`.
    ///
    /// Lines that lie wholly inside `chunk` are handed out as slices of it (no copy); only a line
    /// cut by a chunk boundary is copied, once, into the framer's buffer.
    pub(crate) fn push(&mut self, chunk: Bytes, out: &mut VecDeque<Frame>) {
        let mut rest = chunk;
        if self.discarding {
            match memchr::memchr(b'\n', &rest) {
                None => return,
                Some(i) => {
                    self.discarding = false;
                    rest = rest.slice(i + 1..);
                }
            }
        }
        if !self.buf.is_empty() {
            // Finish the line begun in an earlier chunk.
            match memchr::memchr(b'\n', &rest) {
                None => {
                    self.buf.extend_from_slice(&rest);
                    if self.cannot_fit() {
                        self.give_up_on_line(out);
                    }
                    return;
                }
                Some(i) => {
                    self.buf.extend_from_slice(&rest[..i]);
                    // Taken whole: the framer keeps no allocation between lines. With a thousand
                    // watches, a buffer kept for reuse is a line's worth of memory each.
                    let line = std::mem::take(&mut self.buf).freeze();
                    self.emit(line, out);
                    rest = rest.slice(i + 1..);
                }
            }
        }
        let mut start = 0;
        for i in memchr::memchr_iter(b'\n', &rest) {
            self.emit(rest.slice(start..i), out);
            start = i + 1;
        }
        if start < rest.len() {
            self.buf.extend_from_slice(&rest[start..]);
            if self.cannot_fit() {
                self.give_up_on_line(out);
            }
        }
    }

    /// Whether the unfinished line is already over the limit. One byte over may still fit: a
    /// final `\r` is stripped when its `\n` arrives, so the verdict waits for the next byte.
    fn cannot_fit(&self) -> bool {
        let len = self.buf.len();
        len > self.max_line && !(len == self.max_line + 1 && self.buf.last() == Some(&b'\r'))
    }

    fn give_up_on_line(&mut self, out: &mut VecDeque<Frame>) {
        out.push_back(Frame::TooLong { len: self.buf.len() });
        // Freed, not cleared: a cleared buffer would keep up to the limit allocated.
        self.buf = BytesMut::new();
        self.discarding = true;
    }

    fn emit(&self, mut line: Bytes, out: &mut VecDeque<Frame>) {
        if line.last() == Some(&b'\r') {
            line.truncate(line.len() - 1);
        }
        if line.len() > self.max_line {
            out.push_back(Frame::TooLong { len: line.len() });
        } else if !line.iter().all(u8::is_ascii_whitespace) {
            out.push_back(Frame::Line(line));
        }
    }

    /// The bytes of an unfinished line, if the stream ended in the middle of one.
    pub(crate) fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The allocation behind the unfinished line, for the fuzz tests' memory bound.
    #[cfg(test)]
    pub(crate) fn buffered_capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Forgets any unfinished line (a new connection starts clean).
    pub(crate) fn reset(&mut self) {
        self.buf = BytesMut::new();
        self.discarding = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(framer: &mut LineFramer, chunks: &[&[u8]]) -> Vec<Frame> {
        let mut out = VecDeque::new();
        for c in chunks {
            framer.push(Bytes::copy_from_slice(c), &mut out);
        }
        out.into()
    }

    fn line(s: &str) -> Frame {
        Frame::Line(Bytes::copy_from_slice(s.as_bytes()))
    }

    // The original Kazan's LineBuffer tests, carried over.
    #[test]
    fn kazan_line_buffer_cases() {
        assert_eq!(lines(&mut LineFramer::new(64), &[]), vec![]);
        assert_eq!(lines(&mut LineFramer::new(64), &[b"c1\n"]), vec![line("c1")]);
        assert_eq!(
            lines(&mut LineFramer::new(64), &[b"c1\nc2\n", b"c3\nc4\n"]),
            vec![line("c1"), line("c2"), line("c3"), line("c4")]
        );
        assert_eq!(
            lines(&mut LineFramer::new(64), &[b"c1\nc2\n", b"c3\nc", b"4\nc5\n"]),
            vec![line("c1"), line("c2"), line("c3"), line("c4"), line("c5")]
        );
        let mut f = LineFramer::new(64);
        assert_eq!(
            lines(&mut f, &[b"c1\nc2\n", b"c3\nc"]),
            vec![line("c1"), line("c2"), line("c3")]
        );
        assert_eq!(f.pending(), 1);
        assert_eq!(lines(&mut f, &[b"4\nc5\n"]), vec![line("c4"), line("c5")]);
        assert_eq!(lines(&mut LineFramer::new(64), &[b"c1\n", b""]), vec![line("c1")]);
        assert_eq!(lines(&mut LineFramer::new(64), &[b"c1", b"\n"]), vec![line("c1")]);
    }

    #[test]
    fn blank_lines_and_crlf_are_tolerated() {
        assert_eq!(
            lines(&mut LineFramer::new(64), &[b"a\r\n\n  \nb\n"]),
            vec![line("a"), line("b")]
        );
    }

    #[test]
    fn an_over_long_line_is_dropped_and_reported_once() {
        let mut f = LineFramer::new(8);
        let out = lines(&mut f, &[b"ok\n0123456789", b"abcdef", b"ghi\nnext\n"]);
        assert_eq!(out, vec![line("ok"), Frame::TooLong { len: 10 }, line("next")]);
        assert_eq!(f.pending(), 0);
        // A complete over-long line within one chunk.
        let out = lines(&mut LineFramer::new(4), &[b"0123456\nab\n"]);
        assert_eq!(out, vec![Frame::TooLong { len: 7 }, line("ab")]);
    }

    #[test]
    fn a_line_at_the_limit_fits_whether_its_crlf_arrives_whole_or_split() {
        // Found by the fuzz target: the `\r` of a line at the limit was counted against it when
        // the `\n` came in a later chunk.
        let whole = lines(&mut LineFramer::new(4), &[b"abcd\r\nnext\n"]);
        let split = lines(&mut LineFramer::new(4), &[b"abcd\r", b"\nnext\n"]);
        assert_eq!(whole, vec![line("abcd"), line("next")]);
        assert_eq!(split, whole);
        // Five bytes that are not a CRLF's `\r` are over the limit at once.
        let over = lines(&mut LineFramer::new(4), &[b"abcde", b"\nnext\n"]);
        assert_eq!(over, vec![Frame::TooLong { len: 5 }, line("next")]);
    }

    #[test]
    fn memory_stays_bounded_by_the_limit() {
        let mut f = LineFramer::new(1024);
        let mut out = VecDeque::new();
        for _ in 0..1000 {
            f.push(Bytes::from_static(&[b'x'; 100]), &mut out);
            assert!(f.pending() <= 1024 + 100);
        }
        assert_eq!(out.len(), 1);
    }

    /// An idle watch holds nothing for a finished line, a dropped over-long one, or a reset:
    /// a buffer kept for reuse would be a line's worth of memory per watch, and up to the limit
    /// after an over-long line.
    #[test]
    fn no_allocation_is_kept_between_lines() {
        let mut f = LineFramer::new(1 << 20);
        let mut out = VecDeque::new();
        let long = Bytes::from(vec![b'x'; 200_000]);
        f.push(long.clone(), &mut out);
        f.push(Bytes::from_static(b"end\nnext"), &mut out);
        assert_eq!(f.pending(), 4);
        f.push(Bytes::from_static(b"\n"), &mut out);
        assert_eq!(
            (f.pending(), f.buffered_capacity()),
            (0, 0),
            "after a line cut by chunks"
        );
        assert_eq!(out.len(), 2);

        let mut small = LineFramer::new(100_000);
        small.push(long.clone(), &mut out);
        assert_eq!(out.back(), Some(&Frame::TooLong { len: 200_000 }));
        assert_eq!(small.buffered_capacity(), 0, "after an over-long line");

        f.push(long, &mut out);
        f.reset();
        assert_eq!((f.pending(), f.buffered_capacity()), (0, 0), "after a reset");
    }

    #[test]
    fn every_split_point_gives_the_same_lines() {
        let body = b"{\"a\":1}\n{\"b\":2}\r\n\n{\"c\":[1,2,3]}\n";
        let whole = lines(&mut LineFramer::new(64), &[body]);
        for i in 0..=body.len() {
            for j in i..=body.len() {
                let parts = lines(&mut LineFramer::new(64), &[&body[..i], &body[i..j], &body[j..]]);
                assert_eq!(parts, whole, "split at {i} and {j}");
            }
        }
    }
}
