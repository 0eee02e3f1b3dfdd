//! Process-level behaviour: start-up configuration, shutdown, authentication, CONFIG, and the
//! replication stream.

mod common;

use common::TestServer;
use std::io::Read;
use std::process::{Command, Stdio};

fn run_and_fail(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_moonkv-server"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("run");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_configuration_exits_with_status_1() {
    let (code, stderr) = run_and_fail(&["--port", "0", "--no-such-directive", "1"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("FATAL CONFIG FILE ERROR") && stderr.contains("Bad directive"),
        "{}",
        stderr
    );
    let (code, stderr) = run_and_fail(&["--port", "0", "--maxmemory", "lots"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("argument must be a memory value"),
        "{}",
        stderr
    );
    let (code, _) = run_and_fail(&["/nonexistent/redis.conf"]);
    assert_eq!(code, 1);
}

#[test]
fn config_file_is_honoured_and_command_line_wins() {
    let dir = std::env::temp_dir().join(format!("moonkv-conf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("redis.conf");
    std::fs::write(
        &file,
        "# comment\nmaxmemory-policy allkeys-lru\ndatabases 4\nhz 20\n",
    )
    .unwrap();
    let server = TestServer::start_with(&[file.to_str().unwrap(), "--hz", "15"]);
    let mut c = server.conn();
    let policy: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory-policy")
        .query(&mut c)
        .unwrap();
    assert_eq!(policy, vec!["maxmemory-policy", "allkeys-lru"]);
    let hz: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("hz")
        .query(&mut c)
        .unwrap();
    assert_eq!(hz[1], "15");
    let err = redis::cmd("SELECT").arg(4).query::<()>(&mut c).unwrap_err();
    assert!(format!("{}", err).contains("DB index is out of range"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn sigterm_shuts_down_cleanly() {
    let server = TestServer::start();
    let status = server.terminate();
    assert!(status.success(), "exit status {:?}", status);
}

#[test]
fn requirepass_and_auth() {
    let server = TestServer::start_with(&["--requirepass", "secret"]);
    let mut raw = server.raw();
    raw.roundtrip(b"GET k\r\n", b"-NOAUTH Authentication required.\r\n");
    raw.roundtrip(
        b"AUTH wrong\r\n",
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n",
    );
    raw.roundtrip(b"AUTH secret\r\n", b"+OK\r\n");
    raw.roundtrip(b"GET k\r\n", b"$-1\r\n");
    let mut resp3 = server.raw();
    resp3.send(b"HELLO 3 AUTH default secret\r\n");
    assert_eq!(resp3.read_exact_len(4), b"%7\r\n");
}

#[test]
fn config_set_is_validated_and_atomic() {
    let server = TestServer::start();
    let mut c = server.conn();
    let err = redis::cmd("CONFIG")
        .arg("SET")
        .arg("nope")
        .arg("1")
        .query::<()>(&mut c)
        .unwrap_err();
    assert!(format!("{}", err)
        .contains("Unknown option or number of arguments for CONFIG SET - 'nope'"));
    let err = redis::cmd("CONFIG")
        .arg("SET")
        .arg("hz")
        .arg("20")
        .arg("maxmemory")
        .arg("lots")
        .query::<()>(&mut c)
        .unwrap_err();
    assert!(format!("{}", err).contains("argument must be a memory value"));
    let hz: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("hz")
        .query(&mut c)
        .unwrap();
    assert_eq!(hz[1], "10", "a failed CONFIG SET changes nothing");
    let err = redis::cmd("CONFIG")
        .arg("SET")
        .arg("port")
        .arg("1")
        .query::<()>(&mut c)
        .unwrap_err();
    assert!(format!("{}", err).contains("can't set immutable config"));
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("hz")
        .arg("20")
        .arg("maxmemory")
        .arg("1mb")
        .query(&mut c)
        .unwrap();
    let got: std::collections::HashMap<String, String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory")
        .arg("h?")
        .query(&mut c)
        .unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got["maxmemory"], "1048576");
    assert_eq!(got["hz"], "20");
}

#[test]
fn replication_stream_carries_rewritten_effects() {
    let server = TestServer::start_with(&["--repl-diskless-sync-delay", "0"]);
    let mut replica = server.raw();
    replica.send(b"SYNC\r\n");
    // "$<len>\r\n" then the RDB snapshot; newlines may come first, to keep the link alive.
    let mut header = Vec::new();
    while !header.ends_with(b"\r\n") {
        header.extend(replica.read_exact_len(1));
        if header == b"\n" {
            header.clear();
        }
    }
    let len: usize = std::str::from_utf8(&header[1..header.len() - 2])
        .unwrap()
        .parse()
        .unwrap();
    let rdb = replica.read_exact_len(len);
    assert!(rdb.starts_with(b"REDIS0010"));
    let mut c = server.conn();
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .arg("EX")
        .arg(100)
        .query(&mut c)
        .unwrap();
    let _: () = redis::cmd("GETDEL").arg("k").query(&mut c).unwrap();
    let mut stream = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !String::from_utf8_lossy(&stream).contains("DEL\r\n$1\r\nk\r\n")
        && std::time::Instant::now() < deadline
    {
        let mut buf = [0u8; 512];
        if let Ok(n) = replica.stream.read(&mut buf) {
            stream.extend_from_slice(&buf[..n]);
        }
    }
    let text = String::from_utf8_lossy(&stream);
    assert!(text.contains("SELECT"), "{}", text);
    assert!(
        text.contains("$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n$4\r\nPXAT\r\n"),
        "{}",
        text
    );
    assert!(text.contains("$3\r\nDEL\r\n$1\r\nk\r\n"), "{}", text);
}

#[test]
fn idle_clients_are_closed_after_timeout() {
    let server = TestServer::start_with(&["--timeout", "1"]);
    let mut idle = server.raw();
    idle.roundtrip(b"PING\r\n", b"+PONG\r\n");
    let mut subscriber = server.raw();
    subscriber.roundtrip(
        b"SUBSCRIBE ch\r\n",
        b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n",
    );
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert!(idle.closed_by_server(), "an idle client outlived `timeout`");
    subscriber.roundtrip(b"PING\r\n", b"*2\r\n$4\r\npong\r\n$0\r\n\r\n");
}

#[test]
fn long_command_is_atomic_and_others_resume_after_it() {
    let server = TestServer::start_with(&["--enable-debug-command", "yes"]);
    let port = server.port;
    let sleeper = std::thread::spawn(move || {
        let mut c = common::RawConn::connect(port);
        c.roundtrip(b"DEBUG SLEEP 0.5\r\n", b"+OK\r\n");
    });
    std::thread::sleep(std::time::Duration::from_millis(100));
    let started = std::time::Instant::now();
    // New connections are accepted meanwhile; their commands run once the sleep is over.
    let clients: Vec<_> = (0..10)
        .map(|_| {
            std::thread::spawn(move || {
                let mut c = common::RawConn::connect(port);
                c.roundtrip(b"PING\r\n", b"+PONG\r\n");
            })
        })
        .collect();
    for c in clients {
        c.join().expect("client");
    }
    let waited = started.elapsed();
    sleeper.join().expect("sleeper");
    assert!(
        waited >= std::time::Duration::from_millis(300),
        "a command ran during DEBUG SLEEP ({:?})",
        waited
    );
    assert!(
        waited < std::time::Duration::from_secs(3),
        "clients were not served after the sleep ({:?})",
        waited
    );
}
