use super::blobs::ListpackBuilder;
use super::*;
use moonkv_keyspace::{End, Hash, HashLimits, List, Set, SortedSet, ZSetLimits};

/// A comparable picture of a value: type, encoding and contents (unordered kinds sorted).
fn picture(value: &Value) -> (String, Vec<Vec<u8>>) {
    let enc = format!("{}/{}", value.type_name(), value.encoding());
    let mut items: Vec<Vec<u8>> = match value {
        Value::List(l) => return (enc, l.iter().map(<[u8]>::to_vec).collect()),
        Value::ZSet(z) => {
            return (
                enc,
                z.iter()
                    // -0 and 0 compare equal: a listpack stores a whole score as an integer, as Redis does.
                    .flat_map(|(m, s)| [m.to_vec(), (s + 0.0).to_bits().to_le_bytes().to_vec()])
                    .collect(),
            );
        }
        Value::Set(s) => s.iter().map(|m| m.to_vec()).collect(),
        Value::Hash(h) => h.iter().map(|(f, v)| [f, b"=", v].concat()).collect(),
        other => vec![other.as_str().unwrap().to_vec()],
    };
    items.sort();
    (enc, items)
}

/// What a value loads back as: strings get the encoding Redis gives a loaded string (a
/// mutated short string is embstr again), collections keep theirs under default limits.
fn reloaded(value: &Value) -> (String, Vec<Vec<u8>>) {
    match value.as_str() {
        Some(s) => picture(&Value::string(&s.to_vec())),
        None => picture(value),
    }
}

fn list_of(items: &[&[u8]]) -> Value {
    let mut l = List::new();
    for i in items {
        l.push(End::Tail, i);
    }
    Value::List(Box::new(l))
}

/// One value of every kind and encoding moonkv has; with `big`, also large ones (many list
/// nodes, a 10 KB element, hundreds of members).
fn sample_values(big: bool) -> Vec<(&'static str, Value)> {
    let limits = LoadLimits::default();
    let mut out = vec![
        ("int-small", Value::string(b"42")),
        ("int-neg16", Value::string(b"-3000")),
        ("int-32", Value::string(b"2000000000")),
        ("int-64", Value::string(b"-9223372036854775808")),
        ("embstr", Value::string(b"hello")),
        ("embstr-leading-zero", Value::string(b"0123")),
        ("raw-compressible", Value::string(&b"abcabcabc".repeat(40))),
        (
            "raw-random",
            Value::string(
                &(0..200u32)
                    .map(|i| (i * 7919 % 251) as u8)
                    .collect::<Vec<_>>(),
            ),
        ),
        ("raw-mutated", Value::Raw(b"appended".to_vec())),
        ("empty-string", Value::string(b"")),
        (
            "list-small",
            list_of(&[b"a", b"12", b"-7", b"", &[b'x'; 100]]),
        ),
    ];
    let mut intset = Set::new();
    for m in ["5", "-100000", "70000", "0"] {
        intset.insert(m.as_bytes(), limits.set_max_intset_entries);
    }
    out.push(("set-intset", Value::Set(Box::new(intset))));
    let mut table_set = Set::new();
    for m in ["x", "1", "y"] {
        table_set.insert(m.as_bytes(), limits.set_max_intset_entries);
    }
    out.push(("set-hashtable-small", Value::Set(Box::new(table_set))));
    let mut small_hash = Hash::new();
    for (f, v) in [("a", "1"), ("b", "hello"), ("c", "-77777")] {
        small_hash.set(f.as_bytes(), v.as_bytes(), limits.hash);
    }
    out.push(("hash-listpack", Value::Hash(Box::new(small_hash))));
    let mut long_value_hash = Hash::new();
    long_value_hash.set(b"f", &[b'v'; 65], limits.hash);
    long_value_hash.set(b"g", b"1", limits.hash);
    out.push((
        "hash-hashtable-small",
        Value::Hash(Box::new(long_value_hash)),
    ));
    let mut small_zset = SortedSet::new();
    let scores = [1.0, 2.5, -0.1, 1e300, f64::INFINITY, 1e17, -0.0];
    for (m, s) in ["a", "b", "c", "d", "e", "f", "g"].iter().zip(scores) {
        small_zset.insert(m.as_bytes(), s, limits.zset);
    }
    out.push(("zset-listpack", Value::ZSet(Box::new(small_zset))));
    let mut long_member_zset = SortedSet::new();
    long_member_zset.insert(&[b'm'; 65], 1.5, limits.zset);
    long_member_zset.insert(b"n", -2.0, limits.zset);
    out.push((
        "zset-skiplist-small",
        Value::ZSet(Box::new(long_member_zset)),
    ));
    if !big {
        return out;
    }
    let mut big_list = List::new();
    for i in 0..3000 {
        big_list.push(End::Tail, format!("element-{i}").as_bytes());
        if i == 1500 {
            big_list.push(End::Tail, &[b'L'; 10_000]);
        }
    }
    out.push((
        "list-big-with-10kb-element",
        Value::List(Box::new(big_list)),
    ));
    let mut big_set = Set::new();
    for i in 0..600 {
        big_set.insert(i.to_string().as_bytes(), limits.set_max_intset_entries);
    }
    out.push(("set-hashtable-600-ints", Value::Set(Box::new(big_set))));
    let mut big_hash = Hash::new();
    for i in 0..600 {
        big_hash.set(
            format!("f{i}").as_bytes(),
            format!("{}", i * 3).as_bytes(),
            limits.hash,
        );
    }
    out.push(("hash-hashtable", Value::Hash(Box::new(big_hash))));
    let mut big_zset = SortedSet::new();
    for i in 0..200 {
        big_zset.insert(format!("m{i}").as_bytes(), f64::from(i) / 3.0, limits.zset);
    }
    big_zset.insert(b"neg-inf", f64::NEG_INFINITY, limits.zset);
    out.push(("zset-skiplist", Value::ZSet(Box::new(big_zset))));
    out
}

fn sample_file(options: WriteOptions, big: bool) -> Vec<u8> {
    let mut w = RdbWriter::new(Vec::new(), options).unwrap();
    w.aux("redis-ver", b"7.0.15").unwrap();
    w.aux("redis-bits", b"64").unwrap();
    w.function(b"#!lua name=lib\nredis.register_function('f', function() return 1 end)")
        .unwrap();
    let values = sample_values(big);
    w.select_db(0, values.len() as u64, 1).unwrap();
    for (i, (name, value)) in values.iter().enumerate() {
        let expire = (i == 0).then_some(1_900_000_000_000);
        w.key(name.as_bytes(), value, expire).unwrap();
    }
    w.select_db(3, 1, 0).unwrap();
    w.key(b"other-db", &Value::string(b"x"), None).unwrap();
    w.finish().unwrap()
}

#[test]
fn lengths() {
    let mut s = write::Sink::new(Vec::new(), false, false);
    for n in [10, 300, 70_000, 1 << 40] {
        s.len(n);
    }
    assert_eq!(
        s.into_inner().unwrap(),
        vec![10, 0x41, 0x2c, 0x80, 0, 1, 0x11, 0x70, 0x81, 0, 0, 1, 0, 0, 0, 0, 0]
    );
}

#[test]
fn every_value_round_trips_with_every_option() {
    for compress in [false, true] {
        for checksum in [false, true] {
            let file = sample_file(WriteOptions { compress, checksum }, true);
            let snap = read_snapshot(&file, &LoadLimits::default()).unwrap();
            assert_eq!(snap.version, 10);
            assert_eq!(
                snap.checksum,
                if checksum {
                    Checksum::Verified
                } else {
                    Checksum::Disabled
                }
            );
            assert_eq!(snap.aux[0], (b"redis-ver".to_vec(), b"7.0.15".to_vec()));
            assert_eq!(snap.aux[1], (b"redis-bits".to_vec(), b"64".to_vec()));
            assert_eq!(snap.functions.len(), 1);
            let values = sample_values(true);
            assert_eq!(snap.keys.len(), values.len() + 1);
            for (loaded, (name, value)) in snap.keys.iter().zip(&values) {
                assert_eq!(loaded.key, name.as_bytes());
                assert_eq!(picture(&loaded.value), reloaded(value), "{name}");
                assert_eq!(loaded.db, 0);
            }
            assert_eq!(snap.keys[0].expire_at, Some(1_900_000_000_000));
            assert_eq!(snap.keys[1].expire_at, None);
            let last = snap.keys.last().unwrap();
            assert_eq!((last.db, last.key.as_slice()), (3, &b"other-db"[..]));
        }
    }
}

#[test]
fn compression_and_checksum_options_change_the_bytes() {
    let plain = sample_file(
        WriteOptions {
            compress: false,
            checksum: false,
        },
        true,
    );
    let packed = sample_file(
        WriteOptions {
            compress: true,
            checksum: true,
        },
        true,
    );
    assert!(
        packed.len() < plain.len() - 300,
        "{} vs {}",
        packed.len(),
        plain.len()
    );
    assert_eq!(&plain[plain.len() - 9..], &[OP_EOF, 0, 0, 0, 0, 0, 0, 0, 0]);
    let body = &packed[..packed.len() - 8];
    assert_eq!(
        packed[packed.len() - 8..],
        CRC64.checksum(body).to_le_bytes()
    );
    // The 360-byte repetitive string is stored LZF-compressed (0xC3) only when asked.
    let key = b"raw-compressible";
    let at = |file: &[u8]| {
        let pos = file.windows(key.len()).position(|w| w == key).unwrap();
        file[pos + key.len()]
    };
    assert_eq!(at(&packed), ENC_MARK | ENC_LZF);
    assert_ne!(at(&plain), ENC_MARK | ENC_LZF);
}

#[test]
fn writer_emits_redis_7_encodings() {
    let file = sample_file(
        WriteOptions {
            compress: false,
            checksum: false,
        },
        true,
    );
    let type_of = |key: &str| {
        let k = key.as_bytes();
        // type byte, then the key's one-byte length, then the key.
        let pos = file
            .windows(k.len() + 1)
            .position(|w| w[0] as usize == k.len() && &w[1..] == k)
            .unwrap();
        file[pos - 1]
    };
    assert_eq!(type_of("int-small"), TYPE_STRING);
    assert_eq!(type_of("list-small"), TYPE_LIST_QUICKLIST_2);
    assert_eq!(type_of("set-intset"), TYPE_SET_INTSET);
    assert_eq!(type_of("set-hashtable-small"), TYPE_SET);
    assert_eq!(type_of("hash-listpack"), TYPE_HASH_LISTPACK);
    assert_eq!(type_of("hash-hashtable-small"), TYPE_HASH);
    assert_eq!(type_of("zset-listpack"), TYPE_ZSET_LISTPACK);
    assert_eq!(type_of("zset-skiplist-small"), TYPE_ZSET_2);
    // An int string fitting 8 bits: 0xC0 then the byte.
    let key = b"\x09int-small";
    let pos = file.windows(key.len()).position(|w| w == key).unwrap();
    assert_eq!(&file[pos + key.len()..pos + key.len() + 2], &[0xC0, 42]);
}

#[test]
fn dump_restore_round_trips_every_value() {
    for (name, value) in sample_values(true) {
        let payload = dump_value(&value);
        let back = restore_value(&payload, &LoadLimits::default(), true).unwrap();
        assert_eq!(picture(&back), reloaded(&value), "{name}");
        assert_eq!(dump_value(&back).len(), payload.len(), "{name}");
    }
    let mut bad = dump_value(&Value::string(b"x"));
    let last = bad.len() - 1;
    bad[last] ^= 1;
    let limits = LoadLimits::default();
    assert_eq!(
        restore_value(&bad, &limits, true).unwrap_err(),
        RestoreError::VersionOrChecksum
    );
    assert_eq!(
        restore_value(b"", &limits, true).unwrap_err(),
        RestoreError::VersionOrChecksum
    );
    // A version above 10 is refused like a bad checksum.
    let mut newer = vec![TYPE_STRING, 1, b'x'];
    newer.extend_from_slice(&11u16.to_le_bytes());
    let crc = CRC64.checksum(&newer);
    newer.extend_from_slice(&crc.to_le_bytes());
    assert_eq!(
        restore_value(&newer, &limits, true).unwrap_err(),
        RestoreError::VersionOrChecksum
    );
    // A stream payload is a format moonkv cannot hold.
    let stream = with_dump_footer(vec![TYPE_STREAM_LISTPACKS, 0]);
    assert_eq!(
        restore_value(&stream, &limits, true).unwrap_err(),
        RestoreError::BadFormat(None)
    );
    // With checksum validation skipped (DEBUG SET-SKIP-CHECKSUM-VALIDATION 1) the payload
    // with the damaged checksum restores.
    assert!(restore_value(&bad, &limits, false).is_ok());
    // A ziplist whose header lies gets the reason Redis logs.
    let mut ziplist = vec![TYPE_HASH_ZIPLIST, 11];
    ziplist.extend_from_slice(&[0xFF, 0, 0, 0, 10, 0, 0, 0, 2, 0, 0xFF]);
    let err = restore_value(&with_dump_footer(ziplist), &limits, true).unwrap_err();
    assert!(
        matches!(&err, RestoreError::BadFormat(Some(why)) if why.contains("integrity check failed")),
        "{err:?}"
    );
}

#[test]
fn restore_applies_current_limits() {
    let mut hash = Hash::new();
    for f in ["a", "b", "c"] {
        hash.set(f.as_bytes(), b"v", LoadLimits::default().hash);
    }
    let payload = dump_value(&Value::Hash(Box::new(hash)));
    let tight = LoadLimits {
        hash: HashLimits {
            max_entries: 2,
            max_value: 64,
        },
        zset: ZSetLimits {
            max_entries: 2,
            max_value: 64,
        },
        set_max_intset_entries: 2,
    };
    assert_eq!(
        restore_value(&payload, &tight, true).unwrap().encoding(),
        "hashtable"
    );
    let mut set = Set::new();
    for m in ["1", "2", "3"] {
        set.insert(m.as_bytes(), 512);
    }
    let payload = dump_value(&Value::Set(Box::new(set)));
    assert_eq!(
        restore_value(&payload, &tight, true).unwrap().encoding(),
        "hashtable"
    );
    assert_eq!(
        restore_value(&payload, &LoadLimits::default(), true)
            .unwrap()
            .encoding(),
        "intset"
    );
}

#[test]
fn functions_dump_and_restore() {
    let libs: [&[u8]; 2] = [b"#!lua name=a\nreturn 1", &[b'x'; 500]];
    let payload = dump_functions(libs);
    assert_eq!(
        restore_functions(&payload).unwrap(),
        libs.map(<[u8]>::to_vec)
    );
    let not_function = with_dump_footer(vec![TYPE_STRING, 1, b'x']);
    assert_eq!(
        restore_functions(&not_function),
        Err(FunctionsRestoreError::NotAFunction)
    );
    let cut = with_dump_footer(vec![OP_FUNCTION2, 5, b'x']);
    assert_eq!(
        restore_functions(&cut),
        Err(FunctionsRestoreError::Unreadable)
    );
}

#[test]
fn write_snapshot_is_checksummed_and_skips_expired_keys() {
    let mut db0 = Db::new();
    db0.set(b"k", Value::string(b"v"), false);
    db0.set_expire(b"k", 5_000, 0);
    db0.set(b"gone", Value::string(b"v"), false);
    db0.set_expire(b"gone", 500, 0);
    let mut db1 = Db::new();
    db1.set(b"n", Value::string(b"42"), false);
    let libraries: [&[u8]; 1] = [b"#!lua name=lib\nredis.register_function('f', function() end)"];
    let rdb = write_snapshot(&[db0, db1], libraries, "7.0.15", 1_000);
    assert!(rdb.starts_with(b"REDIS0010"));
    let snapshot = read_snapshot(&rdb, &LoadLimits::default()).unwrap();
    assert_eq!(snapshot.checksum, Checksum::Verified);
    assert_eq!(snapshot.functions, [libraries[0].to_vec()]);
    let keys = snapshot.keys;
    assert_eq!(keys.len(), 2);
    assert_eq!(
        (keys[0].db, keys[0].key.as_slice(), keys[0].expire_at),
        (0, &b"k"[..], Some(5_000))
    );
    assert_eq!((keys[1].db, keys[1].value.encoding()), (1, "int"));
}

#[test]
fn damaged_files_give_errors_not_panics() {
    for checksum in [false, true] {
        let file = sample_file(
            WriteOptions {
                compress: true,
                checksum,
            },
            false,
        );
        let limits = LoadLimits::default();
        for cut in 0..file.len() {
            assert!(
                read_snapshot(&file[..cut], &limits).is_err(),
                "cut at {cut}"
            );
        }
        let mut changed_but_loaded = 0;
        for i in 9..file.len() {
            for flip in [0x01u8, 0x40, 0x80, 0xFF] {
                let mut bad = file.clone();
                bad[i] ^= flip;
                if read_snapshot(&bad, &limits).is_ok() {
                    changed_but_loaded += 1;
                }
            }
        }
        if checksum {
            assert_eq!(changed_but_loaded, 0);
        }
    }
    // The large values too, at a stride (each load walks the whole file).
    let file = sample_file(
        WriteOptions {
            compress: true,
            checksum: false,
        },
        true,
    );
    for i in (9..file.len()).step_by(97) {
        let mut bad = file.clone();
        bad[i] ^= 0x80;
        let _ = read_snapshot(&bad, &LoadLimits::default());
        assert!(read_snapshot(&file[..i], &LoadLimits::default()).is_err());
    }
}

#[test]
fn damaged_dump_payloads_give_errors_not_panics() {
    // Payloads re-checksummed after the damage, so the value decoders see it.
    for (_, value) in sample_values(false) {
        let payload = dump_value(&value);
        let body = &payload[..payload.len() - 10];
        for i in 0..body.len() {
            for flip in [0x01u8, 0x80, 0xFF] {
                let mut bad = body.to_vec();
                bad[i] ^= flip;
                let _ = restore_value(&with_dump_footer(bad), &LoadLimits::default(), true);
            }
        }
        for cut in 0..body.len() {
            assert!(restore_value(
                &with_dump_footer(body[..cut].to_vec()),
                &LoadLimits::default(),
                true
            )
            .is_err());
        }
    }
}

// --- Hand-built files in the older formats -------------------------------------------

/// A file of `version` around `body` (opcodes and keys), with a CRC if `version >= 5`.
fn file_of(version: u32, body: &[u8]) -> Vec<u8> {
    let mut f = format!("REDIS{version:04}").into_bytes();
    f.extend_from_slice(body);
    f.push(OP_EOF);
    if version >= 5 {
        let crc = CRC64.checksum(&f);
        f.extend_from_slice(&crc.to_le_bytes());
    }
    f
}

fn rdb_string(s: &[u8]) -> Vec<u8> {
    let mut sink = write::Sink::new(Vec::new(), false, false);
    sink.len(s.len() as u64);
    let mut v = sink.into_inner().unwrap();
    v.extend_from_slice(s);
    v
}

enum Z<'a> {
    S(&'a [u8]),
    I(i64),
}

/// A ziplist, from the format description: header (bytes, tail offset, count), entries
/// (previous entry's size, encoding, data), 0xFF.
fn ziplist(entries: &[Z]) -> Vec<u8> {
    let mut body = Vec::new();
    let mut prev = 0usize;
    let mut tail = 10;
    for e in entries {
        let start = body.len();
        tail = 10 + start;
        if prev < 254 {
            body.push(prev as u8);
        } else {
            body.push(254);
            body.extend_from_slice(&(prev as u32).to_le_bytes());
        }
        match e {
            Z::S(s) if s.len() < 64 => {
                body.push(s.len() as u8);
                body.extend_from_slice(s);
            }
            Z::S(s) if s.len() < 16384 => {
                body.push(0x40 | (s.len() >> 8) as u8);
                body.push(s.len() as u8);
                body.extend_from_slice(s);
            }
            Z::S(s) => {
                body.push(0x80);
                body.extend_from_slice(&(s.len() as u32).to_be_bytes());
                body.extend_from_slice(s);
            }
            Z::I(v @ 0..=12) => body.push(0xF1 + *v as u8),
            Z::I(v) if i8::try_from(*v).is_ok() => {
                body.push(0xFE);
                body.push(*v as u8);
            }
            Z::I(v) if i16::try_from(*v).is_ok() => {
                body.push(0xC0);
                body.extend_from_slice(&(*v as i16).to_le_bytes());
            }
            Z::I(v) if (-(1 << 23)..1 << 23).contains(v) => {
                body.push(0xF0);
                body.extend_from_slice(&(*v as i32).to_le_bytes()[..3]);
            }
            Z::I(v) if i32::try_from(*v).is_ok() => {
                body.push(0xD0);
                body.extend_from_slice(&(*v as i32).to_le_bytes());
            }
            Z::I(v) => {
                body.push(0xE0);
                body.extend_from_slice(&v.to_le_bytes());
            }
        }
        prev = body.len() - start;
    }
    let mut zl = Vec::new();
    zl.extend_from_slice(&((body.len() + 11) as u32).to_le_bytes());
    zl.extend_from_slice(&(tail as u32).to_le_bytes());
    zl.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    zl.extend_from_slice(&body);
    zl.push(0xFF);
    zl
}

fn key_record(type_byte: u8, key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut r = vec![type_byte];
    r.extend_from_slice(&rdb_string(key));
    r.extend_from_slice(value);
    r
}

fn load_one(version: u32, type_byte: u8, value: &[u8]) -> Result<Value, LoadError> {
    let file = file_of(version, &key_record(type_byte, b"k", value));
    let mut snap = read_snapshot(&file, &LoadLimits::default())?;
    assert_eq!(snap.keys.len(), 1);
    Ok(snap.keys.remove(0).value)
}

fn texts(v: &Value) -> Vec<Vec<u8>> {
    picture(v).1
}

#[test]
fn legacy_ziplist_list() {
    let long = vec![b'q'; 300];
    let zl = ziplist(&[
        Z::S(b"hello"),
        Z::I(7),
        Z::I(-100),
        Z::I(1000),
        Z::I(100_000),
        Z::I(10_000_000),
        Z::I(1 << 40),
        Z::S(&long),
        Z::S(b"end"),
    ]);
    let v = load_one(6, TYPE_LIST_ZIPLIST, &rdb_string(&zl)).unwrap();
    let expected: Vec<Vec<u8>> = [
        &b"hello"[..],
        b"7",
        b"-100",
        b"1000",
        b"100000",
        b"10000000",
        b"1099511627776",
        &long,
        b"end",
    ]
    .iter()
    .map(|s| s.to_vec())
    .collect();
    assert_eq!(texts(&v), expected);
    // A wrong tail offset, a wrong count and a wrong previous length are each refused.
    for at in [4usize, 8, 10 + 7] {
        let mut bad = zl.clone();
        bad[at] ^= 1;
        assert!(
            load_one(6, TYPE_LIST_ZIPLIST, &rdb_string(&bad)).is_err(),
            "byte {at}"
        );
    }
}

#[test]
fn legacy_quicklist_with_ziplist_nodes() {
    let mut value = vec![2];
    value.extend_from_slice(&rdb_string(&ziplist(&[Z::S(b"a"), Z::I(2)])));
    value.extend_from_slice(&rdb_string(&ziplist(&[Z::S(b"c")])));
    let v = load_one(7, TYPE_LIST_QUICKLIST, &value).unwrap();
    assert_eq!(texts(&v), vec![b"a".to_vec(), b"2".to_vec(), b"c".to_vec()]);
}

#[test]
fn legacy_zipmap_hash() {
    // count 2; "foo" => "bar" (1 free byte after it), "n" => "12"; end.
    let zm = b"\x02\x03foo\x03\x01barX\x01n\x02\x0012\xff";
    let v = load_one(3, TYPE_HASH_ZIPMAP, &rdb_string(zm)).unwrap();
    assert_eq!(v.encoding(), "listpack");
    assert_eq!(texts(&v), vec![b"foo=bar".to_vec(), b"n=12".to_vec()]);
    let dup = b"\x02\x01a\x01\x00x\x01a\x01\x00y\xff";
    assert!(load_one(3, TYPE_HASH_ZIPMAP, &rdb_string(dup)).is_err());
    let wrong_count = b"\x05\x01a\x01\x00x\xff";
    assert!(load_one(3, TYPE_HASH_ZIPMAP, &rdb_string(wrong_count)).is_err());
}

#[test]
fn legacy_ziplist_hash_and_zset() {
    let h = ziplist(&[Z::S(b"f"), Z::S(b"v"), Z::S(b"g"), Z::I(5)]);
    let v = load_one(8, TYPE_HASH_ZIPLIST, &rdb_string(&h)).unwrap();
    assert_eq!(texts(&v), vec![b"f=v".to_vec(), b"g=5".to_vec()]);
    let odd = ziplist(&[Z::S(b"f"), Z::S(b"v"), Z::S(b"g")]);
    assert!(load_one(8, TYPE_HASH_ZIPLIST, &rdb_string(&odd)).is_err());
    let dup = ziplist(&[Z::S(b"f"), Z::S(b"v"), Z::S(b"f"), Z::S(b"w")]);
    assert!(load_one(8, TYPE_HASH_ZIPLIST, &rdb_string(&dup)).is_err());

    let z = ziplist(&[
        Z::S(b"a"),
        Z::I(1),
        Z::S(b"b"),
        Z::S(b"2.5"),
        Z::S(b"c"),
        Z::S(b"inf"),
    ]);
    let v = load_one(8, TYPE_ZSET_ZIPLIST, &rdb_string(&z)).unwrap();
    let zset = v.as_zset().unwrap();
    assert_eq!(zset.score(b"b"), Some(2.5));
    assert_eq!(zset.score(b"c"), Some(f64::INFINITY));
    let bad_score = ziplist(&[Z::S(b"a"), Z::S(b"x1")]);
    assert!(load_one(8, TYPE_ZSET_ZIPLIST, &rdb_string(&bad_score)).is_err());
}

#[test]
fn old_generic_types_and_opcodes() {
    // ZSET (type 3) with text scores, including the special lengths for infinities.
    let mut z = vec![3];
    z.extend_from_slice(&rdb_string(b"a"));
    z.extend_from_slice(&[3, b'1', b'.', b'5']);
    z.extend_from_slice(&rdb_string(b"b"));
    z.push(255);
    z.extend_from_slice(&rdb_string(b"c"));
    z.push(254);
    let v = load_one(2, TYPE_ZSET, &z).unwrap();
    let zs = v.as_zset().unwrap();
    assert_eq!(
        (zs.score(b"a"), zs.score(b"b"), zs.score(b"c")),
        (Some(1.5), Some(f64::NEG_INFINITY), Some(f64::INFINITY))
    );
    let mut nan = vec![1];
    nan.extend_from_slice(&rdb_string(b"a"));
    nan.push(253);
    assert!(matches!(
        load_one(2, TYPE_ZSET, &nan),
        Err(LoadError::Corrupt(_))
    ));

    // Expiry in seconds, LRU idle and LFU frequency before a key, in a version 1 file (no
    // checksum).
    let mut body = vec![OP_EXPIRETIME];
    body.extend_from_slice(&1_000_000i32.to_le_bytes());
    body.extend_from_slice(&key_record(TYPE_STRING, b"a", &rdb_string(b"1")));
    body.extend_from_slice(&[OP_IDLE, 0x41, 0x00]);
    body.extend_from_slice(&key_record(TYPE_STRING, b"b", &[0xC1, 0x39, 0x30]));
    body.extend_from_slice(&[OP_FREQ, 9]);
    body.extend_from_slice(&key_record(TYPE_STRING, b"c", &[0xC2, 1, 0, 0, 0x80]));
    let snap = read_snapshot(&file_of(1, &body), &LoadLimits::default()).unwrap();
    assert_eq!(snap.checksum, Checksum::Absent);
    let k = &snap.keys;
    assert_eq!(
        (k[0].expire_at, k[0].lru_idle, k[0].lfu_freq),
        (Some(1_000_000_000), None, None)
    );
    assert_eq!(
        (k[1].expire_at, k[1].lru_idle, k[1].lfu_freq),
        (None, Some(256), None)
    );
    assert_eq!((k[2].lru_idle, k[2].lfu_freq), (None, Some(9)));
    assert_eq!(texts(&k[1].value), vec![b"12345".to_vec()]);
    assert_eq!(texts(&k[2].value), vec![b"-2147483647".to_vec()]);

    // A generic LIST and HASH, and an empty list that is skipped with its expiry.
    let mut body = vec![OP_EXPIRETIME_MS];
    body.extend_from_slice(&77i64.to_le_bytes());
    body.extend_from_slice(&key_record(TYPE_LIST, b"empty", &[0]));
    let mut list = vec![2];
    list.extend_from_slice(&rdb_string(b"x"));
    list.extend_from_slice(&rdb_string(b"y"));
    body.extend_from_slice(&key_record(TYPE_LIST, b"l", &list));
    let mut hash = vec![1];
    hash.extend_from_slice(&rdb_string(b"f"));
    hash.extend_from_slice(&rdb_string(b"v"));
    body.extend_from_slice(&key_record(TYPE_HASH, b"h", &hash));
    let snap = read_snapshot(&file_of(9, &body), &LoadLimits::default()).unwrap();
    assert_eq!(snap.keys.len(), 2);
    assert_eq!(
        (snap.keys[0].key.as_slice(), snap.keys[0].expire_at),
        (&b"l"[..], None)
    );
}

#[test]
fn pre_release_function_opcode_is_translated() {
    let mut body = vec![OP_FUNCTION];
    body.extend_from_slice(&rdb_string(b"mylib"));
    body.extend_from_slice(&rdb_string(b"LUA"));
    body.push(1);
    body.extend_from_slice(&rdb_string(b"a description"));
    body.extend_from_slice(&rdb_string(b"redis.register_function('f', function() end)"));
    let snap = read_snapshot(&file_of(10, &body), &LoadLimits::default()).unwrap();
    assert_eq!(
        snap.functions,
        vec![b"#!LUA name=mylib\nredis.register_function('f', function() end)".to_vec()]
    );
}

#[test]
fn refusals_carry_their_reason() {
    let limits = LoadLimits::default();
    assert_eq!(
        read_snapshot(&file_of(11, &[]), &limits).unwrap_err(),
        LoadError::UnsupportedVersion(11)
    );
    assert_eq!(
        read_snapshot(b"REDIT0010\xff", &limits).unwrap_err(),
        LoadError::BadSignature
    );
    assert_eq!(
        read_snapshot(b"REDIS00", &limits).unwrap_err(),
        LoadError::Truncated
    );
    for t in [
        TYPE_MODULE,
        TYPE_MODULE_2,
        TYPE_STREAM_LISTPACKS,
        TYPE_STREAM_LISTPACKS_2,
    ] {
        let file = file_of(10, &key_record(t, b"k", &[0]));
        assert_eq!(
            read_snapshot(&file, &limits).unwrap_err(),
            LoadError::UnsupportedType(t)
        );
    }
    let file = file_of(
        10,
        &[
            OP_MODULE_AUX,
            0x81,
            0x12,
            0x34,
            0x56,
            0x78,
            0x9a,
            0xbc,
            0xde,
            0xf0,
        ],
    );
    assert!(matches!(
        read_snapshot(&file, &limits),
        Err(LoadError::ModuleAux { .. })
    ));
    let mut file = file_of(10, &key_record(TYPE_STRING, b"k", &rdb_string(b"v")));
    let n = file.len();
    file[n - 3] ^= 1;
    let err = read_snapshot(&file, &limits).unwrap_err();
    assert!(matches!(err, LoadError::BadChecksum { .. }));
    assert!(err
        .to_string()
        .starts_with("Wrong RDB checksum expected: ("));
    // The same file loads when checking is turned off.
    let mut reader = RdbReader::new(&file[..], limits).unwrap();
    reader.skip_checksum();
    while reader.next_entry().unwrap().is_some() {}
    assert_eq!(reader.checksum(), Some(Checksum::Skipped));
    assert_eq!(
        LoadError::Truncated.to_string(),
        "Short read or OOM loading DB. Unrecoverable error, aborting now."
    );
}

#[test]
fn duplicates_and_bad_containers_are_refused() {
    let mut set = vec![2];
    set.extend_from_slice(&rdb_string(b"a"));
    set.extend_from_slice(&rdb_string(b"a"));
    assert!(load_one(10, TYPE_SET, &set).is_err());
    let mut lp = ListpackBuilder::new();
    for s in [b"f", b"1", b"f", b"2"] {
        lp.push(s);
    }
    assert!(load_one(10, TYPE_HASH_LISTPACK, &rdb_string(&lp.finish())).is_err());
    let mut lp = ListpackBuilder::new();
    lp.push(b"only-a-member");
    assert!(load_one(10, TYPE_ZSET_LISTPACK, &rdb_string(&lp.finish())).is_err());
    // Container 3 does not exist; a plain node is taken as one element.
    let mut ql = vec![1, 3];
    ql.extend_from_slice(&rdb_string(b"x"));
    assert!(load_one(10, TYPE_LIST_QUICKLIST_2, &ql).is_err());
    let mut ql = vec![1, CONTAINER_PLAIN as u8];
    ql.extend_from_slice(&rdb_string(b"whole element"));
    assert_eq!(
        texts(&load_one(10, TYPE_LIST_QUICKLIST_2, &ql).unwrap()),
        vec![b"whole element".to_vec()]
    );
    // A huge announced length on little data is a short read, not an allocation.
    let huge = [0x81, 0, 0, 0x10, 0, 0, 0, 0, 0, b'x'];
    assert_eq!(
        load_one(10, TYPE_STRING, &huge).unwrap_err(),
        LoadError::Truncated
    );
    let lzf_lie = [0xC3, 2, 0x81, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, b'x'];
    assert!(load_one(10, TYPE_STRING, &lzf_lie).is_err());
}
