//! The hand-written matrix product (`gemm_hand.cu`): which of its variants the library takes,
//! the text NVRTC compiles for one, the words of its arguments, and which variant a product
//! gets. The launch is in `hand_launch.rs` (feature `cube`); this part is plain Rust, tested
//! everywhere.
//!
//! Why a kernel written in CUDA C++ rather than in cubecl: the vision linears are ≈ 32 of a
//! 42 ms encode on an H100 at 30–65 TFLOP/s through every cubek routine, where cuBLAS does
//! 150–260 (docs/performance.md, "The matmul routines"). On the default (LLVM) CUDA build
//! cubecl withholds `cp.async`, so every routine loads its tiles synchronously; cubecl's other
//! compiler (CUDA C++ through NVRTC, the facade's `cuda-nvrtc`) also takes kernels as text
//! (`PrecompiledSource`), which is how this one is launched. Hand-written because no crate
//! offers a bf16 tensor-core product callable on cubecl's stream (cuBLAS is not reachable
//! from it).
//!
//! Only on that build, only bf16, and only once a small product through each variant has
//! matched burn's on the device (`super::hand_available`): anywhere else `hand` is burn's op.

/// One tile configuration of `gemm_hand.cu` (its `GEMM_HAND_VARIANTS` entry): the block's
/// tile `bm × bn`, the K of a stage `bk`, the shared-memory ring's depth `stages`, a warp's
/// tile `wm × wn` (8 warps), and the blocks an SM should hold (`__launch_bounds__`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HandVariant {
    /// Rows of the block's tile.
    pub bm: u32,
    /// Columns of the block's tile.
    pub bn: u32,
    /// K of one stage.
    pub bk: u32,
    /// Stages of the shared-memory ring.
    pub stages: u32,
    /// Rows of a warp's tile.
    pub wm: u32,
    /// Columns of a warp's tile.
    pub wn: u32,
    /// Blocks an SM should hold (caps the registers).
    pub min_blocks: u32,
}

/// Threads a block (8 warps), as `THREADS` in the kernel.
pub const THREADS: u32 = 256;

/// The variants the library launches: the first four of `GEMM_HAND_VARIANTS`, the ones whose
/// ring fits in the 48 KiB a kernel may declare statically — cubecl launches a precompiled
/// kernel with no dynamic shared memory. Same order and numbers as the `.cu` (a test reads it).
pub const HAND_VARIANTS: [HandVariant; 4] = [
    HandVariant::new([64, 128, 32, 3, 32, 32, 2]),
    HandVariant::new([128, 128, 32, 2, 64, 32, 2]),
    HandVariant::new([128, 64, 32, 3, 32, 32, 2]),
    HandVariant::new([64, 64, 32, 4, 32, 16, 3]),
];

/// The kernel's text, as the crate ships it.
pub const SOURCE: &str = include_str!("gemm_hand.cu");

/// The most shared memory a kernel may declare statically.
pub const MAX_STATIC_SHARED: u32 = 48 * 1024;

impl HandVariant {
    /// From the numbers of a `GEMM_HAND_VARIANTS` entry, in its order: `X(BM, BN, BK, STAGES,
    /// WM, WN, MIN_BLOCKS)`.
    pub const fn new(x: [u32; 7]) -> Self {
        Self {
            bm: x[0],
            bn: x[1],
            bk: x[2],
            stages: x[3],
            wm: x[4],
            wn: x[5],
            min_blocks: x[6],
        }
    }

    /// The name `bench --matmul` takes after `hand-`: `64x128x32-s3`.
    pub fn name(&self) -> String {
        format!("{}x{}x{}-s{}", self.bm, self.bn, self.bk, self.stages)
    }

    /// Shared memory of the ring, bytes (`Shape::SHARED_BYTES`: rows padded by 8 elements).
    pub fn shared_bytes(&self) -> u32 {
        let a = self.bm * (self.bk + 8);
        let b = self.bk * (self.bn + 8);
        self.stages * (a + b) * 2
    }

    /// The text NVRTC compiles for this variant: `GEMM_HAND_LIBRARY` and the variant's numbers
    /// defined in front of [`SOURCE`] (one entry point, `gemm_hand`).
    pub fn source(&self) -> String {
        format!(
            "#define GEMM_HAND_LIBRARY 1\n#define GEMM_HAND_BM {}\n#define GEMM_HAND_BN {}\n\
             #define GEMM_HAND_BK {}\n#define GEMM_HAND_STAGES {}\n#define GEMM_HAND_WM {}\n\
             #define GEMM_HAND_WN {}\n#define GEMM_HAND_MIN_BLOCKS {}\n{SOURCE}",
            self.bm, self.bn, self.bk, self.stages, self.wm, self.wn, self.min_blocks
        )
    }

    /// The launch grid for `y [m, n]`: (⌈n / bn⌉, ⌈m / bm⌉).
    pub fn grid(&self, m: usize, n: usize) -> (u32, u32) {
        (n.div_ceil(self.bn as usize) as u32, m.div_ceil(self.bm as usize) as u32)
    }
}

/// The entry point's name in [`HandVariant::source`].
pub const ENTRY_POINT: &str = "gemm_hand";

/// The kernel's `GemmHandArgs` (eight u64 words, passed by value after the four buffers):
/// sizes, row strides (elements) and the two flags.
#[allow(clippy::too_many_arguments)]
pub fn args(m: usize, n: usize, k: usize, sx: usize, sw: usize, sy: usize, bias: bool, gelu: bool) -> Vec<u64> {
    [m, n, k, sx, sw, sy, bias as usize, gelu as usize]
        .iter()
        .map(|&v| v as u64)
        .collect()
}

/// Why a product cannot take the kernel as it is (the caller then uses burn's).
pub fn unsupported(m: usize, n: usize, k: usize) -> Option<String> {
    if !n.is_multiple_of(8) || !k.is_multiple_of(8) {
        return Some(format!("K = {k} and N = {n} must be multiples of 8 (16-byte copies)"));
    }
    if [m, n, k].iter().any(|&d| d == 0 || d > i32::MAX as usize) {
        return Some(format!("sizes {m} × {k} → {n} out of range"));
    }
    None
}

/// The variant a product `[m, k] · [k, n]` gets on a device of `sms` multiprocessors among the
/// variants in `working` (bit i = `HAND_VARIANTS[i]`), or `None` if none is.
///
/// **A model, not a measurement** (none on a GPU yet; `scripts/gemm-outside.py` times each
/// variant at these shapes and `bench --matmul linear=hand-NAME` fixes one): an SM runs its
/// ⌈blocks / sms⌉ tiles one after another, a tile costing K · max(bm · bn / 40, bm + bn) — the
/// larger of its tensor-core work and its loads, taking ≈ 40 multiply-adds per element
/// loaded as an H100 SM's balance for `mma.sync`. Ties go to the earlier variant. At SigLIP's
/// M = 729 on 132 SMs it picks 64 × 128 for every vision linear.
pub fn pick(m: usize, n: usize, sms: usize, working: u8) -> Option<usize> {
    let sms = sms.max(1);
    let cost = |v: &HandVariant| {
        let (gx, gy) = v.grid(m, n);
        let tiles_per_sm = (gx as usize * gy as usize).div_ceil(sms);
        let tile = ((v.bm * v.bn) as f64 / 40.0).max((v.bm + v.bn) as f64);
        tiles_per_sm as f64 * tile
    };
    HAND_VARIANTS
        .iter()
        .enumerate()
        .filter(|(i, _)| working & (1 << i) != 0)
        .min_by(|(i, a), (j, b)| cost(a).total_cmp(&cost(b)).then(i.cmp(j)))
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `GEMM_HAND_VARIANTS`' entries, parsed from the `.cu`.
    fn variants_in_source() -> Vec<[u32; 7]> {
        let start = SOURCE.find("#define GEMM_HAND_VARIANTS(X)").expect("the variant list");
        SOURCE[start..]
            .lines()
            .skip(1)
            .map_while(|line| line.trim().strip_prefix("X("))
            .map(|entry| {
                let numbers: Vec<u32> = entry
                    .split(')')
                    .next()
                    .unwrap()
                    .split(',')
                    .map(|v| v.trim().parse().unwrap())
                    .collect();
                numbers.try_into().unwrap()
            })
            .collect()
    }

    #[test]
    fn the_library_takes_the_sources_first_variants_exactly_those_within_static_shared_memory() {
        let all = variants_in_source();
        assert_eq!(all.len(), 10, "{all:?}");
        for (i, v) in HAND_VARIANTS.iter().enumerate() {
            assert_eq!(
                [v.bm, v.bn, v.bk, v.stages, v.wm, v.wn, v.min_blocks],
                all[i],
                "variant {i}"
            );
            // 8 warps of wm × wn tiles cover the block's tile.
            assert_eq!((v.bm / v.wm) * (v.bn / v.wn) * 32, THREADS, "{}", v.name());
        }
        let shared = |e: &[u32; 7]| HandVariant::new(*e).shared_bytes();
        let fitting = all.iter().take_while(|e| shared(e) <= MAX_STATIC_SHARED).count();
        assert_eq!(fitting, HAND_VARIANTS.len());
        assert!(
            all[fitting..].iter().all(|e| shared(e) > MAX_STATIC_SHARED),
            "the fitting ones come first"
        );
        // 64 × 128 × 32, three stages: 3 · (64 · 40 + 32 · 136) · 2 bytes.
        assert_eq!(HAND_VARIANTS[0].shared_bytes(), 41_472);
    }

    #[test]
    fn a_variants_source_defines_its_numbers_in_front_of_the_kernel() {
        let v = HAND_VARIANTS[3];
        let text = v.source();
        let defines: Vec<&str> = text
            .lines()
            .take_while(|l| l.starts_with("#define GEMM_HAND_"))
            .collect();
        assert_eq!(defines.len(), 8, "{defines:?}");
        assert!(defines.contains(&"#define GEMM_HAND_WN 16") && defines.contains(&"#define GEMM_HAND_MIN_BLOCKS 3"));
        assert!(text.ends_with(SOURCE));
        assert!(SOURCE.contains(&format!("GEMM_HAND_STRIDED_KERNEL({ENTRY_POINT},")));
        assert_eq!(v.name(), "64x64x32-s4");
        assert_eq!(v.grid(729, 1152), (18, 12));
    }

    #[test]
    fn the_arguments_are_eight_words_in_the_structs_order() {
        assert_eq!(
            args(729, 4304, 1152, 1160, 4304, 4312, true, false),
            vec![729, 4304, 1152, 1160, 4304, 4312, 1, 0]
        );
        let fields = SOURCE
            .split("struct GemmHandArgs {")
            .nth(1)
            .unwrap()
            .split('}')
            .next()
            .unwrap();
        assert_eq!(fields.trim(), "unsigned long long m, n, k, sx, sw, sy, bias, gelu;");
    }

    #[test]
    fn products_the_kernel_cannot_take_say_why() {
        assert_eq!(unsupported(729, 3456, 1152), None);
        assert!(unsupported(729, 3456, 1150).unwrap().contains("multiples of 8"));
        assert!(unsupported(0, 8, 8).unwrap().contains("out of range"));
    }

    #[test]
    fn the_model_picks_per_shape_among_the_working_variants() {
        // SigLIP's linears on an H100's 132 SMs.
        for n in [3456, 1152, 4304] {
            assert_eq!(pick(729, n, 132, 0b1111), Some(0), "N = {n}");
        }
        // Without 64 × 128: 128 × 64 costs the same tiles at the same rate.
        assert_eq!(pick(729, 1152, 132, 0b1110), Some(2));
        // 16 regions' crops in one batch: 23 328 rows fill every SM ≈ 95 times over; 128 × 128
        // costs the same per element there, and a partial last round more.
        assert_eq!(pick(23_328, 4304, 132, 0b1111), Some(0));
        assert_eq!(pick(23_328, 4304, 132, 0b0010), Some(1));
        assert_eq!(pick(729, 1152, 132, 0), None);
    }
}
