//! The Lua environment on its own: scripts run against a host that echoes commands, with
//! replies captured as RESP text.

use bytes::Bytes;
use moonkv_lua::{Host, LuaVm, ScriptError, VmKind};
use moonkv_protocol::{Protocol, ReplySink, RespWriter};

/// Answers every command with an array of its arguments, except `FAIL`, which errors.
struct EchoHost;

impl Host for EchoHost {
    fn call(&mut self, args: &[Bytes], reply: &mut dyn ReplySink) -> Result<(), String> {
        if args[0].eq_ignore_ascii_case(b"fail") {
            reply.error("ERR failed on purpose");
            return Ok(());
        }
        if args[0].eq_ignore_ascii_case(b"refuse") {
            return Err("This Redis command is not allowed from script".into());
        }
        reply.array(args.len());
        for a in args {
            reply.bulk(a);
        }
        Ok(())
    }
    fn set_repl(&mut self, _flags: i64) {}
    fn log(&mut self, _level: i64, _message: &[u8]) {}
    fn acl_check(&mut self, _args: &[Bytes]) -> Option<bool> {
        Some(true)
    }
}

fn eval(vm: &mut LuaVm, body: &str, keys: &[&str], args: &[&str]) -> Result<String, ScriptError> {
    let f = vm.compile(body.as_bytes()).map_err(|m| ScriptError { message: m, counted: false })?;
    let keys: Vec<Bytes> = keys.iter().map(|k| Bytes::copy_from_slice(k.as_bytes())).collect();
    let args: Vec<Bytes> = args.iter().map(|k| Bytes::copy_from_slice(k.as_bytes())).collect();
    let mut out = Vec::new();
    let mut w = RespWriter::new(&mut out, Protocol::Resp2);
    let r = vm.run(f, "sha", &keys, &args, &mut EchoHost, &mut w);
    vm.release(f);
    r.map(|_| String::from_utf8_lossy(&out).into_owned())
}

#[test]
fn returns_convert_like_redis() {
    let mut vm = LuaVm::new(VmKind::Eval);
    assert_eq!(eval(&mut vm, "return 1", &[], &[]).unwrap(), ":1\r\n");
    assert_eq!(eval(&mut vm, "return 3.99", &[], &[]).unwrap(), ":3\r\n");
    assert_eq!(eval(&mut vm, "return 'x'", &[], &[]).unwrap(), "$1\r\nx\r\n");
    assert_eq!(eval(&mut vm, "return {1,2,nil,4}", &[], &[]).unwrap(), "*2\r\n:1\r\n:2\r\n");
    assert_eq!(eval(&mut vm, "return true", &[], &[]).unwrap(), ":1\r\n");
    assert_eq!(eval(&mut vm, "return false", &[], &[]).unwrap(), "$-1\r\n");
    assert_eq!(eval(&mut vm, "return {ok='fine'}", &[], &[]).unwrap(), "+fine\r\n");
    assert_eq!(eval(&mut vm, "return {KEYS[1], ARGV[1]}", &["k"], &["a"]).unwrap(), "*2\r\n$1\r\nk\r\n$1\r\na\r\n");
    assert_eq!(eval(&mut vm, "return redis.call('echo', 'hi', 5)", &[], &[]).unwrap(), "*3\r\n$4\r\necho\r\n$2\r\nhi\r\n$1\r\n5\r\n");
}

#[test]
fn errors_carry_the_script_position() {
    let mut vm = LuaVm::new(VmKind::Eval);
    let e = eval(&mut vm, "return redis.call('fail')", &[], &[]).unwrap_err();
    assert_eq!(e.message, "ERR failed on purpose script: sha, on @user_script:1.");
    assert!(e.counted);
    let e = eval(&mut vm, "\nreturn a", &[], &[]).unwrap_err();
    assert_eq!(e.message, "ERR Script attempted to access nonexistent global variable 'a' script: sha, on @user_script:2.");
    let e = eval(&mut vm, "a = 1", &[], &[]).unwrap_err();
    assert!(e.message.contains("Attempt to modify a readonly table"), "{}", e.message);
    let e = eval(&mut vm, "return redis.call('refuse')", &[], &[]).unwrap_err();
    assert_eq!(e.message, "ERR This Redis command is not allowed from script script: sha, on @user_script:1.");
    let e = eval(&mut vm, "return {err='My Error'}", &[], &[]).unwrap_err();
    assert_eq!(e.message, "My Error");
    assert_eq!(eval(&mut vm, "local ok, e = pcall(function() redis.call('fail') end) return e", &[], &[]).unwrap(), "$21\r\nERR failed on purpose\r\n");
}

#[test]
fn sandbox_and_readonly_tables() {
    let mut vm = LuaVm::new(VmKind::Eval);
    for code in ["rawset(_G, 'x', 1)", "setmetatable(_G, {})", "redis.call = nil", "string.x = 1", "bit.x = 1", "getmetatable('').__index = {}"] {
        let e = eval(&mut vm, code, &[], &[]).unwrap_err();
        assert!(e.message.contains("Attempt to modify a readonly table"), "{code}: {}", e.message);
    }
    for name in ["print", "loadfile", "dofile", "io", "os", "require", "setfenv", "getfenv", "newproxy", "debug"] {
        let e = eval(&mut vm, &format!("return {name}"), &[], &[]).unwrap_err();
        assert!(e.message.contains(&format!("nonexistent global variable '{name}'")), "{name}: {}", e.message);
    }
    // Bytecode is parsed as (invalid) source text, never loaded.
    let refused = eval(&mut vm, "local f, e = loadstring(string.dump(function() return 1 end)) return {type(f), e}", &[], &[]).unwrap();
    assert!(refused.starts_with("*2\r\n$3\r\nnil\r\n") && refused.contains("unexpected symbol"), "{refused}");
    assert_eq!(eval(&mut vm, "return bit.tohex(65535, -2147483648)", &[], &[]).unwrap(), "$8\r\n0000FFFF\r\n");
    assert_eq!(eval(&mut vm, "return redis.sha1hex('Pizza & Mandolino')", &[], &[]).unwrap(), "$40\r\n74822d82031af7493c20eefa13bd07ec4fada82f\r\n");
}
