//! RDB persistence over TCP: SAVE, BGSAVE, save points, the save at SIGTERM/SHUTDOWN,
//! loading at start-up, FLUSHALL and DEBUG RELOAD through the file, MISCONF after a failed
//! background save, refusal to start on a damaged file, and files exchanged with
//! redis-server 7.0.15.

mod common;

use common::{info_field, redis_available, scratch_dir, RedisServer, TestServer};
use redis::{Commands, Connection, Value};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One key of every type and encoding, some with a TTL, and a function library.
fn fill(c: &mut Connection) {
    let _: () = c.set("str", "hello").unwrap();
    let _: () = c.set("int", 12345).unwrap();
    let _: () = c.set("long", "x".repeat(5000)).unwrap();
    let _: () = c.set_ex("ttl", "soon", 1000).unwrap();
    let _: () = c.rpush("list", &["a", "b", "c"]).unwrap();
    let big: Vec<String> = (0..2000).map(|i| format!("item-{i}")).collect();
    let _: () = c.rpush("biglist", &big).unwrap();
    let _: () = c.sadd("intset", &[1, 2, 3]).unwrap();
    let _: () = c.sadd("set", &["x", "y"]).unwrap();
    let _: () = c
        .hset_multiple("hash", &[("f1", "v1"), ("f2", "v2")])
        .unwrap();
    let fields: Vec<(String, String)> = (0..500)
        .map(|i| (format!("f{i}"), format!("v{i}")))
        .collect();
    let _: () = c.hset_multiple("bighash", &fields).unwrap();
    let _: () = c
        .zadd_multiple("zset", &[(1.5, "one"), (2.5, "two")])
        .unwrap();
    let members: Vec<(f64, String)> = (0..300).map(|i| (i as f64, format!("m{i}"))).collect();
    let _: () = c.zadd_multiple("bigzset", &members).unwrap();
    let _: () = redis::cmd("SELECT").arg(3).query(c).unwrap();
    let _: () = c.set("in-db-3", "three").unwrap();
    let _: () = redis::cmd("SELECT").arg(0).query(c).unwrap();
    let _: String = redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg("#!lua name=persisted\nredis.register_function('echo1', function(keys, args) return args[1] end)")
        .query(c)
        .unwrap();
}

fn check_filled(c: &mut Connection) {
    assert_eq!(c.get::<_, String>("str").unwrap(), "hello");
    assert_eq!(c.get::<_, i64>("int").unwrap(), 12345);
    assert_eq!(c.get::<_, String>("long").unwrap(), "x".repeat(5000));
    let ttl: i64 = c.ttl("ttl").unwrap();
    assert!((900..=1000).contains(&ttl), "ttl {ttl}");
    assert_eq!(
        c.lrange::<_, Vec<String>>("list", 0, -1).unwrap(),
        ["a", "b", "c"]
    );
    assert_eq!(c.llen::<_, i64>("biglist").unwrap(), 2000);
    assert_eq!(c.lindex::<_, String>("biglist", 1999).unwrap(), "item-1999");
    let mut ints: Vec<i64> = c.smembers("intset").unwrap();
    ints.sort();
    assert_eq!(ints, [1, 2, 3]);
    assert_eq!(c.scard::<_, i64>("set").unwrap(), 2);
    assert_eq!(c.hget::<_, _, String>("hash", "f2").unwrap(), "v2");
    assert_eq!(c.hlen::<_, i64>("bighash").unwrap(), 500);
    assert_eq!(c.zscore::<_, _, f64>("zset", "two").unwrap(), 2.5);
    assert_eq!(c.zcard::<_, i64>("bigzset").unwrap(), 300);
    let encoding: String = redis::cmd("OBJECT")
        .arg("ENCODING")
        .arg("intset")
        .query(c)
        .unwrap();
    assert_eq!(encoding, "intset");
    let _: () = redis::cmd("SELECT").arg(3).query(c).unwrap();
    assert_eq!(c.get::<_, String>("in-db-3").unwrap(), "three");
    let _: () = redis::cmd("SELECT").arg(0).query(c).unwrap();
    let echoed: String = redis::cmd("FCALL")
        .arg("echo1")
        .arg(0)
        .arg("back")
        .query(c)
        .unwrap();
    assert_eq!(echoed, "back");
}

#[test]
fn save_then_restart_loads_every_type() {
    let dir = scratch_dir("save");
    {
        let server = TestServer::start_in(&dir, &[]);
        let mut c = server.conn();
        fill(&mut c);
        let before: i64 = redis::cmd("LASTSAVE").query(&mut c).unwrap();
        assert!(info_field(&mut c, "persistence", "rdb_changes_since_last_save") != "0");
        std::thread::sleep(Duration::from_millis(1100));
        let _: () = redis::cmd("SAVE").query(&mut c).unwrap();
        let after: i64 = redis::cmd("LASTSAVE").query(&mut c).unwrap();
        assert!(after > before, "LASTSAVE moves on: {before} -> {after}");
        assert_eq!(
            info_field(&mut c, "persistence", "rdb_changes_since_last_save"),
            "0"
        );
        assert!(dir.join("dump.rdb").exists());
        // Killed without a chance to save again: only the file speaks for the data.
    }
    let server = TestServer::start_in(&dir, &[]);
    let mut c = server.conn();
    check_filled(&mut c);
    assert_eq!(
        info_field(&mut c, "persistence", "rdb_last_load_keys_loaded"),
        "13"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bgsave_writes_the_dataset_as_of_its_start() {
    let dir = scratch_dir("bgsave");
    {
        let server = TestServer::start_in(&dir, &[]);
        let mut c = server.conn();
        let mut pipe = redis::pipe();
        for i in 0..20_000 {
            pipe.set(format!("key:{i}"), i).ignore();
        }
        pipe.cmd("SELECT").arg(1).ignore();
        for i in 0..1_000 {
            pipe.set(format!("db1:{i}"), i).ignore();
        }
        pipe.cmd("SELECT").arg(0).ignore();
        let _: () = pipe.query(&mut c).unwrap();
        // 20 microseconds per key written: the save lasts about half a second, and the
        // writes below land while it runs.
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("rdb-key-save-delay")
            .arg(20)
            .query(&mut c)
            .unwrap();
        let reply: String = redis::cmd("BGSAVE").query(&mut c).unwrap();
        assert_eq!(reply, "Background saving started");
        // Changes of every kind after the save began: none is in this snapshot.
        let mut changes = redis::pipe();
        for i in (0..20_000).step_by(7) {
            changes.set(format!("key:{i}"), "changed").ignore();
        }
        for i in (1..20_000).step_by(11) {
            changes.del(format!("key:{i}")).ignore();
        }
        for i in (2..20_000).step_by(13) {
            changes.expire(format!("key:{i}"), 100).ignore();
        }
        for i in (3..20_000).step_by(17) {
            changes.append(format!("key:{i}"), "-appended").ignore();
        }
        for i in 0..5_000 {
            changes.set(format!("new:{i}"), i).ignore();
        }
        // The database contents move between indexes and one is emptied.
        changes.cmd("SWAPDB").arg(0).arg(1).ignore();
        changes.cmd("SWAPDB").arg(1).arg(2).ignore();
        changes.cmd("SELECT").arg(0).ignore();
        changes.cmd("FLUSHDB").ignore();
        let _: () = changes.query(&mut c).unwrap();
        let _: () = redis::cmd("EVAL")
            .arg("redis.call('set', 'from-a-script', 1) return redis.call('del', 'key:5')")
            .arg(0)
            .query(&mut c)
            .unwrap();
        assert_eq!(
            info_field(&mut c, "persistence", "rdb_bgsave_in_progress"),
            "1",
            "the changes were served while the save ran"
        );
        wait_until("the background save", || {
            info_field(&mut c, "persistence", "rdb_bgsave_in_progress") == "0"
        });
        assert_eq!(
            info_field(&mut c, "persistence", "rdb_last_bgsave_status"),
            "ok"
        );
        assert_ne!(
            info_field(&mut c, "persistence", "rdb_changes_since_last_save"),
            "0",
            "the changes are still unsaved"
        );
    }
    let server = TestServer::start_in(&dir, &[]);
    let mut c = server.conn();
    let size: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(size, 20_000);
    let mut pipe = redis::pipe();
    for i in 0..20_000 {
        pipe.get(format!("key:{i}"));
    }
    let values: Vec<i64> = pipe.query(&mut c).unwrap();
    assert_eq!(values, (0..20_000).collect::<Vec<i64>>());
    let volatile: i64 = redis::cmd("INFO")
        .arg("keyspace")
        .query::<String>(&mut c)
        .unwrap()
        .contains("expires=0") as i64;
    assert_eq!(volatile, 1, "no key had a TTL when the save started");
    assert!(!c.exists::<_, bool>("from-a-script").unwrap());
    let _: () = redis::cmd("SELECT").arg(1).query(&mut c).unwrap();
    let size: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(size, 1_000);
    assert_eq!(c.get::<_, i64>("db1:999").unwrap(), 999);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bgsave_refuses_a_second_one_and_checks_its_arguments() {
    let server = TestServer::start();
    let mut c = server.conn();
    let err = redis::cmd("BGSAVE")
        .arg("NOW")
        .query::<String>(&mut c)
        .unwrap_err();
    assert!(err.to_string().contains("syntax error"), "{err}");
    // Inside a transaction BGSAVE is scheduled, then runs at the next cron tick.
    let replies: Vec<String> = redis::pipe().atomic().cmd("BGSAVE").query(&mut c).unwrap();
    assert_eq!(replies, ["Background saving scheduled"]);
    wait_until("the scheduled save", || {
        server.dir.join("dump.rdb").exists()
    });
}

#[test]
fn sigterm_saves_when_save_points_exist_and_not_otherwise() {
    let dir = scratch_dir("sigterm");
    let server = TestServer::start_in(&dir, &[]);
    let _: () = server.conn().set("k", "v").unwrap();
    assert!(server.terminate().success());
    let server = TestServer::start_in(&dir, &[]);
    assert_eq!(server.conn().get::<_, String>("k").unwrap(), "v");
    let _: () = server.conn().set("k", "changed").unwrap();
    drop(server);

    // Without save points, SIGTERM leaves the file as it was.
    let server = TestServer::start_in(&dir, &["--save", ""]);
    let _: () = server.conn().set("k", "not saved").unwrap();
    assert!(server.terminate().success());
    let server = TestServer::start_in(&dir, &[]);
    assert_eq!(server.conn().get::<_, String>("k").unwrap(), "v");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn shutdown_save_and_nosave() {
    let dir = scratch_dir("shutdown");
    let server = TestServer::start_in(&dir, &["--save", ""]);
    let mut c = server.conn();
    let _: () = c.set("k", "saved by SHUTDOWN SAVE").unwrap();
    let _ = redis::cmd("SHUTDOWN").arg("SAVE").query::<()>(&mut c);
    drop(c);
    drop(server);
    let server = TestServer::start_in(&dir, &[]);
    let mut c = server.conn();
    assert_eq!(c.get::<_, String>("k").unwrap(), "saved by SHUTDOWN SAVE");
    let _: () = c.set("k", "dropped by NOSAVE").unwrap();
    let _ = redis::cmd("SHUTDOWN").arg("NOSAVE").query::<()>(&mut c);
    drop(c);
    drop(server);
    let server = TestServer::start_in(&dir, &[]);
    assert_eq!(
        server.conn().get::<_, String>("k").unwrap(),
        "saved by SHUTDOWN SAVE"
    );
    let err = redis::cmd("SHUTDOWN")
        .arg("SAVE")
        .arg("NOSAVE")
        .query::<()>(&mut server.conn())
        .unwrap_err();
    assert!(err.to_string().contains("syntax error"), "{err}");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_save_point_triggers_a_background_save() {
    let server = TestServer::start_with(&["--save", "1 2"]);
    let mut c = server.conn();
    let _: () = c.set("a", 1).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    // One change is below the save point: nothing saved.
    assert!(!server.dir.join("dump.rdb").exists());
    let _: () = c.set("b", 2).unwrap();
    wait_until("the save point", || server.dir.join("dump.rdb").exists());
    wait_until("the save to be collected", || {
        info_field(&mut c, "persistence", "rdb_changes_since_last_save") == "0"
    });
    assert_eq!(info_field(&mut c, "persistence", "rdb_saves"), "1");
}

#[test]
fn flushall_with_save_points_saves_the_empty_dataset() {
    let dir = scratch_dir("flushall");
    let server = TestServer::start_in(&dir, &[]);
    let mut c = server.conn();
    let _: () = c.set("k", "v").unwrap();
    let _: () = redis::cmd("SAVE").query(&mut c).unwrap();
    let _: () = c.set("k", "w").unwrap();
    let _: () = redis::cmd("FLUSHALL").query(&mut c).unwrap();
    // The file now holds the flushed dataset: nothing is left to save (Redis 7.0.15's
    // "FLUSHALL should reset the dirty counter to 0 if we enable save").
    assert_eq!(
        info_field(&mut c, "persistence", "rdb_changes_since_last_save"),
        "0"
    );
    drop(server);
    let server = TestServer::start_in(&dir, &[]);
    assert!(!server.conn().exists::<_, bool>("k").unwrap());
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn debug_reload_goes_through_the_file() {
    let server = TestServer::start_with(&["--enable-debug-command", "yes"]);
    let mut c = server.conn();
    fill(&mut c);
    let _: () = redis::cmd("DEBUG").arg("RELOAD").query(&mut c).unwrap();
    check_filled(&mut c);
    assert!(server.dir.join("dump.rdb").exists());
    // NOSAVE loads the file as it is: a key written since is gone.
    let _: () = c.set("unsaved", 1).unwrap();
    let _: () = redis::cmd("DEBUG")
        .arg("RELOAD")
        .arg("NOSAVE")
        .query(&mut c)
        .unwrap();
    assert!(!c.exists::<_, bool>("unsaved").unwrap());
    // NOFLUSH over existing keys fails before changing anything.
    let err = redis::cmd("DEBUG")
        .arg("RELOAD")
        .arg("NOFLUSH")
        .query::<()>(&mut c)
        .unwrap_err();
    assert!(err
        .to_string()
        .contains("Error trying to load the RDB dump"));
    check_filled(&mut c);
}

#[test]
fn a_failed_background_save_refuses_writes_with_misconf() {
    let server = TestServer::start();
    let mut c = server.conn();
    let doomed = server.dir.join("doomed");
    std::fs::create_dir(&doomed).unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("dir")
        .arg(doomed.to_str().unwrap())
        .query(&mut c)
        .unwrap();
    // The server's working directory disappears: the next save cannot create its file.
    std::fs::remove_dir(&doomed).unwrap();
    let _: String = redis::cmd("BGSAVE").query(&mut c).unwrap();
    wait_until("the failed save", || {
        info_field(&mut c, "persistence", "rdb_last_bgsave_status") == "err"
    });
    let err = c.set::<_, _, ()>("k", "v").unwrap_err();
    assert!(
        err.to_string().contains("MISCONF"),
        "a write is refused: {err}"
    );
    let err = redis::cmd("PING").query::<String>(&mut c).unwrap_err();
    assert!(err.to_string().contains("MISCONF"), "{err}");
    let err = redis::cmd("EVAL")
        .arg("return redis.call('set', 'k', 'v')")
        .arg(0)
        .query::<()>(&mut c)
        .unwrap_err();
    assert!(err.to_string().contains("MISCONF"), "{err}");
    // Reads still work, and a good save lifts the refusal.
    assert!(!c.exists::<_, bool>("k").unwrap());
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("dir")
        .arg(server.dir.to_str().unwrap())
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("SAVE").query(&mut c).unwrap();
    let _: () = c.set("k", "v").unwrap();
    let err = redis::cmd("CONFIG")
        .arg("SET")
        .arg("dir")
        .arg("/no/such/directory")
        .query::<()>(&mut c)
        .unwrap_err();
    assert!(
        err.to_string().contains(
            "CONFIG SET failed (possibly related to argument 'dir') - No such file or directory"
        ),
        "{err}"
    );
    let err = redis::cmd("CONFIG")
        .arg("SET")
        .arg("dbfilename")
        .arg("../x.rdb")
        .query::<()>(&mut c)
        .unwrap_err();
    assert!(
        err.to_string().contains("dbfilename can't be a path"),
        "{err}"
    );
}

/// Starts the server on `dir` expecting it to refuse to start; returns its log.
fn failed_start(dir: &Path) -> String {
    let log = dir.join("server.log");
    let output = Command::new(env!("CARGO_BIN_EXE_moonkv-server"))
        .args(["--port", "0", "--bind", "127.0.0.1", "--logfile"])
        .arg(&log)
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .expect("run moonkv-server");
    assert_eq!(output.status.code(), Some(1), "the server exits with 1");
    std::fs::read_to_string(&log).unwrap_or_default()
}

#[test]
fn damaged_snapshots_stop_the_server_with_redis_messages() {
    let dir = scratch_dir("damaged");
    {
        let server = TestServer::start_in(&dir, &[]);
        let mut c = server.conn();
        fill(&mut c);
        let _: () = redis::cmd("SAVE").query(&mut c).unwrap();
    }
    let good = std::fs::read(dir.join("dump.rdb")).unwrap();

    let mut truncated = good.clone();
    truncated.truncate(good.len() / 2);
    std::fs::write(dir.join("dump.rdb"), &truncated).unwrap();
    let log = failed_start(&dir);
    assert!(
        log.contains("Short read or OOM loading DB. Unrecoverable error, aborting now."),
        "{log}"
    );

    let mut flipped = good.clone();
    let at = good.len() - 20;
    flipped[at] ^= 0x55;
    std::fs::write(dir.join("dump.rdb"), &flipped).unwrap();
    let log = failed_start(&dir);
    assert!(log.contains("Wrong RDB checksum expected"), "{log}");
    assert!(log.contains("-> RDB CRC error"), "{log}");
    assert!(
        log.contains("Terminating server after rdb file reading failure."),
        "{log}"
    );

    std::fs::write(dir.join("dump.rdb"), b"not an rdb file at all").unwrap();
    let log = failed_start(&dir);
    assert!(
        log.contains("Wrong signature trying to load DB from file"),
        "{log}"
    );

    // The intact file still loads.
    std::fs::write(dir.join("dump.rdb"), &good).unwrap();
    let server = TestServer::start_in(&dir, &[]);
    check_filled(&mut server.conn());
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- files exchanged with redis-server 7.0.15 ----------------------------------------------

#[test]
fn redis_server_loads_a_moonkv_snapshot() {
    if !redis_available() {
        return;
    }
    let dir = scratch_dir("to-redis");
    {
        let server = TestServer::start_in(&dir, &[]);
        let mut c = server.conn();
        fill(&mut c);
        let _: () = redis::cmd("SAVE").query(&mut c).unwrap();
    }
    let check = Command::new("/usr/bin/redis-check-rdb")
        .arg(dir.join("dump.rdb"))
        .output();
    if let Ok(output) = check {
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && text.contains("RDB looks OK"),
            "{text}"
        );
    }
    let redis = RedisServer::start(&dir);
    check_filled(&mut redis.conn());
    drop(redis);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn moonkv_loads_a_redis_server_snapshot() {
    if !redis_available() {
        return;
    }
    let dir = scratch_dir("from-redis");
    {
        let redis = RedisServer::start(&dir);
        let mut c = redis.conn();
        fill(&mut c);
        let _: () = redis::cmd("SAVE").query(&mut c).unwrap();
    }
    let server = TestServer::start_in(&dir, &[]);
    let mut c = server.conn();
    check_filled(&mut c);
    let reply: Value = redis::cmd("FUNCTION").arg("LIST").query(&mut c).unwrap();
    assert!(format!("{reply:?}").contains("persisted"));
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- the append-only file --------------------------------------------------------------------

fn aof_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("appendonlydir"))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn aof_survives_restart_with_functions_scripts_and_a_rewrite() {
    let dir = scratch_dir("aof");
    let aof = ["--appendonly", "yes", "--save", ""];
    {
        let server = TestServer::start_in(&dir, &aof);
        let mut c = server.conn();
        assert_eq!(info_field(&mut c, "persistence", "aof_enabled"), "1");
        assert_eq!(
            aof_files(&dir),
            [
                "appendonly.aof.1.base.rdb",
                "appendonly.aof.1.incr.aof",
                "appendonly.aof.manifest"
            ]
        );
        fill(&mut c);
        // A script's effects, not its text, go to the file.
        let _: () = redis::cmd("EVAL")
            .arg("redis.call('set', 'from-script', ARGV[1]) redis.call('incr', 'counter')")
            .arg(0)
            .arg("scripted")
            .query(&mut c)
            .unwrap();
        let incr = std::fs::read(dir.join("appendonlydir/appendonly.aof.1.incr.aof")).unwrap();
        let text = String::from_utf8_lossy(&incr);
        assert!(
            text.contains("MULTI") && text.contains("from-script"),
            "{text}"
        );
        assert!(!text.contains("redis.call"), "no script text in the AOF");
    }
    // Killed: the files alone bring everything back.
    {
        let server = TestServer::start_in(&dir, &aof);
        let mut c = server.conn();
        check_filled(&mut c);
        assert_eq!(c.get::<_, String>("from-script").unwrap(), "scripted");
        let reply: String = redis::cmd("BGREWRITEAOF").query(&mut c).unwrap();
        assert_eq!(reply, "Background append only file rewriting started");
        let _: () = c.set("after-rewrite", "kept").unwrap();
        wait_until("the rewrite", || {
            info_field(&mut c, "persistence", "aof_rewrite_in_progress") == "0"
        });
        assert_eq!(info_field(&mut c, "persistence", "aof_rewrites"), "1");
        let _: () = c.set("after-rewrite-2", "kept too").unwrap();
        // The old base and increments are gone; the new ones remain.
        let files = aof_files(&dir);
        assert!(
            files.contains(&"appendonly.aof.2.base.rdb".to_string()),
            "{files:?}"
        );
        assert!(
            !files.contains(&"appendonly.aof.1.base.rdb".to_string()),
            "{files:?}"
        );
        assert!(
            !files.contains(&"appendonly.aof.1.incr.aof".to_string()),
            "{files:?}"
        );
    }
    let server = TestServer::start_in(&dir, &aof);
    let mut c = server.conn();
    check_filled(&mut c);
    assert_eq!(c.get::<_, String>("after-rewrite").unwrap(), "kept");
    assert_eq!(c.get::<_, String>("after-rewrite-2").unwrap(), "kept too");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn aof_without_rdb_preamble_and_turned_on_at_run_time() {
    let dir = scratch_dir("aof-runtime");
    {
        let server = TestServer::start_in(&dir, &["--save", "", "--aof-use-rdb-preamble", "no"]);
        let mut c = server.conn();
        fill(&mut c);
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("appendonly")
            .arg("yes")
            .query(&mut c)
            .unwrap();
        let _: () = c.set("after-turning-on", 1).unwrap();
        wait_until("the first rewrite", || {
            info_field(&mut c, "persistence", "aof_rewrite_in_progress") == "0"
        });
        let _: () = c.set("after-first-rewrite", 2).unwrap();
        assert!(aof_files(&dir).iter().any(|f| f.ends_with(".base.aof")));
    }
    let server = TestServer::start_in(&dir, &["--appendonly", "yes", "--save", ""]);
    let mut c = server.conn();
    check_filled(&mut c);
    assert_eq!(c.get::<_, i64>("after-turning-on").unwrap(), 1);
    assert_eq!(c.get::<_, i64>("after-first-rewrite").unwrap(), 2);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_truncated_aof_loads_or_refuses_by_aof_load_truncated() {
    let dir = scratch_dir("aof-truncated");
    let aof = ["--appendonly", "yes", "--save", ""];
    {
        let server = TestServer::start_in(&dir, &aof);
        let mut c = server.conn();
        for i in 0..10 {
            let _: () = c.set(format!("k{i}"), i).unwrap();
        }
    }
    let incr = dir.join("appendonlydir/appendonly.aof.1.incr.aof");
    let data = std::fs::read(&incr).unwrap();
    // Cut in the middle of the last SET.
    std::fs::write(&incr, &data[..data.len() - 5]).unwrap();

    let log = dir.join("refused.log");
    let status = Command::new(env!("CARGO_BIN_EXE_moonkv-server"))
        .args([
            "--port",
            "0",
            "--appendonly",
            "yes",
            "--aof-load-truncated",
            "no",
            "--logfile",
        ])
        .arg(&log)
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(1));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("Unexpected end of file reading the append only file"),
        "{text}"
    );

    let server = TestServer::start_in(&dir, &aof);
    let mut c = server.conn();
    assert_eq!(c.get::<_, i64>("k8").unwrap(), 8);
    assert!(
        !c.exists::<_, bool>("k9").unwrap(),
        "the cut command is dropped"
    );
    // The file was truncated to its last whole command and is appended to again.
    let _: () = c.set("k9", 9).unwrap();
    drop(server);
    let server = TestServer::start_in(&dir, &aof);
    assert_eq!(server.conn().get::<_, i64>("k9").unwrap(), 9);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn redis_server_and_moonkv_load_each_others_aof() {
    if !redis_available() {
        return;
    }
    let aof = ["--appendonly", "yes", "--save", ""];
    // moonkv writes, redis-server (and redis-check-aof) read.
    let dir = scratch_dir("aof-to-redis");
    {
        let server = TestServer::start_in(&dir, &aof);
        let mut c = server.conn();
        fill(&mut c);
        let _: () = redis::cmd("EVAL")
            .arg("redis.call('set', 'from-script', 'yes')")
            .arg(0)
            .query(&mut c)
            .unwrap();
    }
    let check = Command::new("/usr/bin/redis-check-aof")
        .arg(dir.join("appendonlydir/appendonly.aof.manifest"))
        .output();
    if let Ok(output) = check {
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && text.contains("is valid"),
            "{text}"
        );
    }
    {
        let redis = RedisServer::start_with(&dir, &["--appendonly", "yes"]);
        let mut c = redis.conn();
        check_filled(&mut c);
        assert_eq!(c.get::<_, String>("from-script").unwrap(), "yes");
    }
    let _ = std::fs::remove_dir_all(&dir);

    // redis-server writes, moonkv reads.
    let dir = scratch_dir("aof-from-redis");
    {
        let redis = RedisServer::start_with(&dir, &["--appendonly", "yes"]);
        let mut c = redis.conn();
        fill(&mut c);
        let _: () = redis::cmd("EVAL")
            .arg("redis.call('set', 'from-script', 'yes')")
            .arg(0)
            .query(&mut c)
            .unwrap();
    }
    let server = TestServer::start_in(&dir, &aof);
    let mut c = server.conn();
    check_filled(&mut c);
    assert_eq!(c.get::<_, String>("from-script").unwrap(), "yes");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn debug_reload_and_loadaof_with_the_aof_on_are_not_replayed() {
    let server = TestServer::start_with(&[
        "--enable-debug-command",
        "yes",
        "--appendonly",
        "yes",
        "--save",
        "",
    ]);
    let mut c = server.conn();
    let _: () = c.set("k", "v").unwrap();
    let _: () = redis::cmd("DEBUG").arg("RELOAD").query(&mut c).unwrap();
    let _: () = redis::cmd("DEBUG").arg("LOADAOF").query(&mut c).unwrap();
    let _: () = redis::cmd("DEBUG").arg("LOADAOF").query(&mut c).unwrap();
    assert_eq!(c.get::<_, String>("k").unwrap(), "v");
    let incr = std::fs::read(server.dir.join("appendonlydir/appendonly.aof.1.incr.aof")).unwrap();
    assert!(
        !String::from_utf8_lossy(&incr)
            .to_lowercase()
            .contains("debug"),
        "DEBUG is not in the AOF"
    );
}

/// A RESP request, as the append-only file holds it.
fn resp(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n{}\r\n", a.len(), a).as_bytes());
    }
    out
}

#[test]
fn clients_get_loading_while_the_dataset_loads() {
    let dir = scratch_dir("loading");
    {
        let server = TestServer::start_in(&dir, &["--enable-debug-command", "yes"]);
        let mut c = server.conn();
        let _: () = redis::cmd("DEBUG")
            .arg("POPULATE")
            .arg(3000)
            .query(&mut c)
            .unwrap();
        let _: () = redis::cmd("SAVE").query(&mut c).unwrap();
    }
    // 3000 keys at 1 ms each: about three seconds of loading.
    let port = common::free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_moonkv-server"))
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--key-load-delay", "1000"])
        .args(["--loading-process-events-interval-bytes", "1024"])
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
    let mut c = loop {
        if let Ok(c) = client.get_connection() {
            break c;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let err = redis::cmd("GET")
        .arg("key:1")
        .query::<Value>(&mut c)
        .unwrap_err();
    assert_eq!(err.code(), Some("LOADING"), "{err}");
    // INFO runs while loading, and says so.
    assert_eq!(info_field(&mut c, "persistence", "loading"), "1");
    let total: u64 = info_field(&mut c, "persistence", "loading_total_bytes")
        .parse()
        .unwrap();
    assert!(total > 0);
    wait_until("the load to end", || {
        redis::cmd("PING").query::<String>(&mut c).is_ok()
    });
    assert_eq!(info_field(&mut c, "persistence", "loading"), "0");
    assert_eq!(c.get::<_, String>("key:2999").unwrap(), "value:2999");
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_aof_from_before_redis_7_is_moved_into_the_aof_directory() {
    let dir = scratch_dir("aof-upgrade");
    // A pre-7.0 AOF: an RDB preamble (k1), then commands (k2), in dir as appendonly.aof.
    {
        let server = TestServer::start_in(&dir, &["--save", ""]);
        let mut c = server.conn();
        let _: () = c.set("k1", "v1").unwrap();
        let _: () = redis::cmd("SAVE").query(&mut c).unwrap();
    }
    let mut old = std::fs::read(dir.join("dump.rdb")).unwrap();
    std::fs::remove_file(dir.join("dump.rdb")).unwrap();
    old.extend(resp(&["SELECT", "0"]));
    old.extend(resp(&["SET", "k2", "v2"]));
    std::fs::write(dir.join("appendonly.aof"), &old).unwrap();

    let aof = ["--appendonly", "yes", "--save", ""];
    let server = TestServer::start_in(&dir, &aof);
    let mut c = server.conn();
    assert_eq!(c.get::<_, String>("k1").unwrap(), "v1");
    assert_eq!(c.get::<_, String>("k2").unwrap(), "v2");
    assert!(!dir.join("appendonly.aof").exists(), "the old file moved");
    assert!(aof_files(&dir).contains(&"appendonly.aof".to_string()));
    let manifest =
        std::fs::read_to_string(dir.join("appendonlydir/appendonly.aof.manifest")).unwrap();
    assert!(
        manifest.starts_with("file appendonly.aof seq 1 type b\n"),
        "{manifest}"
    );
    // Writes after the upgrade go to a new incremental file and survive a restart.
    let _: () = c.set("k3", "v3").unwrap();
    drop(server);
    let server = TestServer::start_in(&dir, &aof);
    let mut c = server.conn();
    for (k, v) in [("k1", "v1"), ("k2", "v2"), ("k3", "v3")] {
        assert_eq!(c.get::<_, String>(k).unwrap(), v);
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_aof_replays_expiry_times_already_past_as_they_were_written() {
    // Redis keeps a key whose time passed while the AOF loads, so the commands after it see
    // the key as the writer did; it expires once loading ends.
    let dir = scratch_dir("aof-expire");
    let aof_dir = dir.join("appendonlydir");
    std::fs::create_dir_all(&aof_dir).unwrap();
    std::fs::write(
        aof_dir.join("appendonly.aof.manifest"),
        "file appendonly.aof.1.incr.aof seq 1 type i\n",
    )
    .unwrap();
    let mut commands = resp(&["RPUSH", "list", "foo"]);
    commands.extend(resp(&["PEXPIREAT", "list", "1000"]));
    commands.extend(resp(&["RPUSH", "list", "bar"]));
    commands.extend(resp(&["SET", "kept", "yes"]));
    std::fs::write(aof_dir.join("appendonly.aof.1.incr.aof"), commands).unwrap();
    let server = TestServer::start_in(&dir, &["--appendonly", "yes", "--save", ""]);
    let mut c = server.conn();
    assert_eq!(c.llen::<_, i64>("list").unwrap(), 0);
    assert_eq!(c.get::<_, String>("kept").unwrap(), "yes");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn restore_checks_the_payload_checksum_unless_told_not_to() {
    let server = TestServer::start_with(&["--enable-debug-command", "yes"]);
    let mut c = server.conn();
    let _: () = c.set("k", "v").unwrap();
    let mut payload: Vec<u8> = redis::cmd("DUMP").arg("k").query(&mut c).unwrap();
    let last = payload.len() - 1;
    payload[last] ^= 1;
    let restore = |c: &mut Connection, p: &[u8]| {
        redis::cmd("RESTORE")
            .arg("copy")
            .arg(0)
            .arg(p)
            .arg("REPLACE")
            .query::<()>(c)
    };
    let err = restore(&mut c, &payload).unwrap_err();
    assert!(
        err.to_string()
            .contains("DUMP payload version or checksum are wrong"),
        "{err}"
    );
    let _: () = redis::cmd("DEBUG")
        .arg("SET-SKIP-CHECKSUM-VALIDATION")
        .arg(1)
        .query(&mut c)
        .unwrap();
    restore(&mut c, &payload).unwrap();
    assert_eq!(c.get::<_, String>("copy").unwrap(), "v");
    // A payload whose body is damaged is still refused, checksum or not.
    let mut broken = payload.clone();
    broken[1] = 0xFF;
    let err = restore(&mut c, &broken).unwrap_err();
    assert!(err.to_string().contains("Bad data format"), "{err}");
}
