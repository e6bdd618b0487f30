//! The hand-written flash attention (`flash/flash_hand.cu`, the `hand` form of
//! [`crate::sdpa`]): its text, the words of its arguments, its launch shape and what it takes.
//! The launch is in `flash/hand.rs` (feature `cube`); this part is plain Rust, tested
//! everywhere.
//!
//! Why: the vision attention is ≈ 15 of a 42 ms encode on an H100 (78 attentions at 194 µs
//! in the `fused-softmax` form, against 29.8 µs for PyTorch's flash SDPA), and our cubecl
//! flash kernel ran at 1.3–2.9 ms a call for reasons not yet profiled (docs/performance.md).
//! This one is written straight in CUDA C++ with `mma.sync` (FA2's online softmax in
//! registers) and launched through cubecl as kernel text (`PrecompiledSource`) on the build
//! whose compiler is NVRTC (the facade's `cuda-nvrtc`) — the only build that takes text.
//! SigLIP's shape only: bf16, head_dim 72, no mask; anything else takes `fused-softmax`.
//! Its first use on a CUDA device compares it with the materialised attention there
//! (`flash::hand_available`); if it fails, `hand` is `fused-softmax` for the process.
//! **Not yet run on a GPU** (written 2026-11-28 without one; the `.cu`'s own source is checked
//! on the CPU by `scripts/flash-hand-check.cpp`).

/// The kernel's text, as the crate ships it.
pub const SOURCE: &str = include_str!("flash/flash_hand.cu");

/// The library's entry point in [`SOURCE`].
pub const ENTRY_POINT: &str = "flash_hand";

/// The one head_dim the kernel takes (`HD` in the `.cu`).
pub const HEAD_DIM: usize = 72;

/// Queries a block (`BM`: 4 warps × 16 rows).
pub const BLOCK_QUERIES: usize = 64;

/// The block: 32 lanes × 4 warps.
pub const BLOCK: (u32, u32) = (32, 4);

/// The launch grid: (⌈seq_q / 64⌉, batch · heads).
pub fn grid(batch: usize, heads: usize, seq_q: usize) -> (u32, u32) {
    (seq_q.div_ceil(BLOCK_QUERIES) as u32, (batch * heads) as u32)
}

/// The kernel's `FlashHandArgs` (20 u64 words, passed by value after the four buffers):
/// heads, query and key counts, the scale's f32 bits, then the four strides (elements,
/// `[B, H, S, D]` order) of q, k, v and out.
pub fn args(heads: usize, seq_q: usize, seq_kv: usize, scale: f32, strides: [[usize; 4]; 4]) -> Vec<u64> {
    let mut words = vec![heads as u64, seq_q as u64, seq_kv as u64, scale.to_bits() as u64];
    words.extend(strides.iter().flatten().map(|&s| s as u64));
    words
}

/// Why an attention of q `[B, H, Sq, Dh]` and k `[B, H, Skv, Dh]` cannot take the kernel
/// (`None`: it can), `bf16` whether the activations are.
pub fn unsupported(q: [usize; 4], k: [usize; 4], bf16: bool) -> Option<String> {
    if !bf16 {
        return Some("the kernel is bf16 only".into());
    }
    if q[3] != HEAD_DIM || k[3] != HEAD_DIM {
        return Some(format!("head_dim {} (the kernel's is {HEAD_DIM})", q[3]));
    }
    if q[0] != k[0] || q[1] != k[1] {
        return Some(format!("q {q:?} and k {k:?} differ in batch or heads"));
    }
    let grid_y = q[0] * q[1];
    if q.contains(&0) || k[2] == 0 || grid_y > 65_535 || q[2] > u32::MAX as usize || k[2] > u32::MAX as usize {
        return Some(format!("q {q:?}, k {k:?} out of the kernel's range"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_arguments_are_the_structs_words_in_order() {
        let fields = SOURCE
            .split("struct FlashHandArgs {")
            .nth(1)
            .unwrap()
            .split('}')
            .next()
            .unwrap();
        let fields: Vec<&str> = fields.split(';').map(str::trim).filter(|f| !f.is_empty()).collect();
        assert_eq!(
            fields,
            [
                "unsigned long long heads, seq_q, seq_kv, scale_bits",
                "unsigned long long qs[4], ks[4], vs[4], os[4]"
            ]
        );
        let strides = [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12], [13, 14, 15, 16]];
        let words = args(16, 729, 700, 0.5, strides);
        assert_eq!(words.len(), 20);
        assert_eq!(&words[..4], &[16, 729, 700, 0.5f32.to_bits() as u64]);
        assert_eq!(words[4..].to_vec(), (1..=16).collect::<Vec<u64>>());
    }

    #[test]
    fn the_launch_shape_is_the_kernels() {
        for (name, value) in [("HD", HEAD_DIM), ("BM", BLOCK_QUERIES)] {
            assert!(SOURCE.contains(&format!("#define {name} {value} ")), "{name}");
        }
        assert!(SOURCE.contains("__launch_bounds__(128) flash_hand("));
        assert_eq!(BLOCK.0 * BLOCK.1, 128);
        assert_eq!(grid(2, 16, 729), (12, 32));
    }

    #[test]
    fn attentions_the_kernel_cannot_take_say_why() {
        assert_eq!(unsupported([1, 16, 729, 72], [1, 16, 729, 72], true), None);
        assert!(
            unsupported([1, 16, 729, 72], [1, 16, 729, 72], false)
                .unwrap()
                .contains("bf16")
        );
        assert!(
            unsupported([1, 16, 729, 64], [1, 16, 729, 64], true)
                .unwrap()
                .contains("head_dim 64")
        );
        assert!(
            unsupported([1, 16, 729, 72], [2, 16, 729, 72], true)
                .unwrap()
                .contains("differ")
        );
        assert!(
            unsupported([1, 16, 0, 72], [1, 16, 729, 72], true)
                .unwrap()
                .contains("range")
        );
    }
}
