//! Replication over TCP, between moonkv servers and with redis-server 7.0.15 in both
//! directions: full sync, a mixed write load with scripts, functions and expiring keys, the
//! datasets compared key by key, WAIT, partial resync after the link breaks, and REPLICAOF NO
//! ONE.

mod common;

use common::{info_field, redis_available, scratch_dir, RedisServer, TestServer};
use redis::{Commands, Connection};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn config_set(c: &mut Connection, name: &str, value: impl redis::ToRedisArgs) {
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg(name)
        .arg(value)
        .query(c)
        .unwrap();
}

/// `n` string keys `<prefix>:<i>` holding `i`.
fn fill(c: &mut Connection, prefix: &str, n: usize) {
    let mut pipe = redis::pipe();
    for i in 0..n {
        pipe.set(format!("{prefix}:{i}"), i).ignore();
    }
    let _: () = pipe.query(c).unwrap();
}

fn wait_transfer_started(p: &mut Connection) {
    wait_until("the transfer to start", || {
        info_field(p, "persistence", "rdb_bgsave_in_progress") == "1"
    });
}

/// A server of either kind.
enum Node {
    Moonkv(TestServer),
    Redis(RedisServer, std::path::PathBuf),
}

impl Node {
    fn start(redis: bool, replica_of: Option<u16>) -> Node {
        if redis {
            let dir = scratch_dir("redis-node");
            let port = replica_of.map(|p| p.to_string());
            let mut args = vec!["--repl-diskless-sync-delay", "0"];
            if let Some(port) = port.as_deref() {
                args.extend(["--replicaof", "127.0.0.1", port]);
            }
            Node::Redis(RedisServer::start_with(&dir, &args), dir)
        } else {
            let primary = replica_of.map(|port| format!("127.0.0.1 {port}"));
            // Redis's default diskless sync waits 5 seconds for more replicas.
            let mut args = vec!["--repl-diskless-sync-delay", "0"];
            if let Some(primary) = primary.as_deref() {
                args.extend(["--replicaof", primary]);
            }
            Node::Moonkv(TestServer::start_with(&args))
        }
    }

    fn port(&self) -> u16 {
        match self {
            Node::Moonkv(s) => s.port,
            Node::Redis(s, _) => s.port,
        }
    }

    fn conn(&self) -> Connection {
        match self {
            Node::Moonkv(s) => s.conn(),
            Node::Redis(s, _) => s.conn(),
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Node::Redis(_, dir) = self {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

const LIBRARY: &str = "#!lua name=repl\n\
redis.register_function('bump', function(keys, args) \
  redis.call('hincrby', keys[1], args[1], 1) \
  return redis.call('rpush', keys[2], args[1]) end)";

const SCRIPT: &str = "redis.call('incrby', KEYS[1], ARGV[1]) \
  redis.call('zadd', KEYS[2], ARGV[1], 'm' .. ARGV[1]) \
  local n = redis.call('scard', KEYS[3]) \
  redis.call('sadd', KEYS[3], 'e' .. (n % 7)) \
  return n";

/// Writes of every kind: plain commands, a transaction, EVAL/EVALSHA, FCALL, TTLs (some short
/// enough to expire on the primary during the load) and deletions.
fn write_load(c: &mut Connection, round: usize) {
    if round == 0 {
        let _: String = redis::cmd("FUNCTION")
            .arg("LOAD")
            .arg("REPLACE")
            .arg(LIBRARY)
            .query(c)
            .unwrap();
    }
    let sha: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg(SCRIPT)
        .query(c)
        .unwrap();
    let mut pipe = redis::pipe();
    for i in 0..200 {
        let n = round * 1000 + i;
        pipe.set(format!("s:{n}"), n).ignore();
        pipe.lpush(format!("l:{}", n % 13), n).ignore();
        pipe.hset(format!("h:{}", n % 11), format!("f{n}"), n)
            .ignore();
        pipe.cmd("EVAL")
            .arg(SCRIPT)
            .arg(3)
            .arg(format!("c:{}", n % 5))
            .arg(format!("z:{}", n % 3))
            .arg(format!("set:{}", n % 4))
            .arg(n)
            .ignore();
        pipe.cmd("EVALSHA")
            .arg(&sha)
            .arg(3)
            .arg("c:sha")
            .arg("z:sha")
            .arg("set:sha")
            .arg(n % 50)
            .ignore();
        pipe.cmd("FCALL")
            .arg("bump")
            .arg(2)
            .arg(format!("fh:{}", n % 3))
            .arg(format!("fl:{}", n % 3))
            .arg(n % 9)
            .ignore();
        pipe.cmd("SET")
            .arg(format!("short:{n}"))
            .arg(n)
            .arg("PX")
            .arg(1 + n % 30)
            .ignore();
        pipe.cmd("SET")
            .arg(format!("long:{n}"))
            .arg(n)
            .arg("EX")
            .arg(1000)
            .ignore();
        if i % 10 == 0 {
            pipe.del(format!("s:{}", n.saturating_sub(5))).ignore();
            pipe.cmd("MULTI").ignore();
            pipe.incr("tx:counter", 1).ignore();
            pipe.append("tx:log", format!("{n},")).ignore();
            pipe.cmd("EXEC").ignore();
        }
    }
    let _: () = pipe.query(c).unwrap();
}

/// Every key with its type, value and whether it has a TTL.
fn dataset(c: &mut Connection) -> BTreeMap<String, String> {
    let keys: Vec<String> = c.keys("*").unwrap();
    let mut out = BTreeMap::new();
    for key in keys {
        let ty: String = redis::cmd("TYPE").arg(&key).query(c).unwrap();
        let value = match ty.as_str() {
            "string" => c.get::<_, String>(&key).unwrap(),
            "list" => c.lrange::<_, Vec<String>>(&key, 0, -1).unwrap().join(","),
            "set" => {
                let mut members: Vec<String> = c.smembers(&key).unwrap();
                members.sort();
                members.join(",")
            }
            "hash" => {
                let map: BTreeMap<String, String> = c.hgetall(&key).unwrap();
                format!("{map:?}")
            }
            "zset" => {
                let items: Vec<(String, f64)> = c.zrange_withscores(&key, 0, -1).unwrap();
                format!("{items:?}")
            }
            // Gone between KEYS and TYPE (it expired).
            "none" => continue,
            other => panic!("unexpected type {other}"),
        };
        let ttl: i64 = c.ttl(&key).unwrap();
        out.insert(key, format!("{ty} {value} ttl:{}", ttl > 0));
    }
    out
}

/// Waits until the replica has applied everything the primary sent.
fn caught_up(primary: &mut Connection, replica: &mut Connection) {
    wait_until("the replica to catch up", || {
        let sent = info_field(primary, "replication", "master_repl_offset");
        info_field(replica, "replication", "master_link_status") == "up"
            && info_field(replica, "replication", "slave_repl_offset") == sent
    });
}

fn compare(primary: &mut Connection, replica: &mut Connection) {
    // Keys with a short TTL are gone from the primary by now; let it delete them (the DELs
    // reach the replica) before comparing.
    std::thread::sleep(Duration::from_millis(60));
    let _: Vec<String> = primary.keys("short:*").unwrap();
    caught_up(primary, replica);
    let on_primary = dataset(primary);
    let on_replica = dataset(replica);
    assert!(
        on_primary.len() > 500,
        "the load wrote data: {} keys",
        on_primary.len()
    );
    let differing: Vec<&String> = on_primary
        .keys()
        .chain(on_replica.keys())
        .filter(|k| on_primary.get(*k) != on_replica.get(*k))
        .collect();
    assert!(
        differing.is_empty(),
        "{} keys differ: {:?}",
        differing.len(),
        &differing[..differing.len().min(10)]
    );
}

/// Primary and replica of the given kinds: full sync of data written before the replica
/// came, a load while attached, WAIT, a broken link resumed partially, then the comparison.
fn replicate(redis_primary: bool, redis_replica: bool) {
    let primary = Node::start(redis_primary, None);
    let mut p = primary.conn();
    write_load(&mut p, 0);

    let replica = Node::start(redis_replica, Some(primary.port()));
    let mut r = replica.conn();
    caught_up(&mut p, &mut r);
    write_load(&mut p, 1);
    let acked: i64 = redis::cmd("WAIT").arg(1).arg(5000).query(&mut p).unwrap();
    assert_eq!(acked, 1, "the replica acknowledged the writes");
    compare(&mut p, &mut r);

    // The replica's function library came with the sync.
    let list: Vec<redis::Value> = redis::cmd("FUNCTION").arg("LIST").query(&mut r).unwrap();
    assert_eq!(list.len(), 1, "one library on the replica");

    // Break the link: the replica resumes from its offset.
    let partial_before: i64 = info_field(&mut p, "stats", "sync_partial_ok")
        .parse()
        .unwrap();
    let _: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("replica")
        .query(&mut p)
        .unwrap();
    write_load(&mut p, 2);
    caught_up(&mut p, &mut r);
    let partial_after: i64 = info_field(&mut p, "stats", "sync_partial_ok")
        .parse()
        .unwrap();
    assert_eq!(
        partial_after,
        partial_before + 1,
        "a partial resync, not a full one"
    );
    compare(&mut p, &mut r);

    // A replica refuses writes from clients.
    let err = r.set::<_, _, ()>("client-write", 1).unwrap_err();
    assert!(err.to_string().contains("read only replica"), "{err}");
}

#[test]
fn moonkv_replicates_from_moonkv() {
    replicate(false, false);
}

#[test]
fn moonkv_replicates_from_redis_server() {
    if redis_available() {
        replicate(true, false);
    }
}

#[test]
fn redis_server_replicates_from_moonkv() {
    if redis_available() {
        replicate(false, true);
    }
}

#[test]
fn a_promoted_replica_keeps_its_data_and_its_replicas_resume() {
    let primary = Node::start(false, None);
    let mut p = primary.conn();
    write_load(&mut p, 0);
    let middle = Node::start(false, Some(primary.port()));
    let mut m = middle.conn();
    caught_up(&mut p, &mut m);
    // A replica of the replica gets the stream passed on.
    let leaf = Node::start(false, Some(middle.port()));
    let mut l = leaf.conn();
    write_load(&mut p, 1);
    caught_up(&mut p, &mut m);
    caught_up(&mut m, &mut l);
    compare(&mut p, &mut l);

    let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut m).unwrap();
    assert_eq!(role.len(), 5);
    assert_eq!(role[0], redis::Value::BulkString(b"slave".to_vec()));
    assert_eq!(role[3], redis::Value::BulkString(b"connected".to_vec()));

    // Promotion: the data stays, writes are accepted, and the leaf continues partially with
    // the new history.
    let _: () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query(&mut m)
        .unwrap();
    assert_eq!(info_field(&mut m, "replication", "role"), "master");
    let _: () = m.set("after-promotion", 1).unwrap();
    caught_up(&mut m, &mut l);
    assert_eq!(l.get::<_, i64>("after-promotion").unwrap(), 1);
    assert_eq!(
        info_field(&mut m, "stats", "sync_full"),
        "1",
        "only the leaf's first sync was full"
    );
    drop(primary);
}

#[test]
fn wait_counts_replicas_and_times_out() {
    let primary = Node::start(false, None);
    let mut p = primary.conn();
    let _: () = p.set("k", 1).unwrap();
    let started = Instant::now();
    let acked: i64 = redis::cmd("WAIT").arg(1).arg(200).query(&mut p).unwrap();
    assert_eq!(acked, 0);
    assert!(
        started.elapsed() >= Duration::from_millis(190),
        "WAIT waited for its timeout"
    );
    let replica = Node::start(false, Some(primary.port()));
    let mut r = replica.conn();
    caught_up(&mut p, &mut r);
    let _: () = p.set("k", 2).unwrap();
    let acked: i64 = redis::cmd("WAIT").arg(1).arg(0).query(&mut p).unwrap();
    assert_eq!(acked, 1);
    let err = redis::cmd("WAIT")
        .arg(1)
        .arg(0)
        .query::<i64>(&mut r)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("WAIT cannot be used with replica instances"),
        "{err}"
    );
    // min-replicas-to-write counts replicas that acknowledged recently.
    config_set(&mut p, "min-replicas-to-write", 2);
    let err = p.set::<_, _, ()>("k", 3).unwrap_err();
    assert!(err.to_string().contains("NOREPLICAS"), "{err}");
    config_set(&mut p, "min-replicas-to-write", 1);
    let _: () = p.set("k", 3).unwrap();
}

#[test]
fn set_repl_sends_a_script_s_commands_where_it_says() {
    let primary =
        TestServer::start_with(&["--appendonly", "yes", "--repl-diskless-sync-delay", "0"]);
    let mut p = primary.conn();
    let replica = Node::start(false, Some(primary.port));
    let mut r = replica.conn();
    caught_up(&mut p, &mut r);
    let script = "redis.set_repl(redis.REPL_AOF) redis.call('set', 'aof-only', 1) \
        redis.set_repl(redis.REPL_REPLICA) redis.call('set', 'replica-only', 2) \
        redis.set_repl(redis.REPL_NONE) redis.call('set', 'nowhere', 3) \
        redis.set_repl(redis.REPL_ALL) redis.call('set', 'everywhere', 4) \
        redis.set_repl(redis.REPL_SLAVE) redis.call('set', 'replica-too', 5) \
        return redis.replicate_commands()";
    let answer: i64 = redis::cmd("EVAL").arg(script).arg(0).query(&mut p).unwrap();
    assert_eq!(answer, 1, "replicate_commands() answers true in Redis 7");
    // The next script starts with everything replicated again.
    let _: () = redis::cmd("EVAL")
        .arg("redis.call('set', 'next-script', 6)")
        .arg(0)
        .query(&mut p)
        .unwrap();
    caught_up(&mut p, &mut r);
    let on_replica: Vec<Option<i64>> = redis::cmd("MGET")
        .arg(&[
            "aof-only",
            "replica-only",
            "nowhere",
            "everywhere",
            "replica-too",
            "next-script",
        ])
        .query(&mut r)
        .unwrap();
    assert_eq!(on_replica, [None, Some(2), None, Some(4), Some(5), Some(6)]);
    // The append-only file holds what went to it, and nothing else.
    config_set(&mut p, "appendfsync", "always");
    let aof_dir = primary.dir.join("appendonlydir");
    let text: String = std::fs::read_dir(&aof_dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".incr.aof"))
        .map(|e| String::from_utf8_lossy(&std::fs::read(e.path()).unwrap()).into_owned())
        .collect();
    for (key, present) in [
        ("aof-only", true),
        ("replica-only", false),
        ("nowhere", false),
        ("everywhere", true),
        ("replica-too", false),
        ("next-script", true),
    ] {
        assert_eq!(text.contains(key), present, "{key} in the AOF: {text}");
    }
}

#[test]
fn a_restarted_replica_resumes_from_its_snapshot() {
    let primary = TestServer::start_with(&["--repl-diskless-sync-delay", "0"]);
    let mut p = primary.conn();
    write_load(&mut p, 0);
    let dir = scratch_dir("restarted-replica");
    let upstream = format!("127.0.0.1 {}", primary.port);
    let args = ["--replicaof", upstream.as_str(), "--save", ""];
    {
        let replica = TestServer::start_in(&dir, &args);
        let mut r = replica.conn();
        caught_up(&mut p, &mut r);
        // Its snapshot records where it stood in the primary's history.
        let _: () = redis::cmd("SAVE").query(&mut r).unwrap();
    }
    // Written while the replica is down, within the primary's backlog.
    write_load(&mut p, 1);
    let full_before = info_field(&mut p, "stats", "sync_full");
    let replica = TestServer::start_in(&dir, &args);
    let mut r = replica.conn();
    caught_up(&mut p, &mut r);
    assert_eq!(
        info_field(&mut p, "stats", "sync_full"),
        full_before,
        "no second full sync"
    );
    assert_eq!(info_field(&mut p, "stats", "sync_partial_ok"), "1");
    compare(&mut p, &mut r);
    drop(replica);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_diskless_primary_waits_for_more_replicas_and_keeps_the_link_alive() {
    let primary = TestServer::start_with(&["--repl-diskless-sync-delay", "2"]);
    let mut p = primary.conn();
    let _: () = p.set("k", "v").unwrap();
    let replica = Node::start(false, Some(primary.port));
    let mut r = replica.conn();
    let asked = Instant::now();
    // The replica waits in the handshake while the primary delays the transfer.
    wait_until("the handshake", || {
        let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut r).unwrap();
        role.get(3) == Some(&redis::Value::BulkString(b"handshake".to_vec()))
    });
    caught_up(&mut p, &mut r);
    assert!(
        asked.elapsed() >= Duration::from_millis(1500),
        "the transfer waited for the delay"
    );
    assert_eq!(r.get::<_, String>("k").unwrap(), "v");
}

#[test]
fn a_full_resync_is_written_in_the_background_while_writes_go_on() {
    let primary = TestServer::start_with(&["--repl-diskless-sync-delay", "0"]);
    let mut p = primary.conn();
    fill(&mut p, "key", 20_000);
    // 25 microseconds a key: the snapshot takes about half a second to write.
    config_set(&mut p, "rdb-key-save-delay", 25);
    let replica = Node::start(false, Some(primary.port));
    let mut r = replica.conn();
    wait_transfer_started(&mut p);
    // Served while the snapshot is written; these changes reach the replica after it.
    let mut changes = redis::pipe();
    for i in (0..20_000).step_by(3) {
        changes.incr(format!("key:{i}"), 1000).ignore();
    }
    for i in (1..20_000).step_by(7) {
        changes.del(format!("key:{i}")).ignore();
    }
    changes.cmd("SELECT").arg(4).ignore();
    changes.set("in-db-4", "x").ignore();
    changes.cmd("SELECT").arg(0).ignore();
    let _: () = changes.query(&mut p).unwrap();
    assert_eq!(
        info_field(&mut p, "persistence", "rdb_bgsave_in_progress"),
        "1"
    );
    assert!(info_field(&mut p, "replication", "slave0").contains("state=wait_bgsave"));
    config_set(&mut p, "rdb-key-save-delay", 0);
    caught_up(&mut p, &mut r);
    let on_primary = dataset(&mut p);
    let on_replica = dataset(&mut r);
    assert!(on_primary.len() > 10_000);
    assert_eq!(on_primary.len(), on_replica.len());
    assert!(on_primary == on_replica, "the datasets differ");
    let _: () = redis::cmd("SELECT").arg(4).query(&mut r).unwrap();
    assert_eq!(r.get::<_, String>("in-db-4").unwrap(), "x");
}

#[test]
fn a_replica_keeps_keys_whose_time_passed_during_its_full_resync() {
    let primary = TestServer::start_with(&["--repl-diskless-sync-delay", "0"]);
    let mut p = primary.conn();
    fill(&mut p, "filler", 10_000);
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .arg("PX")
        .arg(400)
        .query(&mut p)
        .unwrap();
    // The snapshot takes about a second to write: k's time in it passes before the replica
    // loads it.
    config_set(&mut p, "rdb-key-save-delay", 100);
    let replica = Node::start(false, Some(primary.port));
    let mut r = replica.conn();
    wait_transfer_started(&mut p);
    // Before k's time is up on the primary: it lives on, and so must it on the replica.
    let renewed: bool = redis::cmd("PEXPIRE")
        .arg("k")
        .arg(100_000)
        .query(&mut p)
        .unwrap();
    assert!(renewed);
    caught_up(&mut p, &mut r);
    assert_eq!(
        r.get::<_, Option<String>>("k").unwrap().as_deref(),
        Some("v")
    );
    let ttl: i64 = r.pttl("k").unwrap();
    assert!(ttl > 90_000, "the renewed TTL: {ttl}");
}

#[test]
fn a_replica_that_stops_acknowledging_is_dropped_after_repl_timeout() {
    let primary =
        TestServer::start_with(&["--repl-diskless-sync-delay", "0", "--repl-timeout", "1"]);
    let mut p = primary.conn();
    // A tool attached with SYNC never acknowledges: it is not timed out.
    let mut tool = primary.raw();
    tool.send(b"SYNC\r\n");
    // A replica that acknowledged once, then went silent.
    let mut silent = primary.raw();
    silent.send(b"PSYNC ? -1\r\n");
    wait_until("both attached", || {
        let info: String = redis::cmd("INFO").arg("replication").query(&mut p).unwrap();
        info.matches("state=online").count() == 2
    });
    silent.send(b"REPLCONF ACK 0\r\n");
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(info_field(&mut p, "replication", "connected_slaves"), "1");
    assert!(
        silent.closed_by_server(),
        "the silent replica's link was closed"
    );
}

#[test]
fn a_replica_that_stops_reading_is_dropped_at_its_output_limit() {
    let primary = TestServer::start_with(&[
        "--repl-diskless-sync-delay",
        "0",
        "--client-output-buffer-limit",
        "replica 1mb 0 0",
    ]);
    let mut p = primary.conn();
    // Attached, then never reads again.
    let mut stuck = primary.raw();
    stuck.send(b"PSYNC ? -1\r\n");
    wait_until("attached", || {
        let info: String = redis::cmd("INFO").arg("replication").query(&mut p).unwrap();
        info.contains("state=online")
    });
    let value = "x".repeat(10_000);
    for _ in 0..40 {
        let mut pipe = redis::pipe();
        for i in 0..100 {
            pipe.set(format!("k{i}"), &value).ignore();
        }
        let _: () = pipe.query(&mut p).unwrap();
    }
    wait_until("the replica dropped", || {
        info_field(&mut p, "replication", "connected_slaves") == "0"
    });
    // The primary goes on.
    let _: () = p.set("after", 1).unwrap();
}
