//! The wire protocol: RESP request parsing, reply encoding, and the number formats Redis uses
//! on the wire.

pub mod number;
pub mod parser;
pub mod reply;

pub use parser::{split_args, ParseLimits, Parsed, ProtocolError, RequestParser};
pub use reply::{itoa_buf, ErrorReply, Protocol, ReplySink, RespWriter};
