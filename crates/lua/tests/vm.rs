//! The Lua environment on its own: scripts run against a host that echoes commands, with
//! replies captured as RESP text.

use bytes::Bytes;
use moonkv_lua::{Host, LuaVm, ScriptError, VmKind};
use moonkv_protocol::{ErrorReply, Protocol, ReplySink, RespWriter};

/// Answers every command with an array of its arguments, except `FAIL`, which errors.
struct EchoHost;

impl Host for EchoHost {
    fn call(&mut self, args: &[Bytes], reply: &mut dyn ReplySink) -> Result<(), ErrorReply> {
        if args[0].eq_ignore_ascii_case(b"fail") {
            reply.error("ERR failed on purpose");
            return Ok(());
        }
        if args[0].eq_ignore_ascii_case(b"refuse") {
            return Err(ErrorReply {
                message: "ERR This Redis command is not allowed from script".into(),
                counted: true,
            });
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
    let f = vm.compile(body.as_bytes()).map_err(|m| ScriptError {
        message: m,
        counted: false,
        raised: true,
    })?;
    let keys: Vec<Bytes> = keys
        .iter()
        .map(|k| Bytes::copy_from_slice(k.as_bytes()))
        .collect();
    let args: Vec<Bytes> = args
        .iter()
        .map(|k| Bytes::copy_from_slice(k.as_bytes()))
        .collect();
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
    assert_eq!(
        eval(&mut vm, "return 'x'", &[], &[]).unwrap(),
        "$1\r\nx\r\n"
    );
    assert_eq!(
        eval(&mut vm, "return {1,2,nil,4}", &[], &[]).unwrap(),
        "*2\r\n:1\r\n:2\r\n"
    );
    assert_eq!(eval(&mut vm, "return true", &[], &[]).unwrap(), ":1\r\n");
    assert_eq!(eval(&mut vm, "return false", &[], &[]).unwrap(), "$-1\r\n");
    assert_eq!(
        eval(&mut vm, "return {ok='fine'}", &[], &[]).unwrap(),
        "+fine\r\n"
    );
    assert_eq!(
        eval(&mut vm, "return {KEYS[1], ARGV[1]}", &["k"], &["a"]).unwrap(),
        "*2\r\n$1\r\nk\r\n$1\r\na\r\n"
    );
    assert_eq!(
        eval(&mut vm, "return redis.call('echo', 'hi', 5)", &[], &[]).unwrap(),
        "*3\r\n$4\r\necho\r\n$2\r\nhi\r\n$1\r\n5\r\n"
    );
}

#[test]
fn errors_carry_the_script_position() {
    let mut vm = LuaVm::new(VmKind::Eval);
    let e = eval(&mut vm, "return redis.call('fail')", &[], &[]).unwrap_err();
    assert_eq!(
        e.message,
        "ERR failed on purpose script: sha, on @user_script:1."
    );
    assert!(e.counted);
    let e = eval(&mut vm, "\nreturn a", &[], &[]).unwrap_err();
    assert_eq!(e.message, "ERR user_script:2: Script attempted to access nonexistent global variable 'a' script: sha, on @user_script:2.");
    let e = eval(&mut vm, "a = 1", &[], &[]).unwrap_err();
    assert!(
        e.message.contains("Attempt to modify a readonly table"),
        "{}",
        e.message
    );
    let e = eval(&mut vm, "return redis.call('refuse')", &[], &[]).unwrap_err();
    assert_eq!(
        e.message,
        "ERR This Redis command is not allowed from script script: sha, on @user_script:1."
    );
    let e = eval(&mut vm, "return {err='My Error'}", &[], &[]).unwrap_err();
    assert_eq!(e.message, "My Error");
    assert_eq!(
        eval(
            &mut vm,
            "local ok, e = pcall(function() redis.call('fail') end) return e",
            &[],
            &[]
        )
        .unwrap(),
        "$21\r\nERR failed on purpose\r\n"
    );
}

#[test]
fn sandbox_and_readonly_tables() {
    let mut vm = LuaVm::new(VmKind::Eval);
    for code in [
        "rawset(_G, 'x', 1)",
        "setmetatable(_G, {})",
        "redis.call = nil",
        "string.x = 1",
        "bit.x = 1",
        "getmetatable('').__index = {}",
    ] {
        let e = eval(&mut vm, code, &[], &[]).unwrap_err();
        assert!(
            e.message.contains("Attempt to modify a readonly table"),
            "{code}: {}",
            e.message
        );
    }
    // `os` has `clock` only.
    assert_eq!(
        eval(&mut vm, "return type(os.clock())", &[], &[]).unwrap(),
        "$6\r\nnumber\r\n"
    );
    let e = eval(&mut vm, "return os.time()", &[], &[]).unwrap_err();
    assert!(
        e.message
            .contains("attempt to call field 'time' (a nil value)"),
        "{}",
        e.message
    );
    for name in [
        "print", "loadfile", "dofile", "io", "require", "setfenv", "getfenv", "newproxy", "debug",
    ] {
        let e = eval(&mut vm, &format!("return {name}"), &[], &[]).unwrap_err();
        assert!(
            e.message
                .contains(&format!("nonexistent global variable '{name}'")),
            "{name}: {}",
            e.message
        );
    }
    // Bytecode is parsed as (invalid) source text, never loaded.
    let refused = eval(
        &mut vm,
        "local f, e = loadstring(string.dump(function() return 1 end)) return {type(f), e}",
        &[],
        &[],
    )
    .unwrap();
    assert!(
        refused.starts_with("*2\r\n$3\r\nnil\r\n") && refused.contains("unexpected symbol"),
        "{refused}"
    );
    assert_eq!(
        eval(&mut vm, "return bit.tohex(65535, -2147483648)", &[], &[]).unwrap(),
        "$8\r\n0000FFFF\r\n"
    );
    assert_eq!(
        eval(
            &mut vm,
            "return redis.sha1hex('Pizza & Mandolino')",
            &[],
            &[]
        )
        .unwrap(),
        "$40\r\n74822d82031af7493c20eefa13bd07ec4fada82f\r\n"
    );
}

#[test]
fn cjson_matches_redis() {
    let mut vm = LuaVm::new(VmKind::Eval);
    let run = |vm: &mut LuaVm, code: &str| eval(vm, code, &[], &[]);
    assert_eq!(
        run(&mut vm, "return cjson.encode({1,2,3,'a/b',true,false})").unwrap(),
        "$25\r\n[1,2,3,\"a\\/b\",true,false]\r\n"
    );
    assert_eq!(
        run(&mut vm, "return cjson.encode({})").unwrap(),
        "$2\r\n{}\r\n"
    );
    assert_eq!(
        run(&mut vm, "return cjson.encode(0.1)").unwrap(),
        "$3\r\n0.1\r\n"
    );
    assert_eq!(
        run(&mut vm, "return cjson.encode(1/3)").unwrap(),
        "$16\r\n0.33333333333333\r\n"
    );
    assert_eq!(
        run(&mut vm, "return cjson.encode({a=cjson.null})").unwrap(),
        "$10\r\n{\"a\":null}\r\n"
    );
    assert_eq!(
        run(&mut vm, "return cjson.encode('\\1\\n')").unwrap(),
        "$10\r\n\"\\u0001\\n\"\r\n"
    );
    let sparse = run(&mut vm, "return cjson.encode({[1]=1, [20]=2})").unwrap_err();
    assert!(
        sparse
            .message
            .contains("Cannot serialise table: excessively sparse array"),
        "{}",
        sparse.message
    );
    assert_eq!(
        run(
            &mut vm,
            "return table.concat(cjson.decode('[0.0, -5e3, -1, 0.3e-3, 1023.2, 0e10]'), ' ')"
        )
        .unwrap(),
        "$26\r\n0 -5000 -1 0.0003 1023.2 0\r\n"
    );
    assert_eq!(
        run(
            &mut vm,
            "local t = cjson.decode('{\"a\":[1,{\"b\":\"\\\\u00e9\"}]}') return t.a[2].b"
        )
        .unwrap(),
        "$2\r\n\u{e9}\r\n"
    );
    let bad = run(&mut vm, "return cjson.decode('[1,]')").unwrap_err();
    assert!(
        bad.message
            .contains("Expected value but found T_ARR_END at character 4"),
        "{}",
        bad.message
    );
    let bad = run(&mut vm, "return cjson.decode('{\"a\" 1}')").unwrap_err();
    assert!(
        bad.message
            .contains("Expected colon but found T_NUMBER at character 6"),
        "{}",
        bad.message
    );
    assert_eq!(
        run(&mut vm, "return cjson.decode('null') == cjson.null").unwrap(),
        ":1\r\n"
    );
}

#[test]
fn cmsgpack_and_struct_match_redis() {
    let mut vm = LuaVm::new(VmKind::Eval);
    let hex = |code: &str| {
        format!("local e = {code} local h = '' for i = 1, #e do h = h .. string.format('%02x', string.byte(e, i)) end return h")
    };
    let run = |vm: &mut LuaVm, code: &str| eval(vm, code, &[], &[]);
    assert_eq!(
        run(&mut vm, &hex("cmsgpack.pack(0.1)")).unwrap(),
        "$18\r\ncb3fb999999999999a\r\n"
    );
    assert_eq!(
        run(&mut vm, &hex("cmsgpack.pack(-1099511627776)")).unwrap(),
        "$18\r\nd3ffffff0000000000\r\n"
    );
    assert_eq!(
        run(&mut vm, &hex("cmsgpack.pack({1,2,3}, 'ab', -5, 300)")).unwrap(),
        "$22\r\n93010203a26162fbcd012c\r\n"
    );
    assert_eq!(
        run(
            &mut vm,
            "local t = cmsgpack.unpack(cmsgpack.pack({a={1,2},b='x'})) return {t.a[2], t.b}"
        )
        .unwrap(),
        "*2\r\n:2\r\n$1\r\nx\r\n"
    );
    assert_eq!(
        run(
            &mut vm,
            "local o, v = cmsgpack.unpack_one(cmsgpack.pack(1, 2), 0) return {o, v}"
        )
        .unwrap(),
        "*2\r\n:1\r\n:1\r\n"
    );
    assert_eq!(
        run(&mut vm, &hex("struct.pack('>i2<HBs', 1, 2, 3, 'ab')")).unwrap(),
        "$16\r\n0001020003616200\r\n"
    );
    assert_eq!(
        run(
            &mut vm,
            "return {struct.unpack('>i2<H', struct.pack('>i2<H', -2, 513))}"
        )
        .unwrap(),
        "*3\r\n:-2\r\n:513\r\n:5\r\n"
    );
    assert_eq!(
        run(&mut vm, "return struct.size('!4bi')").unwrap(),
        ":8\r\n"
    );
}

#[test]
fn math_random_follows_redis_for_a_seed() {
    // Values printed by redis-server 7.0.15 for the same script.
    let mut vm = LuaVm::new(VmKind::Eval);
    assert_eq!(
        eval(
            &mut vm,
            "math.randomseed(7) return {math.random(100), math.random(100)}",
            &[],
            &[]
        )
        .unwrap(),
        "*2\r\n:27\r\n:69\r\n"
    );
    let e = eval(&mut vm, "return math.random(1,0)", &[], &[]).unwrap_err();
    assert_eq!(e.message, "ERR user_script:1: bad argument #2 to 'random' (interval is empty) script: sha, on @user_script:1.");
}

#[test]
fn every_run_sees_only_its_own_keys_and_argv() {
    let mut vm = LuaVm::new(VmKind::Eval);
    assert_eq!(
        eval(
            &mut vm,
            "return #KEYS + #ARGV",
            &["a", "b", "c"],
            &["x", "y"]
        )
        .unwrap(),
        ":5\r\n"
    );
    assert_eq!(
        eval(&mut vm, "return {#KEYS, #ARGV, KEYS[1]}", &["z"], &[]).unwrap(),
        "*3\r\n:1\r\n:0\r\n$1\r\nz\r\n"
    );
    // Whatever a script does to the tables does not reach the next run.
    eval(&mut vm, "KEYS.extra = 1 KEYS[7] = 'x' setmetatable(ARGV, {__index = function() return 'm' end}) return 1", &["k"], &["v"]).unwrap();
    assert_eq!(
        eval(
            &mut vm,
            "return {tostring(KEYS.extra), tostring(KEYS[7]), tostring(ARGV[9]), #KEYS}",
            &["k"],
            &[]
        )
        .unwrap(),
        "*4\r\n$3\r\nnil\r\n$3\r\nnil\r\n$3\r\nnil\r\n:1\r\n"
    );
}

/// A host for the limit tests: `BIG n` replies an array of n distinct 1 KiB strings; every
/// `interrupt_after` hook ticks it asks the script to stop.
struct LimitHost {
    ticks: usize,
    interrupt_after: Option<usize>,
}

impl Host for LimitHost {
    fn call(&mut self, args: &[Bytes], reply: &mut dyn ReplySink) -> Result<(), ErrorReply> {
        if args[0].eq_ignore_ascii_case(b"big") {
            let n: usize = std::str::from_utf8(&args[1]).unwrap().parse().unwrap();
            reply.array(n);
            for i in 0..n {
                let mut s = format!("{i:08}").into_bytes();
                s.resize(1024, b'x');
                reply.bulk(&s);
            }
            return Ok(());
        }
        reply.simple("OK");
        Ok(())
    }
    fn set_repl(&mut self, _flags: i64) {}
    fn log(&mut self, _level: i64, _message: &[u8]) {}
    fn acl_check(&mut self, _args: &[Bytes]) -> Option<bool> {
        Some(true)
    }
    fn interrupt(&mut self) -> Option<String> {
        self.ticks += 1;
        match self.interrupt_after {
            Some(n) if self.ticks >= n => Some("-ERR stopped by the host".into()),
            _ => None,
        }
    }
}

fn run_with(vm: &mut LuaVm, host: &mut LimitHost, body: &str) -> Result<String, ScriptError> {
    let f = vm.compile(body.as_bytes()).expect("compiles");
    let mut out = Vec::new();
    let mut w = RespWriter::new(&mut out, Protocol::Resp2);
    let r = vm.run(f, "sha", &[], &[], host, &mut w);
    vm.release(f);
    r.map(|_| String::from_utf8_lossy(&out).into_owned())
}

fn limit_host() -> LimitHost {
    LimitHost {
        ticks: 0,
        interrupt_after: None,
    }
}

#[test]
fn memory_limit_fails_the_script_and_keeps_the_state_usable() {
    let mut vm = LuaVm::new(VmKind::Eval);
    let mut host = limit_host();
    let baseline = vm.used_memory();
    vm.set_memory_limit(Some(4 << 20));
    let cases = [
        // Lua's own C functions allocating in Lua mode.
        "return string.rep('x', 8 * 1024 * 1024)",
        "local t = {} for i = 1, 1e7 do t[i] = i end return #t",
        "local t = {} for i = 1, 1e5 do t[i] = string.rep('y', 100) .. i end return table.concat(t)",
        // Rust library functions building output outside the Lua heap.
        "local t = {} for i = 1, 3e4 do t[i] = string.rep('z', 50) .. i end return cjson.encode(t)",
        "local t = {} for i = 1, 3e4 do t[i] = string.rep('z', 50) .. i end return cmsgpack.pack(t)",
        // A command reply too big for the budget, built in Rust mode.
        "return #redis.call('big', '10000')",
        "return #redis.pcall('big', '10000')",
    ];
    for body in cases {
        let err = run_with(&mut vm, &mut host, body).expect_err(body);
        assert!(
            err.message.starts_with(
                "ERR Lua memory limit reached: 'script-memory-limit' is 4194304 bytes"
            ),
            "{body}: {}",
            err.message
        );
        // The state is usable and the memory is back.
        assert_eq!(run_with(&mut vm, &mut host, "return 1").unwrap(), ":1\r\n");
        assert!(
            vm.used_memory() < baseline + (1 << 20),
            "{body}: {} bytes left after the failure (baseline {baseline})",
            vm.used_memory()
        );
    }
    // A script may catch the memory error and go on within its budget.
    assert_eq!(
        run_with(
            &mut vm,
            &mut host,
            "local ok = pcall(string.rep, 'x', 8 * 1024 * 1024) return tostring(ok)"
        )
        .unwrap(),
        "$5\r\nfalse\r\n"
    );
    // Within the budget everything works, and without a limit bigger runs do too.
    assert_eq!(
        run_with(&mut vm, &mut host, "return #redis.call('big', '100')").unwrap(),
        ":100\r\n"
    );
    vm.set_memory_limit(None);
    assert_eq!(
        run_with(&mut vm, &mut host, "return #redis.call('big', '10000')").unwrap(),
        ":10000\r\n"
    );
}

#[test]
fn a_panic_in_a_library_function_is_contained() {
    let mut vm = LuaVm::new(VmKind::Eval);
    for body in [
        "return cjson.encode({1, 2})",
        "return redis.call('echo', 'x')",
        "return bit.band(1, 3)",
        "return struct.pack('>I2', 1)",
    ] {
        vm.panic_in_next_library_call();
        let err = eval(&mut vm, body, &[], &[]).expect_err(body);
        assert!(
            err.message
                .contains("internal error in a moonkv script function"),
            "{body}: {}",
            err.message
        );
        // The next run works, redis.call included (no call is left "in progress").
        assert_eq!(
            eval(&mut vm, "return redis.call('echo', 'after')", &[], &[]).unwrap(),
            "*2\r\n$4\r\necho\r\n$5\r\nafter\r\n"
        );
    }
}

#[test]
fn the_host_can_stop_a_running_script_even_through_pcall() {
    let mut vm = LuaVm::new(VmKind::Eval);
    for body in [
        "while true do end",
        "local f = function() while true do end end while true do pcall(f) end",
        "local f = function() while 1 do redis.call('ping') end end while 1 do pcall(f) end",
        // Coroutines inherit the hook; a fresh one per round cannot swallow the stop either.
        "while true do coroutine.resume(coroutine.create(function() while true do end end)) end",
    ] {
        let mut host = LimitHost {
            ticks: 0,
            interrupt_after: Some(3),
        };
        let err = run_with(&mut vm, &mut host, body).expect_err(body);
        assert!(
            err.message.starts_with("ERR stopped by the host"),
            "{body}: {}",
            err.message
        );
        let mut calm = limit_host();
        assert_eq!(run_with(&mut vm, &mut calm, "return 2").unwrap(), ":2\r\n");
    }
}
