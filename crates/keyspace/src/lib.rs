//! The keyspace: databases, values and expiry, independent of networking and commands.

pub mod capture;
pub mod db;
pub mod dict;
pub mod hash;
pub mod journal;
pub mod list;
pub mod order_index;
pub mod pattern;
pub mod set;
pub mod stream;
pub mod value;
pub mod zset;

pub use capture::CapturedKey;
pub use db::{Db, DbEvents, WatchFlag};
pub use dict::{Dict, Key};
pub use hash::{Hash, HashLimits};
pub use journal::{Completeness, Journal};
pub use list::{End, List};
pub use pattern::glob_match;
pub use set::Set;
pub use stream::{StreamId, StreamImage};
pub use value::{StrView, Value};
pub use zset::{LexBound, LexRange, ScoreBound, ScoreRange, SortedSet, ZSetLimits};
