//! Shared by the targets: one VM per fuzzing thread, a script run on the input bytes as ARGV,
//! and the checks of crates/lua/tests/fuzz.rs: the run either succeeds or fails with an error
//! the decoder raises on purpose, never a caught panic ("internal error ...") or a broken
//! invariant, and the VM still runs `return 1` afterwards. Anything else aborts, which
//! libFuzzer reports as a crash with the input saved.

use bytes::Bytes;
use moonkv_lua::{CompiledId, Host, LuaVm, VmKind};
use moonkv_protocol::{ErrorReply, Protocol, ReplySink, RespWriter};
use std::cell::RefCell;

struct QuietHost;

impl Host for QuietHost {
    fn call(&mut self, _args: &[Bytes], reply: &mut dyn ReplySink) -> Result<(), ErrorReply> {
        reply.simple("OK");
        Ok(())
    }
    fn set_repl(&mut self, _flags: i64) {}
    fn log(&mut self, _level: i64, _message: &[u8]) {}
    fn acl_check(&mut self, _args: &[Bytes]) -> Option<bool> {
        Some(true)
    }
}

struct Target {
    vm: LuaVm,
    script: CompiledId,
    one: CompiledId,
}

thread_local! {
    static TARGET: RefCell<Option<Target>> = const { RefCell::new(None) };
}

fn run(vm: &mut LuaVm, f: CompiledId, args: &[&[u8]]) -> Result<String, String> {
    let args: Vec<Bytes> = args.iter().map(|a| Bytes::copy_from_slice(a)).collect();
    let mut out = Vec::new();
    let mut w = RespWriter::new(&mut out, Protocol::Resp2);
    vm.run(f, "fuzz", &[], &args, &mut QuietHost, &mut w)
        .map(|_| String::from_utf8_lossy(&out).into_owned())
        .map_err(|e| e.message)
}

/// Runs `script` with `args` as ARGV and checks the outcome against `expected_errors`.
pub fn check(script: &str, args: &[&[u8]], expected_errors: &[&str]) {
    TARGET.with(|t| {
        let mut t = t.borrow_mut();
        let t = t.get_or_insert_with(|| {
            let mut vm = LuaVm::new(VmKind::Eval);
            // Small enough that big inputs also exercise the memory error.
            vm.set_memory_limit(Some(64 << 20));
            let script = vm.compile(script.as_bytes()).expect("compiles");
            let one = vm.compile(b"return 1").expect("compiles");
            Target { vm, script, one }
        });
        if let Err(message) = run(&mut t.vm, t.script, args) {
            let fine = !message.contains("internal error")
                && !message.contains("INVARIANT")
                && (message.contains("script-memory-limit")
                    || expected_errors.iter().any(|m| message.contains(m)));
            assert!(fine, "unexpected error: {message}");
        }
        assert_eq!(
            run(&mut t.vm, t.one, &[]).as_deref(),
            Ok(":1\r\n"),
            "VM unusable"
        );
    })
}
