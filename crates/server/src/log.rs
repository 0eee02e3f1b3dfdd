//! Logging in redis-server's format: `pid:role dd Mon yyyy hh:mm:ss.mmm <level> message`, where
//! the level mark is `.` debug, `-` verbose, `*` notice, `#` warning. Tools that scrape Redis
//! logs (and people used to them) read these lines unchanged.

use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Level {
    Debug = 0,
    Verbose = 1,
    Notice = 2,
    Warning = 3,
    Nothing = 4,
}

impl Level {
    pub fn from_name(name: &str) -> Level {
        match name {
            "debug" => Level::Debug,
            "verbose" => Level::Verbose,
            "warning" => Level::Warning,
            "nothing" => Level::Nothing,
            _ => Level::Notice,
        }
    }

    fn mark(self) -> char {
        match self {
            Level::Debug => '.',
            Level::Verbose => '-',
            Level::Notice => '*',
            Level::Warning | Level::Nothing => '#',
        }
    }
}

static MIN_LEVEL: AtomicU8 = AtomicU8::new(Level::Notice as u8);
static LOG_FILE: OnceLock<Option<String>> = OnceLock::new();

/// Sets the minimum level (config `loglevel`) and, once, the log file (config `logfile`).
pub fn configure(level: Level, logfile: &str) {
    MIN_LEVEL.store(level as u8, Ordering::Relaxed);
    let _ = LOG_FILE.set((!logfile.is_empty()).then(|| logfile.to_string()));
}

pub fn enabled(level: Level) -> bool {
    level as u8 >= MIN_LEVEL.load(Ordering::Relaxed)
}

/// Writes one log line; `role` is `M` for the main process, `C` before the server is set up.
pub fn log_with_role(level: Level, role: char, msg: &str) {
    if !enabled(level) || level == Level::Nothing {
        return;
    }
    let line = format!(
        "{}:{} {} {} {}\n",
        std::process::id(),
        role,
        timestamp(crate::time::unix_ms()),
        level.mark(),
        msg
    );
    write_raw(&line);
}

/// Appends text to the log file, or writes it to stdout when there is none.
fn write_raw(line: &str) {
    match LOG_FILE.get().and_then(|f| f.as_ref()) {
        Some(path) => {
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                let _ = f.write_all(line.as_bytes());
            }
        }
        None => {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(line.as_bytes());
            let _ = out.flush();
        }
    }
}

/// The start-up banner, logged (at notice level, without the usual line prefix) where Redis
/// shows its logo: when `always-show-logo` is set, or when the log goes to a terminal. Its
/// `PID:` line is what tools that start a server and read its log (Redis's own test suite
/// among them) look for to know the server started.
pub fn banner(mode: &str, port: &str) {
    if !enabled(Level::Notice) {
        return;
    }
    write_raw(&format!(
        "\n    moonkv {} (Redis {} compatible) 64 bit\n    Running in {} mode\n    Port: {}\n    PID: {}\n\n",
        crate::MOONKV_VERSION,
        crate::REDIS_VERSION,
        mode,
        port,
        std::process::id()
    ));
}

/// Whether this server is a replica: its log lines say S where a primary's say M.
static REPLICA: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn set_replica_role(replica: bool) {
    REPLICA.store(replica, std::sync::atomic::Ordering::Relaxed);
}

pub fn log(level: Level, msg: &str) {
    let role = if REPLICA.load(std::sync::atomic::Ordering::Relaxed) {
        'S'
    } else {
        'M'
    };
    log_with_role(level, role, msg);
}

/// `redis.log` from a script, with Redis's level numbers (0 debug ... 3 warning).
pub fn script_log(level: i64, message: &[u8]) {
    let level = match level {
        0 => Level::Debug,
        1 => Level::Verbose,
        2 => Level::Notice,
        _ => Level::Warning,
    };
    log(level, &String::from_utf8_lossy(message));
}

pub fn notice(msg: &str) {
    log(Level::Notice, msg);
}

pub fn warning(msg: &str) {
    log(Level::Warning, msg);
}

/// `22 Nov 2026 23:15:35.123` in UTC.
fn timestamp(unix_ms: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = unix_ms.div_euclid(1000);
    let ms = unix_ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{:02} {} {} {:02}:{:02}:{:02}.{:03}",
        d,
        MONTHS[(m - 1) as usize],
        y,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms
    )
}

/// Gregorian date from days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (y, m, d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamp_format() {
        assert_eq!(super::timestamp(0), "01 Jan 1970 00:00:00.000");
        assert_eq!(
            super::timestamp(1_795_390_535_123),
            "22 Nov 2026 23:35:35.123"
        );
    }
}
