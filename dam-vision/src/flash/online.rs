//! The flash kernel in **one pass** over the keys (`flash::set_online`, `DAM_FLASH_ONLINE=on`):
//! the softmax's statistics kept as they go (an "online" softmax), so each key and value tile
//! is read once and each score computed once — half the tile products and key loads of the
//! two-pass kernel in `kernel.rs`, whose layout it shares (one plane per [`ROWS`] query rows,
//! up to 4 planes a cube, keys in blocks of [`KEYS`], `head_dim` padded to a multiple of 16).
//!
//! Per key block: the key and value tiles staged together from registers the previous block
//! fetched (the global loads of block `kb + 1` are in flight while block `kb` computes); the
//! plane's scores `q·kᵀ` (rounded as the eager attention rounds them, as in `kernel.rs`); then
//! lanes by rows (two lanes a row on a 32-wide plane) take the block's row maximum, and the
//! running maximum `m` moves only when the block's exceeds it by more than [`GROWTH`] (natural
//! log units). The probabilities `exp(s − m)` — unnormalised, at most `e^GROWTH` — are rounded
//! to the activation dtype and multiplied with the values into f32 accumulators; when `m`
//! moves, the accumulated rows are scaled by `exp(m_old − m)` first (on tensor cores: the
//! accumulator tiles through shared memory, rows scaled, loaded back — rare after the first
//! block, hence the threshold). At the end, each row is divided by its sum of exponentials.
//!
//! Exact in exact arithmetic for any `m` (the division by the sum cancels it); the threshold
//! only bounds the unnormalised probabilities. What differs from the eager attention (and from
//! the two-pass kernel) is where the dtype rounding falls: `round(exp(s − m))` and a division
//! at the end, instead of `round(exp(s − max) / sum)` — the same relative size, as PyTorch's
//! flash SDPA rounds. In f32 the two kernels agree to summation order.

use burn_cubecl::cubecl;
use burn_cubecl::cubecl::cmma;
use burn_cubecl::cubecl::prelude::*;

use super::kernel::{
    KEYS, ROWS, TILE, add_probabilities_times_values, commit_rows, fetch_rows, head_of, rounded_score, scores,
    stage_tile, store_own_rows,
};

/// How far (natural log units) a row's maximum may rise above the one its probabilities are
/// taken against before the accumulated rows are rescaled: the unnormalised probabilities stay
/// ≤ e⁸ ≈ 3 000, far inside bf16 / f16 / f32 range, and most blocks after the first need no
/// rescaling.
pub const GROWTH: f32 = 8.0;

/// Whether the kernel's lane layout takes a plane this wide: a power of two (rows and their
/// columns split evenly over the lanes) up to 512.
pub fn takes_plane(plane: usize) -> bool {
    plane.is_power_of_two() && plane <= 512
}

/// The one-pass form (this file's top comment): `softmax(q·kᵀ · scale)·v` for
/// `[B, H, S, head_dim]` tensors, launched as `kernel::flash_attention_kernel` with `online`.
// `(a + b - 1) / b` on runtime values: cube code spells the division out.
#[allow(clippy::too_many_arguments, clippy::manual_div_ceil)]
#[cube]
pub(super) fn one_pass<E: Float>(
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
    #[comptime] ablate: u32,
) {
    // Timing experiments only (`flash::set_ablation`): parts of the key-block loop left out.
    let no_loads = comptime![ablate & crate::flash::ABLATE_LOADS != 0];
    let no_barriers = comptime![ablate & crate::flash::ABLATE_BARRIERS != 0];
    let no_products = comptime![ablate & crate::flash::ABLATE_PRODUCTS != 0];
    let no_softmax = comptime![ablate & crate::flash::ABLATE_SOFTMAX != 0];
    let rows = comptime![ROWS];
    let keys = comptime![KEYS];
    let dp = comptime![head_dim.next_multiple_of(TILE)];
    let block_q = comptime![ROWS * planes];
    let threads = comptime![plane * planes];
    // Lanes by rows for the statistics: `split` lanes share a row (2 on a 32-wide plane; 1 on
    // narrower ones, where a lane takes `owned` rows `row_step` apart); each of a row's lanes
    // takes `span` of the block's columns.
    let split = comptime![(plane / ROWS).max(1)];
    let row_step = comptime![plane / (plane / ROWS).max(1)];
    let owned = comptime![ROWS / (plane / (plane / ROWS).max(1))];
    let span = comptime![KEYS / (plane / ROWS).max(1)];
    let shuffles = comptime![(plane / ROWS).max(1).trailing_zeros() as usize];
    // Each unit's share of one staged tile.
    let per = comptime![(KEYS * head_dim.next_multiple_of(TILE)).div_ceil(plane * planes)];

    let mut q_s = Shared::<[E]>::new_aligned_slice(comptime![block_q * dp], 32usize);
    let mut k_s = Shared::<[E]>::new_aligned_slice(comptime![KEYS * dp], 32usize);
    let mut v_s = Shared::<[E]>::new_aligned_slice(comptime![KEYS * dp], 32usize);
    let mut s_s = Shared::<[f32]>::new_aligned_slice(comptime![block_q * KEYS], 32usize);
    let mut p_s = Shared::<[E]>::new_aligned_slice(comptime![block_q * KEYS], 32usize);
    // Per query row: the rescaling factor of the current block, then 1 / the row's sum.
    let mut a_s = Shared::<[f32]>::new_slice(block_q);

    let lane = UNIT_POS_X as usize;
    let warp = UNIT_POS_Y as usize;
    let tid = warp * plane + lane;
    let bh = CUBE_POS_Y as usize;
    let (b, h) = (bh / heads as usize, bh % heads as usize);
    let q0 = CUBE_POS_X as usize * block_q;
    let seq_q = seq_q as usize;
    let seq_kv = seq_kv as usize;
    let blocks = (seq_kv + keys - 1) / keys;
    let own = warp * rows * keys;
    let (row0, part) = (lane / split, lane % split);

    // The cube's queries (visible after the first block's second barrier).
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

    // This lane's rows: the running maximum the probabilities are taken against, and the sum
    // of exponentials over the lane's columns (merged across the row's lanes at the end).
    let mut m = Array::<f32>::new(owned);
    let mut l = Array::<f32>::new(owned);
    #[unroll]
    for i in 0..owned {
        m[i] = f32::new(-1.0e30);
        l[i] = f32::new(0.0);
    }
    // The lane's scores of one row of the block, as the eager attention rounds them.
    let mut sc = Array::<f32>::new(span);

    // The first block's keys and values into registers.
    let mut k_r = Array::<E>::new(per);
    let mut v_r = Array::<E>::new(per);
    fetch_block::<E>(
        (k, v),
        (&mut k_r, &mut v_r),
        ((k_base, k_strides), (v_base, v_strides)),
        0,
        seq_kv,
        tid,
        head_dim,
        threads,
        tensor_cores,
    );

    let out_base = b * out.stride(0) + h * out.stride(1);
    let (out_row, out_col) = (out.stride(2), out.stride(3));

    // The output: on tensor cores the plane's 16 × dp rows as dp / 16 f32 accumulator tiles;
    // else lane `lane` holds columns lane, lane + plane, … of the plane's 16 rows.
    let per_lane = comptime![dp.div_ceil(plane)];
    let mut acc = Sequence::<cmma::Matrix<f32>>::new();
    let mut o = Array::<f32>::new(comptime![ROWS * dp.div_ceil(plane)]);
    if comptime![tensor_cores] {
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
    } else {
        for i in 0..comptime![ROWS * dp.div_ceil(plane)] {
            o[i] = f32::new(0.0);
        }
    }

    for kb in 0..blocks {
        let k0 = kb * keys;
        // Every plane is done with the previous block's tiles.
        if comptime![!no_barriers] {
            sync_cube();
        }
        commit_rows::<E>(&k_r, &mut k_s, tid, KEYS, head_dim, threads, tensor_cores);
        commit_rows::<E>(&v_r, &mut v_s, tid, KEYS, head_dim, threads, tensor_cores);
        if comptime![!no_barriers] {
            sync_cube();
        }
        // The next block's loads, in flight while this one computes.
        if kb + 1 < blocks && comptime![!no_loads] {
            fetch_block::<E>(
                (k, v),
                (&mut k_r, &mut v_r),
                ((k_base, k_strides), (v_base, v_strides)),
                k0 + keys,
                seq_kv,
                tid,
                head_dim,
                threads,
                tensor_cores,
            );
        }
        if comptime![!no_products] {
            scores::<E>(&q_s, &k_s, &mut s_s, warp, lane, head_dim, plane, tensor_cores);
        }
        sync_plane();

        // Statistics and probabilities, lanes by rows. A lane's columns of a row are
        // `part + split·t` in an order rotated by the row, so the 16 rows read different banks.
        let mut grew = false;
        if comptime![no_softmax] {
            // (Ablated: the scores as they are, as the probabilities.)
            #[unroll]
            for i in 0..owned {
                let r = row0 + i * row_step;
                for t in 0..span {
                    let c = part + split * t;
                    p_s[own + r * keys + c] = E::cast_from(s_s[own + r * keys + c]);
                }
            }
        }
        #[unroll]
        for i in 0..comptime![if no_softmax { 0 } else { owned }] {
            let r = row0 + i * row_step;
            let base = own + r * keys;
            let mut top = f32::new(-1.0e30);
            #[unroll(tensor_cores)]
            for t in 0..span {
                let c = part + split * ((t + r) % span);
                let mut s = f32::new(-1.0e30);
                if k0 + c < seq_kv {
                    s = rounded_score::<E>(s_s[base + c], scale);
                }
                sc[t] = s;
                top = max(top, s);
            }
            top = across_row(top, shuffles, true);
            let old = m[i];
            let mut new = old;
            if top > old + GROWTH {
                new = top;
            }
            let alpha = (old - new).exp();
            let mut sum = f32::new(0.0);
            #[unroll(tensor_cores)]
            for t in 0..span {
                let c = part + split * ((t + r) % span);
                let mut p = f32::new(0.0);
                if k0 + c < seq_kv {
                    p = (sc[t] - new).exp();
                }
                sum += p;
                p_s[base + c] = E::cast_from(p);
            }
            l[i] = l[i] * alpha + sum;
            m[i] = new;
            if part == 0 {
                a_s[warp * rows + r] = alpha;
            }
            grew = grew || new != old;
        }
        // (Every lane votes: the branch below is the plane's, not a lane's.)
        let mut rescale = false;
        if comptime![!no_softmax] {
            rescale = plane_any(grew) && kb > 0;
        }
        sync_plane();

        if comptime![tensor_cores] {
            // Rows whose maximum moved: the accumulator tiles scaled by exp(m_old − m), each
            // through the plane's own score rows (consumed above).
            if rescale {
                #[unroll]
                for n in 0..comptime![dp / TILE] {
                    store_own_rows(acc.index(n), &mut s_s, own);
                    sync_plane();
                    for e in range_stepped(lane, comptime![ROWS * TILE], plane) {
                        let (r, c) = (e / TILE, e % TILE);
                        s_s[own + r * keys + c] *= a_s[warp * rows + r];
                    }
                    sync_plane();
                    cmma::load_with_layout(
                        acc.index_mut(n),
                        &s_s[own..own + comptime![(ROWS - 1) * KEYS + TILE]],
                        keys as u32,
                        cmma::MatrixLayout::RowMajor,
                    );
                    sync_plane();
                }
            }
            if comptime![!no_products] {
                add_probabilities_times_values::<E>(&p_s, &v_s, &acc, own, head_dim);
            }
        } else if comptime![!no_products] {
            for t in 0..per_lane {
                let d = lane + t * plane;
                if d < dp {
                    for j in 0..rows {
                        let mut sum = f32::new(0.0);
                        for c in 0..keys {
                            sum += f32::cast_from(p_s[own + j * keys + c]) * f32::cast_from(v_s[c * dp + d]);
                        }
                        o[j * per_lane + t] = o[j * per_lane + t] * a_s[warp * rows + j] + sum;
                    }
                }
            }
        }
    }

    // 1 / each row's sum of exponentials (every lane of the row ends with the total).
    sync_plane();
    #[unroll]
    for i in 0..owned {
        let r = row0 + i * row_step;
        let total = across_row(l[i], shuffles, false);
        if part == 0 {
            a_s[warp * rows + r] = 1.0f32 / total;
        }
    }
    sync_plane();

    if comptime![tensor_cores] {
        // Out through the plane's own score rows, one 16 × 16 tile at a time.
        #[unroll]
        for n in 0..comptime![dp / TILE] {
            store_own_rows(acc.index(n), &mut s_s, own);
            sync_plane();
            for e in range_stepped(lane, comptime![ROWS * TILE], plane) {
                let (r, c) = (e / TILE, e % TILE);
                let (row, d) = (q0 + warp * rows + r, n * TILE + c);
                if row < seq_q && d < head_dim {
                    out[out_base + row * out_row + d * out_col] =
                        E::cast_from(s_s[own + r * keys + c] * a_s[warp * rows + r]);
                }
            }
            sync_plane();
        }
    } else {
        for t in 0..per_lane {
            let d = lane + t * plane;
            if d < head_dim {
                for j in 0..rows {
                    let row = q0 + warp * rows + j;
                    if row < seq_q {
                        out[out_base + row * out_row + d * out_col] =
                            E::cast_from(o[j * per_lane + t] * a_s[warp * rows + j]);
                    }
                }
            }
        }
    }
}

/// `x`'s maximum (`maximum`) or sum over the lanes that share a row: `shuffles` butterfly steps
/// over adjacent lanes (log₂ of their number; 0 where a lane has a row to itself).
#[cube]
fn across_row(x: f32, #[comptime] shuffles: usize, #[comptime] maximum: bool) -> f32 {
    let mut y = x;
    let mut mask = 1u32;
    #[unroll]
    for _ in 0..shuffles {
        let other = plane_shuffle_xor(y, mask);
        if comptime![maximum] {
            y = max(y, other);
        } else {
            y += other;
        }
        mask *= 2;
    }
    y
}

/// Key block `k0..k0 + KEYS`'s key and value tiles into registers (`kernel::fetch_rows`; each
/// head as `kernel::head_of` gives it).
#[allow(clippy::too_many_arguments, clippy::type_complexity)]
#[cube]
fn fetch_block<E: Float>(
    tensors: (&Tensor<E>, &Tensor<E>),
    regs: (&mut Array<E>, &mut Array<E>),
    heads: ((usize, (usize, usize)), (usize, (usize, usize))),
    k0: usize,
    seq_kv: usize,
    tid: usize,
    #[comptime] head_dim: usize,
    #[comptime] threads: usize,
    #[comptime] unrolled: bool,
) {
    let (k, v) = tensors;
    let (k_r, v_r) = regs;
    let ((k_base, k_strides), (v_base, v_strides)) = heads;
    fetch_rows::<E>(
        k, k_r, k_base, k_strides, k0, seq_kv, tid, KEYS, head_dim, threads, unrolled,
    );
    fetch_rows::<E>(
        v, v_r, v_base, v_strides, k0, seq_kv, tid, KEYS, head_dim, threads, unrolled,
    );
}
