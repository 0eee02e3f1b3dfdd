//! Lua scripting over TCP: EVAL/EVALSHA and the script cache, conversions both ways, the
//! script rules, errors and their statistics, and FUNCTION/FCALL.

mod common;

use common::{info_field, TestServer};
use redis::{RedisResult, Value};

fn err_text<T: std::fmt::Debug>(r: RedisResult<T>) -> String {
    let e = r.expect_err("expected an error reply");
    format!("{}", e)
}

fn eval<T: redis::FromRedisValue>(
    c: &mut redis::Connection,
    script: &str,
    keys: &[&str],
    args: &[&str],
) -> RedisResult<T> {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(script).arg(keys.len()).arg(keys).arg(args);
    cmd.query(c)
}

#[test]
fn return_values_convert_like_redis() {
    let server = TestServer::start();
    let mut c = server.conn();
    assert_eq!(eval::<i64>(&mut c, "return 3.99", &[], &[]).unwrap(), 3);
    assert_eq!(eval::<i64>(&mut c, "return -3.99", &[], &[]).unwrap(), -3);
    assert_eq!(
        eval::<String>(&mut c, "return 'hello'", &[], &[]).unwrap(),
        "hello"
    );
    // Arrays stop at the first nil; nested tables stay nested.
    let v: Value = eval(&mut c, "return {1, 'two', {3, {4}}, nil, 5}", &[], &[]).unwrap();
    assert_eq!(
        v,
        Value::Array(vec![
            Value::Int(1),
            Value::BulkString(b"two".to_vec()),
            Value::Array(vec![Value::Int(3), Value::Array(vec![Value::Int(4)])])
        ])
    );
    assert_eq!(
        eval::<Value>(&mut c, "return true", &[], &[]).unwrap(),
        Value::Int(1)
    );
    assert_eq!(
        eval::<Value>(&mut c, "return false", &[], &[]).unwrap(),
        Value::Nil
    );
    assert_eq!(
        eval::<Value>(&mut c, "return nil", &[], &[]).unwrap(),
        Value::Nil
    );
    assert_eq!(
        eval::<Value>(&mut c, "return {ok='FINE'}", &[], &[]).unwrap(),
        Value::SimpleString("FINE".into())
    );
    let e = err_text(eval::<Value>(
        &mut c,
        "return {err='MYCODE my message'}",
        &[],
        &[],
    ));
    assert!(
        e.contains("MYCODE") && e.contains("my message") && !e.contains("script:"),
        "{e}"
    );
    let e = err_text(eval::<Value>(
        &mut c,
        "return redis.error_reply('OOPS it broke')",
        &[],
        &[],
    ));
    assert!(e.contains("OOPS") && e.contains("it broke"), "{e}");
    assert_eq!(
        eval::<String>(&mut c, "return redis.status_reply('DONE')", &[], &[]).unwrap(),
        "DONE"
    );
    // KEYS and ARGV, and command replies converted into Lua values.
    let v: Vec<String> = eval(&mut c, "redis.call('SET', KEYS[1], ARGV[1]) return {KEYS[1], redis.call('GET', KEYS[1]), type(redis.call('INCR', 'n'))}", &["k"], &["v"]).unwrap();
    assert_eq!(v, ["k", "v", "number"]);
    assert_eq!(
        eval::<String>(
            &mut c,
            "return type(redis.call('GET', 'missing'))",
            &[],
            &[]
        )
        .unwrap(),
        "boolean"
    );
    assert_eq!(
        eval::<String>(&mut c, "return redis.call('SET', 'x', 1).ok", &[], &[]).unwrap(),
        "OK"
    );
    let e: Vec<String> = eval(
        &mut c,
        "local r = redis.pcall('INCR', KEYS[1]) return {type(r), r.err}",
        &["k"],
        &[],
    )
    .unwrap();
    assert_eq!(e, ["table", "ERR value is not an integer or out of range"]);
}

#[test]
fn binary_data_round_trips_through_scripts() {
    let server = TestServer::start();
    let mut c = server.conn();
    let all: Vec<u8> = (0..=255u8).collect();
    let back: Vec<u8> = redis::cmd("EVAL")
        .arg("redis.call('SET', KEYS[1], ARGV[1]) return redis.call('GET', KEYS[1])")
        .arg(1)
        .arg(&all[..])
        .arg(&all[..])
        .query(&mut c)
        .unwrap();
    assert_eq!(back, all);
    let len: i64 = redis::cmd("EVAL")
        .arg("return #ARGV[1]")
        .arg(0)
        .arg(&all[..])
        .query(&mut c)
        .unwrap();
    assert_eq!(len, 256);
}

#[test]
fn script_cache_evalsha_and_script_subcommands() {
    let server = TestServer::start();
    let mut c = server.conn();
    let sha: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg("return 'cached'")
        .query(&mut c)
        .unwrap();
    // The SHA1 of the body, as `printf "return 'cached'" | sha1sum` prints it.
    assert_eq!(sha, "952f49ffc8f7b098d8ab5da45d3164ca36ed18b1");
    assert_eq!(
        redis::cmd("EVALSHA")
            .arg(&sha)
            .arg(0)
            .query::<String>(&mut c)
            .unwrap(),
        "cached"
    );
    // SHA1s are case-insensitive.
    assert_eq!(
        redis::cmd("EVALSHA")
            .arg(sha.to_uppercase())
            .arg(0)
            .query::<String>(&mut c)
            .unwrap(),
        "cached"
    );
    let unknown = "ffffffffffffffffffffffffffffffffffffffff";
    assert!(err_text(
        redis::cmd("EVALSHA")
            .arg(unknown)
            .arg(0)
            .query::<()>(&mut c)
    )
    .contains("No matching script. Please use EVAL."));
    assert!(
        err_text(redis::cmd("EVALSHA").arg("abc").arg(0).query::<()>(&mut c))
            .contains("No matching script")
    );
    let exists: Vec<i64> = redis::cmd("SCRIPT")
        .arg("EXISTS")
        .arg(&sha)
        .arg(unknown)
        .query(&mut c)
        .unwrap();
    assert_eq!(exists, [1, 0]);
    // EVAL caches what it runs, under the same SHA1 SCRIPT LOAD reports.
    let _: String = eval(&mut c, "return 'via eval'", &[], &[]).unwrap();
    let eval_sha: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg("return 'via eval'")
        .query(&mut c)
        .unwrap();
    assert_eq!(
        info_field(&mut c, "memory", "number_of_cached_scripts"),
        "2"
    );
    assert_eq!(
        redis::cmd("EVALSHA")
            .arg(&eval_sha)
            .arg(0)
            .query::<String>(&mut c)
            .unwrap(),
        "via eval"
    );
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query(&mut c).unwrap();
    assert!(
        err_text(redis::cmd("EVALSHA").arg(&sha).arg(0).query::<()>(&mut c))
            .contains("No matching script")
    );
    assert_eq!(
        info_field(&mut c, "memory", "number_of_cached_scripts"),
        "0"
    );
    assert!(err_text(
        redis::cmd("SCRIPT")
            .arg("FLUSH")
            .arg("LATER")
            .query::<()>(&mut c)
    )
    .contains("SCRIPT FLUSH only support SYNC|ASYNC option"));
    assert!(
        err_text(redis::cmd("SCRIPT").arg("KILL").query::<()>(&mut c))
            .contains("No scripts in execution right now")
    );
}

#[test]
fn bad_input_gets_redis_errors() {
    let server = TestServer::start();
    let mut c = server.conn();
    assert!(err_text(
        redis::cmd("EVAL")
            .arg("return 1")
            .arg("x")
            .query::<()>(&mut c)
    )
    .contains("value is not an integer or out of range"));
    assert!(err_text(
        redis::cmd("EVAL")
            .arg("return 1")
            .arg(-1)
            .query::<()>(&mut c)
    )
    .contains("Number of keys can't be negative"));
    assert!(err_text(
        redis::cmd("EVAL")
            .arg("return 1")
            .arg(2)
            .arg("k")
            .query::<()>(&mut c)
    )
    .contains("Number of keys can't be greater than number of args"));
    let syntax = err_text(eval::<()>(&mut c, "return (", &[], &[]));
    assert!(
        syntax.contains("Error compiling script (new function): user_script:1:"),
        "{syntax}"
    );
    let runtime = err_text(eval::<()>(&mut c, "local t = nil\nreturn t.x", &[], &[]));
    assert!(
        runtime.contains("user_script:2: attempt to index local 't' (a nil value) script: "),
        "{runtime}"
    );
    assert!(runtime.contains("on @user_script:2."), "{runtime}");
    let global = err_text(eval::<()>(&mut c, "return undefined_thing", &[], &[]));
    assert!(
        global.contains("Script attempted to access nonexistent global variable 'undefined_thing'"),
        "{global}"
    );
    let set_global = err_text(eval::<()>(&mut c, "x = 1", &[], &[]));
    assert!(
        set_global.contains("Attempt to modify a readonly table"),
        "{set_global}"
    );
    let unknown = err_text(eval::<()>(
        &mut c,
        "return redis.call('nosuchcommand')",
        &[],
        &[],
    ));
    assert!(
        unknown.contains("Unknown Redis command called from script"),
        "{unknown}"
    );
    let arity = err_text(eval::<()>(&mut c, "return redis.call('get')", &[], &[]));
    assert!(
        arity.contains("Wrong number of args calling Redis command from script"),
        "{arity}"
    );
    let noscript = err_text(eval::<()>(&mut c, "return redis.call('multi')", &[], &[]));
    assert!(
        noscript.contains("This Redis command is not allowed from script"),
        "{noscript}"
    );
    let bad_arg = err_text(eval::<()>(
        &mut c,
        "return redis.call('set', 'k', {})",
        &[],
        &[],
    ));
    assert!(
        bad_arg.contains("Lua redis lib command arguments must be strings or integers"),
        "{bad_arg}"
    );
    let wrongtype = err_text(eval::<()>(
        &mut c,
        "redis.call('lpush', 'l', 1) return redis.call('get', 'l')",
        &[],
        &[],
    ));
    assert!(wrongtype.starts_with("WRONGTYPE"), "{wrongtype}");
    // The connection is fine after every error.
    assert_eq!(redis::cmd("PING").query::<String>(&mut c).unwrap(), "PONG");
}

#[test]
fn huge_and_deeply_nested_replies() {
    let server = TestServer::start();
    let mut c = server.conn();
    let v: Vec<i64> = eval(
        &mut c,
        "local t = {} for i = 1, 100000 do t[i] = i end return t",
        &[],
        &[],
    )
    .unwrap();
    assert_eq!(v.len(), 100000);
    assert_eq!(v[99999], 100000);
    // A table that contains itself: nested arrays down to Redis's stack-limit error.
    let mut raw = server.raw();
    let script = "local a = {} a[1] = a return a";
    raw.send(
        format!(
            "*3\r\n$4\r\nEVAL\r\n${}\r\n{}\r\n$1\r\n0\r\n",
            script.len(),
            script
        )
        .as_bytes(),
    );
    let mut reply = Vec::new();
    let mut buf = [0u8; 65536];
    use std::io::Read;
    while !reply.ends_with(b"-ERR reached lua stack limit\r\n") {
        let n = raw.stream.read(&mut buf).unwrap();
        assert!(n > 0, "connection closed");
        reply.extend_from_slice(&buf[..n]);
    }
    assert!(reply.starts_with(b"*1\r\n*1\r\n"));
    raw.roundtrip(b"PING\r\n", b"+PONG\r\n");
}

#[test]
fn read_only_scripts_and_flags() {
    let server = TestServer::start();
    let mut c = server.conn();
    let v: Option<String> = redis::cmd("EVAL_RO")
        .arg("return redis.call('GET', KEYS[1])")
        .arg(1)
        .arg("k")
        .query(&mut c)
        .unwrap();
    assert_eq!(v, None);
    let refused = err_text(
        redis::cmd("EVAL_RO")
            .arg("return redis.call('SET', KEYS[1], 1)")
            .arg(1)
            .arg("k")
            .query::<()>(&mut c),
    );
    assert!(
        refused.contains("Write commands are not allowed from read-only scripts"),
        "{refused}"
    );
    let refused = err_text(eval::<()>(
        &mut c,
        "#!lua flags=no-writes\nreturn redis.call('SET', 'k', 1)",
        &[],
        &[],
    ));
    assert!(
        refused.contains("Write commands are not allowed from read-only scripts"),
        "{refused}"
    );
    let refused = err_text(
        redis::cmd("EVAL_RO")
            .arg("#!lua\nreturn 1")
            .arg(0)
            .query::<()>(&mut c),
    );
    assert!(
        refused.contains("Can not execute a script with write flag using *_ro command."),
        "{refused}"
    );
    assert!(
        err_text(eval::<()>(&mut c, "#!lua flags=bogus\nreturn 1", &[], &[]))
            .contains("Unexpected flag in script shebang: bogus")
    );
    // The shebang line is dropped but line numbers stay the user's.
    let e = err_text(eval::<()>(&mut c, "#!lua\nerror('here')", &[], &[]));
    assert!(e.contains("user_script:2: here"), "{e}");
}

#[test]
fn select_in_a_script_only_affects_the_script() {
    let server = TestServer::start();
    let mut c = server.conn();
    let _: () = redis::cmd("SELECT").arg(2).query(&mut c).unwrap();
    let _: () = eval(
        &mut c,
        "redis.call('SET', 'in2', 'a') redis.call('SELECT', 5) redis.call('SET', 'in5', 'b')",
        &[],
        &[],
    )
    .unwrap();
    // The caller is still on database 2, and the script started there.
    let v: Option<String> = redis::cmd("GET").arg("in2").query(&mut c).unwrap();
    assert_eq!(v.as_deref(), Some("a"));
    let _: () = redis::cmd("SELECT").arg(5).query(&mut c).unwrap();
    let v: Option<String> = redis::cmd("GET").arg("in5").query(&mut c).unwrap();
    assert_eq!(v.as_deref(), Some("b"));
}

#[test]
fn blocking_commands_do_not_block_and_time_stands_still() {
    let server = TestServer::start();
    let mut c = server.conn();
    let started = std::time::Instant::now();
    // BLPOP itself is refused in scripts (noscript, as in Redis); BLMPOP is allowed.
    assert!(err_text(eval::<Value>(
        &mut c,
        "return redis.call('BLPOP', 'empty', 0)",
        &[],
        &[]
    ))
    .contains("not allowed from script"));
    let v: Value = eval(
        &mut c,
        "return redis.call('BLMPOP', 0, 1, 'empty', 'LEFT')",
        &[],
        &[],
    )
    .unwrap();
    assert_eq!(v, Value::Nil);
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    // A key with a 1 ms TTL set at the start stays for the whole script, however long it runs.
    let still: i64 = eval(&mut c, "redis.call('SET', 'k', 'v', 'PX', 1) local n = 0 for i = 1, 3000000 do n = n + i end return redis.call('EXISTS', 'k')", &[], &[]).unwrap();
    assert_eq!(still, 1);
    std::thread::sleep(std::time::Duration::from_millis(5));
    assert_eq!(
        redis::cmd("EXISTS").arg("k").query::<i64>(&mut c).unwrap(),
        0
    );
}

#[test]
fn resp3_conversions() {
    let server = TestServer::start();
    let mut raw = server.raw();
    let eval = |raw: &mut common::RawConn, script: &str, expected: &[u8]| {
        raw.roundtrip(
            format!(
                "*3\r\n$4\r\nEVAL\r\n${}\r\n{}\r\n$1\r\n0\r\n",
                script.len(),
                script
            )
            .as_bytes(),
            expected,
        );
    };
    raw.send(b"HSET h f v\r\n");
    raw.read_exact_len(4);
    // A RESP2 caller gets RESP3 types downgraded.
    eval(
        &mut raw,
        "redis.setresp(3) return redis.call('HGETALL', 'h')",
        b"*2\r\n$1\r\nf\r\n$1\r\nv\r\n",
    );
    eval(&mut raw, "return {double=3.5}", b"$3\r\n3.5\r\n");
    raw.send(b"HELLO 3\r\n");
    let mut hello = Vec::new();
    let mut buf = [0u8; 4096];
    use std::io::Read;
    // HELLO's map ends with "modules" and an empty array.
    while !hello.ends_with(b"$7\r\nmodules\r\n*0\r\n") {
        let n = raw.stream.read(&mut buf).unwrap();
        assert!(n > 0);
        hello.extend_from_slice(&buf[..n]);
    }
    eval(
        &mut raw,
        "redis.setresp(3) return redis.call('HGETALL', 'h')",
        b"%1\r\n$1\r\nf\r\n$1\r\nv\r\n",
    );
    eval(&mut raw, "return {double=3.5}", b",3.5\r\n");
    eval(
        &mut raw,
        "return {big_number='123456789012345678901234567890'}",
        b"(123456789012345678901234567890\r\n",
    );
    eval(&mut raw, "redis.setresp(3) return true", b"#t\r\n");
    eval(&mut raw, "return false", b"_\r\n");
    eval(&mut raw, "return {map={a=1}}", b"%1\r\n$1\r\na\r\n:1\r\n");
    eval(&mut raw, "return {set={x=true}}", b"~1\r\n$1\r\nx\r\n");
    // Without setresp(3) a script sees RESP2 shapes even for a RESP3 caller.
    eval(
        &mut raw,
        "return type(redis.call('HGETALL', 'h')[1])",
        b"$6\r\nstring\r\n",
    );
}

#[test]
fn error_statistics_match_redis() {
    let server = TestServer::start();
    let mut c = server.conn();
    let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query(&mut c).unwrap();
    let _ = eval::<()>(&mut c, "return redis.call('select', 99)", &[], &[]);
    assert_eq!(info_field(&mut c, "errorstats", "errorstat_ERR"), "count=1");
    assert!(
        info_field(&mut c, "commandstats", "cmdstat_select").contains("calls=1,")
            && info_field(&mut c, "commandstats", "cmdstat_select").contains("failed_calls=1")
    );
    assert!(info_field(&mut c, "commandstats", "cmdstat_eval")
        .contains("rejected_calls=0,failed_calls=1"));
    // An error caught with pcall is counted for the command, not for the script.
    let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query(&mut c).unwrap();
    let _: i64 = eval(&mut c, "redis.pcall('select', 99) return 1", &[], &[]).unwrap();
    assert_eq!(info_field(&mut c, "errorstats", "errorstat_ERR"), "count=1");
    assert!(info_field(&mut c, "commandstats", "cmdstat_eval").contains("failed_calls=0"));
    // A command refused by the script rules is a rejected call.
    let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query(&mut c).unwrap();
    let _ = redis::cmd("EVAL_RO")
        .arg("return redis.call('set', 'x', 1)")
        .arg(0)
        .query::<()>(&mut c);
    assert!(
        info_field(&mut c, "commandstats", "cmdstat_set").contains("calls=0,")
            && info_field(&mut c, "commandstats", "cmdstat_set").contains("rejected_calls=1")
    );
}

#[test]
fn lua_libraries_are_there() {
    let server = TestServer::start();
    let mut c = server.conn();
    let json: String = eval(
        &mut c,
        "return cjson.encode(cjson.decode('{\"a\":[1,2,{\"b\":null}]}'))",
        &[],
        &[],
    )
    .unwrap();
    assert_eq!(json, "{\"a\":[1,2,{\"b\":null}]}");
    let n: i64 = eval(
        &mut c,
        "return cmsgpack.unpack(cmsgpack.pack({1, 2, 300}))[3]",
        &[],
        &[],
    )
    .unwrap();
    assert_eq!(n, 300);
    let n: i64 = eval(
        &mut c,
        "return struct.unpack('>I4', struct.pack('>I4', 305419896))",
        &[],
        &[],
    )
    .unwrap();
    assert_eq!(n, 305419896);
    let hex: String = eval(&mut c, "return bit.tohex(bit.bor(0xf0, 0x0f))", &[], &[]).unwrap();
    assert_eq!(hex, "000000ff");
    assert_eq!(
        eval::<String>(&mut c, "return redis.REDIS_VERSION", &[], &[]).unwrap(),
        "7.0.15"
    );
}

#[test]
fn functions_load_call_list_dump_and_restore() {
    let server = TestServer::start();
    let mut c = server.conn();
    let lib = "#!lua name=mylib\n\
               redis.register_function('getset2', function(keys, args) local old = redis.call('GET', keys[1]) redis.call('SET', keys[1], args[1]) return old end)\n\
               redis.register_function{function_name='peek', callback=function(keys) return redis.call('GET', keys[1]) end, flags={'no-writes'}, description='reads a key'}";
    assert_eq!(
        redis::cmd("FUNCTION")
            .arg("LOAD")
            .arg(lib)
            .query::<String>(&mut c)
            .unwrap(),
        "mylib"
    );
    assert!(err_text(
        redis::cmd("FUNCTION")
            .arg("LOAD")
            .arg(lib)
            .query::<()>(&mut c)
    )
    .contains("Library 'mylib' already exists"));
    let old: Option<String> = redis::cmd("FCALL")
        .arg("getset2")
        .arg(1)
        .arg("k")
        .arg("one")
        .query(&mut c)
        .unwrap();
    assert_eq!(old, None);
    let old: Option<String> = redis::cmd("FCALL")
        .arg("GETSET2")
        .arg(1)
        .arg("k")
        .arg("two")
        .query(&mut c)
        .unwrap();
    assert_eq!(old.as_deref(), Some("one"));
    assert_eq!(
        redis::cmd("FCALL_RO")
            .arg("peek")
            .arg(1)
            .arg("k")
            .query::<String>(&mut c)
            .unwrap(),
        "two"
    );
    assert!(err_text(
        redis::cmd("FCALL_RO")
            .arg("getset2")
            .arg(1)
            .arg("k")
            .arg("x")
            .query::<()>(&mut c)
    )
    .contains("Can not execute a script with write flag using *_ro command."));
    assert!(
        err_text(redis::cmd("FCALL").arg("nope").arg(0).query::<()>(&mut c))
            .contains("Function not found")
    );
    assert!(
        err_text(redis::cmd("FCALL").arg("peek").arg("x").query::<()>(&mut c))
            .contains("Bad number of keys provided")
    );
    let list: Value = redis::cmd("FUNCTION").arg("LIST").query(&mut c).unwrap();
    let text = format!("{list:?}");
    assert!(
        text.contains("mylib") && text.contains("reads a key") && text.contains("no-writes"),
        "{text}"
    );
    assert_eq!(info_field(&mut c, "memory", "number_of_functions"), "2");
    assert_eq!(info_field(&mut c, "memory", "number_of_libraries"), "1");
    // DUMP, FLUSH, RESTORE brings the library back.
    let dump: Vec<u8> = redis::cmd("FUNCTION").arg("DUMP").query(&mut c).unwrap();
    let _: () = redis::cmd("FUNCTION").arg("FLUSH").query(&mut c).unwrap();
    assert!(err_text(
        redis::cmd("FCALL")
            .arg("peek")
            .arg(1)
            .arg("k")
            .query::<()>(&mut c)
    )
    .contains("Function not found"));
    let _: () = redis::cmd("FUNCTION")
        .arg("RESTORE")
        .arg(&dump[..])
        .query(&mut c)
        .unwrap();
    assert_eq!(
        redis::cmd("FCALL")
            .arg("peek")
            .arg(1)
            .arg("k")
            .query::<String>(&mut c)
            .unwrap(),
        "two"
    );
    assert!(err_text(
        redis::cmd("FUNCTION")
            .arg("RESTORE")
            .arg(&dump[..])
            .query::<()>(&mut c)
    )
    .contains("already exists"));
    assert!(err_text(
        redis::cmd("FUNCTION")
            .arg("RESTORE")
            .arg("garbage!!!!!!")
            .query::<()>(&mut c)
    )
    .contains("payload version or checksum are wrong"));
    let _: () = redis::cmd("FUNCTION")
        .arg("DELETE")
        .arg("mylib")
        .query(&mut c)
        .unwrap();
    assert!(err_text(
        redis::cmd("FUNCTION")
            .arg("DELETE")
            .arg("mylib")
            .query::<()>(&mut c)
    )
    .contains("Library not found"));
    let bad = err_text(
        redis::cmd("FUNCTION")
            .arg("LOAD")
            .arg("#!lua name=broken\nredis.register_function('f', function() end")
            .query::<()>(&mut c),
    );
    assert!(bad.contains("Error compiling function"), "{bad}");
    let timeout = err_text(
        redis::cmd("FUNCTION")
            .arg("LOAD")
            .arg("#!lua name=spin\nwhile true do end")
            .query::<()>(&mut c),
    );
    assert!(timeout.contains("FUNCTION LOAD timeout"), "{timeout}");
    let error = err_text(redis::cmd("FUNCTION").arg("LOAD").arg("#!lua name=e\nredis.register_function('f', function() return redis.call('nosuch') end)").query::<String>(&mut c).and_then(|_| redis::cmd("FCALL").arg("f").arg(0).query::<()>(&mut c)));
    assert!(
        error.contains("Unknown Redis command called from script script: f, on @user_function:2."),
        "{error}"
    );
}

#[test]
fn scripts_in_transactions_and_pipelines() {
    let server = TestServer::start();
    let mut c = server.conn();
    let (a, b): (i64, i64) = redis::pipe()
        .atomic()
        .cmd("EVAL")
        .arg("return redis.call('INCR', KEYS[1])")
        .arg(1)
        .arg("n")
        .cmd("EVAL")
        .arg("return redis.call('INCRBY', KEYS[1], 10)")
        .arg(1)
        .arg("n")
        .query(&mut c)
        .unwrap();
    assert_eq!((a, b), (1, 11));
    let mut pipe = redis::pipe();
    for _ in 0..100 {
        pipe.cmd("EVAL")
            .arg("return redis.call('INCR', KEYS[1])")
            .arg(1)
            .arg("p");
    }
    let results: Vec<i64> = pipe.query(&mut c).unwrap();
    assert_eq!(results, (1..=100).collect::<Vec<i64>>());
}

#[test]
fn monitor_shows_the_script_then_its_commands() {
    let server = TestServer::start();
    let mut monitor = server.raw();
    monitor.roundtrip(b"MONITOR\r\n", b"+OK\r\n");
    let mut c = server.conn();
    let _: () = eval(&mut c, "redis.call('SET', KEYS[1], 'v')", &["k"], &[]).unwrap();
    let mut lines = Vec::new();
    let mut text = Vec::new();
    while lines.len() < 2 {
        text.extend(monitor.read_exact_len(1));
        if text.ends_with(b"\r\n") {
            lines.push(String::from_utf8_lossy(&text).into_owned());
            text.clear();
        }
    }
    assert!(lines[0].contains("\"EVAL\""), "{}", lines[0]);
    assert!(
        lines[1].contains(" [0 lua] \"SET\" \"k\" \"v\""),
        "{}",
        lines[1]
    );
}

#[test]
fn function_libraries_travel_in_snapshots() {
    let server = TestServer::start_with(&["--enable-debug-command", "yes"]);
    let mut c = server.conn();
    let lib =
        "#!lua name=keep\nredis.register_function('kept', function() return 'still here' end)";
    let _: String = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg(lib)
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut c).unwrap();
    let _: () = redis::cmd("DEBUG").arg("RELOAD").query(&mut c).unwrap();
    assert_eq!(
        redis::cmd("FCALL")
            .arg("kept")
            .arg(0)
            .query::<String>(&mut c)
            .unwrap(),
        "still here"
    );
    assert_eq!(
        redis::cmd("GET").arg("k").query::<String>(&mut c).unwrap(),
        "v"
    );
    // Loading over existing data needs MERGE, as in Redis.
    assert!(err_text(
        redis::cmd("DEBUG")
            .arg("RELOAD")
            .arg("NOFLUSH")
            .query::<()>(&mut c)
    )
    .contains("Error trying to load the RDB"));
    let _: () = redis::cmd("DEBUG")
        .arg("RELOAD")
        .arg("NOFLUSH")
        .arg("MERGE")
        .query(&mut c)
        .unwrap();
    assert_eq!(
        redis::cmd("FCALL")
            .arg("kept")
            .arg(0)
            .query::<String>(&mut c)
            .unwrap(),
        "still here"
    );
    // A replica's full sync carries the libraries: the RDB payload contains the code.
    let mut replica = server.raw();
    replica.send(b"SYNC\r\n");
    let mut payload = Vec::new();
    let needle = b"redis.register_function('kept'";
    use std::io::Read;
    let mut buf = [0u8; 4096];
    while !payload.windows(needle.len()).any(|w| w == needle) {
        let n = replica.stream.read(&mut buf).unwrap();
        assert!(n > 0, "sync stream closed without the library");
        payload.extend_from_slice(&buf[..n]);
    }
}
