//! Glob-style matching with Redis's rules (`*`, `?`, `[a-z]`, `[^x]`, `\` escapes), used by KEYS,
//! SCAN MATCH, PSUBSCRIBE and CONFIG GET. Backtracks only to the last `*`, so a hostile pattern
//! costs O(pattern * subject), never exponential time.

pub fn glob_match(pattern: &[u8], subject: &[u8], nocase: bool) -> bool {
    let (mut p, mut s) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while s < subject.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    while p < pattern.len() && pattern[p] == b'*' {
                        p += 1;
                    }
                    if p == pattern.len() {
                        return true;
                    }
                    star = Some((p, s));
                    continue;
                }
                b'?' => {
                    p += 1;
                    s += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next_p)) = match_class(pattern, p, subject[s], nocase) {
                        if matched {
                            p = next_p;
                            s += 1;
                            continue;
                        }
                    }
                }
                c => {
                    let (lit, next_p) = if c == b'\\' && p + 1 < pattern.len() {
                        (pattern[p + 1], p + 2)
                    } else {
                        (c, p + 1)
                    };
                    if eq(lit, subject[s], nocase) {
                        p = next_p;
                        s += 1;
                        continue;
                    }
                }
            }
        }
        // Mismatch: let the last star absorb one more character, or fail.
        match star {
            Some((sp, ss)) => {
                p = sp;
                s = ss + 1;
                star = Some((sp, ss + 1));
            }
            None => return false,
        }
    }
    while p < pattern.len() && pattern[p] == b'*' {
        p += 1;
    }
    p == pattern.len()
}

fn eq(a: u8, b: u8, nocase: bool) -> bool {
    if nocase {
        a.eq_ignore_ascii_case(&b)
    } else {
        a == b
    }
}

/// Matches `c` against the class starting at `pattern[start] == '['`. Returns whether it
/// matched and the index after the class. An unterminated class runs to the end of the
/// pattern, as in Redis.
fn match_class(pattern: &[u8], start: usize, c: u8, nocase: bool) -> Option<(bool, usize)> {
    let mut p = start + 1;
    let negate = p < pattern.len() && pattern[p] == b'^';
    if negate {
        p += 1;
    }
    let mut matched = false;
    loop {
        if p >= pattern.len() {
            break;
        }
        if pattern[p] == b']' {
            p += 1;
            break;
        }
        if pattern[p] == b'\\' && p + 1 < pattern.len() {
            p += 1;
            if eq(pattern[p], c, nocase) {
                matched = true;
            }
            p += 1;
        } else if p + 2 < pattern.len() && pattern[p + 1] == b'-' {
            let (mut lo, mut hi) = (pattern[p], pattern[p + 2]);
            if lo > hi {
                std::mem::swap(&mut lo, &mut hi);
            }
            let (lo, hi, ch) = if nocase {
                (
                    lo.to_ascii_lowercase(),
                    hi.to_ascii_lowercase(),
                    c.to_ascii_lowercase(),
                )
            } else {
                (lo, hi, c)
            };
            if ch >= lo && ch <= hi {
                matched = true;
            }
            p += 3;
        } else {
            if eq(pattern[p], c, nocase) {
                matched = true;
            }
            p += 1;
        }
    }
    Some((matched != negate, p))
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs() {
        assert!(glob_match(b"*", b"anything", false));
        assert!(glob_match(b"h?llo", b"hello", false));
        assert!(glob_match(b"h*llo", b"heeeello", false));
        assert!(glob_match(b"h[ae]llo", b"hallo", false));
        assert!(!glob_match(b"h[^e]llo", b"hello", false));
        assert!(glob_match(b"h[a-b]llo", b"hbllo", false));
        assert!(glob_match(b"foo\\*", b"foo*", false));
        assert!(!glob_match(b"foo\\*", b"foox", false));
        assert!(glob_match(b"FOO*", b"foobar", true));
        assert!(!glob_match(b"a*b", b"acbx", false));
        assert!(glob_match(b"*a*b*c*", b"xxaxxbxxcxx", false));
        assert!(glob_match(b"", b"", false));
        assert!(!glob_match(b"", b"x", false));
    }

    #[test]
    fn pathological_pattern_is_fast() {
        let subject = vec![b'a'; 10_000];
        let pattern = b"*a*a*a*a*a*a*a*a*a*a*a*a*b";
        assert!(!glob_match(pattern, &subject, false));
    }
}
