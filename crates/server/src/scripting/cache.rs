//! EVAL's script cache: scripts by the SHA1 of their body, compiled once. Like Redis's it is
//! volatile (gone after SCRIPT FLUSH or a restart). Scripts added with SCRIPT LOAD stay until
//! then; scripts that only came through EVAL are kept in a least-recently-used list of
//! bounded size (`script-eval-cache-size`, like Redis 7.4's 500), so clients that build a new
//! script text per call cannot grow the server without bound.

use super::ScriptFlags;
use bytes::Bytes;
use lru::LruCache;
use moonkv_lua::CompiledId;
use std::collections::HashMap;

/// A SHA1 as 40 lowercase hex digits.
pub type Sha = [u8; 40];

pub struct CachedScript {
    pub body: Bytes,
    pub flags: ScriptFlags,
    pub compiled: CompiledId,
}

pub struct ScriptCache {
    /// Scripts added with SCRIPT LOAD: never evicted.
    loaded: HashMap<Sha, CachedScript, foldhash::fast::RandomState>,
    /// Scripts that only came through EVAL, least recently called first.
    by_eval: LruCache<Sha, CachedScript, foldhash::fast::RandomState>,
    /// Bytes held by bodies and SHA1s (INFO used_memory_scripts_eval).
    memory: usize,
}

impl Default for ScriptCache {
    fn default() -> Self {
        ScriptCache {
            loaded: HashMap::default(),
            by_eval: LruCache::unbounded_with_hasher(Default::default()),
            memory: 0,
        }
    }
}

/// The SHA1 of a script body, as Redis names scripts.
pub fn sha1_of(body: &[u8]) -> Sha {
    let hex = sha1_smol::Sha1::from(body).digest().to_string();
    let mut sha = [0u8; 40];
    sha.copy_from_slice(hex.as_bytes());
    sha
}

/// A SHA1 given by a client (any case); None if it is not 40 characters.
pub fn parse_sha(text: &[u8]) -> Option<Sha> {
    if text.len() != 40 {
        return None;
    }
    let mut sha = [0u8; 40];
    for (d, s) in sha.iter_mut().zip(text) {
        *d = s.to_ascii_lowercase();
    }
    Some(sha)
}

/// Approximate allocation of one entry: the body, the key, and bookkeeping.
fn entry_size(body: &[u8]) -> usize {
    body.len() + 40 + 64
}

impl ScriptCache {
    /// The script, for a call: an EVAL script becomes the most recently used.
    pub fn get_for_call(&mut self, sha: &Sha) -> Option<&CachedScript> {
        match self.loaded.get(sha) {
            Some(script) => Some(script),
            None => self.by_eval.get(sha),
        }
    }

    /// The script, without counting it as used.
    pub fn peek(&self, sha: &Sha) -> Option<&CachedScript> {
        self.loaded.get(sha).or_else(|| self.by_eval.peek(sha))
    }

    pub fn contains(&self, sha: &Sha) -> bool {
        self.loaded.contains_key(sha) || self.by_eval.contains(sha)
    }

    /// Adds a script that came through EVAL, then drops the least recently used EVAL
    /// scripts beyond `capacity` (0: no bound). Returns the compiled code of the dropped
    /// scripts, for the caller to release from the Lua state.
    pub fn insert_from_eval(
        &mut self,
        sha: Sha,
        script: CachedScript,
        capacity: usize,
    ) -> Vec<CompiledId> {
        self.memory += entry_size(&script.body);
        self.by_eval.put(sha, script);
        let mut dropped = Vec::new();
        while capacity > 0 && self.by_eval.len() > capacity {
            let Some((_, old)) = self.by_eval.pop_lru() else {
                break;
            };
            self.memory -= entry_size(&old.body);
            dropped.push(old.compiled);
        }
        dropped
    }

    /// Adds a script that came through SCRIPT LOAD.
    pub fn insert_loaded(&mut self, sha: Sha, script: CachedScript) {
        self.memory += entry_size(&script.body);
        self.loaded.insert(sha, script);
    }

    /// SCRIPT LOAD of a script EVAL already cached: it is kept for good from now on.
    pub fn pin(&mut self, sha: &Sha) {
        if let Some(script) = self.by_eval.pop(sha) {
            self.loaded.insert(*sha, script);
        }
    }

    /// Compiles every cached script again into another (fresh) VM; a script that no longer
    /// compiles is dropped.
    pub fn recompile_into(&mut self, vm: &mut moonkv_lua::LuaVm) {
        let mut recompile = |script: &mut CachedScript| {
            let at = super::parse_eval_shebang(&script.body).map_or(0, |(_, at)| at);
            match vm.compile(&script.body[at..]) {
                Ok(id) => {
                    script.compiled = id;
                    true
                }
                Err(_) => false,
            }
        };
        self.loaded.retain(|_, script| recompile(script));
        let failed: Vec<Sha> = self
            .by_eval
            .iter_mut()
            .filter_map(|(sha, script)| (!recompile(script)).then_some(*sha))
            .collect();
        for sha in failed {
            self.by_eval.pop(&sha);
        }
        self.memory = self
            .loaded
            .values()
            .chain(self.by_eval.iter().map(|(_, s)| s))
            .map(|s| entry_size(&s.body))
            .sum();
    }

    pub fn len(&self) -> usize {
        self.loaded.len() + self.by_eval.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn memory(&self) -> usize {
        self.memory
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(n: i32) -> CachedScript {
        CachedScript {
            body: Bytes::from(format!("return {n}")),
            flags: ScriptFlags::default(),
            compiled: n,
        }
    }

    fn sha(n: u8) -> Sha {
        [n; 40]
    }

    #[test]
    fn eval_scripts_are_bounded_and_loaded_ones_stay() {
        let mut cache = ScriptCache::default();
        cache.insert_loaded(sha(0), script(0));
        for n in 1..=3 {
            assert!(cache
                .insert_from_eval(sha(n), script(n as i32), 3)
                .is_empty());
        }
        // Calling 1 makes 2 the least recently used.
        assert!(cache.get_for_call(&sha(1)).is_some());
        assert_eq!(cache.insert_from_eval(sha(4), script(4), 3), vec![2]);
        assert!(!cache.contains(&sha(2)));
        // A pinned script leaves the list: room for one more EVAL script.
        cache.pin(&sha(3));
        assert!(cache.insert_from_eval(sha(5), script(5), 3).is_empty());
        assert_eq!(cache.insert_from_eval(sha(6), script(6), 3), vec![1]);
        assert!(cache.contains(&sha(0)) && cache.contains(&sha(3)));
        assert_eq!(cache.len(), 5);
        assert_eq!(
            cache.memory(),
            [0, 3, 4, 5, 6]
                .iter()
                .map(|n| entry_size(format!("return {n}").as_bytes()))
                .sum::<usize>()
        );
    }
}
