//! COMMAND and its subcommands: the command table as clients see it.

use super::spec::flags::*;
use super::{table, CommandSpec, Ctx};
use moonkv_keyspace::glob_match;
use moonkv_protocol::ReplySink;

const fn command_cmd(name: &'static str, arity: i32, handler: super::Handler) -> CommandSpec {
    CommandSpec::new(
        name,
        arity,
        LOADING | STALE,
        (0, 0, 0),
        "connection",
        handler,
    )
    .group("server")
}

pub static COMMANDS: &[CommandSpec] = &[command_cmd("command", -1, command)
    .summary("Details about all commands", "2.8.13")
    .subcommands(SUBCOMMANDS)];

static SUBCOMMANDS: &[CommandSpec] = &[
    command_cmd("command|count", 2, count).summary("Number of commands", "2.8.13"),
    command_cmd("command|info", -2, info).summary("Details about the given commands", "2.8.13"),
    command_cmd("command|list", -2, list).summary("Command names, optionally filtered", "7.0.0"),
    command_cmd("command|getkeys", -3, getkeys)
        .summary("Key positions of a full command line", "2.8.13"),
    command_cmd("command|getkeysandflags", -3, getkeys_and_flags)
        .summary("Keys of a command line and how they are used", "7.0.0"),
    command_cmd("command|docs", -2, docs).summary("Documentation of commands", "7.0.0"),
    command_cmd("command|help", 2, help).summary("Help for COMMAND", "5.0.0"),
];

/// One COMMAND INFO entry in Redis 7's shape.
fn write_info(ctx: &mut Ctx, spec: &CommandSpec) {
    ctx.array(10);
    ctx.bulk(spec.name.as_bytes());
    ctx.integer(spec.arity as i64);
    let flag_names: Vec<&str> = NAMES
        .iter()
        .filter(|(bit, _)| spec.has(*bit))
        .map(|(_, n)| *n)
        .collect();
    ctx.set(flag_names.len());
    for n in flag_names {
        ctx.simple(n);
    }
    ctx.integer(spec.keys.0 as i64);
    ctx.integer(spec.keys.1 as i64);
    ctx.integer(spec.keys.2 as i64);
    let cats = spec.acl_categories();
    ctx.set(cats.len());
    for c in cats {
        ctx.simple(&format!("@{}", c));
    }
    let tips: Vec<&str> = if spec.has(RANDOM) {
        vec!["nondeterministic_output"]
    } else {
        vec![]
    };
    ctx.array(tips.len());
    for t in tips {
        ctx.simple(t);
    }
    ctx.array(0); // key specifications: not described yet beyond first/last/step
    ctx.array(spec.subcommands.len());
    for sub in spec.subcommands {
        write_info(ctx, sub);
    }
}

fn command(ctx: &mut Ctx) {
    let specs = &table().top_level;
    ctx.array(specs.len());
    for spec in specs {
        write_info(ctx, spec);
    }
}

fn count(ctx: &mut Ctx) {
    ctx.integer(table().top_level.len() as i64);
}

fn info(ctx: &mut Ctx) {
    let args = ctx.args;
    if args.len() == 2 {
        return command(ctx);
    }
    ctx.array(args.len() - 2);
    for name in &args[2..] {
        match table().lookup(name) {
            Some((_, spec)) => write_info(ctx, spec),
            None => ctx.null_array(),
        }
    }
}

fn list(ctx: &mut Ctx) {
    let args = ctx.args;
    let mut filter: Option<(String, Vec<u8>)> = None;
    if args.len() > 2 {
        if args.len() != 5 || !ctx.arg_is(2, "filterby") {
            return ctx.syntax_error();
        }
        let kind = ctx.arg_lower(3);
        if !matches!(kind.as_str(), "module" | "aclcat" | "pattern") {
            return ctx.syntax_error();
        }
        filter = Some((kind, args[4].to_vec()));
    }
    let names: Vec<&str> = table()
        .specs
        .iter()
        .filter(|spec| match &filter {
            None => true,
            Some((kind, value)) => match kind.as_str() {
                "pattern" => glob_match(value, spec.name.as_bytes(), true),
                "aclcat" => spec
                    .acl_categories()
                    .iter()
                    .any(|c| c.as_bytes().eq_ignore_ascii_case(value)),
                // No modules exist.
                _ => false,
            },
        })
        .map(|spec| spec.name)
        .collect();
    ctx.array(names.len());
    for n in names {
        ctx.bulk(n.as_bytes());
    }
}

/// Resolves the command (or subcommand) of a full command line, checking its arity.
fn resolve(ctx: &mut Ctx) -> Option<(&'static CommandSpec, usize)> {
    let args = ctx.args;
    let line = &args[2..];
    let Some((_, mut spec)) = table().lookup(&line[0]) else {
        ctx.error("ERR Invalid command specified");
        return None;
    };
    if !spec.subcommands.is_empty() && line.len() >= 2 {
        let full = [spec.name.as_bytes(), b"|", &line[1]].concat();
        if let Some((_, sub)) = table().lookup(&full) {
            spec = sub;
        }
    }
    if !spec.arity_ok(line.len()) {
        ctx.error("ERR Invalid number of arguments specified for command");
        return None;
    }
    Some((spec, 2))
}

fn key_list(ctx: &mut Ctx) -> Option<Vec<usize>> {
    let (spec, offset) = resolve(ctx)?;
    let line = &ctx.args[offset..];
    match spec.key_positions(line) {
        Ok(keys) if keys.is_empty() => {
            ctx.error("ERR The command has no key arguments");
            None
        }
        Ok(keys) => Some(keys.into_iter().map(|k| k + offset).collect()),
        Err(_) => {
            ctx.error("ERR Invalid arguments specified for command");
            None
        }
    }
}

fn getkeys(ctx: &mut Ctx) {
    let Some(keys) = key_list(ctx) else { return };
    ctx.array(keys.len());
    for k in keys {
        let key = ctx.args[k].clone();
        ctx.bulk(&key);
    }
}

fn getkeys_and_flags(ctx: &mut Ctx) {
    let Some(keys) = key_list(ctx) else { return };
    let Some((_, spec)) = table().lookup(&ctx.args[2]) else {
        return;
    };
    let access = if spec.has(WRITE) {
        ["RW", "UPDATE"]
    } else {
        ["RO", "ACCESS"]
    };
    ctx.array(keys.len());
    for k in keys {
        let key = ctx.args[k].clone();
        ctx.array(2);
        ctx.bulk(&key);
        ctx.set(2);
        ctx.simple(access[0]);
        ctx.simple(access[1]);
    }
}

fn write_docs(ctx: &mut Ctx, spec: &CommandSpec) {
    let has_subs = !spec.subcommands.is_empty();
    ctx.map(3 + has_subs as usize);
    ctx.bulk(b"summary");
    ctx.bulk(spec.summary.as_bytes());
    ctx.bulk(b"since");
    ctx.bulk(spec.since.as_bytes());
    ctx.bulk(b"group");
    ctx.bulk(spec.group.as_bytes());
    if has_subs {
        ctx.bulk(b"subcommands");
        ctx.map(spec.subcommands.len());
        for sub in spec.subcommands {
            ctx.bulk(sub.name.as_bytes());
            write_docs(ctx, sub);
        }
    }
}

fn docs(ctx: &mut Ctx) {
    let args = ctx.args;
    let specs: Vec<&CommandSpec> = if args.len() == 2 {
        table().top_level.clone()
    } else {
        args[2..]
            .iter()
            .filter_map(|n| table().lookup(n).map(|(_, s)| s))
            .collect()
    };
    ctx.map(specs.len());
    for spec in specs {
        ctx.bulk(spec.name.as_bytes());
        write_docs(ctx, spec);
    }
}

fn help(ctx: &mut Ctx) {
    super::server_admin::reply_help(
        ctx,
        "COMMAND",
        &[
            "(no subcommand)",
            "    Details about every command.",
            "COUNT",
            "    How many commands there are.",
            "DOCS [<command-name> ...]",
            "    Documentation of the given commands, or of all.",
            "GETKEYS <full-command>",
            "    The keys of a full command line.",
            "GETKEYSANDFLAGS <full-command>",
            "    The keys of a full command line and how they are accessed.",
            "INFO [<command-name> ...]",
            "    Details about the given commands, or about all.",
            "LIST [FILTERBY (MODULE <module-name>|ACLCAT <category>|PATTERN <pattern>)]",
            "    Names of all commands, optionally filtered.",
        ],
    );
}
