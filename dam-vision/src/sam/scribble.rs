//! Scribble → points, as the DAM demo does it: the scribble's foreground pixels in row-major
//! order (`np.nonzero`), then `np.random.seed(seed)` and
//! `np.random.choice(N, min(N, 8), replace=False)` with numpy's legacy `RandomState`.
//!
//! Legacy `choice` without replacement is `permutation(N)[:k]`: a Fisher–Yates shuffle of
//! `arange(N)` from the end, drawing `random_interval(i)` (masked rejection sampling) from
//! MT19937 seeded with `init_genrand(seed)`. Because the seed is reset before every call, the
//! chosen indices depend only on N.

use dam_core::Mask;

/// The most points the demo samples from a scribble.
pub const SCRIBBLE_MAX_POINTS: usize = 8;

/// MT19937 as numpy's legacy `RandomState` uses it (`init_genrand` seeding,
/// `genrand_int32` output).
#[derive(Clone)]
pub struct LegacyMt19937 {
    state: [u32; 624],
    pos: usize,
}

impl std::fmt::Debug for LegacyMt19937 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LegacyMt19937").field("pos", &self.pos).finish()
    }
}

impl LegacyMt19937 {
    /// `np.random.seed(seed)` for an integer seed (`init_genrand`).
    pub fn new(seed: u32) -> Self {
        let mut state = [0u32; 624];
        state[0] = seed;
        for i in 1..624 {
            state[i] = 1_812_433_253u32
                .wrapping_mul(state[i - 1] ^ (state[i - 1] >> 30))
                .wrapping_add(i as u32);
        }
        Self { state, pos: 624 }
    }

    fn twist(&mut self) {
        const UPPER: u32 = 0x8000_0000;
        const LOWER: u32 = 0x7fff_ffff;
        const MATRIX_A: u32 = 0x9908_b0df;
        for i in 0..624 {
            let y = (self.state[i] & UPPER) | (self.state[(i + 1) % 624] & LOWER);
            let mut v = self.state[(i + 397) % 624] ^ (y >> 1);
            if y & 1 != 0 {
                v ^= MATRIX_A;
            }
            self.state[i] = v;
        }
        self.pos = 0;
    }

    /// The next 32-bit output (`genrand_int32`, tempered).
    pub fn next_u32(&mut self) -> u32 {
        if self.pos >= 624 {
            self.twist();
        }
        let mut y = self.state[self.pos];
        self.pos += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^= y >> 18;
        y
    }

    /// numpy's `next_uint64` for MT19937: two outputs, the first in the high half.
    pub fn next_u64(&mut self) -> u64 {
        let hi = self.next_u32() as u64;
        (hi << 32) | self.next_u32() as u64
    }

    /// numpy's `random_interval(max)`: a uniform value in `0..=max` by masked rejection.
    pub fn random_interval(&mut self, max: u64) -> u64 {
        if max == 0 {
            return 0;
        }
        let mut mask = max;
        for shift in [1, 2, 4, 8, 16, 32] {
            mask |= mask >> shift;
        }
        if max <= u32::MAX as u64 {
            loop {
                let v = self.next_u32() as u64 & mask;
                if v <= max {
                    return v;
                }
            }
        } else {
            loop {
                let v = self.next_u64() & mask;
                if v <= max {
                    return v;
                }
            }
        }
    }
}

/// `np.random.seed(seed); np.random.choice(n, k, replace=False)` for `k <= n` (legacy
/// `RandomState`); `k` is clamped to `n`.
pub fn numpy_choice_without_replacement(n: usize, k: usize, seed: u32) -> Vec<usize> {
    let k = k.min(n);
    if n == 0 {
        return Vec::new();
    }
    let mut rng = LegacyMt19937::new(seed);
    if n <= u32::MAX as usize {
        let mut a: Vec<u32> = (0..n as u32).collect();
        for i in (1..n).rev() {
            let j = rng.random_interval(i as u64) as usize;
            a.swap(i, j);
        }
        a.truncate(k);
        a.into_iter().map(|v| v as usize).collect()
    } else {
        let mut a: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = rng.random_interval(i as u64) as usize;
            a.swap(i, j);
        }
        a.truncate(k);
        a
    }
}

/// The indices (into the row-major foreground pixel list) that the demo samples from a
/// scribble with N pixels: `choice(N, min(N, 8), replace=False)` after `seed(seed)`.
pub fn sample_scribble_indices(n: usize, seed: u32) -> Vec<usize> {
    numpy_choice_without_replacement(n, SCRIBBLE_MAX_POINTS, seed)
}

/// The points (x, y) the demo sends to SAM for a scribble: up to 8 foreground pixels chosen
/// with numpy's legacy RNG seeded with `seed` (the demo uses 0). Empty for an empty scribble.
pub fn sample_scribble_points(scribble: &Mask, seed: u32) -> Vec<(f64, f64)> {
    let pixels = scribble.foreground_pixels();
    sample_scribble_indices(pixels.len(), seed)
        .into_iter()
        .map(|i| (pixels[i].0 as f64, pixels[i].1 as f64))
        .collect()
}
