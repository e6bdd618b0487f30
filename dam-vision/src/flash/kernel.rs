//! The cubecl kernel behind [`super::VisionFlashOps::flash_attention`].
//!
//! One cube holds `planes` planes (4 where shared memory allows: [`planes_for`]); each plane
//! owns [`ROWS`] query rows of one head (a tensor-core tile high), so a cube covers
//! `ROWS · planes` queries and walks the keys in blocks of [`KEYS`], staged in shared memory
//! with `head_dim` zero-padded to a multiple of 16 (SigLIP's 72 → 80; zeros add nothing to a
//! dot product). Two passes over the keys:
//!
//! 1. the scores of each block, and per row the running maximum and sum of exponentials
//!    (each lane over the columns it reads, merged across the plane at the end): the
//!    softmax's statistics, exactly, before any probability is formed;
//! 2. the scores again, the probabilities `exp(s − max) / sum` **rounded to the activation
//!    dtype** (as transformers' eager attention rounds `softmax(…).to(q.dtype)`), and their
//!    product with the block's values accumulated in f32.
//!
//! The scores are rounded as the eager attention's are too: `q·kᵀ` (f32 accumulation) to the
//! activation dtype `E`, times the scale in f32, rounded to `E` again (the rounding points of
//! [`crate::sdpa::materialized`] and of the `fused-softmax` kernel). What differs from the
//! materialised form is only where the f32 sums are split. Recomputing `q·kᵀ` in the second
//! pass costs half the products again; it keeps the output accumulators in registers (no
//! rescaling of a running output) and the probabilities those of the exact softmax.
//!
//! The two tile products run on tensor cores (`cmma`, 16 × 16 × 16 fragments, f32
//! accumulators) where the device has them for `E` (CUDA with bf16 / f16) and as plain f32
//! loops over the same shared tiles otherwise (`tensor_cores` comptime): the same staging,
//! masking, statistics and rounding in both — what lavapipe tests is everything but the
//! fragment loads and stores. Rows past `seq_q` are computed on zeros and never written; keys
//! past `seq_kv` are zero in the tiles and left out of both passes.

use burn_cubecl::cubecl;
use burn_cubecl::cubecl::cmma;
use burn_cubecl::cubecl::prelude::*;

/// Query rows per plane: one tensor-core tile.
pub const ROWS: usize = 16;
/// Keys per block (two tensor-core tiles).
pub const KEYS: usize = 32;
/// The most planes per cube: `ROWS · 4` = 64 queries per cube.
pub const MAX_PLANES: usize = 4;
/// The tensor-core tile edge (m = n = k).
pub const TILE: usize = 16;

/// Shared memory a cube of `planes` planes takes, in bytes (`elem`: the activation dtype's
/// size): the queries, the key and value tiles (one buffer for both in the two-pass plain
/// variant), the probabilities in `E`, the f32 scores, and in one pass an f32 per query row.
pub fn shared_bytes(planes: usize, head_dim: usize, elem: usize, tensor_cores: bool, online: bool) -> usize {
    let dp = head_dim.next_multiple_of(TILE);
    let rows = ROWS * planes;
    let tiles = if tensor_cores || online { 2 } else { 1 };
    let factors = if online { rows * 4 } else { 0 };
    (rows * dp + tiles * KEYS * dp + rows * KEYS) * elem + rows * KEYS * 4 + factors
}

/// The most planes (4, 2 or 1, at most `most`) whose cube fits `max_shared` bytes of shared
/// memory; `None` if not even one plane's does.
pub fn planes_for(
    most: usize,
    max_shared: usize,
    head_dim: usize,
    elem: usize,
    tensor_cores: bool,
    online: bool,
) -> Option<usize> {
    [MAX_PLANES, 2, 1]
        .into_iter()
        .filter(|&planes| planes <= most.max(1))
        .find(|&planes| shared_bytes(planes, head_dim, elem, tensor_cores, online) <= max_shared)
}

/// The most f32 output accumulators a lane of the two-pass plain variant may hold (`ROWS` rows
/// × its `⌈dp / plane⌉` columns); above it [`two_passes_plain_takes`] says no.
pub const MAX_PLAIN_ACCUMULATORS: usize = 256;

/// Whether the two-pass **plain** variant takes `head_dim` on `plane`-wide planes: its lanes
/// hold `ROWS · ⌈dp / plane⌉` accumulators in a private array, and above
/// [`MAX_PLAIN_ACCUMULATORS`] it was seen to give wrong results (lavapipe with 4-wide
/// subgroups, `LP_NATIVE_VECTOR_WIDTH=128`, at head_dim 66–88: 320 or 384 accumulators —
/// garbage in some columns, varying with the data; 256 at head_dim 64 and every 8-wide case
/// right; the one-pass form, with the same array, right at every size). Cause not found (no
/// index of ours leaves its array); where this says no, burn's materialised attention runs
/// instead, as where the tiles do not fit. GPUs (32-wide planes) hold at most 64.
pub fn two_passes_plain_takes(head_dim: usize, plane: usize) -> bool {
    ROWS * head_dim.next_multiple_of(TILE).div_ceil(plane.max(1)) <= MAX_PLAIN_ACCUMULATORS
}

/// `softmax(q·kᵀ · scale)·v` for `[B, H, S, head_dim]` tensors (any strides); the grid is
/// `[⌈seq_q / (16 · planes)⌉, B·H, 1]`, the cube `[plane, planes, 1]` with `plane` the
/// device's plane width (32 where `tensor_cores`; a power of two where `online`). Two passes
/// over the keys ([`two_passes`]) or one (`online`: `super::online::one_pass`).
#[allow(clippy::too_many_arguments)]
#[cube(launch_unchecked)]
pub fn flash_attention_kernel<E: Float>(
    q: &Tensor<E>,
    k: &Tensor<E>,
    v: &Tensor<E>,
    out: &mut Tensor<E>,
    heads: u32,
    seq_q: u32,
    seq_kv: u32,
    scale: f32,
    #[comptime] head_dim: usize,
    #[comptime] plane: usize,
    #[comptime] planes: usize,
    #[comptime] tensor_cores: bool,
    #[comptime] online: bool,
    #[comptime] ablate: u32,
    #[define(E)] _dtype: ElemType,
) {
    if comptime![online] {
        crate::flash::online::one_pass::<E>(
            q,
            k,
            v,
            out,
            heads,
            seq_q,
            seq_kv,
            scale,
            head_dim,
            plane,
            planes,
            tensor_cores,
            ablate,
        );
    } else {
        two_passes::<E>(
            q,
            k,
            v,
            out,
            heads,
            seq_q,
            seq_kv,
            scale,
            head_dim,
            plane,
            planes,
            tensor_cores,
        );
    }
}

/// The two-pass form (this file's top comment).
// `(a + b - 1) / b` on runtime values: cube code spells the division out.
#[allow(clippy::too_many_arguments, clippy::manual_div_ceil)]
#[cube]
fn two_passes<E: Float>(
    q: &Tensor<E>,
    k: &Tensor<E>,
    v: &Tensor<E>,
    out: &mut Tensor<E>,
    heads: u32,
    seq_q: u32,
    seq_kv: u32,
    scale: f32,
    #[comptime] head_dim: usize,
    #[comptime] plane: usize,
    #[comptime] planes: usize,
    #[comptime] tensor_cores: bool,
) {
    let rows = comptime![ROWS];
    let keys = comptime![KEYS];
    let dp = comptime![head_dim.next_multiple_of(TILE)];
    let block_q = comptime![ROWS * planes];
    let threads = comptime![plane * planes];

    // 32-byte alignment: what a fragment load or store needs of its first element (every
    // tile offset below is a multiple of 32 bytes too).
    let mut q_s = Shared::<[E]>::new_aligned_slice(comptime![block_q * dp], 32usize);
    let mut k_s = Shared::<[E]>::new_aligned_slice(comptime![KEYS * dp], 32usize);
    let mut s_s = Shared::<[f32]>::new_aligned_slice(comptime![block_q * KEYS], 32usize);
    let mut p_s = Shared::<[E]>::new_aligned_slice(comptime![block_q * KEYS], 32usize);

    let lane = UNIT_POS_X as usize;
    let warp = UNIT_POS_Y as usize;
    let tid = warp * plane + lane;
    let bh = CUBE_POS_Y as usize;
    let (b, h) = (bh / heads as usize, bh % heads as usize);
    let q0 = CUBE_POS_X as usize * block_q;
    let seq_q = seq_q as usize;
    let seq_kv = seq_kv as usize;
    let blocks = (seq_kv + keys - 1) / keys;
    // This plane's rows of the score and probability tiles.
    let own = warp * rows * keys;

    let (q_base, q_strides) = head_of::<E>(q, b, h);
    let (k_base, k_strides) = head_of::<E>(k, b, h);
    let (v_base, v_strides) = head_of::<E>(v, b, h);
    stage_tile::<E>(
        q,
        &mut q_s,
        q_base,
        q_strides,
        q0,
        seq_q,
        tid,
        block_q,
        head_dim,
        threads,
        tensor_cores,
    );

    // Pass 1: each lane's running maximum and sum of exponentials per row, over the columns
    // it reads (for a lane that sees no key: −1e30 and 0, which the merge below ignores).
    let mut m = Array::<f32>::new(rows);
    let mut l = Array::<f32>::new(rows);
    #[unroll]
    for j in 0..rows {
        m[j] = f32::new(-1.0e30);
        l[j] = f32::new(0.0);
    }
    for kb in 0..blocks {
        let k0 = kb * keys;
        score_block::<E>(
            k,
            &mut k_s,
            &q_s,
            &mut s_s,
            k_base,
            k_strides,
            k0,
            seq_kv,
            (tid, warp, lane),
            head_dim,
            plane,
            threads,
            tensor_cores,
        );
        for c in range_stepped(lane, keys, plane) {
            if k0 + c < seq_kv {
                #[unroll]
                for j in 0..rows {
                    let s = rounded_score::<E>(s_s[own + j * keys + c], scale);
                    let top = max(m[j], s);
                    l[j] = l[j] * (m[j] - top).exp() + (s - top).exp();
                    m[j] = top;
                }
            }
        }
    }
    // The plane's statistics per row: the maximum, and 1 / the sum of exp(s − maximum).
    #[unroll]
    for j in 0..rows {
        let top = plane_max(m[j]);
        let sum = plane_sum(l[j] * (m[j] - top).exp());
        m[j] = top;
        l[j] = 1.0f32 / sum;
    }

    // Pass 2: probabilities and their product with the values.
    let out_base = b * out.stride(0) + h * out.stride(1);
    let (out_row, out_col) = (out.stride(2), out.stride(3));
    if comptime![tensor_cores] {
        let mut v_s = Shared::<[E]>::new_aligned_slice(comptime![KEYS * dp], 32usize);
        let mut v_r = Array::<E>::new(comptime![(KEYS * dp).div_ceil(threads)]);
        // The plane's 16 × dp output as dp / 16 f32 accumulator tiles, in registers.
        let mut acc = Sequence::<cmma::Matrix<f32>>::new();
        #[unroll]
        for _ in 0..comptime![dp / TILE] {
            acc.push(cmma::Matrix::<f32>::from_value(
                cmma::MatrixIdent::Accumulator,
                TILE,
                TILE,
                TILE,
                cmma::MatrixLayout::Undefined,
                0.0,
            ));
        }
        for kb in 0..blocks {
            let k0 = kb * keys;
            // The block's values loaded while its keys are (`score_block`), stored after.
            fetch_rows::<E>(
                v, &mut v_r, v_base, v_strides, k0, seq_kv, tid, KEYS, head_dim, threads, true,
            );
            score_block::<E>(
                k,
                &mut k_s,
                &q_s,
                &mut s_s,
                k_base,
                k_strides,
                k0,
                seq_kv,
                (tid, warp, lane),
                head_dim,
                plane,
                threads,
                true,
            );
            // (The previous block's values were read before `score_block`'s first barrier.)
            commit_rows::<E>(&v_r, &mut v_s, tid, KEYS, head_dim, threads, true);
            probabilities::<E>(&s_s, &mut p_s, &m, &l, warp, lane, k0, seq_kv, scale, plane);
            sync_cube();
            add_probabilities_times_values::<E>(&p_s, &v_s, &acc, own, head_dim);
        }
        // Out through the plane's own score rows, one 16 × 16 tile at a time.
        #[unroll]
        for n in 0..comptime![dp / TILE] {
            sync_cube();
            store_own_rows(acc.index(n), &mut s_s, own);
            sync_cube();
            for i in range_stepped(lane, comptime![ROWS * TILE], plane) {
                let (r, c) = (i / TILE, i % TILE);
                let (row, d) = (q0 + warp * rows + r, n * TILE + c);
                if row < seq_q && d < head_dim {
                    out[out_base + row * out_row + d * out_col] = E::cast_from(s_s[own + r * keys + c]);
                }
            }
        }
    } else {
        // Lane `lane` owns output columns lane, lane + plane, … of the plane's 16 rows (runtime
        // loops, as in `scores`).
        let per_lane = comptime![dp.div_ceil(plane)];
        let mut o = Array::<f32>::new(comptime![ROWS * dp.div_ceil(plane)]);
        for i in 0..comptime![ROWS * dp.div_ceil(plane)] {
            o[i] = f32::new(0.0);
        }
        for kb in 0..blocks {
            let k0 = kb * keys;
            score_block::<E>(
                k,
                &mut k_s,
                &q_s,
                &mut s_s,
                k_base,
                k_strides,
                k0,
                seq_kv,
                (tid, warp, lane),
                head_dim,
                plane,
                threads,
                false,
            );
            // The values in place of the keys (one tile buffer: shared memory; every plane has
            // read the keys before `score_block`'s last barrier).
            stage_tile::<E>(
                v, &mut k_s, v_base, v_strides, k0, seq_kv, tid, KEYS, head_dim, threads, false,
            );
            probabilities::<E>(&s_s, &mut p_s, &m, &l, warp, lane, k0, seq_kv, scale, plane);
            sync_cube();
            for t in 0..per_lane {
                let d = lane + t * plane;
                if d < dp {
                    for j in 0..rows {
                        let mut sum = f32::new(0.0);
                        for c in 0..keys {
                            sum += f32::cast_from(p_s[own + j * keys + c]) * f32::cast_from(k_s[c * dp + d]);
                        }
                        o[j * per_lane + t] += sum;
                    }
                }
            }
        }
        for t in 0..per_lane {
            let d = lane + t * plane;
            if d < head_dim {
                for j in 0..rows {
                    let row = q0 + warp * rows + j;
                    if row < seq_q {
                        out[out_base + row * out_row + d * out_col] = E::cast_from(o[j * per_lane + t]);
                    }
                }
            }
        }
    }
}

/// On tensor cores: `acc[n] += P · V[:, n·16..]` for the plane's probabilities `P` (its 16 rows
/// of `p_s` from `own`: 16 × KEYS, row-major, stride KEYS) and the value tile (`KEYS × dp`,
/// row-major, stride dp).
#[cube]
pub(super) fn add_probabilities_times_values<E: Float>(
    p_s: &[E],
    v_s: &[E],
    acc: &Sequence<cmma::Matrix<f32>>,
    own: usize,
    #[comptime] head_dim: usize,
) {
    let dp = comptime![head_dim.next_multiple_of(TILE)];
    #[unroll]
    for n in 0..comptime![head_dim.div_ceil(TILE)] {
        #[unroll]
        for t in 0..comptime![KEYS / TILE] {
            let a = cmma::Matrix::<E>::from_slice(
                cmma::MatrixIdent::A,
                TILE,
                TILE,
                TILE,
                cmma::MatrixLayout::RowMajor,
                &p_s[own + t * TILE..own + t * TILE + comptime![(ROWS - 1) * KEYS + TILE]],
                comptime![KEYS as u32],
            );
            let start = t * TILE * dp + n * TILE;
            let b_tile = cmma::Matrix::<E>::from_slice(
                cmma::MatrixIdent::B,
                TILE,
                TILE,
                TILE,
                cmma::MatrixLayout::RowMajor,
                &v_s[start..start + comptime![(TILE - 1) * head_dim.next_multiple_of(TILE) + TILE]],
                dp as u32,
            );
            let c = acc.index(n);
            cmma::execute(&a, &b_tile, c, c);
        }
    }
}

/// Accumulator tile `c` into the plane's own 16 rows of `s_s` (from `own`; columns 0..16,
/// stride KEYS), where every lane of the plane can read it after a plane barrier.
#[cube]
pub(super) fn store_own_rows(c: &cmma::Matrix<f32>, s_s: &mut [f32], own: usize) {
    cmma::store(
        &mut s_s[own..own + comptime![(ROWS - 1) * KEYS + TILE]],
        c,
        comptime![KEYS as u32],
        cmma::MatrixLayout::RowMajor,
    );
}

/// One key block's scores: the block's keys staged (after every plane has read the previous
/// block's tiles), then each plane's `q·kᵀ` into its rows of `s_s`, then a barrier, so the
/// scores are readable by every lane and the key tile free to be replaced.
#[allow(clippy::too_many_arguments)]
#[cube]
fn score_block<E: Float>(
    k: &Tensor<E>,
    k_s: &mut [E],
    q_s: &[E],
    s_s: &mut [f32],
    k_base: usize,
    k_strides: (usize, usize),
    k0: usize,
    seq_kv: usize,
    units: (usize, usize, usize),
    #[comptime] head_dim: usize,
    #[comptime] plane: usize,
    #[comptime] threads: usize,
    #[comptime] tensor_cores: bool,
) {
    let (tid, warp, lane) = units;
    sync_cube();
    stage_tile::<E>(
        k,
        k_s,
        k_base,
        k_strides,
        k0,
        seq_kv,
        tid,
        KEYS,
        head_dim,
        threads,
        tensor_cores,
    );
    sync_cube();
    scores::<E>(q_s, &*k_s, s_s, warp, lane, head_dim, plane, tensor_cores);
    sync_cube();
}

/// Rows `r0..r0 + rows` of one head of `x` (`[B, H, S, head_dim]`, the head's first element at
/// `base`, its row and column strides `strides`) into `tile` (`rows × dp`, row-major), zero past
/// `len` and past `head_dim`; every unit of the cube takes a share. The cube's queries (`rows`
/// = 16 · planes), a block's keys or values (`rows` = KEYS).
///
/// `unrolled` (the tensor-core variant, on a GPU): every load of the unit's share issued
/// before the first store ([`fetch_rows`], then [`commit_rows`]) — a runtime loop of
/// load-then-store waits a global load's latency per element (20 times a key tile at 4
/// planes). Else a runtime loop (a software driver's shader compiler is slow on long
/// straight-line code).
#[allow(clippy::too_many_arguments)]
#[cube]
pub(super) fn stage_tile<E: Float>(
    x: &Tensor<E>,
    tile: &mut [E],
    base: usize,
    strides: (usize, usize),
    r0: usize,
    len: usize,
    tid: usize,
    #[comptime] rows: usize,
    #[comptime] head_dim: usize,
    #[comptime] threads: usize,
    #[comptime] unrolled: bool,
) {
    if comptime![unrolled] {
        let mut regs = Array::<E>::new(comptime![(rows * head_dim.next_multiple_of(TILE)).div_ceil(threads)]);
        fetch_rows::<E>(x, &mut regs, base, strides, r0, len, tid, rows, head_dim, threads, true);
        commit_rows::<E>(&regs, tile, tid, rows, head_dim, threads, true);
    } else {
        for i in range_stepped(tid, comptime![rows * head_dim.next_multiple_of(TILE)], threads) {
            tile[i] = tile_element::<E>(x, base, strides, r0, len, i, head_dim);
        }
    }
}

/// This unit's share of [`stage_tile`]'s rows into registers: element `tid + i · threads` of
/// the tile at `regs[i]`. Unrolled where `unrolled` (so `regs` stays in registers on a GPU and
/// the loads are in flight together). The strides come in as values read once per kernel:
/// read here, each element's address would wait for two loads of the tensor's metadata.
#[allow(clippy::too_many_arguments)]
#[cube]
pub(super) fn fetch_rows<E: Float>(
    x: &Tensor<E>,
    regs: &mut Array<E>,
    base: usize,
    strides: (usize, usize),
    r0: usize,
    len: usize,
    tid: usize,
    #[comptime] rows: usize,
    #[comptime] head_dim: usize,
    #[comptime] threads: usize,
    #[comptime] unrolled: bool,
) {
    let size = comptime![rows * head_dim.next_multiple_of(TILE)];
    #[unroll(unrolled)]
    for i in 0..comptime![(rows * head_dim.next_multiple_of(TILE)).div_ceil(threads)] {
        let e = tid + i * threads;
        let mut value = E::new(0.0);
        if e < size {
            value = tile_element::<E>(x, base, strides, r0, len, e, head_dim);
        }
        regs[i] = value;
    }
}

/// Element `e` of [`stage_tile`]'s tile (`rows × dp`, row-major): row `r0 + e / dp` of the
/// head, column `e % dp`; zero past `len` and past `head_dim`.
#[cube]
fn tile_element<E: Float>(
    x: &Tensor<E>,
    base: usize,
    strides: (usize, usize),
    r0: usize,
    len: usize,
    e: usize,
    #[comptime] head_dim: usize,
) -> E {
    let dp = comptime![head_dim.next_multiple_of(TILE)];
    let (r, d) = (e / dp, e % dp);
    let (row_stride, col_stride) = strides;
    let mut value = E::new(0.0);
    if r0 + r < len && d < head_dim {
        value = x[base + (r0 + r) * row_stride + d * col_stride];
    }
    value
}

/// Where one head of `x` (`[B, H, S, head_dim]`) starts and its row and column strides, read
/// once per kernel (see [`fetch_rows`]).
#[cube]
pub(super) fn head_of<E: Float>(x: &Tensor<E>, b: usize, h: usize) -> (usize, (usize, usize)) {
    (b * x.stride(0) + h * x.stride(1), (x.stride(2), x.stride(3)))
}

/// [`fetch_rows`]'s registers into the shared tile.
#[cube]
pub(super) fn commit_rows<E: Float>(
    regs: &Array<E>,
    tile: &mut [E],
    tid: usize,
    #[comptime] rows: usize,
    #[comptime] head_dim: usize,
    #[comptime] threads: usize,
    #[comptime] unrolled: bool,
) {
    let size = comptime![rows * head_dim.next_multiple_of(TILE)];
    #[unroll(unrolled)]
    for i in 0..comptime![(rows * head_dim.next_multiple_of(TILE)).div_ceil(threads)] {
        let e = tid + i * threads;
        if e < size {
            tile[e] = regs[i];
        }
    }
}

/// The plane's 16 × KEYS scores `q·kᵀ` (f32 accumulation) into its rows of `s_s`.
#[allow(clippy::too_many_arguments)]
#[cube]
pub(super) fn scores<E: Float>(
    q_s: &[E],
    k_s: &[E],
    s_s: &mut [f32],
    warp: usize,
    lane: usize,
    #[comptime] head_dim: usize,
    #[comptime] plane: usize,
    #[comptime] tensor_cores: bool,
) {
    let dp = comptime![head_dim.next_multiple_of(TILE)];
    let keys = comptime![KEYS];
    let q_own = warp * ROWS * dp;
    let s_own = warp * ROWS * keys;
    if comptime![tensor_cores] {
        // S[:, n·16..] = Σ_t Q[:, t·16..] (16 × 16, row-major, stride dp) · K[n·16.., t·16..]ᵀ
        // (16 × 16: K's rows read column-major, stride dp).
        #[unroll]
        for n in 0..comptime![KEYS / TILE] {
            let c = cmma::Matrix::<f32>::from_value(
                cmma::MatrixIdent::Accumulator,
                TILE,
                TILE,
                TILE,
                cmma::MatrixLayout::Undefined,
                0.0,
            );
            #[unroll]
            for t in 0..comptime![head_dim.div_ceil(TILE)] {
                let qa = q_own + t * TILE;
                let a = cmma::Matrix::<E>::from_slice(
                    cmma::MatrixIdent::A,
                    TILE,
                    TILE,
                    TILE,
                    cmma::MatrixLayout::RowMajor,
                    &q_s[qa..qa + comptime![(ROWS - 1) * head_dim.next_multiple_of(TILE) + TILE]],
                    dp as u32,
                );
                let kb = n * TILE * dp + t * TILE;
                let b = cmma::Matrix::<E>::from_slice(
                    cmma::MatrixIdent::B,
                    TILE,
                    TILE,
                    TILE,
                    cmma::MatrixLayout::ColMajor,
                    &k_s[kb..kb + comptime![(TILE - 1) * head_dim.next_multiple_of(TILE) + TILE]],
                    dp as u32,
                );
                cmma::execute(&a, &b, &c, &c);
            }
            let so = s_own + n * TILE;
            cmma::store(
                &mut s_s[so..so + comptime![(ROWS - 1) * KEYS + TILE]],
                &c,
                keys as u32,
                cmma::MatrixLayout::RowMajor,
            );
        }
    } else {
        // Runtime loops in the plain variant: unrolled, its loop nests make shaders that take
        // a software Vulkan driver minutes to compile.
        for c in range_stepped(lane, keys, plane) {
            for j in 0..ROWS {
                let mut sum = f32::new(0.0);
                for d in 0..dp {
                    sum += f32::cast_from(q_s[q_own + j * dp + d]) * f32::cast_from(k_s[c * dp + d]);
                }
                s_s[s_own + j * keys + c] = sum;
            }
        }
    }
}

/// The plane's probabilities of this block, `exp(s − max) / sum` rounded to `E` (zero for keys
/// past `seq_kv`), into its rows of `p_s`.
#[allow(clippy::too_many_arguments)]
#[cube]
fn probabilities<E: Float>(
    s_s: &[f32],
    p_s: &mut [E],
    top: &Array<f32>,
    inv_sum: &Array<f32>,
    warp: usize,
    lane: usize,
    k0: usize,
    seq_kv: usize,
    scale: f32,
    #[comptime] plane: usize,
) {
    let keys = comptime![KEYS];
    let own = warp * ROWS * keys;
    for c in range_stepped(lane, keys, plane) {
        let live = k0 + c < seq_kv;
        #[unroll]
        for j in 0..ROWS {
            let mut p = f32::new(0.0);
            if live {
                p = (rounded_score::<E>(s_s[own + j * keys + c], scale) - top[j]).exp() * inv_sum[j];
            }
            p_s[own + j * keys + c] = E::cast_from(p);
        }
    }
}

/// A score as the eager attention holds it: `q·kᵀ` rounded to `E`, times `scale`, rounded to
/// `E` again, read as f32.
#[cube]
pub(super) fn rounded_score<E: Float>(acc: f32, scale: f32) -> f32 {
    f32::cast_from(E::cast_from(f32::cast_from(E::cast_from(acc)) * scale))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_pass_plain_variant_declines_only_narrow_planes_at_wide_heads() {
        // SigLIP's head_dim 72 (padded to 80): 64, 160 and 320 accumulators a lane.
        assert!(two_passes_plain_takes(72, 32));
        assert!(two_passes_plain_takes(72, 8));
        assert!(!two_passes_plain_takes(72, 4));
        // 64 on 4-wide planes is 256, the most seen right; the largest head on 8-wide planes too.
        assert!(two_passes_plain_takes(64, 4));
        assert!(two_passes_plain_takes(crate::flash::MAX_HEAD_DIM, 8));
        assert!(!two_passes_plain_takes(66, 4));
    }
}
