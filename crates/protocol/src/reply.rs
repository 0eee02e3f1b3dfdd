//! Reply building. Commands describe their reply through [`ReplySink`]; the network path writes
//! RESP bytes straight into the client's output buffer ([`RespWriter`]), and the scripting engine
//! (later) will implement the same trait to build Lua values without a RESP round trip.

use crate::number::format_double;

/// Protocol version negotiated with `HELLO`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    Resp2,
    Resp3,
}

/// Receiver of one command's reply, element by element. Aggregates announce their length first
/// and are followed by that many elements (maps: twice that many).
/// Implements, inside an `impl ReplySink for ...` block, every method except `error` and
/// `error_counted_elsewhere` by passing it on to the sink in field `$field` (for wrappers
/// that only watch the errors going through).
#[macro_export]
macro_rules! forward_reply_sink {
    ($field:ident) => {
        fn protocol(&self) -> $crate::Protocol {
            self.$field.protocol()
        }
        fn set_protocol(&mut self, protocol: $crate::Protocol) {
            self.$field.set_protocol(protocol)
        }
        fn simple(&mut self, s: &str) {
            self.$field.simple(s)
        }
        fn integer(&mut self, i: i64) {
            self.$field.integer(i)
        }
        fn bulk(&mut self, b: &[u8]) {
            self.$field.bulk(b)
        }
        fn null(&mut self) {
            self.$field.null()
        }
        fn null_array(&mut self) {
            self.$field.null_array()
        }
        fn array(&mut self, len: usize) {
            self.$field.array(len)
        }
        fn map(&mut self, len: usize) {
            self.$field.map(len)
        }
        fn set(&mut self, len: usize) {
            self.$field.set(len)
        }
        fn double(&mut self, d: f64) {
            self.$field.double(d)
        }
        fn boolean(&mut self, b: bool) {
            self.$field.boolean(b)
        }
        fn verbatim(&mut self, format: &str, text: &[u8]) {
            self.$field.verbatim(format, text)
        }
        fn big_number(&mut self, digits: &str) {
            self.$field.big_number(digits)
        }
        fn push(&mut self, len: usize) {
            self.$field.push(len)
        }
        fn attribute(&mut self, len: usize) {
            self.$field.attribute(len)
        }
    };
}

/// An error on its way to a client, with whether the error statistics already counted it
/// (an error that arose in a command a script called, or a refusal its checker counted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorReply {
    /// The full text with its code, e.g. `ERR syntax error`.
    pub message: String,
    pub counted: bool,
}

impl ErrorReply {
    /// An error not counted yet.
    pub fn new(message: impl Into<String>) -> Self {
        ErrorReply {
            message: message.into(),
            counted: false,
        }
    }

    /// The error code (its first word), as the error statistics key it.
    pub fn code(&self) -> &str {
        self.message.split(' ').next().unwrap_or("ERR")
    }
}

pub trait ReplySink {
    fn protocol(&self) -> Protocol;
    /// Switches the protocol for the rest of this reply (HELLO answers in the new version).
    fn set_protocol(&mut self, _protocol: Protocol) {}
    fn simple(&mut self, s: &str);
    /// `msg` is the full error text including its code, e.g. `ERR syntax error`.
    fn error(&mut self, msg: &str);
    /// An error reply that was already counted in the error statistics where it arose (a
    /// script returning the error of a command it called). Sinks that count errors override
    /// this to skip the statistics; the reply itself is the same.
    fn error_counted_elsewhere(&mut self, msg: &str) {
        self.error(msg)
    }
    /// Replies an [`ErrorReply`], counted unless it already was.
    fn error_reply(&mut self, e: &ErrorReply) {
        if e.counted {
            self.error_counted_elsewhere(&e.message)
        } else {
            self.error(&e.message)
        }
    }
    fn integer(&mut self, i: i64);
    fn bulk(&mut self, b: &[u8]);
    /// Null bulk (`$-1` in RESP2, `_` in RESP3).
    fn null(&mut self);
    /// Null array (`*-1` in RESP2, `_` in RESP3).
    fn null_array(&mut self);
    fn array(&mut self, len: usize);
    /// A map of `len` pairs (RESP2: a flat array of 2*len).
    fn map(&mut self, len: usize);
    /// A set (RESP2: an array).
    fn set(&mut self, len: usize);
    /// A double (RESP2: a bulk string in `%.17g` form).
    fn double(&mut self, d: f64);
    /// A boolean (RESP2: integer 1/0).
    fn boolean(&mut self, b: bool);
    /// Verbatim string with a 3-letter format such as `txt` (RESP2: bulk).
    fn verbatim(&mut self, format: &str, text: &[u8]);
    /// Big number (RESP2: bulk).
    fn big_number(&mut self, digits: &str);
    /// Out-of-band push (RESP2: array).
    fn push(&mut self, len: usize);
    /// RESP3 attribute map of `len` pairs preceding a reply. Only meaningful in RESP3: callers
    /// emit attributes only to RESP3 clients.
    fn attribute(&mut self, _len: usize) {}

    fn ok(&mut self) {
        self.simple("OK");
    }
    fn bulk_str(&mut self, s: &str) {
        self.bulk(s.as_bytes());
    }
    fn bulk_opt(&mut self, b: Option<&[u8]>) {
        match b {
            Some(b) => self.bulk(b),
            None => self.null(),
        }
    }
    /// An integer as a bulk string (e.g. GET of an integer-encoded value).
    fn bulk_int(&mut self, i: i64) {
        let buf = itoa_buf(i);
        self.bulk(buf.as_bytes());
    }
    fn empty_array(&mut self) {
        self.array(0);
    }
}

/// A small stack buffer holding the decimal form of an i64.
pub struct IntBuf {
    bytes: [u8; 20],
    start: usize,
}

impl IntBuf {
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[self.start..]
    }
}

/// Formats an integer without allocating.
pub fn itoa_buf(i: i64) -> IntBuf {
    let mut bytes = [0u8; 20];
    let mut pos = 20;
    let negative = i < 0;
    let mut v = i.unsigned_abs();
    loop {
        pos -= 1;
        bytes[pos] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if negative {
        pos -= 1;
        bytes[pos] = b'-';
    }
    IntBuf { bytes, start: pos }
}

/// Writes RESP2 or RESP3 into a byte buffer.
pub struct RespWriter<'a> {
    pub out: &'a mut Vec<u8>,
    pub protocol: Protocol,
}

impl<'a> RespWriter<'a> {
    pub fn new(out: &'a mut Vec<u8>, protocol: Protocol) -> Self {
        Self { out, protocol }
    }

    fn header(&mut self, tag: u8, n: i64) {
        self.out.push(tag);
        self.out.extend_from_slice(itoa_buf(n).as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    fn resp3(&self) -> bool {
        self.protocol == Protocol::Resp3
    }
}

/// Replaces CR/LF in status and error lines with spaces: a line reply cannot contain them.
fn write_line(out: &mut Vec<u8>, tag: u8, s: &str) {
    out.push(tag);
    if s.bytes().any(|b| b == b'\r' || b == b'\n') {
        out.extend(
            s.bytes()
                .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
        );
    } else {
        out.extend_from_slice(s.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

impl ReplySink for RespWriter<'_> {
    fn protocol(&self) -> Protocol {
        self.protocol
    }
    fn set_protocol(&mut self, protocol: Protocol) {
        self.protocol = protocol;
    }
    fn simple(&mut self, s: &str) {
        write_line(self.out, b'+', s);
    }
    fn error(&mut self, msg: &str) {
        write_line(self.out, b'-', msg);
    }
    fn integer(&mut self, i: i64) {
        self.header(b':', i);
    }
    fn bulk(&mut self, b: &[u8]) {
        self.header(b'$', b.len() as i64);
        self.out.extend_from_slice(b);
        self.out.extend_from_slice(b"\r\n");
    }
    fn null(&mut self) {
        if self.resp3() {
            self.out.extend_from_slice(b"_\r\n");
        } else {
            self.out.extend_from_slice(b"$-1\r\n");
        }
    }
    fn null_array(&mut self) {
        if self.resp3() {
            self.out.extend_from_slice(b"_\r\n");
        } else {
            self.out.extend_from_slice(b"*-1\r\n");
        }
    }
    fn array(&mut self, len: usize) {
        self.header(b'*', len as i64);
    }
    fn map(&mut self, len: usize) {
        if self.resp3() {
            self.header(b'%', len as i64);
        } else {
            self.header(b'*', 2 * len as i64);
        }
    }
    fn set(&mut self, len: usize) {
        let tag = if self.resp3() { b'~' } else { b'*' };
        self.header(tag, len as i64);
    }
    fn double(&mut self, d: f64) {
        let text = format_double(d);
        if self.resp3() {
            self.out.push(b',');
            self.out.extend_from_slice(text.as_bytes());
            self.out.extend_from_slice(b"\r\n");
        } else {
            self.bulk(text.as_bytes());
        }
    }
    fn boolean(&mut self, b: bool) {
        if self.resp3() {
            self.out
                .extend_from_slice(if b { b"#t\r\n" } else { b"#f\r\n" });
        } else {
            self.integer(b as i64);
        }
    }
    fn verbatim(&mut self, format: &str, text: &[u8]) {
        if self.resp3() {
            self.header(b'=', (text.len() + 4) as i64);
            self.out.extend_from_slice(format.as_bytes());
            self.out.push(b':');
            self.out.extend_from_slice(text);
            self.out.extend_from_slice(b"\r\n");
        } else {
            self.bulk(text);
        }
    }
    fn big_number(&mut self, digits: &str) {
        if self.resp3() {
            write_line(self.out, b'(', digits);
        } else {
            self.bulk(digits.as_bytes());
        }
    }
    fn push(&mut self, len: usize) {
        let tag = if self.resp3() { b'>' } else { b'*' };
        self.header(tag, len as i64);
    }
    fn attribute(&mut self, len: usize) {
        self.header(b'|', len as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(p: Protocol, f: impl FnOnce(&mut RespWriter)) -> String {
        let mut out = Vec::new();
        f(&mut RespWriter::new(&mut out, p));
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn resp2_and_resp3_shapes() {
        assert_eq!(render(Protocol::Resp2, |w| w.null()), "$-1\r\n");
        assert_eq!(render(Protocol::Resp3, |w| w.null()), "_\r\n");
        assert_eq!(render(Protocol::Resp2, |w| w.map(2)), "*4\r\n");
        assert_eq!(render(Protocol::Resp3, |w| w.map(2)), "%2\r\n");
        assert_eq!(render(Protocol::Resp2, |w| w.double(1.5)), "$3\r\n1.5\r\n");
        assert_eq!(
            render(Protocol::Resp3, |w| w.double(f64::INFINITY)),
            ",inf\r\n"
        );
        assert_eq!(render(Protocol::Resp3, |w| w.boolean(true)), "#t\r\n");
        assert_eq!(render(Protocol::Resp2, |w| w.boolean(false)), ":0\r\n");
        assert_eq!(
            render(Protocol::Resp3, |w| w.verbatim("txt", b"hi")),
            "=6\r\ntxt:hi\r\n"
        );
        assert_eq!(
            render(Protocol::Resp2, |w| w.error("ERR a\r\nb")),
            "-ERR a  b\r\n"
        );
        assert_eq!(
            render(Protocol::Resp2, |w| w.integer(i64::MIN)),
            ":-9223372036854775808\r\n"
        );
    }
}
