//! Builds the Lua 5.1.5 that Redis scripts run on: the stock sources shipped in the `lua-src`
//! crate, copied to OUT_DIR and changed the way Redis 7.0.15 (as Debian ships it) changes them,
//! then compiled into a static library that `mlua-sys` (feature `external`) binds to.
//!
//! The changes, each applied to an exact anchor so a different source version fails the build
//! instead of silently building something else:
//! - a query for tables whose hash part is empty (a fast path for converting arrays);
//! - read-only tables: a flag on every table, checked by assignment, rawset, rawseti and
//!   setmetatable ("Attempt to modify a readonly table"), with two API functions to set and
//!   query it;
//! - no binary chunks: the loader always parses text, so precompiled bytecode is refused;
//! - the string hash reads every byte (stock 5.1 samples long strings), which changes the
//!   iteration order of tables keyed by long strings, as in Redis;
//! - `unpack` counts its range without integer overflow; a parser GC-anchoring fix.

use std::path::{Path, PathBuf};
use std::{env, fs};

const LUA_SRC_VERSION: &str = "551.1.0";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=MOONKV_LUA_SRC");
    println!("cargo:rerun-if-env-changed=MOONKV_LUA_SANITIZE");
    let source = find_lua_sources();
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    let patched = out.join("lua-5.1.5-redis");
    fs::create_dir_all(&patched).expect("create patched source dir");
    let mut c_files = Vec::new();
    for entry in fs::read_dir(&source).expect("read lua sources") {
        let path = entry.expect("dir entry").path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !(name.ends_with(".c") || name.ends_with(".h")) {
            continue;
        }
        let text = fs::read_to_string(&path).expect("read lua source");
        let text = patch(&name, text);
        fs::write(patched.join(&name), text).expect("write patched source");
        // The standalone interpreter and compiler are not part of the library.
        if name.ends_with(".c") && !matches!(name.as_str(), "lua.c" | "luac.c" | "print.c") {
            c_files.push(patched.join(&name));
        }
    }
    c_files.sort();
    let mut build = cc::Build::new();
    build
        .files(&c_files)
        .include(&patched)
        .warnings(false)
        .flag_if_supported("-fno-common");
    if env::var("PROFILE").as_deref() == Ok("debug") {
        build.define("LUA_USE_APICHECK", None);
    }
    // MOONKV_LUA_SANITIZE=address instruments the C Lua for AddressSanitizer, for test runs
    // whose Rust side is built with `-Zsanitizer=address` too (see tests/sanitize.sh).
    match env::var("MOONKV_LUA_SANITIZE").as_deref() {
        Err(_) | Ok("") => {}
        Ok("address") => {
            build
                .flag("-fsanitize=address")
                .flag("-fno-omit-frame-pointer");
        }
        Ok(other) => panic!("MOONKV_LUA_SANITIZE={other}: only `address` is supported"),
    }
    build.compile("moonkv_lua51");
}

/// The `lua-5.1.5` folder of the `lua-src` crate: from MOONKV_LUA_SRC, or from Cargo's
/// registry, where this crate's build-dependency on `lua-src` put it.
fn find_lua_sources() -> PathBuf {
    if let Ok(dir) = env::var("MOONKV_LUA_SRC") {
        return PathBuf::from(dir);
    }
    let cargo_home = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
        .expect("neither CARGO_HOME nor HOME is set");
    let registry = cargo_home.join("registry").join("src");
    let wanted = format!("lua-src-{LUA_SRC_VERSION}");
    if let Ok(indexes) = fs::read_dir(&registry) {
        for index in indexes.flatten() {
            let candidate = index.path().join(&wanted).join("lua-5.1.5");
            if candidate.join("lapi.c").exists() {
                return candidate;
            }
        }
    }
    panic!("Lua 5.1.5 sources of {wanted} not found under {}; set MOONKV_LUA_SRC to its lua-5.1.5 folder", registry.display());
}

/// Replaces the one occurrence of `anchor` in `text`; a missing anchor fails the build.
fn edit(file: &str, text: &mut String, anchor: &str, replacement: &str) {
    let Some(at) = text.find(anchor) else {
        panic!("{file}: patch anchor not found: {anchor:?}");
    };
    text.replace_range(at..at + anchor.len(), replacement);
}

fn patch(file: &str, mut text: String) -> String {
    let t = &mut text;
    match file {
        "lobject.h" => edit(file, t, "lu_byte flags;  /* 1<<p means tagmethod(p) is not present */", "lu_byte flags;  /* 1<<p means tagmethod(p) is not present */\n  lu_byte readonly;  /* moonkv: writes raise an error */"),
        "ltable.c" => {
            edit(file, t, "t->flags = cast_byte(~0);", "t->flags = cast_byte(~0);\n  t->readonly = 0;");
            // Compare the array index without the unsigned wrap-around.
            edit(file, t, "if (cast(unsigned int, key-1) < cast(unsigned int, t->sizearray))", "if (1 <= key && key <= t->sizearray)");
        }
        "lvm.c" => edit(
            file,
            t,
            "      TValue *oldval = luaH_set(L, h, key); /* do a primitive set */",
            "      TValue *oldval;\n      if (h->readonly) luaG_runerror(L, \"Attempt to modify a readonly table\");\n      oldval = luaH_set(L, h, key); /* do a primitive set */",
        ),
        "lapi.c" => {
            edit(file, t, "  api_check(L, ttistable(t));\n  setobj2t(L, luaH_set(L, hvalue(t), L->top-2), L->top-1);", "  api_check(L, ttistable(t));\n  if (hvalue(t)->readonly) luaG_runerror(L, \"Attempt to modify a readonly table\");\n  setobj2t(L, luaH_set(L, hvalue(t), L->top-2), L->top-1);");
            edit(file, t, "  api_check(L, ttistable(o));\n  setobj2t(L, luaH_setnum(L, hvalue(o), n), L->top-1);", "  api_check(L, ttistable(o));\n  if (hvalue(o)->readonly) luaG_runerror(L, \"Attempt to modify a readonly table\");\n  setobj2t(L, luaH_setnum(L, hvalue(o), n), L->top-1);");
            edit(file, t, "    case LUA_TTABLE: {\n      hvalue(obj)->metatable = mt;", "    case LUA_TTABLE: {\n      if (hvalue(obj)->readonly) luaG_runerror(L, \"Attempt to modify a readonly table\");\n      hvalue(obj)->metatable = mt;");
            t.push_str(
                "\n/* moonkv: read-only tables. */\n\
                 LUA_API void moonkv_lua_setreadonly (lua_State *L, int idx, int on) {\n\
                 \x20 const TValue *o = index2adr(L, idx);\n\
                 \x20 api_check(L, ttistable(o));\n\
                 \x20 hvalue(o)->readonly = (lu_byte)(on != 0);\n\
                 }\n\
                 LUA_API int moonkv_lua_isreadonly (lua_State *L, int idx) {\n\
                 \x20 const TValue *o = index2adr(L, idx);\n\
                 \x20 api_check(L, ttistable(o));\n\
                 \x20 return hvalue(o)->readonly;\n\
                 }\n\
                 /* moonkv: true when the table's hash part holds nothing (only array slots). */\n\
                 LUA_API int moonkv_lua_nohashkeys (lua_State *L, int idx) {\n\
                 \x20 const TValue *o = index2adr(L, idx);\n\
                 \x20 Table *t;\n\
                 \x20 api_check(L, ttistable(o));\n\
                 \x20 t = hvalue(o);\n\
                 \x20 return t->lsizenode == 0 && ttisnil(gval(gnode(t, 0)));\n\
                 }\n",
            );
        }
        "ldo.c" => {
            edit(file, t, "  int c = luaZ_lookahead(p->z);", "  luaZ_lookahead(p->z);");
            edit(file, t, "((c == LUA_SIGNATURE[0]) ? luaU_undump : luaY_parser)", "(luaY_parser)");
        }
        "lstring.c" => edit(file, t, "size_t step = (l>>5)+1;", "size_t step = 1;"),
        "lbaselib.c" => {
            edit(file, t, "  int i, e, n;\n  luaL_checktype(L, 1, LUA_TTABLE);", "  int i, e;\n  long long span;\n  int n;\n  luaL_checktype(L, 1, LUA_TTABLE);");
            edit(
                file,
                t,
                "  n = e - i + 1;  /* number of elements */\n  if (n <= 0 || !lua_checkstack(L, n))  /* n <= 0 means arith. overflow */",
                "  span = (long long)e - (long long)i + 1;  /* counted wide: no overflow */\n  n = (int)span;\n  if (span >= INT_MAX || !lua_checkstack(L, n))",
            );
            edit(file, t, "#include <stdlib.h>", "#include <stdlib.h>\n#include <limits.h>");
        }
        "lparser.c" => edit(
            file,
            t,
            "  luaX_setinput(L, &lexstate, z, luaS_new(L, name));",
            "  TString *chunkname = luaS_new(L, name);\n  setsvalue2s(L, L->top, chunkname);  /* keep it reachable while parsing */\n  incr_top(L);\n  luaX_setinput(L, &lexstate, z, chunkname);\n  --L->top;",
        ),
        _ => {}
    }
    text
}
