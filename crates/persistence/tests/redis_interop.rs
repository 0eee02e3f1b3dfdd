//! The RDB reader and writer against the real Redis 7.0.15: we load what `redis-server`
//! saves (every type and encoding, LRU and LFU metadata, functions, several databases, DUMP
//! payloads), and `redis-check-rdb` and `redis-server` accept what we write, value for value.
//!
//! Needs /usr/bin/redis-server, redis-check-rdb and redis-cli. Without them the tests print a
//! skip line and pass, unless MOONKV_REQUIRE_REDIS=1, when they fail.

use moonkv_keyspace::{End, Hash, List, Set, SortedSet, Value};
use moonkv_persistence::rdb::{
    dump_value, read_snapshot_from, restore_value, Checksum, LoadLimits, RdbWriter, Snapshot,
    WriteOptions,
};
use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

const REDIS_SERVER: &str = "/usr/bin/redis-server";
const REDIS_CHECK_RDB: &str = "/usr/bin/redis-check-rdb";
const REDIS_CLI: &str = "/usr/bin/redis-cli";
const LIBRARY: &str =
    "#!lua name=interoplib\nredis.register_function('interop_fn', function(keys, args) return 1 end)";

fn redis_available(test: &str) -> bool {
    let present = [REDIS_SERVER, REDIS_CHECK_RDB, REDIS_CLI]
        .iter()
        .all(|p| Path::new(p).exists());
    if !present {
        if std::env::var("MOONKV_REQUIRE_REDIS").as_deref() == Ok("1") {
            panic!("{test}: redis binaries missing and MOONKV_REQUIRE_REDIS=1");
        }
        eprintln!("skipping {test}: {REDIS_SERVER} not found");
    }
    present
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("moonkv-rdb-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A redis-server child, killed on drop.
struct Redis {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Redis {
    fn start(dir: &Path, extra: &[&str]) -> Redis {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.join("redis.log");
        let port_text = port.to_string();
        let mut args = vec![
            "--port",
            &port_text,
            "--bind",
            "127.0.0.1",
            "--dir",
            dir.to_str().unwrap(),
            "--save",
            "",
            "--appendonly",
            "no",
            "--logfile",
            log.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let child = Command::new(REDIS_SERVER)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        let mut redis = Redis { child, port, log };
        redis.wait_ready();
        redis
    }

    /// Waits until the server answers PING with PONG (not LOADING).
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("redis-server exited ({status}); log:\n{}", self.log_text());
            }
            if let Ok(mut c) = Client::connect(self.port) {
                if matches!(c.call(&["PING"]), Reply::Simple(s) if s == "PONG") {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "redis-server not ready; log:\n{}",
                self.log_text()
            );
            sleep(Duration::from_millis(50));
        }
    }

    fn client(&self) -> Client {
        Client::connect(self.port).unwrap()
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A RESP2 reply.
#[derive(Debug, Clone, PartialEq)]
enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

impl Reply {
    fn bytes(self) -> Vec<u8> {
        match self {
            Reply::Bulk(Some(b)) => b,
            other => panic!("expected a bulk string, got {other:?}"),
        }
    }

    fn int(self) -> i64 {
        match self {
            Reply::Int(i) => i,
            other => panic!("expected an integer, got {other:?}"),
        }
    }

    fn array(self) -> Vec<Reply> {
        match self {
            Reply::Array(Some(items)) => items,
            other => panic!("expected an array, got {other:?}"),
        }
    }

    fn text(self) -> String {
        match self {
            Reply::Simple(s) => s,
            Reply::Bulk(Some(b)) => String::from_utf8(b).unwrap(),
            other => panic!("expected text, got {other:?}"),
        }
    }
}

/// A tiny RESP client: binary-safe where redis-cli's output is not.
struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    fn connect(port: u16) -> std::io::Result<Client> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Client {
            reader: BufReader::new(stream),
        })
    }

    fn call_bytes(&mut self, args: &[&[u8]]) -> Reply {
        let mut req = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            req.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            req.extend_from_slice(a);
            req.extend_from_slice(b"\r\n");
        }
        self.reader.get_mut().write_all(&req).unwrap();
        self.read_reply()
    }

    fn call(&mut self, args: &[&str]) -> Reply {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.call_bytes(&args)
    }

    /// Runs a command that must succeed.
    fn ok(&mut self, args: &[&str]) -> Reply {
        let reply = self.call(args);
        if let Reply::Error(e) = &reply {
            panic!("{args:?}: {e}");
        }
        reply
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        assert!(line.ends_with("\r\n"), "short reply line {line:?}");
        line.truncate(line.len() - 2);
        line
    }

    fn read_reply(&mut self) -> Reply {
        let line = self.line();
        let (kind, rest) = line.split_at(1);
        match kind {
            "+" => Reply::Simple(rest.to_string()),
            "-" => Reply::Error(rest.to_string()),
            ":" => Reply::Int(rest.parse().unwrap()),
            "$" => {
                let n: i64 = rest.parse().unwrap();
                if n < 0 {
                    return Reply::Bulk(None);
                }
                let mut buf = vec![0u8; n as usize + 2];
                self.reader.read_exact(&mut buf).unwrap();
                buf.truncate(n as usize);
                Reply::Bulk(Some(buf))
            }
            "*" => {
                let n: i64 = rest.parse().unwrap();
                if n < 0 {
                    return Reply::Array(None);
                }
                Reply::Array(Some((0..n).map(|_| self.read_reply()).collect()))
            }
            _ => panic!("bad reply line {line:?}"),
        }
    }
}

/// Contents of a value in a comparable form: unordered kinds sorted, zsets in order with
/// their scores.
#[derive(Debug, PartialEq)]
enum Contents {
    Str(Vec<u8>),
    List(Vec<Vec<u8>>),
    Set(Vec<Vec<u8>>),
    Hash(BTreeMap<Vec<u8>, Vec<u8>>),
    ZSet(Vec<(Vec<u8>, f64)>),
}

fn contents_of(value: &Value) -> Contents {
    match value {
        Value::List(l) => Contents::List(l.iter().map(<[u8]>::to_vec).collect()),
        Value::Set(s) => {
            let mut m: Vec<Vec<u8>> = s.iter().map(|m| m.to_vec()).collect();
            m.sort();
            Contents::Set(m)
        }
        Value::Hash(h) => Contents::Hash(h.iter().map(|(f, v)| (f.to_vec(), v.to_vec())).collect()),
        Value::ZSet(z) => Contents::ZSet(z.iter().map(|(m, s)| (m.to_vec(), s)).collect()),
        other => Contents::Str(other.as_str().unwrap().to_vec()),
    }
}

fn parse_score(b: &[u8]) -> f64 {
    match std::str::from_utf8(b).unwrap() {
        "inf" => f64::INFINITY,
        "-inf" => f64::NEG_INFINITY,
        s => s.parse().unwrap(),
    }
}

/// What Redis holds under `key` in the selected database.
fn contents_in_redis(c: &mut Client, key: &[u8]) -> (Contents, String) {
    let kind = c.call_bytes(&[b"TYPE", key]).text();
    let encoding = c.call_bytes(&[b"OBJECT", b"ENCODING", key]).text();
    let contents = match kind.as_str() {
        "string" => Contents::Str(c.call_bytes(&[b"GET", key]).bytes()),
        "list" => Contents::List(
            c.call_bytes(&[b"LRANGE", key, b"0", b"-1"])
                .array()
                .into_iter()
                .map(Reply::bytes)
                .collect(),
        ),
        "set" => {
            let mut m: Vec<Vec<u8>> = c
                .call_bytes(&[b"SMEMBERS", key])
                .array()
                .into_iter()
                .map(Reply::bytes)
                .collect();
            m.sort();
            Contents::Set(m)
        }
        "hash" => {
            let flat = c.call_bytes(&[b"HGETALL", key]).array();
            let mut map = BTreeMap::new();
            let mut it = flat.into_iter();
            while let (Some(f), Some(v)) = (it.next(), it.next()) {
                map.insert(f.bytes(), v.bytes());
            }
            Contents::Hash(map)
        }
        "zset" => {
            let flat = c
                .call_bytes(&[b"ZRANGE", key, b"0", b"-1", b"WITHSCORES"])
                .array();
            let mut pairs = Vec::new();
            let mut it = flat.into_iter();
            while let (Some(m), Some(s)) = (it.next(), it.next()) {
                pairs.push((m.bytes(), parse_score(&s.bytes())));
            }
            Contents::ZSet(pairs)
        }
        other => panic!("unexpected type {other}"),
    };
    (contents, encoding)
}

fn expire_in_redis(c: &mut Client, key: &[u8]) -> Option<i64> {
    let at = c.call_bytes(&[b"PEXPIRETIME", key]).int();
    (at >= 0).then_some(at)
}

fn select(c: &mut Client, db: usize) {
    c.ok(&["SELECT", &db.to_string()]);
}

/// Fills a Redis with every type and encoding, in databases 0, 1 and 5.
fn fill(c: &mut Client) {
    c.ok(&["SET", "int", "12345"]);
    c.ok(&["SET", "int-neg", "-7"]);
    c.ok(&["SET", "int-64", "-9223372036854775808"]);
    c.ok(&["SET", "int-big", "123456789012"]);
    c.ok(&["SET", "embstr", "hello world"]);
    c.ok(&["SET", "raw-compressible", &"abcdefgh".repeat(50)]);
    c.call_bytes(&[b"SET", b"binary", &(0..=255u8).collect::<Vec<u8>>()]);
    c.ok(&["SET", "appended", "abc"]);
    c.ok(&["APPEND", "appended", "def"]);
    c.ok(&["SET", "expiring", "soon", "PX", "100000000"]);
    c.ok(&["SET", "expiring-abs", "later"]);
    c.ok(&["PEXPIREAT", "expiring-abs", "4102444800123"]);
    c.ok(&["RPUSH", "list-small", "a", "1", "-2", "", "300", "x"]);
    for chunk in 0..20 {
        let items: Vec<String> = (0..100).map(|i| format!("item-{chunk}-{i}")).collect();
        let mut args = vec!["RPUSH", "list-big"];
        args.extend(items.iter().map(String::as_str));
        c.ok(&args);
    }
    c.ok(&["RPUSH", "list-big", &"Z".repeat(10_000)]);
    c.ok(&["RPUSH", "list-big", "after-the-big-one"]);
    c.ok(&["EXPIRE", "list-big", "1000000"]);
    // Elements from 1000 bytes on go into PLAIN nodes from now on.
    c.ok(&["DEBUG", "QUICKLIST-PACKED-THRESHOLD", "1000"]);
    c.ok(&["RPUSH", "list-plain", "small", &"P".repeat(2000), "tail"]);
    c.ok(&[
        "SADD",
        "set-int",
        "1",
        "2",
        "3",
        "-5",
        "70000",
        "5000000000",
    ]);
    c.ok(&["SADD", "set-str", "a", "b", "c"]);
    let many: Vec<String> = (0..600).map(|i| i.to_string()).collect();
    let mut args = vec!["SADD", "set-many-ints"];
    args.extend(many.iter().map(String::as_str));
    c.ok(&args);
    c.ok(&["HSET", "hash-small", "f", "v", "n", "1", "neg", "-30000"]);
    let fields: Vec<String> = (0..600).map(|i| format!("field-{i}")).collect();
    let mut args = vec!["HSET", "hash-big"];
    for f in &fields {
        args.push(f);
        args.push(f);
    }
    c.ok(&args);
    c.ok(&["HSET", "hash-long-value", "f", &"v".repeat(100)]);
    c.ok(&[
        "ZADD",
        "zset-small",
        "1",
        "a",
        "2.5",
        "b",
        "-inf",
        "c",
        "inf",
        "d",
        "0.1",
        "e",
    ]);
    let members: Vec<(String, String)> = (0..200)
        .map(|i| (format!("{}", f64::from(i) / 7.0), format!("m{i}")))
        .collect();
    let mut args = vec!["ZADD", "zset-big"];
    for (s, m) in &members {
        args.push(s);
        args.push(m);
    }
    c.ok(&args);
    c.ok(&["FUNCTION", "LOAD", LIBRARY]);
    select(c, 1);
    c.ok(&["SET", "db1-key", "one"]);
    c.ok(&["RPUSH", "db1-list", "x", "y"]);
    select(c, 5);
    c.ok(&["HSET", "db5-hash", "a", "b"]);
    select(c, 0);
}

/// Checks a loaded snapshot against the Redis it came from, key by key, and each key's DUMP
/// payload against restore_value.
fn compare_with_redis(snapshot: &Snapshot, c: &mut Client) {
    // Redis reloads its own file first, so its encodings are those a load gives (a string
    // grown by APPEND is raw in memory but embstr once loaded, in Redis as in moonkv).
    c.ok(&["DEBUG", "RELOAD"]);
    let mut per_db: BTreeMap<usize, i64> = BTreeMap::new();
    for key in &snapshot.keys {
        select(c, key.db);
        *per_db.entry(key.db).or_default() += 1;
        let name = String::from_utf8_lossy(&key.key);
        let (contents, encoding) = contents_in_redis(c, &key.key);
        assert_eq!(
            contents_of(&key.value),
            contents,
            "db {} key {name}",
            key.db
        );
        assert_eq!(key.value.encoding(), encoding, "encoding of {name}");
        assert_eq!(
            key.expire_at,
            expire_in_redis(c, &key.key),
            "expiry of {name}"
        );
        let payload = c.call_bytes(&[b"DUMP", &key.key]).bytes();
        let restored = restore_value(&payload, &LoadLimits::default(), true)
            .unwrap_or_else(|e| panic!("restore_value of Redis's DUMP of {name}: {e:?}"));
        assert_eq!(contents_of(&restored), contents, "DUMP of {name}");
    }
    for db in [0usize, 1, 5] {
        select(c, db);
        let size = c.ok(&["DBSIZE"]).int();
        assert_eq!(
            per_db.get(&db).copied().unwrap_or(0),
            size,
            "keys in db {db}"
        );
    }
    select(c, 0);
    assert_eq!(snapshot.functions, vec![LIBRARY.as_bytes().to_vec()]);
}

fn load_redis_save(policy: &str) -> (Snapshot, TempDir, Redis) {
    let dir = TempDir::new(policy);
    let redis = Redis::start(
        &dir.0,
        &[
            "--enable-debug-command",
            "yes",
            "--maxmemory-policy",
            policy,
            "--rdbcompression",
            "yes",
        ],
    );
    let mut c = redis.client();
    fill(&mut c);
    c.ok(&["SAVE"]);
    let file = fs::File::open(dir.0.join("dump.rdb")).unwrap();
    let snapshot = read_snapshot_from(BufReader::new(file), &LoadLimits::default())
        .unwrap_or_else(|e| panic!("reading Redis's dump.rdb: {e}"));
    (snapshot, dir, redis)
}

#[test]
fn reads_what_redis_saves_with_lfu() {
    if !redis_available("reads_what_redis_saves_with_lfu") {
        return;
    }
    let (snapshot, _dir, redis) = load_redis_save("allkeys-lfu");
    assert_eq!(snapshot.version, 10);
    assert_eq!(snapshot.checksum, Checksum::Verified);
    let aux: BTreeMap<_, _> = snapshot.aux.iter().cloned().collect();
    assert_eq!(aux.get(&b"redis-ver"[..]), Some(&b"7.0.15".to_vec()));
    assert_eq!(aux.get(&b"redis-bits"[..]), Some(&b"64".to_vec()));
    assert!(snapshot.keys.len() > 20);
    assert!(snapshot
        .keys
        .iter()
        .all(|k| k.lfu_freq.is_some() && k.lru_idle.is_none()));
    compare_with_redis(&snapshot, &mut redis.client());
}

#[test]
fn reads_what_redis_saves_with_lru() {
    if !redis_available("reads_what_redis_saves_with_lru") {
        return;
    }
    let (snapshot, _dir, redis) = load_redis_save("allkeys-lru");
    assert!(snapshot
        .keys
        .iter()
        .all(|k| k.lru_idle.is_some() && k.lfu_freq.is_none()));
    compare_with_redis(&snapshot, &mut redis.client());
}

#[test]
fn reads_what_redis_saves_uncompressed_without_checksum() {
    if !redis_available("reads_what_redis_saves_uncompressed_without_checksum") {
        return;
    }
    let dir = TempDir::new("plain");
    let redis = Redis::start(
        &dir.0,
        &[
            "--enable-debug-command",
            "yes",
            "--rdbcompression",
            "no",
            "--rdbchecksum",
            "no",
        ],
    );
    let mut c = redis.client();
    fill(&mut c);
    c.ok(&["SAVE"]);
    let data = fs::read(dir.0.join("dump.rdb")).unwrap();
    // The list pushed under a 1000-byte packed threshold has a packed node, a PLAIN node
    // (container 1) holding the 2000-byte element, and another packed node.
    let at = data
        .windows(11)
        .position(|w| w == b"\x0alist-plain")
        .unwrap();
    assert_eq!((data[at - 1], data[at + 11], data[at + 12]), (18, 3, 2));
    assert!(data[at..at + 64].windows(3).any(|w| w == [1, 0x47, 0xD0]));
    let snapshot = read_snapshot_from(&data[..], &LoadLimits::default()).unwrap();
    assert_eq!(snapshot.checksum, Checksum::Disabled);
    compare_with_redis(&snapshot, &mut c);
    // Damage to Redis's own file (no checksum to catch it): an error or a load, never a
    // panic; any cut is an error.
    for i in (9..data.len()).step_by(61) {
        let mut bad = data.clone();
        bad[i] ^= 0x5A;
        let _ = read_snapshot_from(&bad[..], &LoadLimits::default());
        assert!(read_snapshot_from(&data[..i], &LoadLimits::default()).is_err());
    }
}

/// Values of every kind and encoding, built with moonkv's own types.
fn our_values() -> Vec<(usize, Vec<u8>, Value, Option<i64>)> {
    let limits = LoadLimits::default();
    let mut out: Vec<(usize, Vec<u8>, Value, Option<i64>)> = Vec::new();
    let mut add = |db: usize, key: &str, value: Value, expire: Option<i64>| {
        out.push((db, key.as_bytes().to_vec(), value, expire));
    };
    add(0, "int", Value::string(b"12345"), None);
    add(0, "int-8", Value::string(b"-7"), None);
    add(0, "int-64", Value::string(b"9223372036854775807"), None);
    add(
        0,
        "embstr",
        Value::string(b"hello"),
        Some(4_102_444_800_000),
    );
    add(
        0,
        "raw-compressible",
        Value::string(&b"0123456789".repeat(30)),
        None,
    );
    add(
        0,
        "binary",
        Value::string(&(0..=255u8).rev().collect::<Vec<u8>>()),
        None,
    );
    add(0, "raw-appended", Value::Raw(b"xyz".to_vec()), None);
    let mut small = List::new();
    for item in [&b"a"[..], b"42", b"-1", b"", b"4294967296"] {
        small.push(End::Tail, item);
    }
    add(0, "list-small", Value::List(Box::new(small)), None);
    let mut big = List::new();
    for i in 0..5000 {
        big.push(End::Tail, format!("element-{i}").as_bytes());
        if i == 2500 {
            big.push(End::Tail, &[b'B'; 12_000]);
        }
    }
    add(
        0,
        "list-big",
        Value::List(Box::new(big)),
        Some(4_102_444_800_001),
    );
    let mut intset = Set::new();
    for m in ["1", "-1", "40000", "-5000000000"] {
        intset.insert(m.as_bytes(), limits.set_max_intset_entries);
    }
    add(0, "set-intset", Value::Set(Box::new(intset)), None);
    let mut table = Set::new();
    for i in 0..300 {
        table.insert(
            format!("member:{i}").as_bytes(),
            limits.set_max_intset_entries,
        );
    }
    add(0, "set-hashtable", Value::Set(Box::new(table)), None);
    let mut hash = Hash::new();
    for (f, v) in [("name", "moonkv"), ("n", "17"), ("big", "123456789012345")] {
        hash.set(f.as_bytes(), v.as_bytes(), limits.hash);
    }
    add(0, "hash-listpack", Value::Hash(Box::new(hash)), None);
    let mut hash = Hash::new();
    for i in 0..600 {
        hash.set(
            format!("f{i}").as_bytes(),
            format!("value {i}").as_bytes(),
            limits.hash,
        );
    }
    add(0, "hash-hashtable", Value::Hash(Box::new(hash)), None);
    let mut zset = SortedSet::new();
    for (m, s) in [
        ("a", 1.0),
        ("b", -2.5),
        ("c", 0.1),
        ("d", f64::INFINITY),
        ("e", 3e200),
    ] {
        zset.insert(m.as_bytes(), s, limits.zset);
    }
    add(0, "zset-listpack", Value::ZSet(Box::new(zset)), None);
    let mut zset = SortedSet::new();
    for i in 0..400 {
        zset.insert(
            format!("m{i}").as_bytes(),
            f64::from(i) / 3.0 - 10.0,
            limits.zset,
        );
    }
    add(0, "zset-skiplist", Value::ZSet(Box::new(zset)), None);
    add(2, "db2-string", Value::string(b"in db 2"), None);
    add(15, "db15-int", Value::string(b"15"), None);
    out
}

#[test]
fn redis_loads_what_we_write() {
    if !redis_available("redis_loads_what_we_write") {
        return;
    }
    let dir = TempDir::new("ours");
    let path = dir.0.join("dump.rdb");
    let values = our_values();
    let file = fs::File::create(&path).unwrap();
    let options = WriteOptions {
        compress: true,
        checksum: true,
    };
    let mut w = RdbWriter::new(std::io::BufWriter::new(file), options).unwrap();
    w.aux("redis-ver", b"7.0.15").unwrap();
    w.aux("redis-bits", b"64").unwrap();
    w.aux("ctime", b"1700000000").unwrap();
    w.aux("used-mem", b"1000000").unwrap();
    w.aux("aof-base", b"0").unwrap();
    w.function(LIBRARY.as_bytes()).unwrap();
    let mut db = usize::MAX;
    for (i, (key_db, key, value, expire)) in values.iter().enumerate() {
        if *key_db != db {
            db = *key_db;
            let keys = values[i..].iter().take_while(|v| v.0 == db).count() as u64;
            w.select_db(db, keys, 0).unwrap();
        }
        w.key(key, value, *expire).unwrap();
    }
    w.finish().unwrap().flush().unwrap();

    let check = Command::new(REDIS_CHECK_RDB).arg(&path).output().unwrap();
    let report = String::from_utf8_lossy(&check.stdout).into_owned()
        + &String::from_utf8_lossy(&check.stderr);
    assert!(check.status.success(), "redis-check-rdb failed:\n{report}");
    assert!(
        report.contains("RDB looks OK"),
        "redis-check-rdb said:\n{report}"
    );

    let redis = Redis::start(&dir.0, &["--dbfilename", "dump.rdb"]);
    let mut c = redis.client();
    let log = redis.log_text();
    assert!(log.contains("Done loading RDB"), "log:\n{log}");
    for (db, key, value, expire) in &values {
        select(&mut c, *db);
        let name = String::from_utf8_lossy(key);
        let (contents, encoding) = contents_in_redis(&mut c, key);
        assert_eq!(contents, contents_of(value), "key {name}");
        let ours = match value {
            // A string modified in place reloads as Redis's tryObjectEncoding decides.
            Value::Raw(bytes) => Value::string(bytes).encoding(),
            other => other.encoding(),
        };
        assert_eq!(encoding, ours, "encoding of {name}");
        assert_eq!(expire_in_redis(&mut c, key), *expire, "expiry of {name}");
        // Our DUMP payload restores in Redis to the same contents.
        let copy = [&key[..], b":restored"].concat();
        let restored = c.call_bytes(&[b"RESTORE", &copy, b"0", &dump_value(value)]);
        assert_eq!(restored, Reply::Simple("OK".into()), "RESTORE of {name}");
        assert_eq!(
            contents_in_redis(&mut c, &copy).0,
            contents_of(value),
            "RESTORE of {name}"
        );
    }
    select(&mut c, 0);
    let cli = |args: &[&str]| {
        let out = Command::new(REDIS_CLI)
            .args(["-p", &redis.port.to_string()])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(cli(&["FUNCTION", "LIST"]).contains("interoplib"));
    let called = cli(&["FCALL", "interop_fn", "0"]);
    assert_eq!(called.trim(), "1");
}
