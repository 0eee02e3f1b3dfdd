//! The AOF manifest: which files make up the append-only file, and in which role.
//!
//! One line per file, `file <name> seq <n> type <b|h|i>`, written base first, then history,
//! then incremental files. Parsing follows Redis 7.0.15 to the letter, quirks included, so a
//! manifest Redis accepts is accepted here and one it rejects is rejected with the same
//! message: the file is read in chunks the way `fgets` with a 1025-byte buffer reads it, a
//! line starting with `#` is a comment, every other line must end in a newline and hold at
//! least three key/value pairs split like `redis-cli` splits arguments (quotes and
//! `\xHH` escapes), keys are matched without regard to case and unknown keys are ignored.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Redis reads the manifest with a buffer of this many bytes plus the terminating NUL; a
/// line (newline included) longer than this is an error.
const MAX_LINE: usize = 1024;

const INVALID_FORMAT: &str = "Invalid AOF manifest file format";

/// The role a file plays in the append-only file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// The snapshot the last rewrite produced; loaded first.
    Base,
    /// Commands written after a rewrite started; loaded after the base, in order.
    Incr,
    /// A file a rewrite has replaced; not loaded, deleted when the server gets to it.
    History,
}

impl FileKind {
    /// The letter after `type` in the manifest.
    pub fn letter(self) -> char {
        match self {
            FileKind::Base => 'b',
            FileKind::Incr => 'i',
            FileKind::History => 'h',
        }
    }
}

/// One file named by the manifest. The name is a bare file name inside the AOF directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AofFile {
    pub name: String,
    /// Redis keeps this as a `long long` and accepts any nonzero value for base and history
    /// files, negative ones included.
    pub seq: i64,
    pub kind: FileKind,
}

/// The parsed manifest, and the counters that name the next base and incremental files.
///
/// Like Redis, the counters come from the base entry and the last incremental entry only:
/// history entries do not advance them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    pub base: Option<AofFile>,
    /// In load order; sequence numbers strictly increase.
    pub incrs: Vec<AofFile>,
    pub history: Vec<AofFile>,
    last_base_seq: i64,
    last_incr_seq: i64,
}

/// `<appendfilename>.manifest`, the manifest's name inside the AOF directory.
pub fn manifest_file_name(appendfilename: &str) -> String {
    format!("{appendfilename}.manifest")
}

impl Manifest {
    /// The manifest Redis builds when it finds an append-only file from before 7.0
    /// (`appendfilename` in `dir`, no manifest yet): that file becomes base number 1, once
    /// moved into the AOF directory.
    pub fn upgraded_from(appendfilename: &str) -> Manifest {
        Manifest {
            base: Some(AofFile {
                name: appendfilename.to_string(),
                seq: 1,
                kind: FileKind::Base,
            }),
            last_base_seq: 1,
            ..Manifest::default()
        }
    }

    /// True when there is nothing to load: no base and no incremental file. Redis then
    /// treats the AOF as absent (and, with `appendonly yes`, writes a fresh base at start-up).
    pub fn is_empty(&self) -> bool {
        self.base.is_none() && self.incrs.is_empty()
    }

    /// Parses a manifest as Redis 7.0.15's `aofLoadManifestFromFile` does.
    pub fn parse(text: &[u8]) -> Result<Manifest, ManifestError> {
        if text.is_empty() {
            return Err(ManifestError::new(ManifestErrorKind::Empty));
        }
        let mut manifest = Manifest::default();
        let mut highest_incr = 0i64;
        let mut line_number = 0usize;
        let mut rest = text;
        while !rest.is_empty() {
            let chunk_len = match rest.iter().take(MAX_LINE).position(|&b| b == b'\n') {
                Some(newline) => newline + 1,
                None => rest.len().min(MAX_LINE),
            };
            let (chunk, tail) = rest.split_at(chunk_len);
            rest = tail;
            line_number += 1;
            if chunk[0] == b'#' {
                continue;
            }
            // Redis looks at the line as a C string: it ends at the first NUL byte.
            let chunk = until_nul(chunk);
            if !chunk.contains(&b'\n') {
                return Err(ManifestError::new(ManifestErrorKind::TooLongLine));
            }
            let line = trim(chunk);
            let fail = |kind| ManifestError {
                kind,
                line: Some((line_number, String::from_utf8_lossy(line).into_owned())),
            };
            let file = parse_line(line).map_err(fail)?;
            match file.kind {
                FileKind::Base => {
                    if manifest.base.is_some() {
                        return Err(fail(ManifestErrorKind::DuplicateBase));
                    }
                    manifest.last_base_seq = file.seq;
                    manifest.base = Some(file);
                }
                FileKind::History => manifest.history.push(file),
                FileKind::Incr => {
                    if file.seq <= highest_incr {
                        return Err(fail(ManifestErrorKind::NonMonotonicSeq));
                    }
                    highest_incr = file.seq;
                    manifest.last_incr_seq = file.seq;
                    manifest.incrs.push(file);
                }
            }
        }
        Ok(manifest)
    }

    /// The manifest's text, byte for byte as Redis writes it: base, then history, then
    /// incremental files, names quoted when they hold spaces or unprintable bytes.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let files = self.base.iter().chain(&self.history).chain(&self.incrs);
        for file in files {
            out.extend_from_slice(b"file ");
            push_name(&mut out, file.name.as_bytes());
            out.extend_from_slice(
                format!(" seq {} type {}\n", file.seq, file.kind.letter()).as_bytes(),
            );
        }
        out
    }

    /// Names the next base file, `<prefix>.<seq>.base.rdb` (or `.base.aof` without an RDB
    /// preamble), and makes it the base; the previous base goes to the front of the history.
    /// `prefix` is `appendfilename`.
    pub fn new_base(&mut self, prefix: &str, rdb_preamble: bool) -> AofFile {
        if let Some(mut old) = self.base.take() {
            old.kind = FileKind::History;
            self.history.insert(0, old);
        }
        self.last_base_seq = self.last_base_seq.saturating_add(1);
        let format = if rdb_preamble { "rdb" } else { "aof" };
        let file = AofFile {
            name: format!("{prefix}.{}.base.{format}", self.last_base_seq),
            seq: self.last_base_seq,
            kind: FileKind::Base,
        };
        self.base = Some(file.clone());
        file
    }

    /// Names the next incremental file, `<prefix>.<seq>.incr.aof`, and appends it.
    pub fn new_incr(&mut self, prefix: &str) -> AofFile {
        self.last_incr_seq = self.last_incr_seq.saturating_add(1);
        let file = AofFile {
            name: format!("{prefix}.{}.incr.aof", self.last_incr_seq),
            seq: self.last_incr_seq,
            kind: FileKind::Incr,
        };
        self.incrs.push(file.clone());
        file
    }

    /// The incremental file to append to at start-up: the last one listed, or a new one when
    /// there is none.
    pub fn last_incr_or_new(&mut self, prefix: &str) -> AofFile {
        match self.incrs.last() {
            Some(file) => file.clone(),
            None => self.new_incr(prefix),
        }
    }

    /// After a successful rewrite: incremental files numbered below `keep_from_seq` are
    /// covered by the new base and become history, in front of the existing history (Redis
    /// calls this after [`Manifest::new_base`], so the old base ends up right after them).
    /// Redis keeps only the last incremental file, the one opened when the rewrite started,
    /// or none when AOF is off: pass that file's seq, or `i64::MAX`.
    pub fn mark_incrs_history(&mut self, keep_from_seq: i64) {
        let split = self
            .incrs
            .iter()
            .take_while(|f| f.seq < keep_from_seq)
            .count();
        let mut retired: Vec<AofFile> = self.incrs.drain(..split).collect();
        for file in &mut retired {
            file.kind = FileKind::History;
        }
        retired.append(&mut self.history);
        self.history = retired;
    }

    /// Empties the history list and returns it: the files to delete (Redis logs
    /// `Removing the history file <name> in the background` for each, then rewrites the
    /// manifest).
    pub fn take_history(&mut self) -> Vec<AofFile> {
        std::mem::take(&mut self.history)
    }

    /// The files to replay, in order: the base, then the incremental files.
    pub fn files_in_load_order(&self) -> Vec<&AofFile> {
        self.base.iter().chain(&self.incrs).collect()
    }
}

/// Writes the manifest as `temp-<name>` in `dir`, fsyncs it, renames it onto `dir/name` and
/// fsyncs `dir`, so a crash leaves either the old manifest or the new one.
pub fn write_manifest(dir: &Path, name: &str, manifest: &Manifest) -> io::Result<()> {
    let temp_path = dir.join(format!("temp-{name}"));
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&temp_path)?;
        file.write_all(&manifest.render())?;
        file.sync_all()
    })();
    if let Err(err) = written {
        let _ = fs::remove_file(&temp_path);
        return Err(err);
    }
    fs::rename(&temp_path, dir.join(name))?;
    File::open(dir)?.sync_all()
}

/// Why a manifest was rejected. `Display` gives the message Redis logs; Redis also logs the
/// line, when there is one, as `Reading the manifest file, at line <n>` and `>>> '<line>'`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestError {
    pub kind: ManifestErrorKind,
    /// The line number (counting comment lines) and the line, trimmed.
    pub line: Option<(usize, String)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManifestErrorKind {
    /// The file has no bytes at all.
    Empty,
    /// A line is longer than 1024 bytes, does not end in a newline, or holds a NUL byte.
    TooLongLine,
    /// A blank line, unbalanced quotes, fewer than six words or an odd number of them, or a
    /// missing (or zero) name, seq or type.
    InvalidFormat,
    /// The name contains `/` or `\`.
    NotABaseName,
    DuplicateBase,
    /// An incremental file's seq is not above the previous one's (or not positive).
    NonMonotonicSeq,
    /// The type starts with something other than `b`, `h` or `i`.
    UnknownType,
    /// The name is not UTF-8. Redis would take it; file names here are strings.
    NonUtf8Name,
}

impl ManifestError {
    fn new(kind: ManifestErrorKind) -> ManifestError {
        ManifestError { kind, line: None }
    }
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.kind {
            ManifestErrorKind::Empty => "Found an empty AOF manifest",
            ManifestErrorKind::TooLongLine => "The AOF manifest file contains too long line",
            ManifestErrorKind::InvalidFormat => INVALID_FORMAT,
            ManifestErrorKind::NotABaseName => "File can't be a path, just a filename",
            ManifestErrorKind::DuplicateBase => "Found duplicate base file information",
            ManifestErrorKind::NonMonotonicSeq => "Found a non-monotonic sequence number",
            ManifestErrorKind::UnknownType => "Unknown AOF file type",
            ManifestErrorKind::NonUtf8Name => "The AOF file name is not valid UTF-8",
        })
    }
}

impl std::error::Error for ManifestError {}

/// One manifest line, already trimmed, to a file entry.
fn parse_line(line: &[u8]) -> Result<AofFile, ManifestErrorKind> {
    use ManifestErrorKind::*;
    if line.is_empty() {
        return Err(InvalidFormat);
    }
    let words = split_args(line).ok_or(InvalidFormat)?;
    if words.len() < 6 || words.len() % 2 != 0 {
        return Err(InvalidFormat);
    }
    let mut name: Option<&[u8]> = None;
    let mut seq = 0i64;
    let mut kind = 0u8;
    for pair in words.chunks_exact(2) {
        let (key, value) = (pair[0].as_slice(), until_nul(&pair[1]));
        if key.eq_ignore_ascii_case(b"file") {
            if value.contains(&b'/') || value.contains(&b'\\') {
                return Err(NotABaseName);
            }
            name = Some(value);
        } else if key.eq_ignore_ascii_case(b"seq") {
            seq = parse_c_integer(value);
        } else if key.eq_ignore_ascii_case(b"type") {
            kind = value.first().copied().unwrap_or(0);
        }
    }
    let (Some(name), true, true) = (name, seq != 0, kind != 0) else {
        return Err(InvalidFormat);
    };
    let kind = match kind {
        b'b' => FileKind::Base,
        b'h' => FileKind::History,
        b'i' => FileKind::Incr,
        _ => return Err(UnknownType),
    };
    let name = String::from_utf8(name.to_vec()).map_err(|_| NonUtf8Name)?;
    Ok(AofFile { name, seq, kind })
}

fn until_nul(bytes: &[u8]) -> &[u8] {
    match bytes.iter().position(|&b| b == 0) {
        Some(nul) => &bytes[..nul],
        None => bytes,
    }
}

/// Strips spaces, tabs, CRs and LFs from both ends.
fn trim(mut line: &[u8]) -> &[u8] {
    let strip = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    while line.first().is_some_and(strip) {
        line = &line[1..];
    }
    while line.last().is_some_and(strip) {
        line = &line[..line.len() - 1];
    }
    line
}

/// C's `isspace` in the C locale.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// C's `atoll`: optional blanks and sign, then digits up to the first non-digit; zero when
/// there are none, clamped to the `i64` range on overflow (as glibc does).
fn parse_c_integer(text: &[u8]) -> i64 {
    let mut rest = text;
    while rest.first().is_some_and(|&b| is_c_space(b)) {
        rest = &rest[1..];
    }
    let negative = rest.first() == Some(&b'-');
    if matches!(rest.first(), Some(b'-' | b'+')) {
        rest = &rest[1..];
    }
    let mut value: i64 = 0;
    for &digit in rest.iter().take_while(|b| b.is_ascii_digit()) {
        let digit = i64::from(digit - b'0');
        let next = value.checked_mul(10).and_then(|v| {
            if negative {
                v.checked_sub(digit)
            } else {
                v.checked_add(digit)
            }
        });
        match next {
            Some(v) => value = v,
            None => return if negative { i64::MIN } else { i64::MAX },
        }
    }
    value
}

/// Splits a line into words the way Redis's `sdssplitargs` does: words are separated by
/// blanks; `"..."` takes `\n \r \t \b \a`, `\xHH` and `\<any>` escapes; `'...'` takes `\'`;
/// a closing quote must be followed by a blank or the end. `None` on unbalanced quotes or
/// text glued to a closing quote.
fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let at = |i: usize| line.get(i).copied().unwrap_or(0);
    let mut words = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && is_c_space(line[i]) {
            i += 1;
        }
        if i >= line.len() {
            return Some(words);
        }
        let mut word = Vec::new();
        let (mut in_double, mut in_single) = (false, false);
        loop {
            let c = at(i);
            if in_double {
                if c == b'\\'
                    && at(i + 1) == b'x'
                    && hex(at(i + 2)).is_some()
                    && hex(at(i + 3)).is_some()
                {
                    word.push(hex(at(i + 2))? * 16 + hex(at(i + 3))?);
                    i += 3;
                } else if c == b'\\' && at(i + 1) != 0 {
                    i += 1;
                    word.push(match at(i) {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                } else if c == b'"' {
                    if at(i + 1) != 0 && !is_c_space(at(i + 1)) {
                        return None;
                    }
                    i += 1;
                    break;
                } else if c == 0 {
                    return None;
                } else {
                    word.push(c);
                }
            } else if in_single {
                if c == b'\\' && at(i + 1) == b'\'' {
                    i += 1;
                    word.push(b'\'');
                } else if c == b'\'' {
                    if at(i + 1) != 0 && !is_c_space(at(i + 1)) {
                        return None;
                    }
                    i += 1;
                    break;
                } else if c == 0 {
                    return None;
                } else {
                    word.push(c);
                }
            } else {
                match c {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => {
                        i += 1;
                        break;
                    }
                    b'"' => in_double = true,
                    b'\'' => in_single = true,
                    _ => word.push(c),
                }
            }
            i += 1;
        }
        words.push(word);
    }
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Writes a file name bare, or quoted (as Redis's `sdscatrepr` quotes) when it holds a
/// blank, a quote, a backslash or a byte outside printable ASCII.
fn push_name(out: &mut Vec<u8>, name: &[u8]) {
    let needs_quotes = name
        .iter()
        .any(|&b| !(0x21..=0x7e).contains(&b) || b == b'\\' || b == b'"');
    if !needs_quotes {
        out.extend_from_slice(name);
        return;
    }
    out.push(b'"');
    for &b in name {
        match b {
            b'\\' | b'"' => out.extend_from_slice(&[b'\\', b]),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x07 => out.extend_from_slice(b"\\a"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x20..=0x7e => out.push(b),
            _ => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, seq: i64, kind: FileKind) -> AofFile {
        AofFile {
            name: name.to_string(),
            seq,
            kind,
        }
    }

    fn error_of(text: &[u8]) -> ManifestError {
        Manifest::parse(text).expect_err("manifest should be rejected")
    }

    const REDIS_EXAMPLE: &str = "file appendonly.aof.2.base.rdb seq 2 type b\n\
        file appendonly.aof.1.incr.aof seq 1 type h\n\
        file appendonly.aof.2.incr.aof seq 2 type h\n\
        file appendonly.aof.3.incr.aof seq 3 type h\n\
        file appendonly.aof.4.incr.aof seq 4 type i\n\
        file appendonly.aof.5.incr.aof seq 5 type i\n";

    #[test]
    fn parses_and_renders_every_kind_back_byte_for_byte() {
        let manifest = Manifest::parse(REDIS_EXAMPLE.as_bytes()).unwrap();
        assert_eq!(
            manifest.base,
            Some(file("appendonly.aof.2.base.rdb", 2, FileKind::Base))
        );
        let history: Vec<i64> = manifest.history.iter().map(|f| f.seq).collect();
        assert_eq!(history, [1, 2, 3]);
        assert!(manifest.history.iter().all(|f| f.kind == FileKind::History));
        assert_eq!(
            manifest.incrs,
            [
                file("appendonly.aof.4.incr.aof", 4, FileKind::Incr),
                file("appendonly.aof.5.incr.aof", 5, FileKind::Incr),
            ]
        );
        assert_eq!(manifest.render(), REDIS_EXAMPLE.as_bytes());
    }

    #[test]
    fn render_puts_base_then_history_then_incrs_whatever_the_input_order() {
        let text = b"file a.1.incr.aof seq 1 type i\nfile old seq 7 type h\nfile a.3.base.aof seq 3 type b\n";
        let manifest = Manifest::parse(text).unwrap();
        assert_eq!(
            manifest.render(),
            b"file a.3.base.aof seq 3 type b\nfile old seq 7 type h\nfile a.1.incr.aof seq 1 type i\n"
        );
    }

    #[test]
    fn names_needing_quotes_round_trip() {
        let names = [
            "with space",
            "quote\"d",
            "tab\tnl\ncr\rbell\x07bs\x08",
            "caf\u{e9}",
            "x\x01\x7f",
        ];
        for (i, name) in names.iter().enumerate() {
            let mut manifest = Manifest::default();
            manifest
                .incrs
                .push(file(name, i as i64 + 1, FileKind::Incr));
            let text = manifest.render();
            assert!(
                text.starts_with(b"file \""),
                "{name:?} should be quoted: {:?}",
                String::from_utf8_lossy(&text)
            );
            let back = Manifest::parse(&text).unwrap();
            assert_eq!(back.incrs[0].name, *name);
        }
    }

    #[test]
    fn a_single_quote_is_written_bare_as_redis_does_and_then_unreadable() {
        // Redis's quoting test does not cover `'`, but its splitter treats it as a quote:
        // Redis cannot read back a manifest naming such a file. Kept as Redis has it.
        let mut manifest = Manifest::default();
        manifest.incrs.push(file("it's", 1, FileKind::Incr));
        assert_eq!(manifest.render(), b"file it's seq 1 type i\n");
        assert_eq!(
            error_of(&manifest.render()).kind,
            ManifestErrorKind::InvalidFormat
        );
    }

    #[test]
    fn quoting_matches_sdscatrepr() {
        let mut manifest = Manifest::default();
        manifest
            .history
            .push(file("a b\"c\\\u{e9}\x7f\x07", 1, FileKind::History));
        assert_eq!(
            manifest.render(),
            b"file \"a b\\\"c\\\\\\xc3\\xa9\\x7f\\a\" seq 1 type h\n"
        );
    }

    #[test]
    fn accepts_what_redis_accepts() {
        // Comments, CRLF line ends, blanks around words, keys in any case and order, extra
        // keys, single quotes, a type given as a word, a quoted name glued from two parts.
        let text = b"# written by hand\r\n  TYPE b  Seq 1 FILE 'base.rdb' extra key  \r\n\
                     file a\"b.incr\" seq 5 type incr\n#no newline at the end of a comment";
        let manifest = Manifest::parse(text).unwrap();
        assert_eq!(manifest.base, Some(file("base.rdb", 1, FileKind::Base)));
        assert_eq!(manifest.incrs, [file("ab.incr", 5, FileKind::Incr)]);
        // A file of comments only is a manifest with nothing in it.
        assert!(Manifest::parse(b"# nothing\n").unwrap().is_empty());
    }

    #[test]
    fn seq_is_read_like_atoll() {
        let parse_seq = |seq: &str| {
            let text = format!("file f seq {seq} type h\n");
            Manifest::parse(text.as_bytes()).map(|m| m.history[0].seq)
        };
        assert_eq!(parse_seq("12abc"), Ok(12));
        assert_eq!(parse_seq("+7"), Ok(7));
        assert_eq!(parse_seq("-3"), Ok(-3));
        assert_eq!(parse_seq("99999999999999999999"), Ok(i64::MAX));
        assert_eq!(
            parse_seq("abc").unwrap_err().kind,
            ManifestErrorKind::InvalidFormat
        );
        assert_eq!(
            parse_seq("0").unwrap_err().kind,
            ManifestErrorKind::InvalidFormat
        );
    }

    #[test]
    fn each_error_has_redis_text_and_line() {
        let cases: &[(&[u8], &str, Option<usize>)] = &[
            (b"", "Found an empty AOF manifest", None),
            (
                b"file a seq 1 type b",
                "The AOF manifest file contains too long line",
                None,
            ),
            (
                b"file a seq 1\0 type b\n",
                "The AOF manifest file contains too long line",
                None,
            ),
            (
                b"file a seq 1 type b\n\n",
                "Invalid AOF manifest file format",
                Some(2),
            ),
            (
                b"file a seq 1 type\n",
                "Invalid AOF manifest file format",
                Some(1),
            ),
            (
                b"file a seq 1 type b x\n",
                "Invalid AOF manifest file format",
                Some(1),
            ),
            (
                b"file \"a seq 1 type b\n",
                "Invalid AOF manifest file format",
                Some(1),
            ),
            (
                b"file \"a\"b seq 1 type b\n",
                "Invalid AOF manifest file format",
                Some(1),
            ),
            (
                b"file a seq 0 type b\n",
                "Invalid AOF manifest file format",
                Some(1),
            ),
            (
                b"file a seq 1 type \"\"\n",
                "Invalid AOF manifest file format",
                Some(1),
            ),
            (
                b"name a seq 1 type b\n",
                "Invalid AOF manifest file format",
                Some(1),
            ),
            (
                b"file dir/a seq 1 type b\n",
                "File can't be a path, just a filename",
                Some(1),
            ),
            (
                b"file a\\\\b seq 1 type b\n",
                "File can't be a path, just a filename",
                Some(1),
            ),
            (
                b"file a seq 1 type b\nfile c seq 2 type b\n",
                "Found duplicate base file information",
                Some(2),
            ),
            (
                b"file a seq 2 type i\n#\nfile c seq 2 type i\n",
                "Found a non-monotonic sequence number",
                Some(3),
            ),
            (
                b"file a seq -1 type i\n",
                "Found a non-monotonic sequence number",
                Some(1),
            ),
            (b"file a seq 1 type x\n", "Unknown AOF file type", Some(1)),
            (
                b"file \"\\xff\" seq 1 type b\n",
                "The AOF file name is not valid UTF-8",
                Some(1),
            ),
        ];
        for (text, message, line) in cases {
            let err = error_of(text);
            assert_eq!(
                err.to_string(),
                *message,
                "for {:?}",
                String::from_utf8_lossy(text)
            );
            assert_eq!(
                err.line.as_ref().map(|l| l.0),
                *line,
                "for {:?}",
                String::from_utf8_lossy(text)
            );
        }
        let err = error_of(b"  file a seq 1 type q \r\n");
        assert_eq!(err.line, Some((1, "file a seq 1 type q".to_string())));
    }

    #[test]
    fn line_length_limit_is_1024_bytes_with_the_newline() {
        let line_of = |len: usize| {
            let head = "file ";
            let tail = " seq 1 type b\n";
            format!("{head}{}{tail}", "n".repeat(len - head.len() - tail.len()))
        };
        assert!(Manifest::parse(line_of(1024).as_bytes()).is_ok());
        let err = error_of(line_of(1025).as_bytes());
        assert_eq!(err.kind, ManifestErrorKind::TooLongLine);
        // A long comment is split into pieces and the second piece is not a comment.
        let comment = format!("#{}\nfile a seq 1 type b\n", "c".repeat(1100));
        assert_eq!(
            error_of(comment.as_bytes()).kind,
            ManifestErrorKind::InvalidFormat
        );
    }

    #[test]
    fn sequencing_follows_redis() {
        // Start-up with no AOF: a base, then an incr to append to.
        let mut manifest = Manifest::default();
        assert_eq!(
            manifest.new_base("appendonly.aof", true).name,
            "appendonly.aof.1.base.rdb"
        );
        assert_eq!(
            manifest.last_incr_or_new("appendonly.aof").name,
            "appendonly.aof.1.incr.aof"
        );
        assert_eq!(
            manifest.last_incr_or_new("appendonly.aof").name,
            "appendonly.aof.1.incr.aof"
        );
        assert_eq!(manifest.incrs.len(), 1);

        // BGREWRITEAOF: a new incr at the start, then on success a new base and history.
        let current = manifest.new_incr("appendonly.aof");
        assert_eq!(
            current,
            file("appendonly.aof.2.incr.aof", 2, FileKind::Incr)
        );
        let base = manifest.new_base("appendonly.aof", false);
        assert_eq!(base, file("appendonly.aof.2.base.aof", 2, FileKind::Base));
        manifest.mark_incrs_history(current.seq);
        assert_eq!(
            String::from_utf8(manifest.render()).unwrap(),
            "file appendonly.aof.2.base.aof seq 2 type b\n\
             file appendonly.aof.1.incr.aof seq 1 type h\n\
             file appendonly.aof.1.base.rdb seq 1 type h\n\
             file appendonly.aof.2.incr.aof seq 2 type i\n"
        );
        assert_eq!(manifest.files_in_load_order(), [&base, &current]);
        let deleted: Vec<String> = manifest
            .take_history()
            .into_iter()
            .map(|f| f.name)
            .collect();
        assert_eq!(
            deleted,
            ["appendonly.aof.1.incr.aof", "appendonly.aof.1.base.rdb"]
        );
        assert!(manifest.history.is_empty());

        // Counters survive a round trip through the text.
        let mut reloaded = Manifest::parse(&manifest.render()).unwrap();
        assert_eq!(reloaded.new_base("p", true).seq, 3);
        assert_eq!(reloaded.new_incr("p").seq, 3);
    }

    #[test]
    fn history_entries_do_not_advance_counters() {
        let mut manifest =
            Manifest::parse(b"file a.1.incr.aof seq 9 type h\nfile b seq 4 type b\n").unwrap();
        assert_eq!(manifest.new_incr("a").name, "a.1.incr.aof");
        assert_eq!(manifest.new_base("a", true).name, "a.5.base.rdb");
    }

    #[test]
    fn mark_all_incrs_history_when_aof_is_off() {
        let mut manifest = Manifest::default();
        manifest.new_incr("p");
        manifest.new_incr("p");
        manifest.new_base("p", true);
        manifest.mark_incrs_history(i64::MAX);
        assert!(manifest.incrs.is_empty());
        let names: Vec<&str> = manifest.history.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["p.1.incr.aof", "p.2.incr.aof"]);
    }

    #[test]
    fn upgrade_manifest_names_the_old_file_as_base_one() {
        let manifest = Manifest::upgraded_from("appendonly.aof");
        assert_eq!(manifest.render(), b"file appendonly.aof seq 1 type b\n");
    }

    #[test]
    fn write_manifest_replaces_the_file_atomically() {
        let dir = std::env::temp_dir().join(format!("moonkv-manifest-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let mut manifest = Manifest::default();
        manifest.new_base("appendonly.aof", true);
        write_manifest(&dir, "appendonly.aof.manifest", &manifest).unwrap();
        manifest.new_incr("appendonly.aof");
        write_manifest(&dir, "appendonly.aof.manifest", &manifest).unwrap();
        let on_disk = fs::read(dir.join("appendonly.aof.manifest")).unwrap();
        assert_eq!(Manifest::parse(&on_disk).unwrap(), manifest);
        assert!(!dir.join("temp-appendonly.aof.manifest").exists());
        fs::remove_dir_all(&dir).unwrap();
        assert!(write_manifest(&dir, "appendonly.aof.manifest", &manifest).is_err());
    }

    #[test]
    fn never_panics_on_arbitrary_bytes() {
        // Lines of manifest-like words, sometimes a word out of place or a byte overwritten.
        let names: [&[u8]; 6] = [
            b"a.1.incr.aof",
            b"\"q \\x41\\\"\"",
            b"'s\\''",
            b"\"x\"y",
            b"\"\\xff\"",
            b"p/q",
        ];
        let junk: [&[u8]; 8] = [b"file", b"SEQ", b"Type", b"#c", b"\"", b"0", b"-4", b"k"];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |bound: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % bound
        };
        let (mut accepted, mut rejected) = (0, 0);
        for _ in 0..20_000 {
            let mut text = Vec::new();
            for line in 0..next(5) {
                for pair in 0..3 + next(2) {
                    let (key, value): (&[u8], Vec<u8>) = match pair % 3 {
                        0 => (b"file", names[next(6) as usize].to_vec()),
                        1 => (b"seq", (line + 1 + next(2)).to_string().into_bytes()),
                        _ => (
                            b"type",
                            vec![[b'h', b'i', b'i', b'b', b'x'][next(5) as usize]],
                        ),
                    };
                    for word in [key, &value] {
                        let n = next(40);
                        text.extend_from_slice(if n < 8 { junk[n as usize] } else { word });
                        text.push(b' ');
                    }
                    if next(8) == 0 {
                        text.push(b'\t');
                    }
                }
                text.extend_from_slice(if next(2) == 0 { b"\n" } else { b"\r\n" });
            }
            if !text.is_empty() && next(8) == 0 {
                let at = next(text.len() as u64) as usize;
                text[at] = next(256) as u8;
            }
            match Manifest::parse(&text) {
                Ok(manifest) if !manifest.is_empty() || !manifest.history.is_empty() => {
                    // What parses renders to text that parses to the same thing. (A manifest
                    // with nothing in it renders to no bytes, which Redis would not read; and
                    // names with a single quote do not survive, as tested above.)
                    accepted += 1;
                    let mut all = manifest.files_in_load_order();
                    all.extend(&manifest.history);
                    if all.iter().any(|f| f.name.contains('\'')) {
                        continue;
                    }
                    assert_eq!(
                        Manifest::parse(&manifest.render()).map(|m| m.render()),
                        Ok(manifest.render())
                    );
                }
                Ok(_) => {}
                Err(_) => rejected += 1,
            }
        }
        assert!(
            accepted > 200 && rejected > 1000,
            "accepted {accepted}, rejected {rejected}"
        );
    }
}
