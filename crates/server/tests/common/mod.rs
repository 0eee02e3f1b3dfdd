//! Test support: start the real `moonkv-server` binary on a free loopback port and talk to it
//! with the `redis` crate or with raw bytes.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct TestServer {
    pub port: u16,
    child: Child,
    /// The server's working directory (`dir`): its own, so no test sees another's dump file.
    pub dir: std::path::PathBuf,
    /// Whether dropping the server removes `dir` (not when the test chose it).
    owns_dir: bool,
}

/// A fresh empty directory under the system's temporary directory.
pub fn scratch_dir(tag: &str) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "moonkv-test-{}-{}-{}",
        tag,
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a scratch directory");
    dir
}

/// A loopback port nothing listens on (for a server a test starts by hand).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral port")
        .local_addr()
        .expect("local addr")
        .port()
}

impl TestServer {
    pub fn start() -> TestServer {
        Self::start_with(&[])
    }

    /// Starts the server with extra `--directive value` arguments.
    pub fn start_with(args: &[&str]) -> TestServer {
        let mut server = Self::start_in(&scratch_dir("server"), args);
        server.owns_dir = true;
        server
    }

    /// Starts the server working in `dir` (which outlives it: a test restarts a server on
    /// the files the last one left).
    pub fn start_in(dir: &std::path::Path, args: &[&str]) -> TestServer {
        for _attempt in 0..5 {
            let port = free_port();
            // A config file path must come first, as with redis-server.
            let (file, options): (Vec<&str>, Vec<&str>) = match args.first() {
                Some(first) if !first.starts_with("--") => (vec![*first], args[1..].to_vec()),
                _ => (vec![], args.to_vec()),
            };
            let child = Command::new(env!("CARGO_BIN_EXE_moonkv-server"))
                .args(file)
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .arg("--dir")
                .arg(dir)
                .args(options)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn moonkv-server");
            let mut server = TestServer {
                port,
                child,
                dir: dir.to_path_buf(),
                owns_dir: false,
            };
            if server.wait_ready() {
                return server;
            }
        }
        panic!("moonkv-server did not start");
    }

    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                if s.write_all(b"PING\r\n").is_ok() {
                    // With requirepass the answer is -NOAUTH, which also shows it is serving.
                    let mut buf = [0u8; 7];
                    if s.read_exact(&mut buf).is_ok()
                        && (&buf == b"+PONG\r\n" || buf.starts_with(b"-NOAUTH"))
                    {
                        return true;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn client(&self) -> redis::Client {
        redis::Client::open(format!("redis://127.0.0.1:{}/", self.port)).expect("client")
    }

    pub fn conn(&self) -> redis::Connection {
        self.client().get_connection().expect("connect")
    }

    pub fn raw(&self) -> RawConn {
        RawConn::connect(self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "server did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.owns_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A plain TCP connection for protocol-level tests.
pub struct RawConn {
    pub stream: TcpStream,
}

impl RawConn {
    pub fn connect(port: u16) -> RawConn {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        RawConn { stream }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// Reads until `expected` bytes arrived (or the timeout), returning what was read.
    pub fn read_exact_len(&mut self, expected: usize) -> Vec<u8> {
        let mut out = vec![0u8; expected];
        let mut got = 0;
        while got < expected {
            match self.stream.read(&mut out[got..]) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
        }
        out.truncate(got);
        out
    }

    /// Sends `request` and asserts the reply is exactly `expected`.
    pub fn roundtrip(&mut self, request: &[u8], expected: &[u8]) {
        self.send(request);
        let got = self.read_exact_len(expected.len());
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(expected),
            "reply to {:?}",
            String::from_utf8_lossy(request)
        );
    }

    /// True if the server closed the connection (reads EOF within the timeout).
    pub fn closed_by_server(&mut self) -> bool {
        let mut buf = [0u8; 1024];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }
}

/// One field of an INFO section, as text.
pub fn info_field(c: &mut redis::Connection, section: &str, field: &str) -> String {
    let info: String = redis::cmd("INFO").arg(section).query(c).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("INFO {section} has no {field}"))
}

// ---- redis-server 7.0.15, for the tests that exchange files or streams with it ----------

pub const REDIS_SERVER: &str = "/usr/bin/redis-server";

/// Whether redis-server is here; when MOONKV_REQUIRE_REDIS=1 (CI), its absence fails.
pub fn redis_available() -> bool {
    if std::path::Path::new(REDIS_SERVER).exists() {
        return true;
    }
    assert!(
        std::env::var("MOONKV_REQUIRE_REDIS").as_deref() != Ok("1"),
        "redis-server is required (MOONKV_REQUIRE_REDIS=1) but {REDIS_SERVER} is missing"
    );
    eprintln!("skipped: {REDIS_SERVER} is not installed");
    false
}

pub struct RedisServer {
    pub port: u16,
    child: Child,
}

impl RedisServer {
    pub fn start(dir: &std::path::Path) -> RedisServer {
        Self::start_with(dir, &[])
    }

    /// Starts redis-server on `dir`; `args` come last and win.
    pub fn start_with(dir: &std::path::Path, args: &[&str]) -> RedisServer {
        let port = free_port();
        let child = Command::new(REDIS_SERVER)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(dir)
            .args(["--save", "", "--appendonly", "no"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        let server = RedisServer { port, child };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let up = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
                .and_then(|c| c.get_connection())
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
                .is_ok();
            if up {
                break;
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    pub fn conn(&self) -> redis::Connection {
        redis::Client::open(format!("redis://127.0.0.1:{}/", self.port))
            .unwrap()
            .get_connection()
            .unwrap()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
