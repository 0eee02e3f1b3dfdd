//! Persistence file formats, as Redis 7.0 reads and writes them: RDB snapshots (`rdb`: dump
//! files, the base of an append-only file, full resynchronisation of replicas, DUMP/RESTORE)
//! and the multi-part append-only file (`aof`: manifest and command stream). When and where
//! files are written is the server's business (`moonkv-server`'s `persist` module).

pub mod aof;
pub mod rdb;
