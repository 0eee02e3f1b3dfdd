//! Transactions and pub/sub across several real connections.

mod common;

use common::TestServer;
use redis::Commands;

#[test]
fn multi_exec_discard_and_execabort() {
    let server = TestServer::start();
    let mut c = server.conn();
    let (a, b): (String, i64) = redis::pipe()
        .atomic()
        .set("k", "v")
        .ignore()
        .get("k")
        .incr("n", 2)
        .query(&mut c)
        .unwrap();
    assert_eq!((a.as_str(), b), ("v", 2));
    let mut raw = server.raw();
    raw.roundtrip(b"MULTI\r\n", b"+OK\r\n");
    raw.roundtrip(b"SET x 1\r\n", b"+QUEUED\r\n");
    raw.roundtrip(
        b"NOSUCH\r\n",
        b"-ERR unknown command 'NOSUCH', with args beginning with: \r\n",
    );
    raw.roundtrip(
        b"EXEC\r\n",
        b"-EXECABORT Transaction discarded because of previous errors.\r\n",
    );
    raw.roundtrip(b"EXISTS x\r\n", b":0\r\n");
    raw.roundtrip(b"MULTI\r\n", b"+OK\r\n");
    raw.roundtrip(b"MULTI\r\n", b"-ERR MULTI calls can not be nested\r\n");
    raw.roundtrip(b"DISCARD\r\n", b"+OK\r\n");
    raw.roundtrip(b"EXEC\r\n", b"-ERR EXEC without MULTI\r\n");
}

#[test]
fn watch_detects_changes_from_other_clients() {
    let server = TestServer::start();
    let mut watcher = server.raw();
    let mut other = server.conn();
    watcher.roundtrip(b"WATCH w\r\n", b"+OK\r\n");
    let _: () = other.set("w", "changed").unwrap();
    watcher.roundtrip(b"MULTI\r\n", b"+OK\r\n");
    watcher.roundtrip(b"SET w mine\r\n", b"+QUEUED\r\n");
    watcher.roundtrip(b"EXEC\r\n", b"*-1\r\n");
    assert_eq!(other.get::<_, String>("w").unwrap(), "changed");
    // Untouched watch: EXEC runs.
    watcher.roundtrip(b"WATCH w\r\n", b"+OK\r\n");
    watcher.roundtrip(b"MULTI\r\n", b"+OK\r\n");
    watcher.roundtrip(b"SET w mine\r\n", b"+QUEUED\r\n");
    watcher.roundtrip(b"EXEC\r\n", b"*1\r\n+OK\r\n");
}

#[test]
fn publish_reaches_channel_and_pattern_subscribers() {
    let server = TestServer::start();
    let mut sub = server.raw();
    sub.roundtrip(
        b"SUBSCRIBE news\r\n",
        b"*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n",
    );
    let mut psub = server.raw();
    psub.roundtrip(
        b"PSUBSCRIBE n*\r\n",
        b"*3\r\n$10\r\npsubscribe\r\n$2\r\nn*\r\n:1\r\n",
    );
    sub.roundtrip(b"GET x\r\n", b"-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n");
    let mut c = server.conn();
    assert_eq!(c.publish::<_, _, i64>("news", "hello").unwrap(), 2);
    let expected = b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n";
    assert_eq!(sub.read_exact_len(expected.len()), expected);
    let expected = b"*4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$5\r\nhello\r\n";
    assert_eq!(psub.read_exact_len(expected.len()), expected);
    let numsub: Vec<redis::Value> = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg("news")
        .query(&mut c)
        .unwrap();
    assert_eq!(numsub.len(), 2);
    assert_eq!(
        redis::cmd("PUBSUB")
            .arg("NUMPAT")
            .query::<i64>(&mut c)
            .unwrap(),
        1
    );
}

#[test]
fn resp3_subscribers_get_push_frames() {
    let server = TestServer::start();
    let mut sub = server.raw();
    sub.send(b"HELLO 3\r\n");
    let mut seen = Vec::new();
    while !seen.ends_with(b"*0\r\n") {
        let b = sub.read_exact_len(1);
        assert!(!b.is_empty());
        seen.extend(b);
    }
    sub.roundtrip(
        b"SUBSCRIBE ch\r\n",
        b">3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n",
    );
    // RESP3 clients may still run ordinary commands while subscribed.
    sub.roundtrip(b"PING\r\n", b"+PONG\r\n");
    let mut c = server.conn();
    let _: i64 = c.publish("ch", "m").unwrap();
    let expected = b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$1\r\nm\r\n";
    assert_eq!(sub.read_exact_len(expected.len()), expected);
}

#[test]
fn keyspace_notifications() {
    let server = TestServer::start_with(&["--notify-keyspace-events", "KEA"]);
    let mut sub = server.raw();
    sub.roundtrip(
        b"SUBSCRIBE __keyevent@0__:set\r\n",
        b"*3\r\n$9\r\nsubscribe\r\n$18\r\n__keyevent@0__:set\r\n:1\r\n",
    );
    let mut c = server.conn();
    let _: () = c.set("foo", "bar").unwrap();
    let expected = b"*3\r\n$7\r\nmessage\r\n$18\r\n__keyevent@0__:set\r\n$3\r\nfoo\r\n";
    assert_eq!(sub.read_exact_len(expected.len()), expected);
}

#[test]
fn monitor_sees_commands_of_other_clients() {
    let server = TestServer::start();
    let mut monitor = server.raw();
    monitor.roundtrip(b"MONITOR\r\n", b"+OK\r\n");
    let mut c = server.raw();
    c.roundtrip(b"SET k \"a b\"\r\n", b"+OK\r\n");
    let mut line = Vec::new();
    while !line.ends_with(b"\r\n") {
        let byte = monitor.read_exact_len(1);
        assert!(!byte.is_empty(), "no MONITOR line");
        line.extend(byte);
    }
    let text = String::from_utf8_lossy(&line);
    assert!(text.starts_with('+'), "{}", text);
    assert!(
        text.contains(" [0 127.0.0.1:") && text.ends_with("] \"SET\" \"k\" \"a b\"\r\n"),
        "{}",
        text
    );
}
