//! Persistence formats. Today: writing RDB snapshots, which full resynchronisation of a
//! replica sends; loading and disk persistence build on the same encoder later.

pub mod aof;
pub mod rdb;
