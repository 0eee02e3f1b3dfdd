//! Software emulation of the x87 80-bit extended precision `long double` that Redis (built for
//! x86-64 Linux) uses for INCRBYFLOAT and HINCRBYFLOAT.
//!
//! Clients see the difference from f64: Redis adds in 64-bit-mantissa precision and prints the
//! sum with `%.17Lf` before trimming zeros, so `0.1 + 0.2` answers `0.3` (not
//! `0.30000000000000004`) and `17179869184 + 0.1` answers `17179869184.09999999962747097`.
//! This module reproduces that bit for bit: correctly rounded parsing (glibc `strtold` rules,
//! including hex floats, `inf`/`infinity` and subnormals), round-to-nearest-even addition, and
//! exact decimal formatting. Nothing here is on a hot path, so clarity wins over speed.

use std::cmp::Ordering;

/// Exponent of the least significant mantissa bit for subnormals (and the smallest normal).
const MIN_EXP: i64 = -16445;
/// Largest exponent of the least significant mantissa bit of a finite value.
const MAX_EXP: i64 = 16320;
/// Longest input Redis accepts for a long double (`MAX_LONG_DOUBLE_CHARS`), exclusive.
const MAX_CHARS: usize = 5 * 1024;

/// A finite extended-precision value: `(-1)^neg * mant * 2^exp`, with `mant` normalized to
/// 64 significant bits unless the value is zero or subnormal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LongDouble {
    neg: bool,
    mant: u64,
    exp: i64,
}

/// Why INCRBYFLOAT refused to compute.
#[derive(Debug, PartialEq, Eq)]
pub enum IncrFloatError {
    /// The stored value or the increment does not parse (`ERR value is not a valid float`).
    NotAFloat,
    /// The result is NaN or infinite (`ERR increment would produce NaN or Infinity`).
    NanOrInfinity,
}

/// A parsed number: finite, or an infinity (which Redis accepts as input but never stores).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Parsed {
    Finite(LongDouble),
    Infinite,
}

/// INCRBYFLOAT's arithmetic: `current` (None: missing key, i.e. 0) plus `incr`, formatted as
/// Redis stores and replies it.
pub fn incr_by_float(current: Option<Parsed>, incr: &[u8]) -> Result<String, IncrFloatError> {
    let current = current.unwrap_or(Parsed::Finite(LongDouble::ZERO));
    let incr = parse(incr).ok_or(IncrFloatError::NotAFloat)?;
    match (current, incr) {
        (Parsed::Finite(a), Parsed::Finite(b)) => a
            .add(b)
            .map(|sum| sum.format_human())
            .ok_or(IncrFloatError::NanOrInfinity),
        _ => Err(IncrFloatError::NanOrInfinity),
    }
}

impl LongDouble {
    pub const ZERO: LongDouble = LongDouble {
        neg: false,
        mant: 0,
        exp: 0,
    };

    /// Exact conversion: every i64 fits in a 64-bit mantissa.
    pub fn from_i64(v: i64) -> LongDouble {
        // Normalized like every other value; rounding is exact here and cannot overflow.
        LongDouble::round(v < 0, u128::from(v.unsigned_abs()), 0, false).unwrap_or(LongDouble::ZERO)
    }

    /// Rounds `(m + sticky_fraction) * 2^exp` to the nearest representable value (ties to
    /// even). `sticky` says that nonzero bits exist below the last bit of `m`; callers that set
    /// it pass at least 66 significant bits in `m`. Returns None on overflow.
    fn round(neg: bool, m: u128, exp: i64, sticky: bool) -> Option<LongDouble> {
        if m == 0 {
            return Some(LongDouble {
                neg,
                mant: 0,
                exp: 0,
            });
        }
        let width = 128 - i64::from(m.leading_zeros());
        let mut shift = width - 64;
        if exp + shift < MIN_EXP {
            // Subnormal: fewer mantissa bits survive.
            shift = MIN_EXP - exp;
        }
        let (mut mant, mut exp) = if shift <= 0 {
            // Fits exactly (only reachable without sticky bits).
            ((m << (-shift)) as u64 as u128, exp + shift)
        } else if shift > 128 {
            (0, exp + shift)
        } else {
            let kept = if shift == 128 { 0 } else { m >> shift };
            let half_bit = 1u128 << (shift - 1);
            let rest_mask = half_bit - 1;
            let above_half = m & half_bit != 0;
            let below = m & rest_mask != 0 || sticky;
            let round_up = above_half && (below || kept & 1 == 1);
            (kept + u128::from(round_up), exp + shift)
        };
        if mant >> 64 != 0 {
            // Rounding carried into a 65th bit.
            mant >>= 1;
            exp += 1;
        }
        if mant == 0 {
            return Some(LongDouble {
                neg,
                mant: 0,
                exp: 0,
            });
        }
        if exp > MAX_EXP {
            return None;
        }
        Some(LongDouble {
            neg,
            mant: mant as u64,
            exp,
        })
    }

    /// Rounded sum, or None if it overflows to infinity.
    pub fn add(self, other: LongDouble) -> Option<LongDouble> {
        if self.mant == 0 && other.mant == 0 {
            // IEEE: -0 + -0 = -0, any other pair of zeros gives +0.
            return Some(LongDouble {
                neg: self.neg && other.neg,
                ..LongDouble::ZERO
            });
        }
        if self.mant == 0 {
            return Some(other);
        }
        if other.mant == 0 {
            return Some(self);
        }
        let (hi, lo) = if self.exp >= other.exp {
            (self, other)
        } else {
            (other, self)
        };
        let diff = hi.exp - lo.exp;
        // Line both mantissas up at a common exponent. When they are far apart the smaller
        // one only contributes a few low bits plus a sticky bit, far below the rounding point.
        let (big, small, exp, sticky) = if diff <= 60 {
            ((hi.mant as u128) << diff, lo.mant as u128, lo.exp, false)
        } else {
            let drop = diff - 60;
            let (small, sticky) = if drop >= 128 {
                (0u128, true)
            } else {
                let s = lo.mant as u128;
                (s >> drop, s & ((1u128 << drop) - 1) != 0)
            };
            ((hi.mant as u128) << 60, small, hi.exp - 60, sticky)
        };
        if hi.neg == lo.neg {
            return LongDouble::round(hi.neg, big + small, exp, sticky);
        }
        match big.cmp(&small) {
            Ordering::Equal if !sticky => Some(LongDouble::ZERO),
            Ordering::Less => LongDouble::round(lo.neg, small - big, exp, false),
            _ => {
                // big - (small + fraction) = (big - small - 1) + (1 - fraction).
                let m = (big - small).saturating_sub(u128::from(sticky));
                LongDouble::round(hi.neg, m, exp, sticky)
            }
        }
    }

    /// `%.17Lf` with trailing zeros (and a trailing dot) removed, and `-0` printed as `0`:
    /// Redis's `LD_STR_HUMAN` format.
    pub fn format_human(self) -> String {
        let (int_part, frac) = self.split_decimal();
        let mut out = String::new();
        if self.neg {
            out.push('-');
        }
        out.push_str(&int_part.to_decimal());
        if frac != 0 {
            let digits = format!("{:017}", frac);
            out.push('.');
            out.push_str(digits.trim_end_matches('0'));
        }
        if out == "-0" {
            out = "0".into();
        }
        out
    }

    /// The magnitude as an integer part and 17 decimal fraction digits, rounded half to even.
    fn split_decimal(self) -> (BigUint, u64) {
        const SCALE: u64 = 100_000_000_000_000_000; // 10^17
        if self.exp >= 0 {
            return (
                BigUint::from_u128(self.mant as u128).shl(self.exp as u64),
                0,
            );
        }
        let s = (-self.exp) as u64;
        if s > 200 {
            // Below 2^-136: rounds to zero at 17 decimals.
            return (BigUint::zero(), 0);
        }
        let int_part = if s >= 64 { 0 } else { self.mant >> s };
        let frac_bits = if s >= 64 {
            self.mant
        } else {
            self.mant & ((1u64 << s) - 1)
        };
        let mut scaled = BigUint::from_u128(frac_bits as u128);
        scaled.mul_u64(SCALE);
        let mut q = scaled.shr(s).to_u64();
        let half_set = scaled.bit(s - 1);
        let below_half = scaled.any_below(s - 1);
        if half_set && (below_half || q & 1 == 1) {
            q += 1;
        }
        let mut int_part = BigUint::from_u128(int_part as u128);
        if q == SCALE {
            q = 0;
            int_part.add_small(1);
        }
        (int_part, q)
    }
}

/// Parses a number the way Redis's `string2ld` does with glibc's `strtold`: the whole input must
/// be consumed, no leading space, no NaN, overflow and underflow-to-zero are errors.
pub fn parse(s: &[u8]) -> Option<Parsed> {
    if s.is_empty() || s.len() >= MAX_CHARS {
        return None;
    }
    let (neg, body) = match s[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if body.eq_ignore_ascii_case(b"inf") || body.eq_ignore_ascii_case(b"infinity") {
        return Some(Parsed::Infinite);
    }
    let value = if body.len() > 2 && body[0] == b'0' && (body[1] | 0x20) == b'x' {
        parse_hex(neg, &body[2..])?
    } else {
        parse_decimal(neg, body)?
    };
    Some(Parsed::Finite(value))
}

/// Splits `digits[.digits]` at the start of `s`, returning (integer digits, fraction digits,
/// rest). At least one digit overall is required.
fn split_mantissa(s: &[u8], is_digit: fn(u8) -> bool) -> Option<(&[u8], &[u8], &[u8])> {
    let int_len = s.iter().take_while(|&&c| is_digit(c)).count();
    let (int_digits, rest) = s.split_at(int_len);
    let (frac_digits, rest) = match rest.split_first() {
        Some((b'.', after)) => {
            let n = after.iter().take_while(|&&c| is_digit(c)).count();
            after.split_at(n)
        }
        _ => (&rest[..0], rest),
    };
    if int_digits.is_empty() && frac_digits.is_empty() {
        return None;
    }
    Some((int_digits, frac_digits, rest))
}

/// Parses an exponent suffix (`e`/`p` already removed): optional sign, then digits. Saturates
/// far beyond any meaningful exponent.
fn parse_exponent(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: i64 = 0;
    for &d in digits {
        v = (v * 10 + i64::from(d - b'0')).min(1_000_000_000);
    }
    Some(if neg { -v } else { v })
}

fn parse_decimal(neg: bool, s: &[u8]) -> Option<LongDouble> {
    let (int_digits, frac_digits, rest) = split_mantissa(s, |c| c.is_ascii_digit())?;
    let exp10 = match rest.split_first() {
        None => 0,
        Some((e, tail)) if *e | 0x20 == b'e' => parse_exponent(tail)?,
        Some(_) => return None,
    };
    let mut mantissa = BigUint::zero();
    let mut ndigits: i64 = 0;
    for &d in int_digits.iter().chain(frac_digits) {
        if ndigits > 0 || d != b'0' {
            mantissa.mul_u64(10);
            mantissa.add_small(u64::from(d - b'0'));
            ndigits += 1;
        }
    }
    if mantissa.is_zero() {
        return Some(LongDouble {
            neg,
            ..LongDouble::ZERO
        });
    }
    let exp10 = exp10 - frac_digits.len() as i64;
    // The value lies in [10^(ndigits+exp10-1), 10^(ndigits+exp10)).
    let magnitude = ndigits + exp10;
    if magnitude > 4934 {
        return None; // overflow
    }
    if magnitude < -4952 {
        return None; // underflows to zero
    }
    let value = if exp10 >= 0 {
        let n = mantissa.mul(&BigUint::pow10(exp10 as u32));
        let (top, exp, sticky) = n.top_bits();
        LongDouble::round(neg, top, exp, sticky)?
    } else {
        let divisor = BigUint::pow10((-exp10) as u32);
        // Scale so that the quotient has more than 100 bits; the remainder becomes the sticky bit.
        let k = (divisor.bit_len() as i64 - mantissa.bit_len() as i64 + 101).max(0) as u64;
        let (q, rem_nonzero) = mantissa.shl(k).div_rem_is_nonzero(&divisor);
        let (top, exp, sticky) = q.top_bits();
        LongDouble::round(neg, top, exp - k as i64, sticky || rem_nonzero)?
    };
    if value.mant == 0 {
        return None; // underflow to zero: ERANGE
    }
    Some(value)
}

fn parse_hex(neg: bool, s: &[u8]) -> Option<LongDouble> {
    let (int_digits, frac_digits, rest) = split_mantissa(s, |c| c.is_ascii_hexdigit())?;
    let exp2 = match rest.split_first() {
        None => 0,
        Some((p, tail)) if *p | 0x20 == b'p' => parse_exponent(tail)?,
        Some(_) => return None,
    };
    let mut mantissa = BigUint::zero();
    for &d in int_digits.iter().chain(frac_digits) {
        let v = (d as char).to_digit(16).unwrap_or(0);
        mantissa.mul_u64(16);
        mantissa.add_small(u64::from(v));
    }
    if mantissa.is_zero() {
        return Some(LongDouble {
            neg,
            ..LongDouble::ZERO
        });
    }
    let (top, exp, sticky) = mantissa.top_bits();
    let value = LongDouble::round(neg, top, exp + exp2 - 4 * frac_digits.len() as i64, sticky)?;
    if value.mant == 0 {
        return None;
    }
    Some(value)
}

/// Just enough arbitrary precision unsigned arithmetic for exact conversions.
#[derive(Clone, Debug, PartialEq, Eq)]
struct BigUint {
    /// Little-endian 32-bit limbs, no trailing zero limbs.
    limbs: Vec<u32>,
}

impl BigUint {
    fn zero() -> Self {
        BigUint { limbs: Vec::new() }
    }

    fn from_u128(mut v: u128) -> Self {
        let mut limbs = Vec::new();
        while v != 0 {
            limbs.push(v as u32);
            v >>= 32;
        }
        BigUint { limbs }
    }

    fn trim(&mut self) {
        while self.limbs.last() == Some(&0) {
            self.limbs.pop();
        }
    }

    fn is_zero(&self) -> bool {
        self.limbs.is_empty()
    }

    fn bit_len(&self) -> u64 {
        match self.limbs.last() {
            None => 0,
            Some(&top) => self.limbs.len() as u64 * 32 - u64::from(top.leading_zeros()),
        }
    }

    fn bit(&self, i: u64) -> bool {
        self.limbs
            .get((i / 32) as usize)
            .is_some_and(|l| (l >> (i % 32)) & 1 == 1)
    }

    /// True if any bit below position `i` is set.
    fn any_below(&self, i: u64) -> bool {
        let whole = (i / 32) as usize;
        if self.limbs.iter().take(whole).any(|&l| l != 0) {
            return true;
        }
        let part = (i % 32) as u32;
        part > 0
            && self
                .limbs
                .get(whole)
                .is_some_and(|l| l & ((1u32 << part) - 1) != 0)
    }

    fn mul_u64(&mut self, m: u64) {
        let mut carry: u128 = 0;
        for limb in self.limbs.iter_mut() {
            let v = u128::from(*limb) * u128::from(m) + carry;
            *limb = v as u32;
            carry = v >> 32;
        }
        while carry != 0 {
            self.limbs.push(carry as u32);
            carry >>= 32;
        }
        self.trim();
    }

    fn add_small(&mut self, a: u64) {
        let mut carry = u128::from(a);
        for limb in self.limbs.iter_mut() {
            if carry == 0 {
                return;
            }
            let v = u128::from(*limb) + carry;
            *limb = v as u32;
            carry = v >> 32;
        }
        while carry != 0 {
            self.limbs.push(carry as u32);
            carry >>= 32;
        }
    }

    fn mul(&self, other: &BigUint) -> BigUint {
        if self.is_zero() || other.is_zero() {
            return BigUint::zero();
        }
        let mut out = vec![0u32; self.limbs.len() + other.limbs.len()];
        for (i, &a) in self.limbs.iter().enumerate() {
            let mut carry: u64 = 0;
            for (j, &b) in other.limbs.iter().enumerate() {
                let v = u64::from(a) * u64::from(b) + u64::from(out[i + j]) + carry;
                out[i + j] = v as u32;
                carry = v >> 32;
            }
            let mut k = i + other.limbs.len();
            while carry != 0 {
                let v = u64::from(out[k]) + carry;
                out[k] = v as u32;
                carry = v >> 32;
                k += 1;
            }
        }
        let mut r = BigUint { limbs: out };
        r.trim();
        r
    }

    fn pow10(n: u32) -> BigUint {
        let mut r = BigUint::from_u128(1);
        let mut left = n;
        while left >= 19 {
            r.mul_u64(10_000_000_000_000_000_000);
            left -= 19;
        }
        r.mul_u64(10u64.pow(left));
        r
    }

    fn shl(&self, bits: u64) -> BigUint {
        if self.is_zero() {
            return BigUint::zero();
        }
        let whole = (bits / 32) as usize;
        let part = (bits % 32) as u32;
        let mut limbs = vec![0u32; whole];
        limbs.reserve(self.limbs.len() + 1);
        let mut carry = 0u32;
        for &l in &self.limbs {
            if part == 0 {
                limbs.push(l);
            } else {
                limbs.push((l << part) | carry);
                carry = l >> (32 - part);
            }
        }
        if carry != 0 {
            limbs.push(carry);
        }
        BigUint { limbs }
    }

    fn shr(&self, bits: u64) -> BigUint {
        let whole = (bits / 32) as usize;
        if whole >= self.limbs.len() {
            return BigUint::zero();
        }
        let part = (bits % 32) as u32;
        let src = &self.limbs[whole..];
        let mut limbs = Vec::with_capacity(src.len());
        for (i, &l) in src.iter().enumerate() {
            let next = src.get(i + 1).copied().unwrap_or(0);
            limbs.push(if part == 0 {
                l
            } else {
                (l >> part) | (next << (32 - part))
            });
        }
        let mut r = BigUint { limbs };
        r.trim();
        r
    }

    fn to_u64(&self) -> u64 {
        self.limbs
            .iter()
            .take(2)
            .rev()
            .fold(0u64, |acc, &l| (acc << 32) | u64::from(l))
    }

    /// The top (up to) 128 bits as an integer, the exponent of its last bit, and whether any
    /// lower bit is set.
    fn top_bits(&self) -> (u128, i64, bool) {
        let len = self.bit_len();
        if len <= 128 {
            let v = self
                .limbs
                .iter()
                .rev()
                .fold(0u128, |acc, &l| (acc << 32) | u128::from(l));
            return (v, 0, false);
        }
        let drop = len - 128;
        let top = self.shr(drop);
        let v = top
            .limbs
            .iter()
            .rev()
            .fold(0u128, |acc, &l| (acc << 32) | u128::from(l));
        (v, drop as i64, self.any_below(drop))
    }

    fn sub_assign(&mut self, other: &BigUint) {
        let mut borrow = 0i64;
        for (i, limb) in self.limbs.iter_mut().enumerate() {
            let o = i64::from(other.limbs.get(i).copied().unwrap_or(0));
            let mut v = i64::from(*limb) - o - borrow;
            borrow = 0;
            if v < 0 {
                v += 1 << 32;
                borrow = 1;
            }
            *limb = v as u32;
        }
        self.trim();
    }

    fn cmp_big(&self, other: &BigUint) -> Ordering {
        self.limbs
            .len()
            .cmp(&other.limbs.len())
            .then_with(|| self.limbs.iter().rev().cmp(other.limbs.iter().rev()))
    }

    /// Quotient, and whether the remainder is nonzero. Binary long division: the quotients
    /// needed here have about a hundred bits, so this is cheap.
    fn div_rem_is_nonzero(&self, divisor: &BigUint) -> (BigUint, bool) {
        let mut rem = self.clone();
        let mut quotient = BigUint::zero();
        if self.bit_len() >= divisor.bit_len() {
            let top = self.bit_len() - divisor.bit_len();
            quotient.limbs = vec![0u32; (top / 32 + 1) as usize];
            for i in (0..=top).rev() {
                let shifted = divisor.shl(i);
                if rem.cmp_big(&shifted) != Ordering::Less {
                    rem.sub_assign(&shifted);
                    quotient.limbs[(i / 32) as usize] |= 1 << (i % 32);
                }
            }
            quotient.trim();
        }
        (quotient, !rem.is_zero())
    }

    fn to_decimal(&self) -> String {
        if self.is_zero() {
            return "0".into();
        }
        let mut chunks = Vec::new();
        let mut n = self.clone();
        while !n.is_zero() {
            let mut rem: u64 = 0;
            for limb in n.limbs.iter_mut().rev() {
                let v = (rem << 32) | u64::from(*limb);
                *limb = (v / 1_000_000_000) as u32;
                rem = v % 1_000_000_000;
            }
            n.trim();
            chunks.push(rem as u32);
        }
        let mut out = String::new();
        for (i, chunk) in chunks.iter().rev().enumerate() {
            if i == 0 {
                out.push_str(&chunk.to_string());
            } else {
                out.push_str(&format!("{:09}", chunk));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incr(a: &str, b: &str) -> Result<String, IncrFloatError> {
        let current = if a.is_empty() {
            None
        } else {
            Some(parse(a.as_bytes()).ok_or(IncrFloatError::NotAFloat)?)
        };
        incr_by_float(current, b.as_bytes())
    }

    /// Expected values come from redis-server 7.0.15 on x86-64.
    #[test]
    fn matches_redis_long_double_results() {
        assert_eq!(incr("10.5", "0.1").unwrap(), "10.6");
        assert_eq!(incr("0.1", "0.2").unwrap(), "0.3");
        assert_eq!(incr("1.1", "2.2").unwrap(), "3.3");
        assert_eq!(
            incr("17179869184", "0.1").unwrap(),
            "17179869184.09999999962747097"
        );
        assert_eq!(incr("17179869184", "1.5").unwrap(), "17179869185.5");
        assert_eq!(incr("17179869184", "17179869184").unwrap(), "34359738368");
        assert_eq!(incr("5", "1e17").unwrap(), "100000000000000005");
        assert_eq!(
            incr("100000000000000005", "0.1").unwrap(),
            "100000000000000005.1015625"
        );
        assert_eq!(incr("1.5e3", "1").unwrap(), "1501");
        assert_eq!(incr("0x10", "1").unwrap(), "17");
        assert_eq!(incr("3", "5.0e3").unwrap(), "5003");
        assert_eq!(incr("1", "-1.1").unwrap(), "-0.1");
        assert_eq!(incr("-0", "0").unwrap(), "0");
        assert_eq!(incr("", "1").unwrap(), "1");
        assert_eq!(
            incr("1e308", "1e308").unwrap(),
            "199999999999999999993371759311691291321120199694831134415594095989843469737676123744200253843777078640893494450108026446304269499187921167194841628860392837535918200039206381557326219209014213335878306791577877829121087126122536729803237260434173178506889763247582601711514636284849020905456510092687857156096"
        );
        assert_eq!(
            incr("10.6", "1e300").unwrap(),
            "1000000000000000000008997324079559193870523944273290747938260082321265646596180935755849152083750497190350372508614274835903592556184672983913096260520748646287327135641843653294084255107606016789726652932370030551382947620994540294772781889620606179267611627097410650567187386105690089424915104006144"
        );
        assert_eq!(incr("5021.5", "1e-400").unwrap(), "5021.5");
    }

    #[test]
    fn no_negative_zero_and_cancellation() {
        let third = "0.024390243902439025"; // 1/41 as Tcl prints it
        let sum = incr("", third).unwrap();
        assert_eq!(incr(&sum, &format!("-{third}")).unwrap(), "0");
        assert_eq!(incr("-0.00000000000000000001", "0").unwrap(), "0");
    }

    #[test]
    fn rejects_like_string2ld() {
        for bad in [
            "", " 1", "1 ", "abc", "1e", "1e+", "0x", ".", "nan", "NaN", "1\u{0}2", "1e99999",
            "1e-99999", "--1", "1.2.3", "0x1p", "infinit",
        ] {
            assert!(parse(bad.as_bytes()).is_none(), "{bad:?}");
        }
        for good in [
            "1.", ".5", "+1", "-inf", "Infinity", "0e-99999", "1e-4950", "0X1.8p1", "00001", "1E5",
        ] {
            assert!(parse(good.as_bytes()).is_some(), "{good:?}");
        }
        assert_eq!(parse(b"+inf"), Some(Parsed::Infinite));
        assert_eq!(incr("1", "inf"), Err(IncrFloatError::NanOrInfinity));
        assert_eq!(incr("1", "x"), Err(IncrFloatError::NotAFloat));
        assert_eq!(incr("1e4932", "1e4932"), Err(IncrFloatError::NanOrInfinity));
        assert!(parse(&[b'1'; MAX_CHARS]).is_none());
    }

    #[test]
    fn exact_values() {
        let p = |s: &str| match parse(s.as_bytes()) {
            Some(Parsed::Finite(v)) => v,
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(p("0X1.8p1").format_human(), "3");
        assert_eq!(p("0.5").format_human(), "0.5");
        assert_eq!(p("-2.25").format_human(), "-2.25");
        assert_eq!(p("123456789012345678").format_human(), "123456789012345678");
        // 2^-18 has 18 decimals; the 18th is an exact tie and rounds to even.
        assert_eq!(
            p("0.000003814697265625").format_human(),
            "0.00000381469726562"
        );
        assert_eq!(
            LongDouble::from_i64(i64::MIN).format_human(),
            "-9223372036854775808"
        );
        // Subnormals parse and print as zero at 17 decimals.
        assert_eq!(p("3.7e-4951").format_human(), "0");
    }
}
