//! The append-only file as Redis 7.0 keeps it: several files in one directory
//! (`appenddirname`, `appendonlydir` by default), tied together by a manifest.
//!
//! - [`manifest`]: the manifest file (`<appendfilename>.manifest`), which names one base file
//!   (the snapshot written by the last rewrite), the incremental files written since, and the
//!   history files that a rewrite retired and that wait for deletion; how it is parsed (with
//!   Redis's rules and error texts), rendered, written atomically, and how a rewrite moves
//!   files from one role to the other.
//! - [`commands`]: the content of an incremental file (and of a base file without an RDB
//!   preamble): commands as RESP multibulks, with `#...` annotation lines between them.
//!
//! This module only knows the formats. Running the commands, choosing when to rewrite, and
//! deleting history files belong to the server.

pub mod commands;
pub mod manifest;

pub use commands::{encode_command, timestamp_annotation, CommandReader, ReadError};
pub use manifest::{
    manifest_file_name, write_manifest, AofFile, FileKind, Manifest, ManifestError,
    ManifestErrorKind,
};
