//! EVAL's script cache: scripts by the SHA1 of their body, compiled once. Like Redis's it is
//! volatile (gone after SCRIPT FLUSH or a restart) and unbounded.

use super::ScriptFlags;
use bytes::Bytes;
use moonkv_lua::CompiledId;
use std::collections::HashMap;

/// A SHA1 as 40 lowercase hex digits.
pub type Sha = [u8; 40];

pub struct CachedScript {
    pub body: Bytes,
    pub flags: ScriptFlags,
    pub compiled: CompiledId,
}

#[derive(Default)]
pub struct ScriptCache {
    scripts: HashMap<Sha, CachedScript, foldhash::fast::RandomState>,
    /// Bytes held by bodies and SHA1s (INFO used_memory_scripts_eval).
    memory: usize,
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
    pub fn get(&self, sha: &Sha) -> Option<&CachedScript> {
        self.scripts.get(sha)
    }

    pub fn contains(&self, sha: &Sha) -> bool {
        self.scripts.contains_key(sha)
    }

    pub fn insert(&mut self, sha: Sha, script: CachedScript) {
        self.memory += entry_size(&script.body);
        self.scripts.insert(sha, script);
    }

    /// Compiles every cached script again into another (fresh) VM; a script that no longer
    /// compiles is dropped.
    pub fn recompile_into(&mut self, vm: &mut moonkv_lua::LuaVm) {
        self.scripts.retain(|_, script| {
            let at = super::parse_eval_shebang(&script.body).map_or(0, |(_, at)| at);
            match vm.compile(&script.body[at..]) {
                Ok(id) => {
                    script.compiled = id;
                    true
                }
                Err(_) => false,
            }
        });
    }

    pub fn len(&self) -> usize {
        self.scripts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scripts.is_empty()
    }

    pub fn memory(&self) -> usize {
        self.memory
    }
}
