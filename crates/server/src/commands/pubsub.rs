//! Pub/Sub: SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE, PUBLISH, PUBSUB.
//!
//! Messages reach other clients through their outbound channel, encoded once per protocol
//! version (RESP3 clients get push frames, RESP2 clients arrays).

use super::spec::flags::*;
use super::{CommandSpec, Ctx};
use crate::client::ClientState;
use crate::state::ServerState;
use bytes::Bytes;
use moonkv_keyspace::glob_match;
use moonkv_protocol::{Protocol, ReplySink, RespWriter};

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec::new(
        "subscribe",
        -2,
        PUBSUB | NOSCRIPT | LOADING | STALE,
        (0, 0, 0),
        "",
        subscribe,
    )
    .group("pubsub"),
    CommandSpec::new(
        "unsubscribe",
        -1,
        PUBSUB | NOSCRIPT | LOADING | STALE,
        (0, 0, 0),
        "",
        unsubscribe,
    )
    .group("pubsub"),
    CommandSpec::new(
        "psubscribe",
        -2,
        PUBSUB | NOSCRIPT | LOADING | STALE,
        (0, 0, 0),
        "",
        psubscribe,
    )
    .group("pubsub"),
    CommandSpec::new(
        "punsubscribe",
        -1,
        PUBSUB | NOSCRIPT | LOADING | STALE,
        (0, 0, 0),
        "",
        punsubscribe,
    )
    .group("pubsub"),
    CommandSpec::new(
        "publish",
        3,
        PUBSUB | LOADING | STALE | FAST | MAY_REPLICATE,
        (0, 0, 0),
        "",
        publish,
    )
    .group("pubsub"),
    CommandSpec::new(
        "pubsub",
        -2,
        0,
        (0, 0, 0),
        "",
        super::server_admin::container_help,
    )
    .group("pubsub")
    .subcommands(PUBSUB_SUBCOMMANDS),
];

static PUBSUB_SUBCOMMANDS: &[CommandSpec] = &[
    CommandSpec::new(
        "pubsub|channels",
        -2,
        PUBSUB | LOADING | STALE,
        (0, 0, 0),
        "",
        pubsub_channels,
    )
    .group("pubsub"),
    CommandSpec::new(
        "pubsub|numsub",
        -2,
        PUBSUB | LOADING | STALE,
        (0, 0, 0),
        "",
        pubsub_numsub,
    )
    .group("pubsub"),
    CommandSpec::new(
        "pubsub|numpat",
        2,
        PUBSUB | LOADING | STALE,
        (0, 0, 0),
        "",
        pubsub_numpat,
    )
    .group("pubsub"),
    CommandSpec::new(
        "pubsub|shardchannels",
        -2,
        PUBSUB | LOADING | STALE,
        (0, 0, 0),
        "",
        pubsub_shardchannels,
    )
    .group("pubsub"),
    CommandSpec::new(
        "pubsub|shardnumsub",
        -2,
        PUBSUB | LOADING | STALE,
        (0, 0, 0),
        "",
        pubsub_numsub_empty,
    )
    .group("pubsub"),
    CommandSpec::new(
        "pubsub|help",
        2,
        LOADING | STALE,
        (0, 0, 0),
        "",
        pubsub_help,
    )
    .group("pubsub"),
];

/// Which registry a (un)subscription works on.
#[derive(Clone, Copy)]
enum Kind {
    Channel,
    Pattern,
}

fn client_set(client: &mut ClientState, kind: Kind) -> &mut std::collections::HashSet<Bytes> {
    match kind {
        Kind::Channel => &mut client.channels,
        Kind::Pattern => &mut client.patterns,
    }
}

fn server_map(
    state: &mut ServerState,
    kind: Kind,
) -> &mut std::collections::HashMap<Bytes, std::collections::HashSet<u64>> {
    match kind {
        Kind::Channel => &mut state.pubsub.channels,
        Kind::Pattern => &mut state.pubsub.patterns,
    }
}

/// Writes one `[kind, name, count]` subscription confirmation. Like messages, confirmations
/// are delivered even when the client switched replies off (CLIENT REPLY OFF).
fn confirm(ctx: &mut Ctx, verb: &[u8], name: Option<&[u8]>, count: usize) {
    if ctx.client.reply_mode != crate::client::ReplyMode::On {
        let mut out = Vec::new();
        let mut w = RespWriter::new(&mut out, ctx.client.protocol);
        w.push(3);
        w.bulk(verb);
        w.bulk_opt(name);
        w.integer(count as i64);
        let id = ctx.client.id;
        ctx.state.send_to(id, out);
        return;
    }
    ctx.push(3);
    ctx.bulk(verb);
    ctx.bulk_opt(name);
    ctx.integer(count as i64);
}

fn add_subscriptions(ctx: &mut Ctx, kind: Kind, verb: &[u8]) {
    for name in ctx.args[1..].to_vec() {
        if client_set(ctx.client, kind).insert(name.clone()) {
            server_map(ctx.state, kind)
                .entry(name.clone())
                .or_default()
                .insert(ctx.client.id);
        }
        let count = ctx.client.subscription_count();
        confirm(ctx, verb, Some(&name), count);
    }
}

fn remove_one(state: &mut ServerState, client: &mut ClientState, kind: Kind, name: &Bytes) -> bool {
    if !client_set(client, kind).remove(name) {
        return false;
    }
    let map = server_map(state, kind);
    if let Some(ids) = map.get_mut(name) {
        ids.remove(&client.id);
        if ids.is_empty() {
            map.remove(name);
        }
    }
    true
}

fn remove_subscriptions(ctx: &mut Ctx, kind: Kind, verb: &[u8]) {
    let names: Vec<Bytes> = if ctx.args.len() > 1 {
        ctx.args[1..].to_vec()
    } else {
        client_set(ctx.client, kind).iter().cloned().collect()
    };
    if names.is_empty() {
        let count = ctx.client.subscription_count();
        return confirm(ctx, verb, None, count);
    }
    for name in names {
        remove_one(ctx.state, ctx.client, kind, &name);
        let count = ctx.client.subscription_count();
        confirm(ctx, verb, Some(&name), count);
    }
}

fn subscribe(ctx: &mut Ctx) {
    add_subscriptions(ctx, Kind::Channel, b"subscribe");
}

fn psubscribe(ctx: &mut Ctx) {
    add_subscriptions(ctx, Kind::Pattern, b"psubscribe");
}

fn unsubscribe(ctx: &mut Ctx) {
    remove_subscriptions(ctx, Kind::Channel, b"unsubscribe");
}

fn punsubscribe(ctx: &mut Ctx) {
    remove_subscriptions(ctx, Kind::Pattern, b"punsubscribe");
}

/// Drops all of a client's subscriptions without replying (RESET, disconnect).
pub fn unsubscribe_all(state: &mut ServerState, client: &mut ClientState) {
    for kind in [Kind::Channel, Kind::Pattern] {
        let names: Vec<Bytes> = client_set(client, kind).iter().cloned().collect();
        for name in names {
            remove_one(state, client, kind, &name);
        }
    }
}

/// Encodes a message frame for one protocol version.
fn encode(protocol: Protocol, parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + parts.iter().map(|p| p.len() + 16).sum::<usize>());
    let mut w = RespWriter::new(&mut out, protocol);
    w.push(parts.len());
    for p in parts {
        w.bulk(p);
    }
    out
}

/// Delivers a message to channel and pattern subscribers; returns how many received it.
pub fn publish_message(state: &mut ServerState, channel: &[u8], message: &[u8]) -> usize {
    let mut receivers = 0;
    let mut frames: [Option<Vec<u8>>; 2] = [None, None];
    if let Some(ids) = state.pubsub.channels.get(channel) {
        for &id in ids {
            let protocol = state.client_protocol(id);
            let slot = &mut frames[(protocol == Protocol::Resp3) as usize];
            let frame =
                slot.get_or_insert_with(|| encode(protocol, &[b"message", channel, message]));
            if state.send_to(id, frame.clone()) {
                receivers += 1;
            }
        }
    }
    for (pattern, ids) in state.pubsub.patterns.iter() {
        if !glob_match(pattern, channel, false) {
            continue;
        }
        for &id in ids {
            let frame = encode(
                state.client_protocol(id),
                &[b"pmessage", pattern, channel, message],
            );
            if state.send_to(id, frame) {
                receivers += 1;
            }
        }
    }
    receivers
}

fn publish(ctx: &mut Ctx) {
    let (channel, message) = (ctx.args[1].clone(), ctx.args[2].clone());
    let n = publish_message(ctx.state, &channel, &message);
    // Replicas' subscribers get the message too: PUBLISH is replicated though it changes no
    // key (as Redis forces its propagation).
    ctx.force_propagation();
    ctx.integer(n as i64);
}

fn pubsub_channels(ctx: &mut Ctx) {
    let pattern = ctx.args.get(2).cloned();
    let names: Vec<Bytes> = ctx
        .state
        .pubsub
        .channels
        .keys()
        .filter(|c| pattern.as_ref().map_or(true, |p| glob_match(p, c, false)))
        .cloned()
        .collect();
    ctx.array(names.len());
    for n in names {
        ctx.bulk(&n);
    }
}

fn pubsub_numsub(ctx: &mut Ctx) {
    let names = ctx.args[2..].to_vec();
    ctx.map(names.len());
    for n in names {
        let count = ctx.state.pubsub.channels.get(&n).map_or(0, |s| s.len());
        ctx.bulk(&n);
        ctx.integer(count as i64);
    }
}

fn pubsub_numpat(ctx: &mut Ctx) {
    let n = ctx.state.pubsub.patterns.len();
    ctx.integer(n as i64);
}

/// Sharded channels exist only in cluster mode semantics; none are ever subscribed here.
fn pubsub_shardchannels(ctx: &mut Ctx) {
    ctx.array(0);
}

fn pubsub_numsub_empty(ctx: &mut Ctx) {
    let names = ctx.args[2..].to_vec();
    ctx.map(names.len());
    for n in names {
        ctx.bulk(&n);
        ctx.integer(0);
    }
}

fn pubsub_help(ctx: &mut Ctx) {
    super::server_admin::reply_help(
        ctx,
        "PUBSUB",
        &[
            "CHANNELS [<pattern>]",
            "    List channels with subscribers, optionally only those matching <pattern>.",
            "NUMPAT",
            "    Count pattern subscriptions.",
            "NUMSUB [<channel> ...]",
            "    Count the subscribers of each given channel (pattern subscribers excluded).",
            "SHARDCHANNELS [<pattern>]",
            "    List shard channels with subscribers, optionally matching <pattern>.",
            "SHARDNUMSUB [<shardchannel> ...]",
            "    Count the subscribers of each given shard channel.",
        ],
    );
}
