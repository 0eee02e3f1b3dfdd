//! Bad input never crashes the server or trips an internal error: every command in the table
//! is called with awkward arguments, and random bytes are thrown at the protocol parser.

mod common;

use common::TestServer;
use redis::Value;

/// Arguments chosen to hit edge cases: empty, negative, zero, huge, non-numeric, binary.
const AWKWARD: &[&[u8]] = &[
    b"",
    b"-1",
    b"0",
    b"1",
    b"9223372036854775807",
    b"-9223372036854775808",
    b"inf",
    b"nan",
    b"x",
    b"*",
    b"\x00\xff",
    b"#1",
    b"(1",
];

#[test]
fn every_command_survives_awkward_arguments() {
    let server = TestServer::start_with(&["--enable-debug-command", "yes"]);
    let mut c = server.conn();
    let names: Vec<String> = redis::cmd("COMMAND").arg("LIST").query(&mut c).unwrap();
    // Commands that end or reshape the connection/server are left out on purpose.
    let skip = [
        "shutdown",
        "quit",
        "monitor",
        "sync",
        "psync",
        "debug",
        "subscribe",
        "psubscribe",
        "unsubscribe",
        "punsubscribe",
        "replicaof",
        "slaveof",
        "reset",
        "client|kill",
        "client|reply",
        "hello",
        "multi",
    ];
    let blocking: Vec<&str> = names
        .iter()
        .filter(|n| {
            let info: Value = redis::cmd("COMMAND")
                .arg("INFO")
                .arg(n.as_str())
                .query(&mut c)
                .unwrap();
            format!("{:?}", info).contains("blocking")
        })
        .map(String::as_str)
        .collect();
    assert!(
        blocking.contains(&"blpop") && blocking.contains(&"bzmpop"),
        "{:?}",
        blocking
    );
    let mut calls = 0;
    for name in names.iter().filter(|n| !skip.contains(&n.as_str())) {
        let words: Vec<&str> = name.split('|').collect();
        for arity_extra in 0..4usize {
            for (i, awkward) in AWKWARD.iter().enumerate() {
                // Seed some keys of each type so type-specific paths run too.
                let _: () = redis::pipe()
                    .cmd("SELECT")
                    .arg(0)
                    .ignore()
                    .cmd("DEL")
                    .arg(&["s", "l", "x", "h"])
                    .ignore()
                    .cmd("SET")
                    .arg("s")
                    .arg("v")
                    .ignore()
                    .cmd("RPUSH")
                    .arg("l")
                    .arg("a")
                    .ignore()
                    .cmd("SADD")
                    .arg("x")
                    .arg("1")
                    .ignore()
                    .cmd("HSET")
                    .arg("h")
                    .arg("f")
                    .arg("v")
                    .ignore()
                    .query(&mut c)
                    .unwrap();
                let mut cmd = redis::cmd(words[0]);
                for w in &words[1..] {
                    cmd.arg(*w);
                }
                let keys = ["s", "l", "x", "h", "missing"];
                for j in 0..arity_extra {
                    if j == 0 {
                        cmd.arg(keys[i % keys.len()]);
                    } else {
                        cmd.arg(*awkward);
                    }
                }
                // Blocking commands run inside MULTI, where they answer at once instead of
                // waiting for data that never comes.
                let reply: redis::RedisResult<Value> = if blocking.contains(&words[0]) {
                    redis::pipe()
                        .atomic()
                        .add_command(cmd)
                        .query::<Vec<Value>>(&mut c)
                        .map(|mut v| v.pop().unwrap_or(Value::Nil))
                } else {
                    cmd.query(&mut c)
                };
                if let Err(e) = &reply {
                    let text = format!("{}", e);
                    assert!(
                        !text.contains("internal error"),
                        "{} with {:?}: {}",
                        name,
                        awkward,
                        text
                    );
                    assert!(
                        !e.is_io_error() && !e.is_connection_dropped(),
                        "{} with {:?} dropped the connection: {}",
                        name,
                        awkward,
                        text
                    );
                }
                calls += 1;
            }
        }
    }
    assert!(calls > 1000);
    let pong: String = redis::cmd("PING").query(&mut c).unwrap();
    assert_eq!(pong, "PONG");
}

#[test]
fn random_bytes_do_not_crash_the_parser() {
    let server = TestServer::start();
    // A small deterministic generator: the same inputs on every run.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let alphabet = b"*$\r\n0123456789-abcXYZ \"'\\";
    for _ in 0..200 {
        let mut conn = server.raw();
        let len = (next() % 200) as usize;
        let junk: Vec<u8> = (0..len)
            .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
            .collect();
        conn.send(&junk);
        let _ = conn.stream.shutdown(std::net::Shutdown::Write);
    }
    server.raw().roundtrip(b"PING\r\n", b"+PONG\r\n");
}
