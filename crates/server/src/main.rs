//! `moonkv-server [config-file] [--directive value ...]`, like redis-server.

use moonkv_server::config::{args_to_config_text, Config};
use moonkv_server::log::{self, Level};
use moonkv_server::{MOONKV_VERSION, REDIS_VERSION};

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn usage() {
    eprintln!("Usage: ./moonkv-server [/path/to/redis.conf] [options]");
    eprintln!("       ./moonkv-server -v or --version");
    eprintln!("       ./moonkv-server -h or --help");
    eprintln!();
    eprintln!("Examples:");
    eprintln!("       ./moonkv-server (run the server with default config)");
    eprintln!("       ./moonkv-server /etc/redis/6379.conf");
    eprintln!("       ./moonkv-server --port 7777");
    eprintln!("       ./moonkv-server /etc/myredis.conf --loglevel verbose");
}

fn fatal_config(msg: &str) -> ! {
    eprintln!();
    eprintln!(
        "*** FATAL CONFIG FILE ERROR (moonkv {}, Redis {} compatible) ***",
        MOONKV_VERSION, REDIS_VERSION
    );
    eprintln!("{}", msg);
    std::process::exit(1);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("-v") | Some("--version") => {
            println!(
                "moonkv server v={} (Redis {} compatible)",
                MOONKV_VERSION, REDIS_VERSION
            );
            return;
        }
        Some("-h") | Some("--help") => {
            usage();
            return;
        }
        _ => {}
    }
    let (file, cli_text) = match args_to_config_text(&args) {
        Ok(r) => r,
        Err(e) => fatal_config(&format!("Bad command line: {}", e)),
    };
    let mut config = Config::default();
    let mut text = String::new();
    if let Some(path) = &file {
        match std::fs::read_to_string(path) {
            Ok(t) => text.push_str(&t),
            Err(e) => {
                eprintln!("Fatal error, can't open config file '{}': {}", path, e);
                std::process::exit(1);
            }
        }
        text.push('\n');
    }
    text.push_str(&cli_text);
    if let Err(e) = config.apply_text(&text) {
        fatal_config(&format!(
            "Reading the configuration file, at line {}\n>>> '{}'\n{}",
            e.line_number, e.line, e.reason
        ));
    }
    if config.get_bool("daemonize") {
        fatal_config(
            "daemonize yes is not supported: run moonkv-server under a supervisor instead",
        );
    }
    log::configure(
        Level::from_name(config.get("loglevel")),
        config.get("logfile"),
    );
    log::log_with_role(
        Level::Warning,
        'C',
        "oO0OoO0OoO0Oo moonkv is starting oO0OoO0OoO0Oo",
    );
    log::log_with_role(
        Level::Warning,
        'C',
        &format!(
            "moonkv version={}, redis compatibility={}, bits=64, pid={}, just started",
            MOONKV_VERSION,
            REDIS_VERSION,
            std::process::id()
        ),
    );
    if file.is_none() {
        log::log_with_role(Level::Warning, 'C', "Warning: no config file specified, using the default config. In order to specify a config file use ./moonkv-server /path/to/redis.conf");
    } else {
        log::log_with_role(Level::Warning, 'C', "Configuration loaded");
    }
    if config.get_bool("lua-enable-deprecated-api") {
        log::log_with_role(
            Level::Warning,
            'C',
            "Warning: lua-enable-deprecated-api is not supported: scripts get no setfenv, getfenv or newproxy",
        );
    }
    if !config.get("unixsocket").is_empty() {
        log::log_with_role(
            Level::Warning,
            'C',
            &format!(
                "Warning: unix sockets are not supported: not listening on {}",
                config.get("unixsocket")
            ),
        );
    }
    // Like Redis's `io-threads`, the default is one thread doing all socket work and command
    // execution: with a single global lock, more runtime threads only add cross-thread wake-ups
    // and lock hand-offs (measured: P1 GET 0.89 -> 1.06 of redis-server with one thread). Long
    // commands still leave the server responsive: they run under `block_in_place`, which hands
    // the runtime's other connections to a fresh thread.
    let io_threads = config
        .get("io-threads")
        .parse::<usize>()
        .unwrap_or(1)
        .max(1);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(io_threads)
        // Scripts run on these threads; deep but legal recursion (cjson.encode of a table
        // nested to its depth limit, conversions of nested replies) gets a comfortable stack.
        .thread_stack_size(8 << 20)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("Failed to start the runtime: {}", e);
            std::process::exit(1);
        }
    };
    let code = runtime.block_on(moonkv_server::server::run(config, file));
    runtime.shutdown_background();
    std::process::exit(code);
}
