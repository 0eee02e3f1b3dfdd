//! LZF, the compression RDB uses for long strings, written from its format description (the
//! `lzf` crate on crates.io is deprecated and uses `unsafe`).
//!
//! A compressed stream is a sequence of items, each starting with a control byte `c`:
//! - `c < 32`: a literal run; the next `c + 1` bytes are copied out as they are.
//! - otherwise a back reference: `len = c >> 5` (when 7, one more byte is added to it), then
//!   one byte `low`; `len + 2` bytes are copied from `((c & 31) << 8 | low) + 1` bytes back in
//!   the output (the source may overlap what is being written).

/// Longest literal run one control byte can announce.
const MAX_LITERAL: usize = 32;
/// Farthest a back reference can reach.
const MAX_DISTANCE: usize = 1 << 13;
/// Longest match one back reference can copy (7 + 255 + 2).
const MAX_MATCH: usize = 264;
/// Largest hash table (entries as a power of two); small inputs get a smaller one, so
/// compressing a short string does not clear a large table.
const MAX_HASH_BITS: u32 = 14;

/// Why a compressed string could not be expanded.
#[derive(Debug, PartialEq, Eq)]
pub enum LzfError {
    /// The data ended inside an item.
    Truncated,
    /// The output would be longer than announced.
    TooLong,
    /// A back reference points before the start of the output.
    BadReference,
    /// The output is shorter than announced.
    TooShort,
}

fn hash3(bytes: &[u8], bits: u32) -> usize {
    let v = u32::from(bytes[0]) << 16 | u32::from(bytes[1]) << 8 | u32::from(bytes[2]);
    (v.wrapping_mul(2_654_435_761) >> (32 - bits)) as usize
}

/// Compresses `input`; None when the result would not fit in `max_out` bytes (the caller
/// then stores the string as it is).
pub fn compress(input: &[u8], max_out: usize) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(max_out.min(input.len()));
    // Position + 1 of the last place each 3-byte hash was seen (0: never).
    let bits = (usize::BITS - input.len().leading_zeros()).clamp(6, MAX_HASH_BITS);
    let mut table = vec![0u32; 1 << bits];
    let mut literal_start = 0;
    let mut i = 0;
    while i + 2 < input.len() {
        let h = hash3(&input[i..], bits);
        let candidate = table[h] as usize;
        table[h] = (i + 1) as u32;
        if candidate > 0 {
            // Positions are kept in 32 bits: past 4 GiB a stale one is merely a miss.
            let at = candidate - 1;
            let distance = i.wrapping_sub(at);
            if at < i && distance <= MAX_DISTANCE && input[at..at + 3] == input[i..i + 3] {
                let limit = MAX_MATCH.min(input.len() - i);
                let mut len = 3;
                while len < limit && input[at + len] == input[i + len] {
                    len += 1;
                }
                flush_literals(&mut out, &input[literal_start..i]);
                let offset = distance - 1;
                let code = len - 2;
                if code < 7 {
                    out.push(((code as u8) << 5) | (offset >> 8) as u8);
                } else {
                    out.push((7 << 5) | (offset >> 8) as u8);
                    out.push((code - 7) as u8);
                }
                out.push(offset as u8);
                if out.len() > max_out {
                    return None;
                }
                // Remember the positions inside the match too, for later references.
                for j in i + 1..(i + len).min(input.len().saturating_sub(2)) {
                    table[hash3(&input[j..], bits)] = (j + 1) as u32;
                }
                i += len;
                literal_start = i;
                continue;
            }
        }
        i += 1;
    }
    flush_literals(&mut out, &input[literal_start..]);
    (out.len() <= max_out).then_some(out)
}

fn flush_literals(out: &mut Vec<u8>, literals: &[u8]) {
    for run in literals.chunks(MAX_LITERAL) {
        out.push((run.len() - 1) as u8);
        out.extend_from_slice(run);
    }
}

/// Expands `input`, which must decode to exactly `expected_len` bytes. Allocation grows with
/// the output actually produced, never with the announced length alone.
pub fn decompress(input: &[u8], expected_len: usize) -> Result<Vec<u8>, LzfError> {
    // One 3-byte back reference yields at most 264 bytes: a longer announcement is a lie.
    let mut out = Vec::with_capacity(expected_len.min(input.len().saturating_mul(4)));
    let mut i = 0;
    while i < input.len() {
        let ctrl = input[i] as usize;
        i += 1;
        if ctrl < 32 {
            let run = input.get(i..i + ctrl + 1).ok_or(LzfError::Truncated)?;
            if out.len() + run.len() > expected_len {
                return Err(LzfError::TooLong);
            }
            out.extend_from_slice(run);
            i += ctrl + 1;
        } else {
            let mut len = ctrl >> 5;
            if len == 7 {
                len += *input.get(i).ok_or(LzfError::Truncated)? as usize;
                i += 1;
            }
            let low = *input.get(i).ok_or(LzfError::Truncated)? as usize;
            i += 1;
            let distance = ((ctrl & 31) << 8 | low) + 1;
            let len = len + 2;
            if distance > out.len() {
                return Err(LzfError::BadReference);
            }
            if out.len() + len > expected_len {
                return Err(LzfError::TooLong);
            }
            let from = out.len() - distance;
            if distance >= len {
                out.extend_from_within(from..from + len);
            } else {
                // Overlapping copy: a run repeats itself byte by byte.
                for k in 0..len {
                    let b = out[from + k];
                    out.push(b);
                }
            }
        }
    }
    if out.len() != expected_len {
        return Err(LzfError::TooShort);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let mut inputs: Vec<Vec<u8>> = vec![
            b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".to_vec(),
            b"hello hello hello hello hello hello world".to_vec(),
            (0..5000u32).map(|i| (i % 251) as u8).collect(),
            (0..70_000u32)
                .map(|i| (i.wrapping_mul(7919) >> 3) as u8)
                .collect(),
            vec![0u8; 100_000],
        ];
        inputs.push(inputs[1].repeat(300));
        for input in inputs {
            let packed = compress(&input, input.len() + input.len() / 16 + 64).unwrap();
            assert_eq!(decompress(&packed, input.len()).unwrap(), input);
        }
        // Incompressible data does not fit in fewer bytes.
        let noise: Vec<u8> = (0..100u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        assert!(compress(&noise, noise.len() - 4).is_none());
    }

    #[test]
    fn hand_built_stream() {
        // Literal "ab", then a reference one back copying 4 bytes ("bbbb"), then literal "c".
        let stream = [1, b'a', b'b', (2 << 5), 0, 0, b'c'];
        assert_eq!(decompress(&stream, 7).unwrap(), b"abbbbbc");
    }

    #[test]
    fn bad_streams_are_errors() {
        assert_eq!(decompress(&[5, b'a'], 6), Err(LzfError::Truncated));
        assert_eq!(
            decompress(&[0, b'a', 0x20, 5], 10),
            Err(LzfError::BadReference)
        );
        assert_eq!(decompress(&[1, b'a', b'b'], 1), Err(LzfError::TooLong));
        assert_eq!(decompress(&[1, b'a', b'b'], 3), Err(LzfError::TooShort));
        assert_eq!(decompress(&[0, b'a', 0xE0], 100), Err(LzfError::Truncated));
    }
}
