//! Redis's `redisLrand48`/`redisSrand48`: the 48-bit linear congruential generator of
//! `lrand48`, kept here so `math.random` gives the same numbers as Redis for the same seed on
//! every platform. One generator serves every script, as in Redis.

use std::sync::atomic::{AtomicU64, Ordering};

const MULTIPLIER: u64 = 0x5_DEEC_E66D;
const INCREMENT: u64 = 0xB;
const MASK: u64 = (1 << 48) - 1;
/// lrand48's state before any seeding.
const INITIAL: u64 = 0x1234_ABCD_330E;

/// The largest value [`next`] returns, plus one (Redis's REDIS_LRAND48_MAX is INT32_MAX).
pub const MAX: i64 = i32::MAX as i64;

// Scripts run one at a time under the server lock; the atomic only makes the static safe.
static STATE: AtomicU64 = AtomicU64::new(INITIAL);

/// Seeds like `srand48`: the seed's 32 bits above the fixed low word 0x330E.
pub fn seed(seed: i32) {
    STATE.store((((seed as u32) as u64) << 16) | 0x330E, Ordering::Relaxed);
}

/// The next value in [0, 2^31).
pub fn next() -> i64 {
    let x = STATE
        .load(Ordering::Relaxed)
        .wrapping_mul(MULTIPLIER)
        .wrapping_add(INCREMENT)
        & MASK;
    STATE.store(x, Ordering::Relaxed);
    (x >> 17) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_lrand48_after_seeding() {
        // Values printed by glibc's srand48/lrand48 on this machine.
        seed(0);
        assert_eq!([next(), next(), next()], [366850414, 1610402240, 206956554]);
        seed(-5);
        assert_eq!(next(), 1754100061);
    }
}
