//! Commands as an append-only file holds them: each one a RESP multibulk
//! (`*<argc>\r\n` then `$<len>\r\n<bytes>\r\n` per argument), with annotation lines starting
//! with `#` allowed between commands (Redis writes `#TS:<unix secs>\r\n` when
//! `aof-timestamp-enabled` is on, and skips any `#` line when loading).
//!
//! The reader separates the two ways a file goes wrong, because Redis treats them
//! differently: a file that simply stops early (a crash during a write) can be cut back to
//! its last complete command when `aof-load-truncated` is on, while anything else is a format
//! error that stops the server.

use std::fmt;

/// Redis reads annotation lines with a 1024-byte buffer: at most 1023 bytes, newline
/// included. A longer one spills into what Redis takes for the next line, which is never a
/// valid command start, so it is a format error here.
const MAX_ANNOTATION_LINE: usize = 1023;

/// The fewest bytes one argument takes (`$0\r\n\r\n`), to bound preallocation.
const MIN_ARG_BYTES: usize = 6;

/// Appends one command as a RESP multibulk, as Redis appends it to an incremental file.
pub fn encode_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// Appends the annotation Redis writes before the first command of each new second when
/// `aof-timestamp-enabled` is on: `#TS:<unix secs>\r\n`.
pub fn timestamp_annotation(out: &mut Vec<u8>, unix_secs: i64) {
    out.extend_from_slice(format!("#TS:{unix_secs}\r\n").as_bytes());
}

/// Why reading stopped before the end of the data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadError {
    /// The data ends in the middle of a command (or of an annotation line). `valid_len` is
    /// where the last complete command ends: the length `aof-load-truncated yes` cuts the
    /// file back to. Inside an unfinished MULTI it is where that MULTI starts instead, so
    /// the cut never leaves half a transaction behind (Redis 7.0.15 cuts after the last
    /// queued command there, leaving a MULTI without EXEC that swallows later appends).
    /// An annotation line cut before its newline also counts (Redis would load it as is,
    /// and the next append would then be glued onto the annotation).
    Truncated { valid_len: usize },
    /// The data ends cleanly but inside a MULTI with no EXEC. Redis logs `Revert incomplete
    /// MULTI/EXEC transaction in AOF file <name>` and then handles it as a truncation at
    /// `valid_len`, where that MULTI starts.
    IncompleteMulti { valid_len: usize },
    /// Anything else; `offset` is where the bad line or argument starts. Redis logs `Bad
    /// file format reading the append only file <name>: make a backup of your AOF file, then
    /// use ./redis-check-aof --fix <filename.manifest>` and refuses to start.
    BadFormat { offset: usize },
}

impl ReadError {
    /// Where `aof-load-truncated yes` cuts the file, when the error allows that.
    pub fn valid_len(self) -> Option<usize> {
        match self {
            ReadError::Truncated { valid_len } | ReadError::IncompleteMulti { valid_len } => {
                Some(valid_len)
            }
            ReadError::BadFormat { .. } => None,
        }
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Truncated { valid_len } => {
                write!(
                    f,
                    "unexpected end of file; the last complete command ends at offset {valid_len}"
                )
            }
            ReadError::IncompleteMulti { valid_len } => {
                write!(
                    f,
                    "incomplete MULTI/EXEC transaction; it starts at offset {valid_len}"
                )
            }
            ReadError::BadFormat { offset } => write!(f, "bad file format at offset {offset}"),
        }
    }
}

impl std::error::Error for ReadError {}

/// Reads commands out of AOF bytes: an incremental file, a base file written without an RDB
/// preamble, or what follows the RDB part of an old-style preamble file.
///
/// Yields each command's arguments; after an error it yields nothing more. Offsets count
/// from the start of the data given to [`CommandReader::at`] (0 for [`CommandReader::new`]).
pub struct CommandReader<'a> {
    data: &'a [u8],
    pos: usize,
    /// End of the last complete command.
    valid_len: usize,
    /// Where the open MULTI starts, if there is one.
    multi_start: Option<usize>,
    finished: bool,
}

/// What stopped a read partway.
enum Stop {
    End,
    Bad(usize),
}

impl<'a> CommandReader<'a> {
    pub fn new(data: &'a [u8]) -> CommandReader<'a> {
        CommandReader::at(data, 0)
    }

    /// Reads from `start` on (say, after an RDB preamble), with offsets still counted from
    /// the start of `data`.
    pub fn at(data: &'a [u8], start: usize) -> CommandReader<'a> {
        let start = start.min(data.len());
        CommandReader {
            data,
            pos: start,
            valid_len: start,
            multi_start: None,
            finished: false,
        }
    }

    /// The offset just after the last command returned (where the next one starts, apart
    /// from any annotation lines in between).
    pub fn offset(&self) -> usize {
        self.valid_len
    }

    /// True between a MULTI and its EXEC.
    pub fn in_multi(&self) -> bool {
        self.multi_start.is_some()
    }

    fn fail(&mut self, stop: Stop) -> ReadError {
        self.finished = true;
        match stop {
            Stop::End => ReadError::Truncated {
                valid_len: self.multi_start.unwrap_or(self.valid_len),
            },
            Stop::Bad(offset) => ReadError::BadFormat { offset },
        }
    }

    /// Skips one `#` line; `pos` is at the `#`.
    fn skip_annotation(&mut self) -> Result<(), Stop> {
        let rest = &self.data[self.pos..];
        match rest
            .iter()
            .take(MAX_ANNOTATION_LINE)
            .position(|&b| b == b'\n')
        {
            Some(newline) => {
                self.pos += newline + 1;
                Ok(())
            }
            None if rest.len() < MAX_ANNOTATION_LINE => Err(Stop::End),
            None => Err(Stop::Bad(self.pos)),
        }
    }

    /// Reads `<prefix><digits>\r\n` at `pos`.
    fn read_number(&mut self, prefix: u8) -> Result<u64, Stop> {
        let start = self.pos;
        let mut i = start;
        let byte = |i: usize| self.data.get(i).copied().ok_or(Stop::End);
        if byte(i)? != prefix {
            return Err(Stop::Bad(start));
        }
        i += 1;
        let mut value: u64 = 0;
        let mut digits = 0;
        loop {
            let b = byte(i)?;
            if !b.is_ascii_digit() {
                break;
            }
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(b - b'0')))
                .ok_or(Stop::Bad(start))?;
            digits += 1;
            i += 1;
        }
        if digits == 0 || byte(i)? != b'\r' || byte(i + 1)? != b'\n' {
            return Err(Stop::Bad(start));
        }
        self.pos = i + 2;
        Ok(value)
    }

    /// Reads one multibulk at `pos`.
    fn read_command(&mut self) -> Result<Vec<Vec<u8>>, Stop> {
        let start = self.pos;
        let argc = self.read_number(b'*')?;
        if argc == 0 || argc > i32::MAX as u64 {
            return Err(Stop::Bad(start));
        }
        let room = (self.data.len() - self.pos) / MIN_ARG_BYTES;
        let mut args = Vec::with_capacity((argc as usize).min(room));
        for _ in 0..argc {
            let arg_start = self.pos;
            let len = self.read_number(b'$')?;
            let left = (self.data.len() - self.pos) as u64;
            if len > left {
                return Err(Stop::End);
            }
            let len = len as usize;
            let end = self.pos + len;
            let arg = self.data[self.pos..end].to_vec();
            match self.data.get(end..end + 2) {
                Some(b"\r\n") => {}
                Some(_) => return Err(Stop::Bad(arg_start)),
                None if self.data[end..].iter().all(|&b| b == b'\r') => return Err(Stop::End),
                None => return Err(Stop::Bad(arg_start)),
            }
            self.pos = end + 2;
            args.push(arg);
        }
        Ok(args)
    }
}

impl Iterator for CommandReader<'_> {
    type Item = Result<Vec<Vec<u8>>, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        loop {
            let Some(&first) = self.data.get(self.pos) else {
                self.finished = true;
                return self
                    .multi_start
                    .map(|valid_len| Err(ReadError::IncompleteMulti { valid_len }));
            };
            let step = match first {
                b'#' => self.skip_annotation().map(|()| None),
                b'*' => self.read_command().map(Some),
                _ => Err(Stop::Bad(self.pos)),
            };
            match step {
                Ok(None) => continue,
                Ok(Some(args)) => {
                    let before = self.valid_len;
                    self.valid_len = self.pos;
                    if args[0].eq_ignore_ascii_case(b"multi") {
                        self.multi_start.get_or_insert(before);
                    } else if args[0].eq_ignore_ascii_case(b"exec") {
                        self.multi_start = None;
                    }
                    return Some(Ok(args));
                }
                Err(stop) => return Some(Err(self.fail(stop))),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(commands: &[&[&str]]) -> Vec<u8> {
        let mut out = Vec::new();
        for command in commands {
            let args: Vec<&[u8]> = command.iter().map(|a| a.as_bytes()).collect();
            encode_command(&mut out, &args);
        }
        out
    }

    /// Every command read, the offset after each, and the error that ended the read.
    fn read_all(data: &[u8]) -> (Vec<Vec<String>>, Vec<usize>, Option<ReadError>) {
        let mut reader = CommandReader::new(data);
        let (mut commands, mut ends) = (Vec::new(), Vec::new());
        while let Some(item) = reader.next() {
            match item {
                Ok(args) => {
                    commands.push(
                        args.iter()
                            .map(|a| String::from_utf8_lossy(a).into_owned())
                            .collect(),
                    );
                    ends.push(reader.offset());
                }
                Err(err) => {
                    assert!(reader.next().is_none(), "nothing after an error");
                    return (commands, ends, Some(err));
                }
            }
        }
        (commands, ends, None)
    }

    #[test]
    fn encodes_as_redis_writes() {
        let mut out = Vec::new();
        timestamp_annotation(&mut out, 1_700_000_000);
        encode_command(&mut out, &[b"SELECT", b"3"]);
        encode_command(&mut out, &[b"set", b"k", b"", b"a\r\nb"]);
        assert_eq!(
            out,
            b"#TS:1700000000\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n*4\r\n$3\r\nset\r\n$1\r\nk\r\n$0\r\n\r\n$4\r\na\r\nb\r\n"
        );
    }

    #[test]
    fn reads_commands_and_skips_annotations() {
        let mut data = Vec::new();
        timestamp_annotation(&mut data, 5);
        data.extend(encoded(&[&["SELECT", "0"], &["SET", "k", "v\r\n"]]));
        let second_end = data.len();
        data.extend_from_slice(b"#anything at all\n#TS:6\r\n");
        data.extend(encoded(&[&["DEL", "k"]]));
        let (commands, ends, error) = read_all(&data);
        assert_eq!(
            commands,
            [
                vec!["SELECT", "0"],
                vec!["SET", "k", "v\r\n"],
                vec!["DEL", "k"]
            ]
        );
        assert_eq!(ends, [ends[0], second_end, data.len()]);
        assert_eq!(ends[0], "#TS:5\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n".len());
        assert_eq!(error, None);
        assert_eq!(read_all(b""), (vec![], vec![], None));
        assert_eq!(read_all(b"#TS:1\r\n"), (vec![], vec![], None));
    }

    #[test]
    fn reads_from_an_offset() {
        let mut data = b"REDIS0010 pretend preamble".to_vec();
        let start = data.len();
        data.extend(encoded(&[&["SET", "a", "1"]]));
        let mut reader = CommandReader::at(&data, start);
        assert_eq!(
            reader.next(),
            Some(Ok(vec![b"SET".to_vec(), b"a".to_vec(), b"1".to_vec()]))
        );
        assert_eq!(reader.offset(), data.len());
        assert_eq!(reader.next(), None);
        data.truncate(data.len() - 1);
        let mut reader = CommandReader::at(&data, start);
        assert_eq!(
            reader.next(),
            Some(Err(ReadError::Truncated { valid_len: start }))
        );
    }

    #[test]
    fn every_cut_is_a_truncation_at_the_last_complete_command() {
        let mut data = Vec::new();
        timestamp_annotation(&mut data, 1_700_000_000);
        data.extend(encoded(&[
            &["SELECT", "3"],
            &["SET", "key", "value with spaces"],
        ]));
        timestamp_annotation(&mut data, 1_700_000_001);
        data.extend(encoded(&[&["RPUSH", "list", "", "x"], &["INCR", "n"]]));
        let (_, ends, _) = read_all(&data);
        assert_eq!(ends.len(), 4);
        for cut in 0..data.len() {
            let (commands, _, error) = read_all(&data[..cut]);
            let complete = ends.iter().filter(|&&end| end <= cut).count();
            assert_eq!(commands.len(), complete, "cut at {cut}");
            let valid_len = ends[..complete].last().copied().unwrap_or(0);
            // A cut just after a command or after whole annotation lines is a clean end.
            let clean = data[valid_len..cut]
                .split_inclusive(|&b| b == b'\n')
                .all(|line| line.starts_with(b"#") && line.ends_with(b"\n"));
            let expected = if clean {
                None
            } else {
                Some(ReadError::Truncated { valid_len })
            };
            assert_eq!(error, expected, "cut at {cut}");
        }
    }

    #[test]
    fn unfinished_multi_is_cut_before_the_multi() {
        let before = encoded(&[&["SET", "a", "1"]]);
        let mut data = before.clone();
        timestamp_annotation(&mut data, 9);
        data.extend(encoded(&[&["multi"], &["SET", "b", "2"]]));
        let (commands, _, error) = read_all(&data);
        assert_eq!(commands.len(), 3);
        assert_eq!(
            error,
            Some(ReadError::IncompleteMulti {
                valid_len: before.len()
            })
        );
        assert_eq!(error.unwrap().valid_len(), Some(before.len()));

        // Cut inside the transaction: back to before the MULTI as well.
        let (_, _, error) = read_all(&data[..data.len() - 3]);
        assert_eq!(
            error,
            Some(ReadError::Truncated {
                valid_len: before.len()
            })
        );

        // With its EXEC the transaction is complete.
        data.extend(encoded(&[&["EXEC"]]));
        let (commands, _, error) = read_all(&data);
        assert_eq!((commands.len(), error), (4, None));
        let mut reader = CommandReader::new(&data);
        reader.next();
        assert!(!reader.in_multi());
        reader.next();
        assert!(reader.in_multi());
    }

    #[test]
    fn bad_formats_are_reported_where_they_start() {
        let good = encoded(&[&["SET", "a", "1"]]);
        let n = good.len();
        let cases: &[(&[u8], usize)] = &[
            (b"SET a 1\r\n", 0),
            (b"\r\n", 0),
            (b"*0\r\n", 0),
            (b"*-1\r\n", 0),
            (b"*\r\n", 0),
            (b"*1x\r\n", 0),
            (b"*1\n$1\r\na\r\n", 0),
            (b"*99999999999999999999999\r\n", 0),
            (b"*3000000000\r\n", 0),
            (b"*1\r\n:1\r\n", 4),
            (b"*1\r\n$-1\r\n", 4),
            (b"*2\r\n$1\r\na\r\n$1\r\nbXY", 11),
            (b"*1\r\n$1\r\nab\r\n", 4),
            (b"*1\r\n$1\r\naX", 4),
        ];
        for (bad, offset) in cases {
            let mut data = good.clone();
            data.extend_from_slice(bad);
            let (commands, ends, error) = read_all(&data);
            assert_eq!(ends, [n], "for {:?}", String::from_utf8_lossy(bad));
            assert_eq!(commands.len(), 1);
            assert_eq!(
                error,
                Some(ReadError::BadFormat { offset: n + offset }),
                "for {:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn annotation_line_limit() {
        let line = |len: usize| format!("#{}\n", "a".repeat(len - 2)).into_bytes();
        let mut ok = line(1023);
        ok.extend(encoded(&[&["PING"]]));
        assert_eq!(read_all(&ok).0.len(), 1);
        let mut long = line(1024);
        long.extend(encoded(&[&["PING"]]));
        assert_eq!(read_all(&long).2, Some(ReadError::BadFormat { offset: 0 }));
        // An unfinished annotation at the end is a truncation, however short.
        assert_eq!(
            read_all(b"#TS:12").2,
            Some(ReadError::Truncated { valid_len: 0 })
        );
    }

    #[test]
    fn huge_counts_and_lengths_do_not_allocate() {
        // Claims of billions of arguments or gigabytes of data, with nothing behind them,
        // are truncations and allocate nothing in proportion.
        assert_eq!(
            read_all(b"*2147483647\r\n").2,
            Some(ReadError::Truncated { valid_len: 0 })
        );
        assert_eq!(
            read_all(b"*1\r\n$9223372036854775807\r\nabc").2,
            Some(ReadError::Truncated { valid_len: 0 })
        );
        assert_eq!(
            read_all(b"*1\r\n$18446744073709551615\r\n").2,
            Some(ReadError::Truncated { valid_len: 0 })
        );
        assert_eq!(
            read_all(b"*1\r\n$18446744073709551616\r\n").2,
            Some(ReadError::BadFormat { offset: 4 })
        );
    }

    #[test]
    fn never_panics_on_arbitrary_bytes() {
        let pieces: [&[u8]; 12] = [
            b"*", b"$", b"#", b"\r\n", b"\n", b"\r", b"1", b"2", b"0", b"-", b"9999", b"x",
        ];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let (mut clean, mut truncated, mut bad) = (0, 0, 0);
        for _ in 0..50_000 {
            let mut data = Vec::new();
            for _ in 0..state % 32 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                data.extend_from_slice(pieces[(state % 12) as usize]);
            }
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            let (_, ends, error) = read_all(&data);
            match error {
                None => clean += 1,
                Some(
                    ReadError::Truncated { valid_len } | ReadError::IncompleteMulti { valid_len },
                ) => {
                    assert!(
                        valid_len <= data.len() && (valid_len == 0 || ends.contains(&valid_len))
                    );
                    truncated += 1;
                }
                Some(ReadError::BadFormat { offset }) => {
                    assert!(offset < data.len());
                    bad += 1;
                }
            }
        }
        assert!(
            clean > 100 && truncated > 100 && bad > 100,
            "{clean} {truncated} {bad}"
        );
    }
}
