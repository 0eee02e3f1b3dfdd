//! The AOF format layer against the real Redis 7.0.15: we read what `redis-server` writes,
//! and `redis-check-aof` and `redis-server` accept (and truncate) what we write.
//!
//! Needs /usr/bin/redis-server, redis-cli and redis-check-aof. Without them the tests print
//! a skip line and pass, unless MOONKV_REQUIRE_REDIS=1, when they fail.

use moonkv_persistence::aof::{
    encode_command, manifest_file_name, timestamp_annotation, write_manifest, CommandReader,
    FileKind, Manifest, ReadError,
};
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

const REDIS_SERVER: &str = "/usr/bin/redis-server";
const REDIS_CLI: &str = "/usr/bin/redis-cli";
const REDIS_CHECK_AOF: &str = "/usr/bin/redis-check-aof";
const PREFIX: &str = "appendonly.aof";

fn redis_available(test: &str) -> bool {
    let present = [REDIS_SERVER, REDIS_CLI, REDIS_CHECK_AOF]
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
            std::env::temp_dir().join(format!("moonkv-aof-{tag}-{}-{n}", std::process::id()));
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

/// A redis-server child process, killed on drop.
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
        let mut args: Vec<String> = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(["--dir".to_string(), dir.display().to_string()]);
        args.extend(["--logfile".to_string(), log.display().to_string()]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let child = Command::new(REDIS_SERVER)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut redis = Redis { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if redis.cli(&["PING"]) == "PONG" {
                return redis;
            }
            if let Ok(Some(status)) = redis.child.try_wait() {
                panic!(
                    "redis-server exited with {status}; log:\n{}",
                    redis.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer; log:\n{}",
                redis.log_text()
            );
            sleep(Duration::from_millis(50));
        }
    }

    /// Runs one command through redis-cli and returns its (raw, trimmed) output.
    fn cli(&self, args: &[&str]) -> String {
        let output = Command::new(REDIS_CLI)
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout)
            .trim_end()
            .to_string()
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

/// Every command in an AOF stream, as strings; panics on any read error.
fn commands_of(data: &[u8]) -> Vec<Vec<String>> {
    CommandReader::new(data)
        .map(|item| {
            let args =
                item.unwrap_or_else(|e| panic!("reading {:?}: {e}", String::from_utf8_lossy(data)));
            args.iter()
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .collect()
}

fn contains_run(haystack: &[Vec<String>], run: &[&[&str]]) -> bool {
    let run: Vec<Vec<String>> = run
        .iter()
        .map(|c| c.iter().map(|s| s.to_string()).collect())
        .collect();
    haystack.windows(run.len()).any(|w| w == run.as_slice())
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        sleep(Duration::from_millis(50));
    }
}

const FUNCTION_LIB: &str = "#!lua name=mylib\n\
    redis.register_function('setfn', function(keys, args) return redis.call('SET', keys[1], args[1]) end)";

#[test]
fn reads_what_redis_writes() {
    if !redis_available("reads_what_redis_writes") {
        return;
    }
    let tmp = TempDir::new("read");
    let redis = Redis::start(
        &tmp.0,
        &["--appendonly", "yes", "--aof-timestamp-enabled", "yes"],
    );
    let aof_dir = tmp.0.join("appendonlydir");
    let manifest_path = aof_dir.join(manifest_file_name(PREFIX));

    // Start-up with no AOF: Redis writes base 1 (RDB preamble by default) and incr 1.
    let manifest = Manifest::parse(&fs::read(&manifest_path).unwrap()).unwrap();
    assert_eq!(manifest.render(), b"file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n");
    assert!(fs::read(aof_dir.join("appendonly.aof.1.base.rdb"))
        .unwrap()
        .starts_with(b"REDIS"));

    assert_eq!(redis.cli(&["SET", "a", "1"]), "OK");
    let script = "redis.call('SET', KEYS[1], ARGV[1]); return redis.call('INCR', 'counter')";
    assert_eq!(redis.cli(&["EVAL", script, "1", "s", "x"]), "1");
    assert_eq!(redis.cli(&["FUNCTION", "LOAD", FUNCTION_LIB]), "mylib");
    assert_eq!(redis.cli(&["-n", "3", "SET", "k3", "v3"]), "OK");

    let incr1 = fs::read(aof_dir.join("appendonly.aof.1.incr.aof")).unwrap();
    assert!(incr1.starts_with(b"#TS:"), "timestamp annotation first");
    let commands = commands_of(&incr1);
    assert!(
        contains_run(&commands, &[&["SELECT", "0"], &["SET", "a", "1"]]),
        "{commands:?}"
    );
    // Script effects are wrapped in MULTI/EXEC.
    assert!(
        contains_run(
            &commands,
            &[
                &["MULTI"],
                &["SET", "s", "x"],
                &["INCR", "counter"],
                &["EXEC"]
            ]
        ),
        "{commands:?}"
    );
    assert!(
        commands.contains(&vec!["FUNCTION".into(), "LOAD".into(), FUNCTION_LIB.into()]),
        "{commands:?}"
    );
    assert!(
        contains_run(&commands, &[&["SELECT", "3"], &["SET", "k3", "v3"]]),
        "{commands:?}"
    );

    assert_eq!(
        redis.cli(&["BGREWRITEAOF"]),
        "Background append only file rewriting started"
    );
    wait_for("the rewrite to finish", || {
        let text = fs::read(&manifest_path).unwrap();
        Manifest::parse(&text)
            .unwrap()
            .base
            .is_some_and(|b| b.seq == 2)
    });
    assert_eq!(redis.cli(&["SET", "after", "1"]), "OK");
    assert_eq!(redis.cli(&["FCALL", "setfn", "1", "fk", "fv"]), "OK");

    // After the rewrite: base 2, the incr opened when the rewrite started, history deleted.
    let manifest = Manifest::parse(&fs::read(&manifest_path).unwrap()).unwrap();
    assert_eq!(manifest.render(), b"file appendonly.aof.2.base.rdb seq 2 type b\nfile appendonly.aof.2.incr.aof seq 2 type i\n");
    wait_for("history files to be deleted", || {
        !aof_dir.join("appendonly.aof.1.incr.aof").exists()
    });
    assert!(!aof_dir.join("appendonly.aof.1.base.rdb").exists());
    let load_order: Vec<&str> = manifest
        .files_in_load_order()
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(
        load_order,
        ["appendonly.aof.2.base.rdb", "appendonly.aof.2.incr.aof"]
    );

    // The new incr starts with a SELECT (Redis forgets the selected db at a rewrite).
    let commands = commands_of(&fs::read(aof_dir.join("appendonly.aof.2.incr.aof")).unwrap());
    assert!(
        contains_run(&commands, &[&["SELECT", "0"], &["SET", "after", "1"]]),
        "{commands:?}"
    );
    assert!(
        commands.iter().any(|c| c[..] == ["SET", "fk", "fv"]),
        "{commands:?}"
    );
    assert!(
        !commands.iter().any(|c| c[0] == "FCALL"),
        "effects, not the call: {commands:?}"
    );
}

/// A directory of our making: a `.base.aof` of commands and one incr file.
fn write_aof_dir(root: &Path, incr: &[u8]) -> (PathBuf, Manifest) {
    let aof_dir = root.join("appendonlydir");
    fs::create_dir_all(&aof_dir).unwrap();
    let mut manifest = Manifest::default();
    let base = manifest.new_base(PREFIX, false);
    let mut data = Vec::new();
    timestamp_annotation(&mut data, 1_700_000_000);
    encode_command(&mut data, &[b"SELECT", b"0"]);
    encode_command(&mut data, &[b"SET", b"greeting", b"hello world\r\n"]);
    encode_command(&mut data, &[b"RPUSH", b"list", b"a", b"", b"c"]);
    encode_command(&mut data, &[b"SELECT", b"2"]);
    encode_command(&mut data, &[b"SET", b"in2", b"two"]);
    fs::write(aof_dir.join(&base.name), data).unwrap();
    let incr_file = manifest.new_incr(PREFIX);
    fs::write(aof_dir.join(&incr_file.name), incr).unwrap();
    write_manifest(&aof_dir, &manifest_file_name(PREFIX), &manifest).unwrap();
    (aof_dir, manifest)
}

fn incr_commands() -> Vec<u8> {
    let mut incr = Vec::new();
    timestamp_annotation(&mut incr, 1_700_000_001);
    encode_command(&mut incr, &[b"SELECT", b"0"]);
    encode_command(&mut incr, &[b"MULTI"]);
    encode_command(&mut incr, &[b"SET", b"counter", b"10"]);
    encode_command(&mut incr, &[b"INCRBY", b"counter", b"5"]);
    encode_command(&mut incr, &[b"EXEC"]);
    encode_command(&mut incr, &[b"SET", b"last", b"yes"]);
    timestamp_annotation(&mut incr, 1_700_000_002);
    incr
}

fn check_aof(manifest_path: &Path) -> (bool, String) {
    let output = Command::new(REDIS_CHECK_AOF)
        .arg(manifest_path)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[test]
fn redis_loads_what_we_write() {
    if !redis_available("redis_loads_what_we_write") {
        return;
    }
    let tmp = TempDir::new("write");
    let (aof_dir, manifest) = write_aof_dir(&tmp.0, &incr_commands());
    let manifest_path = aof_dir.join(manifest_file_name(PREFIX));

    let (ok, report) = check_aof(&manifest_path);
    assert!(ok, "{report}");
    assert!(
        report.contains("BASE AOF appendonly.aof.1.base.aof is valid"),
        "{report}"
    );
    assert!(
        report.contains("INCR AOF appendonly.aof.1.incr.aof is valid"),
        "{report}"
    );
    assert!(
        report.contains("All AOF files and manifest are valid"),
        "{report}"
    );

    let redis = Redis::start(&tmp.0, &["--appendonly", "yes"]);
    assert_eq!(redis.cli(&["GET", "greeting"]), "hello world");
    assert_eq!(redis.cli(&["LRANGE", "list", "0", "-1"]), "a\n\nc");
    assert_eq!(redis.cli(&["-n", "2", "GET", "in2"]), "two");
    assert_eq!(redis.cli(&["GET", "counter"]), "15");
    assert_eq!(redis.cli(&["GET", "last"]), "yes");
    let log = redis.log_text();
    assert!(
        log.contains("DB loaded from base file appendonly.aof.1.base.aof"),
        "{log}"
    );
    assert!(
        log.contains("DB loaded from incr file appendonly.aof.1.incr.aof"),
        "{log}"
    );

    // Redis keeps our manifest as it is and appends to our incr file.
    assert_eq!(fs::read(&manifest_path).unwrap(), manifest.render());
    assert_eq!(redis.cli(&["SET", "new", "value"]), "OK");
    let incr = fs::read(aof_dir.join("appendonly.aof.1.incr.aof")).unwrap();
    let commands = commands_of(&incr);
    assert_eq!(commands.last().unwrap(), &["SET", "new", "value"]);
    assert!(incr.starts_with(&incr_commands()));
}

#[test]
fn redis_truncates_where_we_say() {
    if !redis_available("redis_truncates_where_we_say") {
        return;
    }
    // A cut mid-command, and a clean end inside a MULTI: Redis (aof-load-truncated yes, the
    // default) cuts the file at the length the reader reports, and logs it.
    let mut unfinished_multi = incr_commands();
    encode_command(&mut unfinished_multi, &[b"MULTI"]);
    encode_command(&mut unfinished_multi, &[b"SET", b"never", b"seen"]);
    let mut cut = incr_commands();
    cut.extend_from_slice(b"*3\r\n$3\r\nSET\r\n$5\r\nnever\r\n$2\r\nse");
    let cases = [(cut, "truncated"), (unfinished_multi, "multi")];
    for (incr, what) in cases {
        let error = CommandReader::new(&incr)
            .find_map(Result::err)
            .expect("the reader should stop early");
        match (what, error) {
            ("truncated", ReadError::Truncated { .. })
            | ("multi", ReadError::IncompleteMulti { .. }) => {}
            other => panic!("unexpected {other:?}"),
        }
        let valid_len = error.valid_len().unwrap();
        assert_eq!(
            valid_len,
            incr_commands().len() - b"#TS:1700000002\r\n".len()
        );

        let tmp = TempDir::new(what);
        let (aof_dir, _) = write_aof_dir(&tmp.0, &incr);
        let (ok, report) = check_aof(&aof_dir.join(manifest_file_name(PREFIX)));
        assert!(!ok, "{what}: redis-check-aof should reject it: {report}");

        let redis = Redis::start(&tmp.0, &["--appendonly", "yes"]);
        assert_eq!(redis.cli(&["GET", "last"]), "yes");
        assert_eq!(redis.cli(&["EXISTS", "never"]), "0");
        let log = redis.log_text();
        let expected =
            format!("!!! Truncating the AOF appendonly.aof.1.incr.aof at offset {valid_len} !!!");
        assert!(log.contains(&expected), "{what}: {log}");
        if what == "multi" {
            assert!(log.contains(
                "Revert incomplete MULTI/EXEC transaction in AOF file appendonly.aof.1.incr.aof"
            ));
        }
        let len = fs::metadata(aof_dir.join("appendonly.aof.1.incr.aof"))
            .unwrap()
            .len();
        assert_eq!(len, valid_len as u64, "{what}");
    }
}

#[test]
fn manifest_verdicts_match_redis_check_aof() {
    if !redis_available("manifest_verdicts_match_redis_check_aof") {
        return;
    }
    // redis-check-aof treats a file as a manifest when a line starts with "file", then
    // parses it with the server's own code and prints the same messages the server logs.
    let manifests: &[&[u8]] = &[
        b"file a seq 1 type b\nfile c seq 2 type b\n",
        b"file a seq 1 type b",
        b"file a seq 1 type b\n\n",
        b"file a seq 1 type\n",
        b"file a seq 1 type b x\n",
        b"file \"a seq 1 type b\n",
        b"file \"a\"b seq 1 type b\n",
        b"file a seq 0 type b\n",
        b"file a seq 1 type \"\"\n",
        b"file dir/a seq 1 type b\n",
        b"file a\\\\b seq 1 type b\n",
        b"file a seq 2 type i\n#\nfile c seq 2 type i\n",
        b"file a seq -1 type i\n",
        b"file a seq 1 type x\n",
        b"file a seq 1 type q \r\n",
        b"# comment\nfile x seq 1 type b\n   \n",
        b"file a seq 1 type b\n\x00file b seq 2 type i\n",
        b"file a seq 1 type b\n# comment\r\n  TYPE i  Seq 3 FILE 'b c' extra key  \r\nfile \"d\\x41\" seq 7 type incr\n",
        b"file a.1.incr.aof seq 9 type h\nfile b seq -4 type b\nfile it\\x27s seq 1 type i\n",
        b"file 12345678 seq 1 type b\n",
    ];
    for (i, text) in manifests.iter().enumerate() {
        let tmp = TempDir::new("verdict");
        let path = tmp.0.join(format!("case{i}.manifest"));
        fs::write(&path, text).unwrap();
        let ours = Manifest::parse(text);
        if let Ok(manifest) = &ours {
            for file in manifest.files_in_load_order() {
                fs::write(tmp.0.join(&file.name), b"").unwrap();
            }
        }
        let (ok, report) = check_aof(&path);
        let shown = String::from_utf8_lossy(text);
        match ours {
            Ok(manifest) => {
                assert!(
                    ok && report.contains("All AOF files and manifest are valid"),
                    "{shown:?}: {report}"
                );
                for file in manifest.files_in_load_order() {
                    let kind = if file.kind == FileKind::Base {
                        "BASE"
                    } else {
                        "INCR"
                    };
                    assert!(
                        report.contains(&format!("{kind} AOF {} is empty", file.name)),
                        "{shown:?}: {report}"
                    );
                }
            }
            Err(err) => {
                assert!(!ok, "{shown:?} accepted by Redis: {report}");
                assert!(
                    report.contains(&format!("# {err}\n")),
                    "{shown:?}: expected {err:?}, got {report}"
                );
                match &err.line {
                    Some((number, line)) => {
                        assert!(
                            report.contains(&format!(
                                "Reading the manifest file, at line {number}\n"
                            )),
                            "{report}"
                        );
                        assert!(report.contains(&format!(">>> '{line}'\n")), "{report}");
                    }
                    None => assert!(!report.contains("Reading the manifest file"), "{report}"),
                }
            }
        }
    }
}
