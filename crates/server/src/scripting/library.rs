//! FUNCTION libraries: loading (metadata, engine, registered functions), the function
//! namespace shared by all libraries, and the views FUNCTION LIST/STATS/DUMP need.

use super::{split_args, ScriptFlags};
use bytes::Bytes;
use moonkv_lua::{CompiledId, LuaVm, RegisteredFunction};
use std::collections::{BTreeMap, HashMap};

pub struct Function {
    pub name: String,
    pub description: Option<String>,
    pub flags: ScriptFlags,
    pub callback: CompiledId,
}

pub struct Library {
    pub name: String,
    pub engine: &'static str,
    /// The code as loaded, shebang included (FUNCTION LIST WITHCODE, DUMP).
    pub code: Bytes,
    pub functions: BTreeMap<String, Function>,
}

#[derive(Default)]
pub struct Libraries {
    pub libraries: BTreeMap<String, Library>,
    /// Lowercase function name → library name (function names are case-insensitive).
    functions: HashMap<String, String>,
}

/// A library's `#!<engine> name=<name>` header.
struct Metadata {
    engine: String,
    name: String,
    /// Offset of the code after the header line (its newline kept for line numbers).
    code_at: usize,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn parse_metadata(code: &[u8]) -> Result<Metadata, String> {
    if !code.starts_with(b"#!") {
        return Err("ERR Missing library metadata".into());
    }
    let Some(end) = code.iter().position(|&b| b == b'\n') else {
        return Err("ERR Invalid library metadata".into());
    };
    let line = String::from_utf8_lossy(&code[..end]).into_owned();
    let parts = split_args(&line)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| "ERR Invalid library metadata".to_string())?;
    let engine = parts[0][2..].to_string();
    let mut name = None;
    for part in &parts[1..] {
        if part.len() >= 5 && part[..5].eq_ignore_ascii_case("name=") {
            if name.is_some() {
                return Err(
                    "ERR Invalid metadata value, name argument was given multiple times".into(),
                );
            }
            name = Some(part[5..].to_string());
            continue;
        }
        return Err(format!("ERR Invalid metadata value given: {part}"));
    }
    let name = name.ok_or_else(|| "ERR Library name was not given".to_string())?;
    Ok(Metadata {
        engine,
        name,
        code_at: end,
    })
}

impl Libraries {
    pub fn function(&self, name: &str) -> Option<&Function> {
        let library = self.functions.get(&name.to_ascii_lowercase())?;
        self.libraries
            .get(library)?
            .functions
            .values()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }

    /// The name of the library that defines function `name` (case-insensitive).
    pub fn library_of(&self, name: &str) -> Option<&str> {
        self.functions
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    pub fn function_count(&self) -> usize {
        self.functions.len()
    }

    /// Approximate bytes held by library code and function records.
    pub fn memory(&self) -> usize {
        self.libraries
            .values()
            .map(|l| {
                l.code.len()
                    + l.name.len()
                    + 64
                    + l.functions
                        .values()
                        .map(|f| f.name.len() + 96)
                        .sum::<usize>()
            })
            .sum()
    }

    /// FUNCTION LOAD: compiles and registers a library, replacing one of the same name when
    /// `replace`. Returns the library name, or Redis's error text.
    pub fn load(&mut self, vm: &mut LuaVm, code: Bytes, replace: bool) -> Result<String, String> {
        let md = parse_metadata(&code)?;
        if !valid_name(&md.name) {
            return Err("ERR Library names can only contain letters, numbers, or underscores(_) and must be at least one character long".into());
        }
        if !md.engine.eq_ignore_ascii_case("lua") {
            return Err(format!("ERR Engine '{}' not found", md.engine));
        }
        if self.libraries.contains_key(&md.name) && !replace {
            return Err(format!("ERR Library '{}' already exists", md.name));
        }
        let registered = vm
            .load_library(&code[md.code_at..])
            .map_err(|e| format!("ERR {e}"))?;
        let release = |vm: &mut LuaVm, fs: Vec<RegisteredFunction>| {
            fs.into_iter().for_each(|f| vm.release(f.callback))
        };
        if registered.is_empty() {
            return Err("ERR No functions registered".into());
        }
        for f in &registered {
            if self
                .functions
                .get(&f.name.to_ascii_lowercase())
                .is_some_and(|owner| *owner != md.name)
            {
                let msg = format!("ERR Function {} already exists", f.name);
                release(vm, registered);
                return Err(msg);
            }
        }
        if let Some(old) = self.libraries.remove(&md.name) {
            self.unlink(vm, old);
        }
        let mut functions = BTreeMap::new();
        for f in registered {
            let flags = f
                .flags
                .iter()
                .filter_map(|n| ScriptFlags::parse_name(n))
                .fold(ScriptFlags::default(), ScriptFlags::with);
            self.functions
                .insert(f.name.to_ascii_lowercase(), md.name.clone());
            functions.insert(
                f.name.clone(),
                Function {
                    name: f.name,
                    description: f.description,
                    flags,
                    callback: f.callback,
                },
            );
        }
        self.libraries.insert(
            md.name.clone(),
            Library {
                name: md.name.clone(),
                engine: "LUA",
                code,
                functions,
            },
        );
        Ok(md.name)
    }

    /// Removes a library's functions from the namespace and the VM.
    fn unlink(&mut self, vm: &mut LuaVm, library: Library) {
        for (name, f) in library.functions {
            self.functions.remove(&name.to_ascii_lowercase());
            vm.release(f.callback);
        }
    }

    /// The same libraries, loaded again into another (fresh) VM. A library that fails to load
    /// there is dropped, with a warning.
    pub fn reload_into(&self, vm: &mut LuaVm) -> Libraries {
        let mut fresh = Libraries::default();
        for library in self.libraries.values() {
            if let Err(e) = fresh.load(vm, library.code.clone(), false) {
                crate::log::warning(&format!(
                    "Library '{}' could not be loaded again: {e}",
                    library.name
                ));
            }
        }
        fresh
    }

    /// FUNCTION DELETE.
    pub fn delete(&mut self, vm: &mut LuaVm, name: &str) -> bool {
        match self.libraries.remove(name) {
            Some(library) => {
                self.unlink(vm, library);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(
        libs: &mut Libraries,
        vm: &mut LuaVm,
        code: &str,
        replace: bool,
    ) -> Result<String, String> {
        libs.load(vm, Bytes::copy_from_slice(code.as_bytes()), replace)
    }

    #[test]
    fn libraries_load_replace_and_conflict_like_redis() {
        let mut vm = LuaVm::new(moonkv_lua::VmKind::Functions);
        let mut libs = Libraries::default();
        let lib1 = "#!lua name=lib1\nredis.register_function('f1', function() return 1 end)";
        assert_eq!(load(&mut libs, &mut vm, lib1, false).unwrap(), "lib1");
        assert_eq!(
            load(&mut libs, &mut vm, lib1, false).unwrap_err(),
            "ERR Library 'lib1' already exists"
        );
        assert_eq!(load(&mut libs, &mut vm, lib1, true).unwrap(), "lib1");
        let clash = "#!lua name=lib2\nredis.register_function('f1', function() return 2 end)";
        assert_eq!(
            load(&mut libs, &mut vm, clash, false).unwrap_err(),
            "ERR Function f1 already exists"
        );
        assert_eq!(
            load(&mut libs, &mut vm, "#!lua name=x\nlocal a = 1", false).unwrap_err(),
            "ERR No functions registered"
        );
        assert_eq!(
            load(&mut libs, &mut vm, "return 1", false).unwrap_err(),
            "ERR Missing library metadata"
        );
        assert_eq!(
            load(&mut libs, &mut vm, "#!lua name=a foo=bar\n", false).unwrap_err(),
            "ERR Invalid metadata value given: foo=bar"
        );
        assert_eq!(
            load(&mut libs, &mut vm, "#!lua\n", false).unwrap_err(),
            "ERR Library name was not given"
        );
        assert_eq!(
            load(&mut libs, &mut vm, "#!js name=a\n", false).unwrap_err(),
            "ERR Engine 'js' not found"
        );
        let bad = load(
            &mut libs,
            &mut vm,
            "#!lua name=b\nredis.register_function('f', function() end",
            false,
        )
        .unwrap_err();
        assert!(
            bad.starts_with("ERR Error compiling function: user_function:"),
            "{bad}"
        );
        let undefined = load(
            &mut libs,
            &mut vm,
            "#!lua name=b\nredis.call('ping')",
            false,
        )
        .unwrap_err();
        assert!(
            undefined.starts_with("ERR Error registering functions:"),
            "{undefined}"
        );
        assert!(libs.delete(&mut vm, "lib1"));
        assert!(libs.function("f1").is_none());
    }
}
