//! Wire-level behaviour over raw TCP: framing, pipelining, RESP3, protocol errors and limits.

mod common;

use common::TestServer;

#[test]
fn multibulk_inline_and_pipelining() {
    let server = TestServer::start();
    let mut c = server.raw();
    c.roundtrip(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n", b"+OK\r\n");
    c.roundtrip(b"GET k\r\n", b"$5\r\nhello\r\n");
    c.roundtrip(b"ECHO \"a b\\x41\"\r\n", b"$4\r\na bA\r\n");
    let mut pipeline = Vec::new();
    let mut expected = Vec::new();
    for i in 0..1000 {
        pipeline.extend_from_slice(
            format!("*2\r\n$4\r\nECHO\r\n${}\r\n{}\r\n", i.to_string().len(), i).as_bytes(),
        );
        expected.extend_from_slice(format!("${}\r\n{}\r\n", i.to_string().len(), i).as_bytes());
    }
    c.roundtrip(&pipeline, &expected);
}

#[test]
fn command_split_byte_by_byte() {
    let server = TestServer::start();
    let mut c = server.raw();
    for b in b"*2\r\n$4\r\nECHO\r\n$3\r\nabc\r\n" {
        c.send(&[*b]);
    }
    assert_eq!(c.read_exact_len(9), b"$3\r\nabc\r\n");
}

#[test]
fn resp3_after_hello() {
    let server = TestServer::start();
    let mut c = server.raw();
    c.send(b"HELLO 3\r\n");
    let hello = c.read_exact_len(4);
    assert_eq!(&hello, b"%7\r\n", "HELLO 3 answers with a RESP3 map");
    let _ = c.read_exact_len(300); // rest of the map; the next read starts clean below
    let mut c = server.raw();
    c.send(b"HELLO 3\r\n");
    let _ = c.read_exact_len(4);
    // Drain the hello map by sending a marker and reading up to it.
    c.roundtrip(b"", b"");
    let mut c2 = server.raw();
    c2.roundtrip(b"HELLO 2\r\n", b"*14\r\n");
}

#[test]
fn resp3_null_and_double() {
    let server = TestServer::start();
    let mut c = server.raw();
    c.send(b"HELLO 3\r\n");
    // The HELLO map is 7 pairs; skip it by reading until the modules entry's empty array.
    let mut seen = Vec::new();
    while !seen.ends_with(b"*0\r\n") {
        let chunk = c.read_exact_len(1);
        assert!(!chunk.is_empty(), "HELLO reply truncated");
        seen.extend_from_slice(&chunk);
    }
    c.roundtrip(b"GET missing\r\n", b"_\r\n");
    c.roundtrip(b"INCRBYFLOAT f 1.5\r\n", b"$3\r\n1.5\r\n");
}

#[test]
fn protocol_errors_close_the_connection() {
    let server = TestServer::start();
    let cases: &[(&[u8], &str)] = &[
        (
            b"*3000000000\r\n",
            "-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*1\r\nfoo\r\n",
            "-ERR Protocol error: expected '$', got 'f'\r\n",
        ),
        (
            b"*1\r\n$-5\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\n$blabla\r\n",
            "-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"SET \"unbalanced\r\n",
            "-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
    ];
    for (request, expected) in cases {
        let mut c = server.raw();
        c.roundtrip(request, expected.as_bytes());
        assert!(
            c.closed_by_server(),
            "connection stays open after {:?}",
            String::from_utf8_lossy(request)
        );
    }
    // The server is still healthy.
    server.raw().roundtrip(b"PING\r\n", b"+PONG\r\n");
}

#[test]
fn oversized_inline_request_is_refused() {
    let server = TestServer::start();
    let mut c = server.raw();
    let junk = vec![b'A'; 70 * 1024];
    c.send(&junk);
    let reply = c.read_exact_len(45);
    assert!(
        String::from_utf8_lossy(&reply).starts_with("-ERR Protocol error: too big inline request")
    );
    assert!(c.closed_by_server());
}

#[test]
fn huge_announced_bulk_is_not_allocated() {
    let server = TestServer::start();
    let mut c = server.raw();
    c.send(b"*2\r\n$4\r\nECHO\r\n$536870000\r\nabc");
    // Others are served meanwhile, and the server did not reserve half a gigabyte.
    server.raw().roundtrip(b"PING\r\n", b"+PONG\r\n");
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", server.pid())).expect("proc status");
    let rss_kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    assert!(
        rss_kb < 100 * 1024,
        "RSS {} kB after a huge announced bulk",
        rss_kb
    );
}

#[test]
fn bulk_over_proto_max_bulk_len_is_rejected() {
    let server = TestServer::start_with(&["--proto-max-bulk-len", "1mb"]);
    let mut c = server.raw();
    c.roundtrip(
        b"*2\r\n$4\r\nECHO\r\n$1048577\r\n",
        b"-ERR Protocol error: invalid bulk length\r\n",
    );
    assert!(c.closed_by_server());
}

#[test]
fn unknown_command_and_arity_errors() {
    let server = TestServer::start();
    let mut c = server.raw();
    c.roundtrip(
        b"FOO a b\r\n",
        b"-ERR unknown command 'FOO', with args beginning with: 'a' 'b' \r\n",
    );
    c.roundtrip(
        b"GET\r\n",
        b"-ERR wrong number of arguments for 'get' command\r\n",
    );
    c.roundtrip(
        b"CONFIG NOPE\r\n",
        b"-ERR unknown subcommand 'NOPE'. Try CONFIG HELP.\r\n",
    );
}

#[test]
fn disconnect_mid_command_leaves_others_unaffected() {
    let server = TestServer::start();
    {
        let mut c = server.raw();
        c.send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10\r\nabc");
    }
    let mut other = server.raw();
    other.roundtrip(b"EXISTS k\r\n", b":0\r\n");
}

#[test]
fn many_concurrent_clients_see_their_own_keys() {
    let server = TestServer::start();
    let port = server.port;
    let handles: Vec<_> = (0..200)
        .map(|i| {
            std::thread::spawn(move || {
                let mut c = common::RawConn::connect(port);
                let key = format!("key:{}", i);
                let set = format!(
                    "*3\r\n$3\r\nSET\r\n${}\r\n{}\r\n${}\r\n{}\r\n",
                    key.len(),
                    key,
                    key.len(),
                    key
                );
                c.roundtrip(set.as_bytes(), b"+OK\r\n");
                let get = format!("*2\r\n$3\r\nGET\r\n${}\r\n{}\r\n", key.len(), key);
                let expected = format!("${}\r\n{}\r\n", key.len(), key);
                c.roundtrip(get.as_bytes(), expected.as_bytes());
            })
        })
        .collect();
    for h in handles {
        h.join().expect("client thread");
    }
    server.raw().roundtrip(b"DBSIZE\r\n", b":200\r\n");
}
