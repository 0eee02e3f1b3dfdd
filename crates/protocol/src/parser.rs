//! Incremental request parser: RESP multibulk (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`) and inline
//! commands (`GET k\r\n`), as redis-server reads them.
//!
//! The parser keeps its progress between reads, so a large multibulk arriving in many small
//! packets is scanned once, not re-parsed from the start on every read. It never allocates the
//! size a client announces: a bulk is only taken once all of its bytes are in the buffer.

use bytes::{Bytes, BytesMut};

/// Redis refuses inline requests and count lines longer than this (PROTO_INLINE_MAX_SIZE).
pub const INLINE_MAX_SIZE: usize = 64 * 1024;
/// Largest multibulk count accepted, as in Redis (INT_MAX).
const MULTIBULK_MAX: i64 = i32::MAX as i64;
/// Before authentication Redis accepts only tiny requests, so unauthenticated peers cannot make
/// it buffer much.
const UNAUTH_MULTIBULK_MAX: i64 = 10;
const UNAUTH_BULK_MAX: i64 = 16384;

/// Limits taken from the server configuration for each parse.
#[derive(Clone, Copy, Debug)]
pub struct ParseLimits {
    /// `proto-max-bulk-len`.
    pub max_bulk_len: i64,
    /// False until the client authenticated when `requirepass` is set.
    pub authenticated: bool,
}

/// A protocol violation: the server answers `-ERR Protocol error: <text>` and closes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Protocol error: {}", self.0)
    }
}

fn perr(msg: impl Into<String>) -> ProtocolError {
    ProtocolError(msg.into())
}

/// Parser state carried across reads for one connection.
#[derive(Default, Debug)]
pub struct RequestParser {
    /// Remaining bulks of the multibulk being read, if one is in progress.
    pending_bulks: Option<usize>,
    /// Byte ranges (within the buffer) of the arguments read so far.
    arg_ranges: Vec<(usize, usize)>,
    /// How far into the buffer the current request has been scanned.
    scanned: usize,
}

/// What one call to [`RequestParser::parse`] produced.
#[derive(Debug)]
pub enum Parsed {
    /// A complete request; may be empty (an empty inline line or `*0`), which callers skip.
    Command(Vec<Bytes>),
    /// More bytes are needed.
    Incomplete,
}

impl RequestParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// True while part of a request has been read; used to detect a client that disconnects
    /// mid-command.
    pub fn in_progress(&self) -> bool {
        self.pending_bulks.is_some()
    }

    /// Parses the next request at the front of `buf`. On success the request's bytes are split
    /// off `buf` and the arguments share that one allocation.
    pub fn parse(
        &mut self,
        buf: &mut BytesMut,
        limits: ParseLimits,
    ) -> Result<Parsed, ProtocolError> {
        let mut args = Vec::new();
        Ok(if self.parse_into(buf, limits, &mut args)? {
            Parsed::Command(args)
        } else {
            Parsed::Incomplete
        })
    }

    /// Like [`RequestParser::parse`], but appends the arguments to `args` (which the caller
    /// reuses from request to request, saving an allocation each). Returns false when more
    /// bytes are needed; true with `args` left empty for an empty request.
    pub fn parse_into(
        &mut self,
        buf: &mut BytesMut,
        limits: ParseLimits,
        args: &mut Vec<Bytes>,
    ) -> Result<bool, ProtocolError> {
        if self.pending_bulks.is_none() {
            if buf.is_empty() {
                return Ok(false);
            }
            if buf[0] != b'*' {
                return self.parse_inline(buf, args);
            }
            let Some(line_end) = find_crlf(buf, 0) else {
                if buf.len() > INLINE_MAX_SIZE {
                    return Err(perr("too big mbulk count string"));
                }
                return Ok(false);
            };
            let count = parse_count(&buf[1..line_end]);
            let count = match count {
                Some(c) if c <= MULTIBULK_MAX => c,
                _ => return Err(perr("invalid multibulk length")),
            };
            if !limits.authenticated && count > UNAUTH_MULTIBULK_MAX {
                return Err(perr("unauthenticated multibulk length"));
            }
            if count <= 0 {
                let _ = buf.split_to(line_end + 2);
                return Ok(true);
            }
            self.pending_bulks = Some(count as usize);
            self.arg_ranges.clear();
            // Reserve modestly: a hostile count must not allocate up front.
            self.arg_ranges.reserve((count as usize).min(1024));
            self.scanned = line_end + 2;
        }
        while let Some(remaining) = self.pending_bulks {
            if remaining == 0 {
                break;
            }
            let start = self.scanned;
            if start >= buf.len() {
                return Ok(false);
            }
            if buf[start] != b'$' {
                let got = buf[start] as char;
                self.reset();
                return Err(perr(format!("expected '$', got '{}'", got)));
            }
            let Some(line_end) = find_crlf(buf, start) else {
                if buf.len() - start > INLINE_MAX_SIZE {
                    self.reset();
                    return Err(perr("too big bulk count string"));
                }
                return Ok(false);
            };
            let len = match parse_count(&buf[start + 1..line_end]) {
                Some(l) if l >= 0 && l <= limits.max_bulk_len => l as usize,
                _ => {
                    self.reset();
                    return Err(perr("invalid bulk length"));
                }
            };
            if !limits.authenticated && len as i64 > UNAUTH_BULK_MAX {
                self.reset();
                return Err(perr("unauthenticated bulk length"));
            }
            let data_start = line_end + 2;
            if buf.len() < data_start + len + 2 {
                // Let the buffer grow towards the announced size as data arrives, not before.
                let wanted = data_start + len + 2;
                if len >= 32 * 1024 && buf.capacity() < wanted && wanted - buf.len() < 1 << 20 {
                    buf.reserve(wanted - buf.len());
                }
                return Ok(false);
            }
            if &buf[data_start + len..data_start + len + 2] != b"\r\n" {
                self.reset();
                return Err(perr("invalid bulk format"));
            }
            self.arg_ranges.push((data_start, data_start + len));
            self.scanned = data_start + len + 2;
            self.pending_bulks = Some(remaining - 1);
        }
        let frame = buf.split_to(self.scanned).freeze();
        args.extend(self.arg_ranges.iter().map(|&(s, e)| frame.slice(s..e)));
        self.reset();
        Ok(true)
    }

    fn reset(&mut self) {
        self.pending_bulks = None;
        self.arg_ranges.clear();
        self.scanned = 0;
    }

    fn parse_inline(
        &mut self,
        buf: &mut BytesMut,
        args: &mut Vec<Bytes>,
    ) -> Result<bool, ProtocolError> {
        let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
            if buf.len() > INLINE_MAX_SIZE {
                return Err(perr("too big inline request"));
            }
            return Ok(false);
        };
        let frame = buf.split_to(nl + 1).freeze();
        let mut end = nl;
        if end > 0 && frame[end - 1] == b'\r' {
            end -= 1;
        }
        let line = &frame[..end];
        if !line.iter().any(|&b| b == b'"' || b == b'\'') {
            // No quoting: arguments are slices of the line itself, without copies.
            let mut start = None;
            for (i, &b) in line.iter().enumerate() {
                match (b.is_ascii_whitespace() || b == 0, start) {
                    (true, Some(s)) => {
                        args.push(frame.slice(s..i));
                        start = None;
                    }
                    (false, None) => start = Some(i),
                    _ => {}
                }
            }
            if let Some(s) = start {
                args.push(frame.slice(s..end));
            }
            return Ok(true);
        }
        match split_args(line) {
            Some(words) => {
                args.extend(words.into_iter().map(Bytes::from));
                Ok(true)
            }
            None => Err(perr("unbalanced quotes in request")),
        }
    }
}

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    let hay = &buf[from..];
    let limit = hay.len().min(INLINE_MAX_SIZE + 2);
    hay[..limit]
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|p| p + from)
}

/// Strict decimal parse of a count line (no spaces, no plus sign, no leading zeros issue).
fn parse_count(s: &[u8]) -> Option<i64> {
    crate::number::parse_i64(s)
}

/// Splits an inline request or a config line into arguments the way Redis's `sdssplitargs`
/// does: whitespace separated, with "double quotes" (supporting \n \r \t \b \a \\ \" \xHH)
/// and 'single quotes' (supporting \'), and a closing quote that must be followed by a space.
/// Returns `None` for unbalanced quotes.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut args = Vec::new();
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= n {
            return Some(args);
        }
        let mut current = Vec::new();
        let mut in_double = false;
        let mut in_single = false;
        loop {
            if in_double {
                if i >= n {
                    return None;
                }
                let c = line[i];
                if c == b'\\'
                    && i + 3 < n
                    && line[i + 1] == b'x'
                    && is_hex(line[i + 2])
                    && is_hex(line[i + 3])
                {
                    current.push(hex_val(line[i + 2]) * 16 + hex_val(line[i + 3]));
                    i += 3;
                } else if c == b'\\' && i + 1 < n {
                    i += 1;
                    current.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        other => other,
                    });
                } else if c == b'"' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    current.push(c);
                }
            } else if in_single {
                if i >= n {
                    return None;
                }
                let c = line[i];
                if c == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                    i += 1;
                    current.push(b'\'');
                } else if c == b'\'' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    current.push(c);
                }
            } else {
                if i >= n {
                    break;
                }
                match line[i] {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => {
                        i += 1;
                        break;
                    }
                    b'"' => in_double = true,
                    b'\'' => in_single = true,
                    c => current.push(c),
                }
            }
            i += 1;
        }
        args.push(current);
    }
}

fn is_hex(c: u8) -> bool {
    c.is_ascii_hexdigit()
}

fn hex_val(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => c - b'A' + 10,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN: ParseLimits = ParseLimits {
        max_bulk_len: 512 * 1024 * 1024,
        authenticated: true,
    };

    fn parse_all(input: &[u8]) -> Result<Vec<Vec<Bytes>>, ProtocolError> {
        let mut p = RequestParser::new();
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        loop {
            match p.parse(&mut buf, OPEN)? {
                Parsed::Command(c) => out.push(c),
                Parsed::Incomplete => return Ok(out),
            }
        }
    }

    #[test]
    fn multibulk_and_pipelining() {
        let cmds = parse_all(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n").unwrap();
        assert_eq!(cmds.len(), 2);
        assert_eq!(cmds[0], vec![Bytes::from("GET"), Bytes::from("k")]);
        assert_eq!(cmds[1], vec![Bytes::from("PING")]);
    }

    #[test]
    fn byte_by_byte_arrival() {
        let input = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n";
        let mut p = RequestParser::new();
        let mut buf = BytesMut::new();
        for (i, b) in input.iter().enumerate() {
            buf.extend_from_slice(&[*b]);
            match p.parse(&mut buf, OPEN).unwrap() {
                Parsed::Command(c) => {
                    assert_eq!(i, input.len() - 1);
                    assert_eq!(c[2], Bytes::from("hello"));
                    return;
                }
                Parsed::Incomplete => {}
            }
        }
        panic!("command never completed");
    }

    #[test]
    fn inline_with_quotes() {
        let cmds = parse_all(b"SET k \"a b\\x41\\n\"\r\nPING\n").unwrap();
        assert_eq!(cmds[0][2], Bytes::from_static(b"a bA\n"));
        assert_eq!(cmds[1], vec![Bytes::from("PING")]);
        assert_eq!(
            parse_all(b"SET \"k\r\n").unwrap_err().0,
            "unbalanced quotes in request"
        );
    }

    #[test]
    fn protocol_errors_match_redis() {
        assert_eq!(
            parse_all(b"*x\r\n").unwrap_err().0,
            "invalid multibulk length"
        );
        assert_eq!(
            parse_all(b"*3000000000\r\n").unwrap_err().0,
            "invalid multibulk length"
        );
        assert_eq!(
            parse_all(b"*1\r\nfoo\r\n").unwrap_err().0,
            "expected '$', got 'f'"
        );
        assert_eq!(
            parse_all(b"*1\r\n$-5\r\n").unwrap_err().0,
            "invalid bulk length"
        );
        let limits = ParseLimits {
            max_bulk_len: 10,
            authenticated: true,
        };
        let mut buf = BytesMut::from(&b"*1\r\n$11\r\n"[..]);
        assert_eq!(
            RequestParser::new().parse(&mut buf, limits).unwrap_err().0,
            "invalid bulk length"
        );
    }

    #[test]
    fn huge_announced_bulk_is_not_allocated() {
        let mut p = RequestParser::new();
        let mut buf = BytesMut::from(&b"*1\r\n$536870000\r\nab"[..]);
        assert!(matches!(
            p.parse(&mut buf, OPEN).unwrap(),
            Parsed::Incomplete
        ));
        assert!(buf.capacity() < 4 << 20);
    }

    #[test]
    fn unauthenticated_limits() {
        let limits = ParseLimits {
            max_bulk_len: 1 << 29,
            authenticated: false,
        };
        let mut buf = BytesMut::from(&b"*20\r\n"[..]);
        assert_eq!(
            RequestParser::new().parse(&mut buf, limits).unwrap_err().0,
            "unauthenticated multibulk length"
        );
    }

    #[test]
    fn inline_without_quotes_splits_on_whitespace() {
        let cmds = parse_all(b"SET  k\tv \r\n   \r\n").unwrap();
        assert_eq!(
            cmds[0],
            vec![Bytes::from("SET"), Bytes::from("k"), Bytes::from("v")]
        );
        assert!(cmds[1].is_empty());
    }

    #[test]
    fn empty_requests_are_skipped() {
        let cmds = parse_all(b"\r\n*0\r\n").unwrap();
        assert!(cmds.iter().all(|c| c.is_empty()));
    }
}
