//! A stream laid out as Redis serialises it (RDB type `stream-listpacks-2`, Redis 7.0): the
//! meeting point of the in-memory stream and the persistence code (RDB, DUMP/RESTORE), so
//! neither depends on the other's internals.

use super::StreamId;

/// A whole stream in Redis's serialised shape.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamImage {
    /// The radix tree's nodes in ID order: each node's master ID (its tree key) and its
    /// listpack, in Redis's stream-node layout (master entry, then entries as deltas).
    pub nodes: Vec<(StreamId, Vec<u8>)>,
    /// Entries in the stream (not counting deleted ones).
    pub length: u64,
    pub last_id: StreamId,
    pub first_id: StreamId,
    pub max_deleted_id: StreamId,
    pub entries_added: u64,
    pub groups: Vec<GroupImage>,
}

/// A consumer group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupImage {
    pub name: Vec<u8>,
    pub last_id: StreamId,
    /// Entries the group has read, or None when unknown (Redis's SCG_INVALID_ENTRIES_READ).
    pub entries_read: Option<u64>,
    /// The group's pending entries list, in ID order.
    pub pending: Vec<PendingImage>,
    pub consumers: Vec<ConsumerImage>,
}

/// One delivered, not yet acknowledged entry of a group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PendingImage {
    pub id: StreamId,
    /// Unix time in milliseconds of the last delivery.
    pub delivery_time: u64,
    pub delivery_count: u64,
}

/// A consumer of a group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConsumerImage {
    pub name: Vec<u8>,
    /// Unix time in milliseconds of the consumer's last activity.
    pub seen_time: u64,
    /// The IDs of the group's pending entries owned by this consumer, in ID order; each must
    /// appear in the group's pending list.
    pub pending: Vec<StreamId>,
}
