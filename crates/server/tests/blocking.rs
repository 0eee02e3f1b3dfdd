//! Blocking pops over TCP: waiting, FIFO service, timeouts, MULTI, CLIENT UNBLOCK, clients that
//! go away while blocked, and requests pipelined behind a blocked one.

mod common;

use common::{RawConn, TestServer};
use redis::Value;
use std::thread;
use std::time::{Duration, Instant};

fn blocked_clients(c: &mut redis::Connection) -> i64 {
    let info: String = redis::cmd("INFO").arg("clients").query(c).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("blocked_clients:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("INFO clients has blocked_clients")
}

/// Waits until `n` clients are blocked (the blocking call was sent from another thread).
fn wait_blocked(c: &mut redis::Connection, n: i64) {
    let start = Instant::now();
    while blocked_clients(c) != n {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never reached {} blocked clients",
            n
        );
        thread::sleep(Duration::from_millis(5));
    }
}

/// Runs `cmd` on a fresh connection in a thread; the result comes back through the handle.
fn in_background(
    server: &TestServer,
    cmd: redis::Cmd,
) -> thread::JoinHandle<redis::RedisResult<Value>> {
    let mut conn = server.conn();
    thread::spawn(move || cmd.query(&mut conn))
}

fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

#[test]
fn blocked_clients_are_served_in_arrival_order() {
    let server = TestServer::start();
    let mut c = server.conn();
    let first = in_background(&server, redis::cmd("BLPOP").arg("queue").arg(0).clone());
    wait_blocked(&mut c, 1);
    let second = in_background(
        &server,
        redis::cmd("BRPOP").arg("other").arg("queue").arg(0).clone(),
    );
    wait_blocked(&mut c, 2);

    // One push of two elements: each waiter takes one, oldest first, from the head/tail it asked.
    let _: () = redis::cmd("RPUSH")
        .arg("queue")
        .arg("a")
        .arg("b")
        .query(&mut c)
        .unwrap();
    assert_eq!(
        first.join().unwrap().unwrap(),
        Value::Array(vec![bulk("queue"), bulk("a")])
    );
    assert_eq!(
        second.join().unwrap().unwrap(),
        Value::Array(vec![bulk("queue"), bulk("b")])
    );
    let exists: i64 = redis::cmd("EXISTS").arg("queue").query(&mut c).unwrap();
    assert_eq!(exists, 0, "both elements were taken, so the list is gone");
    assert_eq!(blocked_clients(&mut c), 0);
}

#[test]
fn data_already_there_is_served_without_blocking() {
    let server = TestServer::start();
    let mut c = server.conn();
    let _: () = redis::cmd("RPUSH")
        .arg("l")
        .arg("x")
        .arg("y")
        .query(&mut c)
        .unwrap();
    let got: Vec<String> = redis::cmd("BLPOP")
        .arg("missing")
        .arg("l")
        .arg(0)
        .query(&mut c)
        .unwrap();
    assert_eq!(got, vec!["l", "x"]);
    let got: (String, Vec<String>) = redis::cmd("BLMPOP")
        .arg(0)
        .arg(1)
        .arg("l")
        .arg("RIGHT")
        .arg("COUNT")
        .arg(5)
        .query(&mut c)
        .unwrap();
    assert_eq!(got, ("l".to_string(), vec!["y".to_string()]));
    let _: () = redis::cmd("ZADD")
        .arg("z")
        .arg(2)
        .arg("two")
        .arg(1)
        .arg("one")
        .query(&mut c)
        .unwrap();
    let got: Vec<String> = redis::cmd("BZPOPMIN")
        .arg("z")
        .arg(0)
        .query(&mut c)
        .unwrap();
    assert_eq!(got, vec!["z", "one", "1"]);
    let got: Vec<String> = redis::cmd("LMPOP")
        .arg(1)
        .arg("missing")
        .arg("LEFT")
        .query(&mut c)
        .unwrap_or_default();
    assert!(got.is_empty());
}

#[test]
fn fractional_timeout_answers_null() {
    let server = TestServer::start();
    let mut c = server.conn();
    let start = Instant::now();
    let v: Value = redis::cmd("BLPOP")
        .arg("nothing")
        .arg("0.2")
        .query(&mut c)
        .unwrap();
    let waited = start.elapsed();
    assert_eq!(v, Value::Nil);
    assert!(
        waited >= Duration::from_millis(190),
        "answered after {:?}, before its timeout",
        waited
    );
    assert!(
        waited < Duration::from_secs(5),
        "timeout of 0.2 s took {:?}",
        waited
    );
    let v: Value = redis::cmd("BZPOPMAX")
        .arg("nothing")
        .arg("0.05")
        .query(&mut c)
        .unwrap();
    assert_eq!(v, Value::Nil);
    // The connection is usable afterwards and the command was counted once.
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut c)
        .unwrap();
    assert!(stats.contains("cmdstat_blpop:calls=1,"), "{}", stats);
}

#[test]
fn blocking_commands_inside_multi_do_not_block() {
    let server = TestServer::start();
    let mut c = server.conn();
    let replies: Vec<Value> = redis::pipe()
        .atomic()
        .cmd("BLPOP")
        .arg("none")
        .arg(0)
        .cmd("BLMOVE")
        .arg("none")
        .arg("dst")
        .arg("LEFT")
        .arg("RIGHT")
        .arg(0)
        .cmd("BZPOPMIN")
        .arg("none")
        .arg(0)
        .query(&mut c)
        .unwrap();
    assert_eq!(replies, vec![Value::Nil, Value::Nil, Value::Nil]);
}

#[test]
fn bad_timeouts_and_counts_are_redis_errors() {
    let server = TestServer::start();
    let mut c = server.conn();
    let err = |cmd: &mut redis::Cmd, c: &mut redis::Connection| -> String {
        let e = cmd.query::<Value>(c).unwrap_err();
        format!("{} {}", e.code().unwrap_or(""), e.detail().unwrap_or(""))
    };
    assert_eq!(
        err(redis::cmd("BLPOP").arg("k").arg(-1), &mut c),
        "ERR timeout is negative"
    );
    assert_eq!(
        err(redis::cmd("BLPOP").arg("k").arg("abc"), &mut c),
        "ERR timeout is not a float or out of range"
    );
    assert_eq!(
        err(redis::cmd("BZPOPMIN").arg("k").arg("inf"), &mut c),
        "ERR timeout is negative"
    );
    assert_eq!(
        err(
            redis::cmd("BLMPOP").arg(0).arg(0).arg("k").arg("LEFT"),
            &mut c
        ),
        "ERR numkeys should be greater than 0"
    );
    assert_eq!(
        err(
            redis::cmd("BLMPOP").arg(0).arg(1).arg("k").arg("UP"),
            &mut c
        ),
        "ERR syntax error"
    );
    assert_eq!(
        err(
            redis::cmd("LMPOP")
                .arg(1)
                .arg("k")
                .arg("LEFT")
                .arg("COUNT")
                .arg(0),
            &mut c
        ),
        "ERR count should be greater than 0"
    );
    assert_eq!(
        err(
            redis::cmd("BZMPOP")
                .arg(0)
                .arg(1)
                .arg("k")
                .arg("MIN")
                .arg("COUNT"),
            &mut c
        ),
        "ERR syntax error"
    );
    let _: () = redis::cmd("SET").arg("s").arg("v").query(&mut c).unwrap();
    assert!(
        err(redis::cmd("BLPOP").arg("missing").arg("s").arg(0), &mut c).starts_with("WRONGTYPE")
    );
    assert_eq!(blocked_clients(&mut c), 0);
}

#[test]
fn client_unblock_with_timeout_or_error() {
    let server = TestServer::start();
    let mut c = server.conn();
    let mut waiter = server.conn();
    let id: i64 = redis::cmd("CLIENT").arg("ID").query(&mut waiter).unwrap();
    let handle = thread::spawn(move || {
        let first: redis::RedisResult<Value> =
            redis::cmd("BLPOP").arg("k").arg(0).query(&mut waiter);
        let second: redis::RedisResult<Value> =
            redis::cmd("BZPOPMIN").arg("z").arg(0).query(&mut waiter);
        (first, second)
    });
    wait_blocked(&mut c, 1);
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .arg("ID")
        .arg(id)
        .query(&mut c)
        .unwrap();
    assert!(list.contains("flags=b "), "{}", list);
    let n: i64 = redis::cmd("CLIENT")
        .arg("UNBLOCK")
        .arg(id)
        .arg("TIMEOUT")
        .query(&mut c)
        .unwrap();
    assert_eq!(n, 1);
    wait_blocked(&mut c, 1);
    let n: i64 = redis::cmd("CLIENT")
        .arg("UNBLOCK")
        .arg(id)
        .arg("ERROR")
        .query(&mut c)
        .unwrap();
    assert_eq!(n, 1);
    let (first, second) = handle.join().unwrap();
    assert_eq!(first.unwrap(), Value::Nil);
    let e = second.unwrap_err();
    assert_eq!(e.code(), Some("UNBLOCKED"));
    // Not blocked (any more): 0.
    let n: i64 = redis::cmd("CLIENT")
        .arg("UNBLOCK")
        .arg(id)
        .query(&mut c)
        .unwrap();
    assert_eq!(n, 0);
    let e = redis::cmd("CLIENT")
        .arg("UNBLOCK")
        .arg(id)
        .arg("LATER")
        .query::<i64>(&mut c)
        .unwrap_err();
    assert_eq!(
        e.detail(),
        Some("CLIENT UNBLOCK reason should be TIMEOUT or ERROR")
    );
}

#[test]
fn a_value_of_another_type_does_not_wake_a_list_waiter() {
    let server = TestServer::start();
    let mut c = server.conn();
    let waiter = in_background(&server, redis::cmd("BLPOP").arg("k").arg(0).clone());
    wait_blocked(&mut c, 1);
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("string")
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("ZADD")
        .arg("k2")
        .arg(1)
        .arg("m")
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("RENAME")
        .arg("k2")
        .arg("k")
        .query(&mut c)
        .unwrap();
    thread::sleep(Duration::from_millis(50));
    assert_eq!(
        blocked_clients(&mut c),
        1,
        "a string or sorted set must not serve BLPOP"
    );
    // A list moved into place by RENAME does.
    let _: () = redis::cmd("RPUSH")
        .arg("src")
        .arg("v")
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("RENAME")
        .arg("src")
        .arg("k")
        .query(&mut c)
        .unwrap();
    assert_eq!(
        waiter.join().unwrap().unwrap(),
        Value::Array(vec![bulk("k"), bulk("v")])
    );
}

#[test]
fn blmove_chains_through_waiting_clients() {
    let server = TestServer::start();
    let mut c = server.conn();
    let first = in_background(
        &server,
        redis::cmd("BLMOVE")
            .arg("a")
            .arg("b")
            .arg("LEFT")
            .arg("RIGHT")
            .arg(0)
            .clone(),
    );
    wait_blocked(&mut c, 1);
    let second = in_background(
        &server,
        redis::cmd("BRPOPLPUSH").arg("b").arg("c").arg(0).clone(),
    );
    wait_blocked(&mut c, 2);
    let _: () = redis::cmd("LPUSH")
        .arg("a")
        .arg("item")
        .query(&mut c)
        .unwrap();
    assert_eq!(first.join().unwrap().unwrap(), bulk("item"));
    assert_eq!(second.join().unwrap().unwrap(), bulk("item"));
    let c_list: Vec<String> = redis::cmd("LRANGE")
        .arg("c")
        .arg(0)
        .arg(-1)
        .query(&mut c)
        .unwrap();
    assert_eq!(c_list, vec!["item"]);
    let exists: i64 = redis::cmd("EXISTS")
        .arg("a")
        .arg("b")
        .query(&mut c)
        .unwrap();
    assert_eq!(exists, 0);
}

#[test]
fn a_push_inside_multi_serves_the_waiter_after_exec() {
    let server = TestServer::start();
    let mut c = server.conn();
    let waiter = in_background(&server, redis::cmd("BLPOP").arg("k").arg(0).clone());
    wait_blocked(&mut c, 1);
    let _: () = redis::pipe()
        .atomic()
        .cmd("LPUSH")
        .arg("k")
        .arg("a")
        .cmd("LPUSH")
        .arg("k")
        .arg("b")
        .cmd("LPUSH")
        .arg("k")
        .arg("c")
        .query(&mut c)
        .unwrap();
    // The waiter sees the transaction's end state, not its first push.
    assert_eq!(
        waiter.join().unwrap().unwrap(),
        Value::Array(vec![bulk("k"), bulk("c")])
    );
    let rest: Vec<String> = redis::cmd("LRANGE")
        .arg("k")
        .arg(0)
        .arg(-1)
        .query(&mut c)
        .unwrap();
    assert_eq!(rest, vec!["b", "a"]);
}

#[test]
fn requests_pipelined_behind_a_blocked_one_wait_their_turn() {
    let server = TestServer::start();
    let mut c = server.conn();
    let mut raw = RawConn::connect(server.port);
    raw.send(b"BLPOP k 0\r\nPING\r\nRPUSH k2 x\r\n");
    wait_blocked(&mut c, 1);
    let exists: i64 = redis::cmd("EXISTS").arg("k2").query(&mut c).unwrap();
    assert_eq!(
        exists, 0,
        "the RPUSH behind the blocked BLPOP must not run yet"
    );
    let _: () = redis::cmd("LPUSH").arg("k").arg("v").query(&mut c).unwrap();
    raw.roundtrip(b"", b"*2\r\n$1\r\nk\r\n$1\r\nv\r\n+PONG\r\n:1\r\n");
}

#[test]
fn a_client_that_leaves_while_blocked_takes_nothing() {
    let server = TestServer::start();
    let mut c = server.conn();
    {
        let mut raw = RawConn::connect(server.port);
        raw.send(b"BLPOP k 0\r\n");
        wait_blocked(&mut c, 1);
    }
    wait_blocked(&mut c, 0);
    let _: () = redis::cmd("LPUSH")
        .arg("k")
        .arg("kept")
        .query(&mut c)
        .unwrap();
    let len: i64 = redis::cmd("LLEN").arg("k").query(&mut c).unwrap();
    assert_eq!(len, 1);
    let clients: String = redis::cmd("CLIENT").arg("LIST").query(&mut c).unwrap();
    assert_eq!(clients.lines().count(), 1, "{}", clients);
}

#[test]
fn client_kill_ends_a_blocked_connection() {
    let server = TestServer::start();
    let mut c = server.conn();
    let mut waiter = server.conn();
    let id: i64 = redis::cmd("CLIENT").arg("ID").query(&mut waiter).unwrap();
    let handle = thread::spawn(move || {
        redis::cmd("BLPOP")
            .arg("k")
            .arg(0)
            .query::<Value>(&mut waiter)
    });
    wait_blocked(&mut c, 1);
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(id)
        .query(&mut c)
        .unwrap();
    assert_eq!(killed, 1);
    assert!(handle.join().unwrap().is_err());
    wait_blocked(&mut c, 0);
}

#[test]
fn swapdb_wakes_a_client_waiting_in_the_other_database() {
    let server = TestServer::start();
    let mut c = server.conn();
    let _: () = redis::pipe()
        .cmd("SELECT")
        .arg(1)
        .ignore()
        .cmd("RPUSH")
        .arg("k")
        .arg("hello")
        .ignore()
        .cmd("SELECT")
        .arg(0)
        .ignore()
        .query(&mut c)
        .unwrap();
    let waiter = in_background(&server, redis::cmd("BRPOP").arg("k").arg(5).clone());
    wait_blocked(&mut c, 1);
    let _: () = redis::cmd("SWAPDB").arg(0).arg(1).query(&mut c).unwrap();
    assert_eq!(
        waiter.join().unwrap().unwrap(),
        Value::Array(vec![bulk("k"), bulk("hello")])
    );
}
