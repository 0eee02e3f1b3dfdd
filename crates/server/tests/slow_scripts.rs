//! Scripts that cannot take the server down, over TCP: BUSY replies while a script runs past
//! busy-reply-threshold, SCRIPT KILL / FUNCTION KILL, UNKILLABLE, SHUTDOWN NOSAVE, undoing a
//! killed script's writes, rollback-on-error, the script memory limit, the bounded EVAL cache
//! and a panic contained in the Lua layer.

mod common;

use common::{info_field, TestServer};
use redis::{RedisResult, Value};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The error reply as the server sent it: `CODE message`.
fn err_text<T: std::fmt::Debug>(r: RedisResult<T>) -> String {
    let e = r.expect_err("expected an error reply");
    match (e.code(), e.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        _ => format!("{e}"),
    }
}

/// Runs `cmd` on a connection of its own in another thread (it blocks until the script ends).
fn run_in_background(server: &TestServer, cmd: redis::Cmd) -> JoinHandle<RedisResult<Value>> {
    let mut c = server.conn();
    std::thread::spawn(move || cmd.query::<Value>(&mut c))
}

fn eval_cmd(script: &str, keys: &[&str]) -> redis::Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(script).arg(keys.len()).arg(keys);
    cmd
}

/// Waits until PING on `c` is answered BUSY; returns how long that took.
fn wait_busy(c: &mut redis::Connection) -> Duration {
    let start = Instant::now();
    loop {
        match redis::cmd("PING").query::<String>(c) {
            Err(e) if e.code() == Some("BUSY") => return start.elapsed(),
            Ok(_) => {}
            Err(e) => panic!("unexpected error while waiting for BUSY: {e}"),
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the script never became busy"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// DUMP of each key (None: missing), to compare whole values.
fn dumps(c: &mut redis::Connection, keys: &[&str]) -> Vec<Option<Vec<u8>>> {
    keys.iter()
        .map(|k| redis::cmd("DUMP").arg(*k).query(c).unwrap())
        .collect()
}

#[test]
fn a_runaway_script_is_answered_busy_and_killed() {
    let server = TestServer::start_with(&["--busy-reply-threshold", "100"]);
    let mut c = server.conn();
    assert_eq!(
        err_text(redis::cmd("SCRIPT").arg("KILL").query::<String>(&mut c)),
        "NOTBUSY No scripts in execution right now."
    );
    let started = Instant::now();
    let runaway = run_in_background(&server, eval_cmd("while true do end", &[]));
    wait_busy(&mut c);
    // BUSY comes from the threshold, not much later (the hook looks every 100k instructions).
    assert!(started.elapsed() < Duration::from_secs(3));
    let busy = err_text(redis::cmd("GET").arg("k").query::<Option<String>>(&mut c));
    assert_eq!(
        busy,
        "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."
    );
    // New connections are accepted and answered meanwhile; allow-busy commands run.
    let mut fresh = server.conn();
    assert!(err_text(redis::cmd("PING").query::<String>(&mut fresh)).starts_with("BUSY"));
    let hello: Value = redis::cmd("HELLO").arg("2").query(&mut fresh).unwrap();
    assert!(matches!(hello, Value::Array(_)));
    // The wrong kind of kill says which one to use.
    assert!(
        err_text(redis::cmd("FUNCTION").arg("KILL").query::<String>(&mut c))
            .contains("You can only call SCRIPT KILL")
    );
    let _: () = redis::cmd("SCRIPT").arg("KILL").query(&mut c).unwrap();
    let result = runaway.join().unwrap();
    assert!(
        err_text(result).contains("Script killed by user with SCRIPT KILL..."),
        "the caller learns its script was killed"
    );
    assert_eq!(redis::cmd("PING").query::<String>(&mut c).unwrap(), "PONG");
    assert_eq!(
        info_field(&mut c, "errorstats", "errorstat_BUSY"),
        "count=4"
    );
}

#[test]
fn a_busy_function_is_killed_with_function_kill_and_shown_in_stats() {
    let server = TestServer::start_with(&["--busy-reply-threshold", "50"]);
    let mut c = server.conn();
    let _: String = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg("#!lua name=lib\nredis.register_function('spin', function() local a = 1 while true do a = a + 1 end end)")
        .query(&mut c)
        .unwrap();
    let mut fcall = redis::cmd("FCALL");
    fcall.arg("spin").arg(0);
    let runaway = run_in_background(&server, fcall);
    wait_busy(&mut c);
    assert!(err_text(redis::cmd("PING").query::<String>(&mut c)).contains("FUNCTION KILL"));
    let stats: Value = redis::cmd("FUNCTION").arg("STATS").query(&mut c).unwrap();
    let text = format!("{stats:?}");
    assert!(
        text.contains("spin") && text.contains("duration_ms"),
        "{text}"
    );
    assert!(
        err_text(redis::cmd("SCRIPT").arg("KILL").query::<String>(&mut c))
            .contains("You can only call FUNCTION KILL")
    );
    let _: () = redis::cmd("FUNCTION").arg("KILL").query(&mut c).unwrap();
    assert!(err_text(runaway.join().unwrap()).contains("killed by user"));
    assert_eq!(redis::cmd("PING").query::<String>(&mut c).unwrap(), "PONG");
}

#[test]
fn a_killed_script_that_wrote_is_undone_exactly() {
    let server = TestServer::start_with(&["--busy-reply-threshold", "50"]);
    let mut c = server.conn();
    let _: () = redis::cmd("SET")
        .arg("s")
        .arg("original")
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("EXPIRE")
        .arg("s")
        .arg(1000)
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("RPUSH")
        .arg("l")
        .arg(&["a", "b", "c"])
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("HSET")
        .arg("h")
        .arg(&["f1", "1", "f2", "2"])
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("ZADD")
        .arg("z")
        .arg(&["1", "x", "2", "y"])
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("SADD")
        .arg("st")
        .arg(&["m1", "m2"])
        .query(&mut c)
        .unwrap();
    let keys = ["s", "l", "h", "z", "st", "new", "moved"];
    let before = dumps(&mut c, &keys);
    let ttl_before: i64 = redis::cmd("TTL").arg("s").query(&mut c).unwrap();
    let script = "
        redis.call('SET', 's', 'changed')
        redis.call('PERSIST', 's')
        redis.call('RPUSH', 'l', 'd')
        redis.call('LPOP', 'l')
        redis.call('HINCRBY', 'h', 'f1', 10)
        redis.call('HDEL', 'h', 'f2')
        redis.call('ZINCRBY', 'z', 5, 'x')
        redis.call('SADD', 'new', 'n')
        redis.call('RENAME', 'st', 'moved')
        redis.call('SELECT', 1)
        redis.call('SET', 'in-db-1', 'x')
        redis.call('SWAPDB', 0, 1)
        redis.call('FLUSHDB')
        while true do end";
    let runaway = run_in_background(&server, eval_cmd(script, &[]));
    wait_busy(&mut c);
    let _: () = redis::cmd("SCRIPT").arg("KILL").query(&mut c).unwrap();
    let error = err_text(runaway.join().unwrap());
    assert!(error.contains("its writes were undone"), "{error}");
    assert_eq!(dumps(&mut c, &keys), before);
    let ttl_after: i64 = redis::cmd("TTL").arg("s").query(&mut c).unwrap();
    assert!(ttl_after > 0 && ttl_after <= ttl_before);
    let _: () = redis::cmd("SELECT").arg(1).query(&mut c).unwrap();
    assert_eq!(redis::cmd("DBSIZE").query::<i64>(&mut c).unwrap(), 0);
    for field in ["busy_scripts", "killed_scripts", "undone_scripts"] {
        assert_eq!(info_field(&mut c, "stats", field), "1", "{field}");
    }
}

#[test]
fn without_undo_a_script_that_wrote_is_unkillable_until_shutdown_nosave() {
    let server = TestServer::start_with(&[
        "--busy-reply-threshold",
        "50",
        "--script-kill-undo",
        "no",
        "--save",
        "3600 1",
    ]);
    let mut c = server.conn();
    let runaway = run_in_background(
        &server,
        eval_cmd("redis.call('SET', KEYS[1], 'y') while true do end", &["x"]),
    );
    wait_busy(&mut c);
    let e = err_text(redis::cmd("SCRIPT").arg("KILL").query::<String>(&mut c));
    assert!(e.starts_with("UNKILLABLE"), "{e}");
    assert!(err_text(redis::cmd("PING").query::<String>(&mut c)).starts_with("BUSY"));
    // With a save point configured, a SHUTDOWN that would save is refused meanwhile...
    assert!(err_text(redis::cmd("SHUTDOWN").query::<()>(&mut c)).starts_with("BUSY"));
    // ...but SHUTDOWN NOSAVE ends the server.
    let _ = redis::cmd("SHUTDOWN").arg("NOSAVE").query::<()>(&mut c);
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", server.port)).is_ok() {
        assert!(Instant::now() < deadline, "the server did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(runaway.join().unwrap().is_err());
}

#[test]
fn transactions_meeting_a_busy_script_are_not_half_run() {
    let server = TestServer::start_with(&["--busy-reply-threshold", "50"]);
    let mut c = server.conn();
    let mut tx = server.conn();
    let _: () = redis::cmd("SET").arg("xx").arg(1).query(&mut c).unwrap();
    let _: () = redis::cmd("MULTI").query(&mut tx).unwrap();
    let _: String = redis::cmd("INCR").arg("xx").query(&mut tx).unwrap();
    let runaway = run_in_background(&server, eval_cmd("while true do end", &[]));
    wait_busy(&mut c);
    // A queued command refused BUSY dooms the transaction; EXEC itself is refused and
    // discards it.
    assert!(err_text(redis::cmd("INCR").arg("xx").query::<i64>(&mut tx)).starts_with("BUSY"));
    let e = err_text(redis::cmd("EXEC").query::<Value>(&mut tx));
    assert!(e.contains("EXECABORT") && e.contains("BUSY"), "{e}");
    let _: () = redis::cmd("SCRIPT").arg("KILL").query(&mut c).unwrap();
    assert!(runaway.join().unwrap().is_err());
    assert_eq!(redis::cmd("GET").arg("xx").query::<i64>(&mut c).unwrap(), 1);
    // Out of MULTI: a plain command runs.
    assert_eq!(redis::cmd("PING").query::<String>(&mut tx).unwrap(), "PONG");
}

#[test]
fn rollback_on_error_undoes_a_failed_script() {
    let server = TestServer::start();
    let mut c = server.conn();
    let _: () = redis::cmd("SET")
        .arg("balance")
        .arg(100)
        .query(&mut c)
        .unwrap();
    let script = "#!lua flags=rollback-on-error
        redis.call('DECRBY', 'balance', 30)
        redis.call('RPUSH', 'ledger', 'debit 30')
        return redis.call('HSET', 'balance', 'oops', 1)";
    let e = err_text(eval_cmd(script, &[]).query::<Value>(&mut c));
    assert!(e.starts_with("WRONGTYPE"), "{e}");
    assert_eq!(
        redis::cmd("GET")
            .arg("balance")
            .query::<i64>(&mut c)
            .unwrap(),
        100
    );
    assert_eq!(
        redis::cmd("EXISTS")
            .arg("ledger")
            .query::<i64>(&mut c)
            .unwrap(),
        0
    );
    // Without the flag the writes before the error stay, as in Redis.
    let plain = script.trim_start_matches("#!lua flags=rollback-on-error\n");
    assert!(err_text(eval_cmd(plain, &[]).query::<Value>(&mut c)).starts_with("WRONGTYPE"));
    assert_eq!(
        redis::cmd("GET")
            .arg("balance")
            .query::<i64>(&mut c)
            .unwrap(),
        70
    );
    // A function may declare it too.
    let _: String = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg("#!lua name=bank\nredis.register_function{function_name='pay', flags={'rollback-on-error'}, callback=function(keys) redis.call('INCR', keys[1]) error('declined') end}")
        .query(&mut c)
        .unwrap();
    let mut fcall = redis::cmd("FCALL");
    fcall.arg("pay").arg(1).arg("paid");
    assert!(err_text(fcall.query::<Value>(&mut c)).contains("declined"));
    assert_eq!(
        redis::cmd("EXISTS")
            .arg("paid")
            .query::<i64>(&mut c)
            .unwrap(),
        0
    );
}

#[test]
fn the_memory_limit_fails_the_script_and_the_server_lives_on() {
    let server = TestServer::start_with(&["--script-memory-limit", "8mb"]);
    let mut c = server.conn();
    let e =
        err_text(eval_cmd("return string.rep('x', 64 * 1024 * 1024)", &[]).query::<Value>(&mut c));
    assert!(
        e.contains("Lua memory limit reached: 'script-memory-limit' is 8388608 bytes"),
        "{e}"
    );
    // A command reply too large for the budget, while redis.call builds it.
    let fill = "for i = 1, 20000 do redis.call('RPUSH', 'big', string.rep('v', 500) .. i) end";
    let _: Value = eval_cmd(fill, &[]).query(&mut c).unwrap();
    let e = err_text(
        eval_cmd("return #redis.call('LRANGE', 'big', 0, -1)", &[]).query::<Value>(&mut c),
    );
    assert!(e.contains("Lua memory limit reached"), "{e}");
    let used: i64 = info_field(&mut c, "memory", "used_memory_lua")
        .parse()
        .unwrap();
    assert!(
        used < 4 << 20,
        "the failed script's memory was not given back: {used}"
    );
    // Other clients never noticed, and scripts still run.
    let mut other = server.conn();
    assert_eq!(
        redis::cmd("LLEN")
            .arg("big")
            .query::<i64>(&mut other)
            .unwrap(),
        20000
    );
    assert_eq!(eval_cmd("return 7", &[]).query::<i64>(&mut c).unwrap(), 7);
    // CONFIG SET raises it at run time.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("script-memory-limit")
        .arg("64mb")
        .query(&mut c)
        .unwrap();
    assert_eq!(
        eval_cmd("return #redis.call('LRANGE', 'big', 0, -1)", &[])
            .query::<i64>(&mut c)
            .unwrap(),
        20000
    );
}

#[test]
fn eval_scripts_are_evicted_but_loaded_ones_stay() {
    let server = TestServer::start_with(&["--script-eval-cache-size", "10"]);
    let mut c = server.conn();
    let loaded: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg("return 'loaded'")
        .query(&mut c)
        .unwrap();
    let first_sha: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg("return 0")
        .query(&mut c)
        .unwrap();
    // "return 0" is now pinned; the EVAL'ed ones are bounded.
    for i in 1..=25 {
        let _: i64 = eval_cmd(&format!("return {i}"), &[]).query(&mut c).unwrap();
    }
    assert_eq!(
        info_field(&mut c, "memory", "number_of_cached_scripts"),
        "12"
    );
    assert_eq!(info_field(&mut c, "stats", "evicted_scripts"), "15");
    let evicted_sha = sha1_hex("return 1");
    let e = err_text(
        redis::cmd("EVALSHA")
            .arg(&evicted_sha)
            .arg(0)
            .query::<i64>(&mut c),
    );
    assert!(e.starts_with("NOSCRIPT"), "{e}");
    let recent_sha = sha1_hex("return 25");
    assert_eq!(
        redis::cmd("EVALSHA")
            .arg(&recent_sha)
            .arg(0)
            .query::<i64>(&mut c)
            .unwrap(),
        25
    );
    assert_eq!(
        redis::cmd("EVALSHA")
            .arg(&loaded)
            .arg(0)
            .query::<String>(&mut c)
            .unwrap(),
        "loaded"
    );
    assert_eq!(
        redis::cmd("EVALSHA")
            .arg(&first_sha)
            .arg(0)
            .query::<i64>(&mut c)
            .unwrap(),
        0
    );
}

/// The SHA1 of a script body, as Redis names scripts.
fn sha1_hex(body: &str) -> String {
    sha1_smol::Sha1::from(body).digest().to_string()
}

#[test]
fn a_panic_in_the_lua_layer_leaves_the_server_answering_scripts() {
    let server = TestServer::start_with(&["--enable-debug-command", "yes"]);
    let mut c = server.conn();
    let _: () = redis::cmd("DEBUG")
        .arg("LUA-PANIC-NEXT")
        .query(&mut c)
        .unwrap();
    let e = err_text(eval_cmd("return cjson.encode({1})", &[]).query::<Value>(&mut c));
    assert!(
        e.contains("internal error in a moonkv script function"),
        "{e}"
    );
    assert_eq!(
        eval_cmd("return redis.call('PING')", &[])
            .query::<String>(&mut c)
            .unwrap(),
        "PONG"
    );
    assert_eq!(
        eval_cmd("return cjson.encode({1})", &[])
            .query::<String>(&mut c)
            .unwrap(),
        "[1]"
    );
}
