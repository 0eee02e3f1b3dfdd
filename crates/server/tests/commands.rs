//! Command semantics through a real client library (the `redis` crate) over TCP.

mod common;

use common::TestServer;
use redis::{Commands, RedisResult, Value};

fn err_text<T: std::fmt::Debug>(r: RedisResult<T>) -> String {
    let e = r.expect_err("expected an error reply");
    format!("{}", e)
}

#[test]
fn strings_set_options_and_counters() {
    let server = TestServer::start();
    let mut c = server.conn();
    let _: () = c.set("k", "v").unwrap();
    let old: Option<String> = redis::cmd("SET")
        .arg("k")
        .arg("w")
        .arg("GET")
        .query(&mut c)
        .unwrap();
    assert_eq!(old.as_deref(), Some("v"));
    let nx: Option<String> = redis::cmd("SET")
        .arg("k")
        .arg("x")
        .arg("NX")
        .query(&mut c)
        .unwrap();
    assert_eq!(nx, None);
    let _: () = redis::cmd("SET")
        .arg("t")
        .arg("v")
        .arg("EX")
        .arg(100)
        .query(&mut c)
        .unwrap();
    let ttl: i64 = c.ttl("t").unwrap();
    assert!((99..=100).contains(&ttl));
    assert!(err_text(
        redis::cmd("SET")
            .arg("t")
            .arg("v")
            .arg("EX")
            .arg(0)
            .query::<()>(&mut c)
    )
    .contains("invalid expire time in 'set' command"));
    assert!(err_text(
        redis::cmd("SET")
            .arg("t")
            .arg("v")
            .arg("NX")
            .arg("XX")
            .query::<()>(&mut c)
    )
    .contains("syntax error"));
    assert_eq!(c.incr::<_, _, i64>("n", 5).unwrap(), 5);
    assert_eq!(
        redis::cmd("DECRBY")
            .arg("n")
            .arg(7)
            .query::<i64>(&mut c)
            .unwrap(),
        -2
    );
    let _: () = c.set("big", i64::MAX).unwrap();
    assert!(
        err_text(c.incr::<_, _, i64>("big", 1)).contains("increment or decrement would overflow")
    );
    let _: () = c.set("s", "abc").unwrap();
    assert!(
        err_text(c.incr::<_, _, i64>("s", 1)).contains("value is not an integer or out of range")
    );
    // Long double arithmetic, exactly as Redis prints it.
    let f: String = redis::cmd("INCRBYFLOAT")
        .arg("f")
        .arg("0.1")
        .query(&mut c)
        .unwrap();
    assert_eq!(f, "0.1");
    let f: String = redis::cmd("INCRBYFLOAT")
        .arg("f")
        .arg("0.2")
        .query(&mut c)
        .unwrap();
    assert_eq!(f, "0.3");
    assert_eq!(c.append::<_, _, i64>("s", "def").unwrap(), 6);
    assert_eq!(c.getrange::<_, String>("s", -3, -1).unwrap(), "def");
    assert_eq!(c.setrange::<_, _, i64>("pad", 3, "x").unwrap(), 4);
    assert_eq!(c.get::<_, Vec<u8>>("pad").unwrap(), b"\0\0\0x");
}

#[test]
fn binary_safe_values_and_large_values() {
    let server = TestServer::start();
    let mut c = server.conn();
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    let _: () = c.set(&all_bytes[..], &all_bytes[..]).unwrap();
    assert_eq!(c.get::<_, Vec<u8>>(&all_bytes[..]).unwrap(), all_bytes);
    let big = vec![b'z'; 1 << 20];
    let _: () = c.set("big", &big[..]).unwrap();
    assert_eq!(c.get::<_, Vec<u8>>("big").unwrap().len(), 1 << 20);
    assert_eq!(c.strlen::<_, i64>("big").unwrap(), 1 << 20);
}

#[test]
fn bitmaps() {
    let server = TestServer::start();
    let mut c = server.conn();
    assert_eq!(c.setbit::<_, bool>("b", 7, true).unwrap(), false);
    assert_eq!(c.getbit::<_, bool>("b", 7).unwrap(), true);
    assert_eq!(c.bitcount::<_, i64>("b").unwrap(), 1);
    assert_eq!(
        redis::cmd("BITPOS")
            .arg("b")
            .arg(1)
            .query::<i64>(&mut c)
            .unwrap(),
        7
    );
    let fields: Vec<Option<i64>> = redis::cmd("BITFIELD")
        .arg("bf")
        .arg("SET")
        .arg("u8")
        .arg(0)
        .arg(255)
        .arg("INCRBY")
        .arg("u8")
        .arg(0)
        .arg(1)
        .query(&mut c)
        .unwrap();
    assert_eq!(fields, vec![Some(0), Some(0)]);
    assert!(err_text(c.setbit::<_, bool>("b", 1 << 40, true))
        .contains("bit offset is not an integer or out of range"));
}

#[test]
fn keys_rename_copy_move_and_scan() {
    let server = TestServer::start();
    let mut c = server.conn();
    for i in 0..50 {
        let _: () = c.set(format!("key:{}", i), i).unwrap();
    }
    let mut keys: Vec<String> = c.keys("key:1*").unwrap();
    keys.sort();
    assert_eq!(keys.len(), 11);
    let mut seen = std::collections::HashSet::new();
    let mut cursor = 0u64;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(7)
            .query(&mut c)
            .unwrap();
        seen.extend(batch);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    assert_eq!(seen.len(), 50);
    let _: () = c.rename("key:0", "renamed").unwrap();
    assert!(err_text(c.rename::<_, _, ()>("key:0", "x")).contains("no such key"));
    assert_eq!(
        redis::cmd("COPY")
            .arg("renamed")
            .arg("copied")
            .query::<i64>(&mut c)
            .unwrap(),
        1
    );
    assert_eq!(
        redis::cmd("MOVE")
            .arg("copied")
            .arg(3)
            .query::<i64>(&mut c)
            .unwrap(),
        1
    );
    assert_eq!(c.exists::<_, i64>("copied").unwrap(), 0);
    let _: () = redis::cmd("SELECT").arg(3).query(&mut c).unwrap();
    assert_eq!(c.get::<_, i64>("copied").unwrap(), 0);
    assert_eq!(
        redis::cmd("TYPE")
            .arg("copied")
            .query::<String>(&mut c)
            .unwrap(),
        "string"
    );
    assert_eq!(
        redis::cmd("OBJECT")
            .arg("ENCODING")
            .arg("copied")
            .query::<String>(&mut c)
            .unwrap(),
        "int"
    );
}

#[test]
fn expiry_options_and_active_expiry() {
    let server = TestServer::start();
    let mut c = server.conn();
    let _: () = c.set("k", "v").unwrap();
    assert_eq!(
        redis::cmd("EXPIRE")
            .arg("k")
            .arg(100)
            .arg("XX")
            .query::<i64>(&mut c)
            .unwrap(),
        0
    );
    assert_eq!(
        redis::cmd("EXPIRE")
            .arg("k")
            .arg(100)
            .arg("NX")
            .query::<i64>(&mut c)
            .unwrap(),
        1
    );
    assert_eq!(
        redis::cmd("EXPIRE")
            .arg("k")
            .arg(50)
            .arg("GT")
            .query::<i64>(&mut c)
            .unwrap(),
        0
    );
    assert_eq!(
        redis::cmd("EXPIRE")
            .arg("k")
            .arg(50)
            .arg("LT")
            .query::<i64>(&mut c)
            .unwrap(),
        1
    );
    assert!(err_text(
        redis::cmd("EXPIRE")
            .arg("k")
            .arg(5)
            .arg("NX")
            .arg("GT")
            .query::<i64>(&mut c)
    )
    .contains("NX and XX, GT or LT options at the same time are not compatible"));
    assert_eq!(c.persist::<_, i64>("k").unwrap(), 1);
    assert_eq!(c.ttl::<_, i64>("k").unwrap(), -1);
    assert_eq!(c.ttl::<_, i64>("missing").unwrap(), -2);
    // Keys with a short TTL disappear without being touched (active expiry).
    for i in 0..100 {
        let _: () = redis::cmd("SET")
            .arg(format!("short:{}", i))
            .arg("v")
            .arg("PX")
            .arg(50)
            .query(&mut c)
            .unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let size: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
        if size == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "expired keys were not reclaimed: dbsize {}",
            size
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let info: String = redis::cmd("INFO").arg("stats").query(&mut c).unwrap();
    assert!(info.contains("expired_keys:100"), "{}", info);
}

#[test]
fn lists_and_sets() {
    let server = TestServer::start();
    let mut c = server.conn();
    assert_eq!(c.rpush::<_, _, i64>("l", &["a", "b", "c"]).unwrap(), 3);
    assert_eq!(c.lpush::<_, _, i64>("l", "z").unwrap(), 4);
    assert_eq!(
        c.lrange::<_, Vec<String>>("l", 0, -1).unwrap(),
        vec!["z", "a", "b", "c"]
    );
    assert_eq!(
        c.lindex::<_, Option<String>>("l", -1).unwrap().as_deref(),
        Some("c")
    );
    assert_eq!(
        redis::cmd("LPOP")
            .arg("l")
            .arg(2)
            .query::<Vec<String>>(&mut c)
            .unwrap(),
        vec!["z", "a"]
    );
    assert!(err_text(c.lset::<_, _, ()>("l", 10, "x")).contains("index out of range"));
    assert_eq!(
        redis::cmd("LMOVE")
            .arg("l")
            .arg("l2")
            .arg("LEFT")
            .arg("RIGHT")
            .query::<String>(&mut c)
            .unwrap(),
        "b"
    );
    assert!(err_text(c.sadd::<_, _, i64>("l", "x")).starts_with("WRONGTYPE"));
    assert_eq!(c.sadd::<_, _, i64>("s1", &["1", "2", "3"]).unwrap(), 3);
    assert_eq!(
        redis::cmd("OBJECT")
            .arg("ENCODING")
            .arg("s1")
            .query::<String>(&mut c)
            .unwrap(),
        "intset"
    );
    assert_eq!(c.sadd::<_, _, i64>("s2", &["2", "3", "x"]).unwrap(), 3);
    assert_eq!(
        redis::cmd("OBJECT")
            .arg("ENCODING")
            .arg("s2")
            .query::<String>(&mut c)
            .unwrap(),
        "hashtable"
    );
    let mut inter: Vec<String> = c.sinter(&["s1", "s2"]).unwrap();
    inter.sort();
    assert_eq!(inter, vec!["2", "3"]);
    assert_eq!(
        redis::cmd("SINTERCARD")
            .arg(2)
            .arg("s1")
            .arg("s2")
            .arg("LIMIT")
            .arg(1)
            .query::<i64>(&mut c)
            .unwrap(),
        1
    );
    assert_eq!(c.sunionstore::<_, _, i64>("u", &["s1", "s2"]).unwrap(), 4);
    assert_eq!(c.scard::<_, i64>("u").unwrap(), 4);
    let popped: Vec<String> = redis::cmd("SPOP").arg("u").arg(10).query(&mut c).unwrap();
    assert_eq!(popped.len(), 4);
    assert_eq!(c.exists::<_, i64>("u").unwrap(), 0);
}

/// The `ERR` count from INFO errorstats.
fn err_count(c: &mut redis::Connection) -> u64 {
    let info: String = redis::cmd("INFO").arg("errorstats").query(c).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("errorstat_ERR:count="))
        .map_or(0, |n| n.trim().parse().unwrap())
}

#[test]
fn errors_are_counted_in_info() {
    let server = TestServer::start();
    let mut c = server.conn();
    let _: () = c.set("s", "x").unwrap();
    // The client library may itself have sent commands that failed; count from here.
    let before = err_count(&mut c);
    let _ = c.incr::<_, _, i64>("s", 1);
    let _ = redis::cmd("NOSUCHCMD").query::<Value>(&mut c);
    assert_eq!(err_count(&mut c), before + 2);
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut c)
        .unwrap();
    assert!(
        stats.contains("cmdstat_incrby:calls=1,") && stats.contains("failed_calls=1"),
        "{}",
        stats
    );
}

#[test]
fn sorted_sets() {
    let server = TestServer::start();
    let mut c = server.conn();
    assert_eq!(
        redis::cmd("ZADD")
            .arg("z")
            .arg(1)
            .arg("a")
            .arg(2)
            .arg("b")
            .arg(3)
            .arg("c")
            .query::<i64>(&mut c)
            .unwrap(),
        3
    );
    assert_eq!(
        redis::cmd("ZADD")
            .arg("z")
            .arg("XX")
            .arg("CH")
            .arg(5)
            .arg("a")
            .arg(9)
            .arg("new")
            .query::<i64>(&mut c)
            .unwrap(),
        1
    );
    assert_eq!(
        c.zrange::<_, Vec<String>>("z", 0, -1).unwrap(),
        vec!["b", "c", "a"]
    );
    assert_eq!(c.zrank::<_, _, Option<i64>>("z", "a").unwrap(), Some(2));
    assert_eq!(c.zscore::<_, _, f64>("z", "c").unwrap(), 3.0);
    let by_score: Vec<String> = redis::cmd("ZRANGE")
        .arg("z")
        .arg("(2")
        .arg("+inf")
        .arg("BYSCORE")
        .query(&mut c)
        .unwrap();
    assert_eq!(by_score, vec!["c", "a"]);
    let rev: Vec<String> = redis::cmd("ZRANGE")
        .arg("z")
        .arg("+inf")
        .arg("-inf")
        .arg("BYSCORE")
        .arg("REV")
        .arg("LIMIT")
        .arg(0)
        .arg(1)
        .query(&mut c)
        .unwrap();
    assert_eq!(rev, vec!["a"]);
    assert_eq!(
        redis::cmd("ZCOUNT")
            .arg("z")
            .arg(2)
            .arg(5)
            .query::<i64>(&mut c)
            .unwrap(),
        3
    );
    let err = redis::cmd("ZADD")
        .arg("z")
        .arg("NX")
        .arg("XX")
        .arg(1)
        .arg("a")
        .query::<i64>(&mut c)
        .unwrap_err();
    assert!(format!("{}", err).contains("XX and NX options at the same time are not compatible"));
    let _: i64 = redis::cmd("ZADD")
        .arg("w")
        .arg(10)
        .arg("a")
        .arg(1)
        .arg("x")
        .query(&mut c)
        .unwrap();
    assert_eq!(
        redis::cmd("ZINTERSTORE")
            .arg("i")
            .arg(2)
            .arg("z")
            .arg("w")
            .arg("AGGREGATE")
            .arg("MAX")
            .query::<i64>(&mut c)
            .unwrap(),
        1
    );
    assert_eq!(c.zscore::<_, _, f64>("i", "a").unwrap(), 10.0);
    let popped: Vec<String> = redis::cmd("ZPOPMIN").arg("z").arg(2).query(&mut c).unwrap();
    assert_eq!(popped, vec!["b", "2", "c", "3"]);
    for i in 0..200 {
        let _: i64 = redis::cmd("ZADD")
            .arg("big")
            .arg(i)
            .arg(format!("m{}", i))
            .query(&mut c)
            .unwrap();
    }
    assert_eq!(
        redis::cmd("OBJECT")
            .arg("ENCODING")
            .arg("big")
            .query::<String>(&mut c)
            .unwrap(),
        "skiplist"
    );
    assert_eq!(
        c.zrank::<_, _, Option<i64>>("big", "m150").unwrap(),
        Some(150)
    );
}

fn info_field(c: &mut redis::Connection, section: &str, field: &str) -> u64 {
    let value = common::info_field(c, section, field);
    value
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("INFO {section} {field} is not a number: {value}"))
}

#[test]
fn unlink_frees_big_values_in_the_background() {
    let server = TestServer::start();
    let mut c = server.conn();
    let members: Vec<String> = (0..1000).map(|i| format!("m{i}")).collect();
    let _: () = redis::cmd("SADD")
        .arg("big")
        .arg(&members)
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("SADD")
        .arg("small")
        .arg(&members[..10])
        .query(&mut c)
        .unwrap();
    let n: i64 = redis::cmd("UNLINK")
        .arg("big")
        .arg("small")
        .arg("missing")
        .query(&mut c)
        .unwrap();
    assert_eq!(n, 2);
    // Only the big set goes to the background thread; it is freed soon after.
    let start = std::time::Instant::now();
    while info_field(&mut c, "memory", "lazyfreed_objects") < 1 {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(5),
            "the big set was never freed"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(info_field(&mut c, "memory", "lazyfreed_objects"), 1);
    assert_eq!(info_field(&mut c, "memory", "lazyfree_pending_objects"), 0);
    let exists: i64 = redis::cmd("EXISTS")
        .arg("big")
        .arg("small")
        .query(&mut c)
        .unwrap();
    assert_eq!(exists, 0);
    // DEL frees inline unless lazyfree-lazy-user-del says otherwise.
    let _: () = redis::cmd("SADD")
        .arg("big")
        .arg(&members)
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("DEL").arg("big").query(&mut c).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert_eq!(info_field(&mut c, "memory", "lazyfreed_objects"), 1);
}

#[test]
fn lazy_expire_and_lazy_server_del_free_in_the_background() {
    let server = TestServer::start();
    let mut c = server.conn();
    let members: Vec<String> = (0..1000).map(|i| format!("m{i}")).collect();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("lazyfree-lazy-expire")
        .arg("yes")
        .arg("lazyfree-lazy-server-del")
        .arg("yes")
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("SADD")
        .arg("expiring")
        .arg(&members)
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("PEXPIRE")
        .arg("expiring")
        .arg(1)
        .query(&mut c)
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(10));
    let exists: i64 = redis::cmd("EXISTS").arg("expiring").query(&mut c).unwrap();
    assert_eq!(exists, 0);
    let _: () = redis::cmd("SADD")
        .arg("replaced")
        .arg(&members)
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("replaced")
        .arg("now a string")
        .query(&mut c)
        .unwrap();
    let start = std::time::Instant::now();
    while info_field(&mut c, "memory", "lazyfreed_objects") < 2 {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(5),
            "the values were not freed in the background"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let v: String = redis::cmd("GET").arg("replaced").query(&mut c).unwrap();
    assert_eq!(v, "now a string");
}
