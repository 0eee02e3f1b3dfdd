//! Nothing acknowledged is lost: rounds of writes from several clients into an append-only
//! file, a SIGKILL at a random moment, a restart on the same directory, and a check that
//! every acknowledged write is there. With `appendfsync always` nothing may be missing; with
//! `everysec`, at most about a second of writes. Each write is a script whose two effects
//! (a SET and an RPUSH) travel as one MULTI/EXEC: after the restart both are there or
//! neither.

mod common;

use common::{scratch_dir, TestServer};
use rand::Rng;
use redis::Commands;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CLIENTS: usize = 4;

const WRITE: &str = "redis.call('set', KEYS[1], ARGV[1]) \
                     redis.call('rpush', KEYS[2], ARGV[1]) \
                     return 1";

/// What one client got acknowledged: (sequence number, when the reply arrived).
type Acks = Arc<Mutex<Vec<(u64, Instant)>>>;

fn writer(port: u16, id: usize, acks: Acks, stop: Arc<AtomicBool>) {
    let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}/")) else {
        return;
    };
    let Ok(mut c) = client.get_connection() else {
        return;
    };
    let (key, list) = (format!("seq:{id}"), format!("log:{id}"));
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let result: redis::RedisResult<i64> = redis::cmd("EVAL")
            .arg(WRITE)
            .arg(2)
            .arg(&key)
            .arg(&list)
            .arg(n)
            .query(&mut c);
        match result {
            Ok(_) => acks.lock().unwrap().push((n, Instant::now())),
            // The server was killed: this write was never acknowledged.
            Err(_) => return,
        }
    }
}

/// One round: start on `dir`, write from every client, SIGKILL after `run`, restart and
/// check. `allowed_loss` is how far before the kill an acknowledged write may be missing.
fn round(dir: &std::path::Path, fsync: &str, run: Duration, allowed_loss: Duration) {
    let server = TestServer::start_in(
        dir,
        &["--appendonly", "yes", "--appendfsync", fsync, "--save", ""],
    );
    let port = server.port;
    // What the files held before this round: sequence numbers continue from there.
    let stop = Arc::new(AtomicBool::new(false));
    let acks: Vec<Acks> = (0..CLIENTS).map(|_| Acks::default()).collect();
    let threads: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let (acks, stop) = (acks[id].clone(), stop.clone());
            std::thread::spawn(move || writer(port, id, acks, stop))
        })
        .collect();
    std::thread::sleep(run);
    let killed_at = Instant::now();
    drop(server); // SIGKILL
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }

    let server = TestServer::start_in(dir, &["--appendonly", "yes", "--save", ""]);
    let mut c = server.conn();
    for (id, acks) in acks.iter().enumerate() {
        let acks = acks.lock().unwrap();
        let stored: Option<u64> = c.get(format!("seq:{id}")).unwrap();
        let stored = stored.unwrap_or(0);
        let logged: u64 = c.llen(format!("log:{id}")).unwrap();
        // The two effects of each script were applied together.
        assert_eq!(
            stored, logged,
            "client {id}: the SET and the RPUSH of one script disagree"
        );
        // Every write acknowledged before (kill - allowed_loss) is there.
        let must_have = acks
            .iter()
            .filter(|(_, at)| *at + allowed_loss <= killed_at)
            .map(|(n, _)| *n)
            .max()
            .unwrap_or(0);
        assert!(
            stored >= must_have,
            "client {id} ({fsync}): acknowledged write {must_have} lost, the file holds {stored} \
             (last acknowledged {:?})",
            acks.last().map(|(n, _)| n)
        );
        // Nothing that was never sent appears.
        let sent = acks.last().map_or(0, |(n, _)| *n) + 1;
        assert!(stored <= sent, "client {id}: {stored} > {sent}");
    }
    // Next round's sequence numbers start over on clean keys.
    let _: () = redis::cmd("FLUSHALL").query(&mut c).unwrap();
    drop(c);
    let _ = redis::cmd("SHUTDOWN").query::<()>(&mut server.conn());
}

#[test]
fn appendfsync_always_loses_no_acknowledged_write() {
    let dir = scratch_dir("durable-always");
    let mut rng = rand::thread_rng();
    for _ in 0..6 {
        let run = Duration::from_millis(rng.gen_range(200..1200));
        round(&dir, "always", run, Duration::ZERO);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn appendfsync_everysec_loses_at_most_about_a_second() {
    let dir = scratch_dir("durable-everysec");
    let mut rng = rand::thread_rng();
    for _ in 0..4 {
        let run = Duration::from_millis(rng.gen_range(500..2500));
        // The fsync runs once a second; a write made just after one waits up to a second
        // for the next, and the thread doing it may be a little late.
        round(&dir, "everysec", run, Duration::from_millis(2000));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
