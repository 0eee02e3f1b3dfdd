//! Keyspace notifications (`notify-keyspace-events`): commands report what they did to a key,
//! and, when the configured classes ask for it, the event is published on
//! `__keyspace@<db>__:<key>` and/or `__keyevent@<db>__:<event>`.

use crate::state::ServerState;

/// Event classes, one bit each, with the letters Redis uses in `notify-keyspace-events`.
pub mod class {
    pub const KEYSPACE: u32 = 1 << 0; // K
    pub const KEYEVENT: u32 = 1 << 1; // E
    pub const GENERIC: u32 = 1 << 2; // g
    pub const STRING: u32 = 1 << 3; // $
    pub const LIST: u32 = 1 << 4; // l
    pub const SET: u32 = 1 << 5; // s
    pub const HASH: u32 = 1 << 6; // h
    pub const ZSET: u32 = 1 << 7; // z
    pub const EXPIRED: u32 = 1 << 8; // x
    pub const EVICTED: u32 = 1 << 9; // e
    pub const STREAM: u32 = 1 << 10; // t
    pub const KEY_MISS: u32 = 1 << 11; // m
    pub const MODULE: u32 = 1 << 12; // d
    pub const NEW: u32 = 1 << 13; // n
    /// `A`: every type and lifecycle class except key-miss and new.
    pub const ALL: u32 =
        GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;
}

const LETTERS: &[(char, u32)] = &[
    ('g', class::GENERIC),
    ('$', class::STRING),
    ('l', class::LIST),
    ('s', class::SET),
    ('h', class::HASH),
    ('z', class::ZSET),
    ('x', class::EXPIRED),
    ('e', class::EVICTED),
    ('t', class::STREAM),
    ('d', class::MODULE),
    ('K', class::KEYSPACE),
    ('E', class::KEYEVENT),
    ('m', class::KEY_MISS),
    ('n', class::NEW),
];

/// Parses a class string such as `KEA` or `Kx$`; None if it has an unknown letter.
pub fn parse_classes(s: &str) -> Option<u32> {
    let mut flags = 0;
    for c in s.chars() {
        if c == 'A' {
            flags |= class::ALL;
        } else {
            flags |= LETTERS.iter().find(|(l, _)| *l == c)?.1;
        }
    }
    Some(flags)
}

/// The canonical string CONFIG GET prints for a set of classes.
pub fn classes_to_string(flags: u32) -> String {
    let mut s = String::new();
    let all = flags & class::ALL == class::ALL;
    if all {
        s.push('A');
    }
    for &(letter, bit) in LETTERS {
        let covered_by_all = all && bit & class::ALL != 0;
        if flags & bit != 0 && !covered_by_all {
            s.push(letter);
        }
    }
    s
}

/// CONFIG validation for `notify-keyspace-events`.
pub fn normalize_config(value: &str) -> Result<String, String> {
    parse_classes(value)
        .map(classes_to_string)
        .ok_or_else(|| "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.".to_string())
}

/// Publishes an event if the configuration asks for its class.
pub fn notify(state: &mut ServerState, event_class: u32, event: &str, key: &[u8], db: usize) {
    let flags = state.settings.notify_flags;
    if flags & event_class == 0 || flags & (class::KEYSPACE | class::KEYEVENT) == 0 {
        return;
    }
    if flags & class::KEYSPACE != 0 {
        let mut channel = format!("__keyspace@{}__:", db).into_bytes();
        channel.extend_from_slice(key);
        crate::commands::publish_message(state, &channel, event.as_bytes());
    }
    if flags & class::KEYEVENT != 0 {
        let channel = format!("__keyevent@{}__:{}", db, event);
        crate::commands::publish_message(state, channel.as_bytes(), key);
    }
}

/// Handles the events databases collected on their own: publishes expired and new key
/// events, and sends the DEL of each expired key down the replication stream.
pub fn drain_db_events(state: &mut ServerState) {
    for db in 0..state.dbs.len() {
        if state.dbs[db].events.pending.is_empty() {
            continue;
        }
        let pending = std::mem::take(&mut state.dbs[db].events.pending);
        for (event, key) in pending {
            let expired = event == "expired";
            if expired && state.propagating() {
                crate::replication::feed_now(state, db, &[b"DEL", &key]);
            }
            let event_class = if expired { class::EXPIRED } else { class::NEW };
            notify(state, event_class, event, &key, db);
        }
    }
}

/// Tells the databases which events to collect, after the configuration or the set of
/// replicas changed.
pub fn apply_to_dbs(state: &mut ServerState) {
    let flags = state.settings.notify_flags;
    let publishing = flags & (class::KEYSPACE | class::KEYEVENT) != 0;
    let replicating = state.propagating();
    let replica = state.replication.primary.is_some();
    crate::log::set_replica_role(replica);
    for db in state.dbs.iter_mut() {
        db.set_replica_reads(replica);
        db.events.track_expired = (publishing && flags & class::EXPIRED != 0) || replicating;
        db.events.track_new = publishing && flags & class::NEW != 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_strings_round_trip() {
        assert_eq!(classes_to_string(parse_classes("KEA").unwrap()), "AKE");
        assert_eq!(classes_to_string(parse_classes("E$").unwrap()), "$E");
        assert_eq!(classes_to_string(parse_classes("").unwrap()), "");
        assert!(parse_classes("Z").is_none());
        assert_eq!(normalize_config("gxKn").unwrap(), "gxKn");
    }
}
