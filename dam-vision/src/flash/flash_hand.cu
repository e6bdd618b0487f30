// A hand-written flash attention for SigLIP's shape (bf16, head_dim 72, no mask): the
// library's `hand` vision-attention form (`dam_vision::flash::hand`, launched as kernel text
// through cubecl on the `cuda-nvrtc` build: entry point `flash_hand`, arguments below) and the
// `flash-outside` stage's experiment (scripts/flash-outside.py launches `flash_hand_bf16` from
// PTX compiled offline by scripts/nvrtc-compile.py, beside our cubecl kernel and PyTorch's
// SDPA). scripts/flash-hand-check.cpp runs both entries on the CPU (scripts/cuda-emulation.h)
// against a double-precision attention; `.ci/run` does that on every change.
//
// Two entry points, one body (`flash_body`); q, k, v, out `[B, H, S, 72]` bf16 with any
// strides. Launch: grid (⌈seq_q / 64⌉, B·H), block (32, 4): each warp owns 16 query rows.
// - `flash_hand_bf16`: the cubecl flash kernel's arguments (flash-outside.py's docs): the
//   strides in the "dynamic metadata" buffer, the 104-byte grid-constant struct (heads,
//   seq_q, seq_kv, scale).
// - `flash_hand`: the library's, `FlashHandArgs` by value after the four buffers (cubecl
//   passes a precompiled kernel's info words that way).
//
// Per key block of 64: K and V staged in shared memory (head_dim zero-padded to 80; V
// transposed so that its fragments are pairs of adjacent keys), S = Q·Kᵀ on tensor cores
// (m16n8k16, f32 accumulators), the online softmax in registers (FA2: each thread holds two
// rows' columns 2t, 2t+1 of every 8-wide tile; row statistics across the 4 threads of a
// group by shuffles; exp2 of pre-scaled scores), P rounded to bf16 and reused from registers
// as the A operand of O += P·V. Rows divided by their sums at the end. Rounding as PyTorch's
// flash SDPA: f32 scores, bf16 probabilities into P·V.

typedef unsigned int u32;

#ifndef CUDA_HOST_EMULATION  // scripts/flash-hand-check.cpp runs this file on the CPU
#include <cuda_bf16.h>
#endif

struct info_st {
    u32 scalars_usize[8];
    float scalars_f32[2];
    u32 scalars_u32[4];
    u32 static_meta[12];
};

#define HD 72   // head_dim
#define DP 80   // head_dim padded to a multiple of 16
#define BM 64   // queries a block (4 warps × 16 rows)
#define BN 64   // keys a block
#define LDQ 88  // shared row stride of Q and K: fragment loads free of bank conflicts
#define LDV 72  // shared row stride of Vᵀ (rows = head dims): the same for its fragments
#define NEG_INF (-__int_as_float(0x7f800000))  // -inf (NVRTC has no INFINITY macro)

#ifndef CUDA_HOST_EMULATION
__device__ __forceinline__ void mma16816(float* c, const u32* a, u32 b0, u32 b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
        "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
#endif

// Two floats rounded to bf16, the first in the low half (the lower-indexed element).
__device__ __forceinline__ u32 pack_bf16(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<u32*>(&v);
}

__device__ __forceinline__ u32 lds32(const __nv_bfloat16* p) {
    return *reinterpret_cast<const u32*>(p);
}

// The attention of block (blockIdx.x: 64 queries, blockIdx.y: b · heads + h); `qs` … `os`
// each tensor's four strides (elements) in [B, H, S, D] order.
template <typename Stride>
__device__ __forceinline__ void flash_body(const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ k,
                                           const __nv_bfloat16* __restrict__ v, __nv_bfloat16* __restrict__ out,
                                           u32 heads, u32 seq_q, u32 seq_kv, float scale, const Stride* qs,
                                           const Stride* ks, const Stride* vs, const Stride* os) {
    __shared__ __align__(16) __nv_bfloat16 sQ[BM * LDQ];
    __shared__ __align__(16) __nv_bfloat16 sK[BN * LDQ];
    __shared__ __align__(16) __nv_bfloat16 sVt[DP * LDV];

    const float scale_log2 = scale * 1.4426950408889634f;
    const u32 lane = threadIdx.x, warp = threadIdx.y, tid = warp * 32 + lane;
    const u32 g = lane >> 2, t = lane & 3;  // group (row) and thread in group (column pair)
    const u32 b = blockIdx.y / heads, h = blockIdx.y % heads;
    const u32 q0 = blockIdx.x * BM;
    const __nv_bfloat16* qh = q + (size_t)b * qs[0] + (size_t)h * qs[1];
    const __nv_bfloat16* kh = k + (size_t)b * ks[0] + (size_t)h * ks[1];
    const __nv_bfloat16* vh = v + (size_t)b * vs[0] + (size_t)h * vs[1];
    __nv_bfloat16* oh = out + (size_t)b * os[0] + (size_t)h * os[1];
    const __nv_bfloat16 zero = __float2bfloat16(0.0f);

    // The block's queries, zero past seq_q and past head_dim; pairs of columns a thread.
    for (u32 i = tid; i < BM * (DP / 2); i += 128) {
        const u32 r = i / (DP / 2), d = 2 * (i % (DP / 2));
        __nv_bfloat16 x0 = zero, x1 = zero;
        if (q0 + r < seq_q && d < HD) {
            const __nv_bfloat16* p = qh + (size_t)(q0 + r) * qs[2] + (size_t)d * qs[3];
            x0 = p[0];
            x1 = p[qs[3]];
        }
        sQ[r * LDQ + d] = x0;
        sQ[r * LDQ + d + 1] = x1;
    }
    __syncthreads();
    // The warp's Q fragments, kept for every key block (A: 16 rows × 16 dims, 5 of them).
    u32 qa[DP / 16][4];
    const u32 qr = warp * 16 + g;
#pragma unroll
    for (u32 kk = 0; kk < DP / 16; ++kk) {
        qa[kk][0] = lds32(&sQ[qr * LDQ + kk * 16 + 2 * t]);
        qa[kk][1] = lds32(&sQ[(qr + 8) * LDQ + kk * 16 + 2 * t]);
        qa[kk][2] = lds32(&sQ[qr * LDQ + kk * 16 + 2 * t + 8]);
        qa[kk][3] = lds32(&sQ[(qr + 8) * LDQ + kk * 16 + 2 * t + 8]);
    }

    float o[DP / 8][4];
#pragma unroll
    for (u32 n = 0; n < DP / 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
    // Rows g and g + 8 of the warp's 16: running maximum (scaled, log2 units) and this
    // thread's part of the sum of exponentials.
    float m0 = NEG_INF, m1 = NEG_INF, l0 = 0.0f, l1 = 0.0f;

    for (u32 n0 = 0; n0 < seq_kv; n0 += BN) {
        __syncthreads();  // every warp is done with the previous block's K and Vᵀ
        for (u32 i = tid; i < BN * (DP / 2); i += 128) {
            const u32 r = i / (DP / 2), d = 2 * (i % (DP / 2));
            __nv_bfloat16 k0 = zero, k1 = zero, v0 = zero, v1 = zero;
            if (n0 + r < seq_kv && d < HD) {
                const __nv_bfloat16* pk = kh + (size_t)(n0 + r) * ks[2] + (size_t)d * ks[3];
                const __nv_bfloat16* pv = vh + (size_t)(n0 + r) * vs[2] + (size_t)d * vs[3];
                k0 = pk[0];
                k1 = pk[ks[3]];
                v0 = pv[0];
                v1 = pv[vs[3]];
            }
            sK[r * LDQ + d] = k0;
            sK[r * LDQ + d + 1] = k1;
            sVt[d * LDV + r] = v0;
            sVt[(d + 1) * LDV + r] = v1;
        }
        __syncthreads();

        // S = Q·Kᵀ: 8 tiles of 16 rows × 8 keys.
        float s[BN / 8][4];
#pragma unroll
        for (u32 n = 0; n < BN / 8; ++n) {
            s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
            for (u32 kk = 0; kk < DP / 16; ++kk) {
                const __nv_bfloat16* kr = &sK[(n * 8 + g) * LDQ + kk * 16 + 2 * t];
                mma16816(s[n], qa[kk], lds32(kr), lds32(kr + 8));
            }
        }

        // Online softmax over this block, rows g (elements 0, 1) and g + 8 (2, 3).
        float mx0 = NEG_INF, mx1 = NEG_INF;
#pragma unroll
        for (u32 n = 0; n < BN / 8; ++n) {
#pragma unroll
            for (u32 e = 0; e < 4; ++e) {
                const u32 key = n0 + n * 8 + 2 * t + (e & 1);
                s[n][e] = key < seq_kv ? s[n][e] * scale_log2 : NEG_INF;
            }
            mx0 = fmaxf(mx0, fmaxf(s[n][0], s[n][1]));
            mx1 = fmaxf(mx1, fmaxf(s[n][2], s[n][3]));
        }
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
        mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
        mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
        const float new0 = fmaxf(m0, mx0), new1 = fmaxf(m1, mx1);
        // exp2(-inf - x) = 0 on the first block; a row with no live key keeps 0.
        const float alpha0 = new0 == NEG_INF ? 1.0f : exp2f(m0 - new0);
        const float alpha1 = new1 == NEG_INF ? 1.0f : exp2f(m1 - new1);
        const float base0 = new0 == NEG_INF ? 0.0f : new0;
        const float base1 = new1 == NEG_INF ? 0.0f : new1;
        m0 = new0;
        m1 = new1;
        float sum0 = 0.0f, sum1 = 0.0f;
#pragma unroll
        for (u32 n = 0; n < BN / 8; ++n) {
            s[n][0] = exp2f(s[n][0] - base0);
            s[n][1] = exp2f(s[n][1] - base0);
            s[n][2] = exp2f(s[n][2] - base1);
            s[n][3] = exp2f(s[n][3] - base1);
            sum0 += s[n][0] + s[n][1];
            sum1 += s[n][2] + s[n][3];
        }
        l0 = l0 * alpha0 + sum0;
        l1 = l1 * alpha1 + sum1;
#pragma unroll
        for (u32 n = 0; n < DP / 8; ++n) {
            o[n][0] *= alpha0;
            o[n][1] *= alpha0;
            o[n][2] *= alpha1;
            o[n][3] *= alpha1;
        }

        // O += P·V: P's A fragments straight from S's accumulators (16 keys = two 8-wide
        // tiles), V's B fragments from Vᵀ (pairs of adjacent keys).
#pragma unroll
        for (u32 kk = 0; kk < BN / 16; ++kk) {
            u32 pa[4];
            pa[0] = pack_bf16(s[2 * kk][0], s[2 * kk][1]);
            pa[1] = pack_bf16(s[2 * kk][2], s[2 * kk][3]);
            pa[2] = pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]);
            pa[3] = pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
            for (u32 n = 0; n < DP / 8; ++n) {
                const __nv_bfloat16* vr = &sVt[(n * 8 + g) * LDV + kk * 16 + 2 * t];
                mma16816(o[n], pa, lds32(vr), lds32(vr + 8));
            }
        }
    }

    // Each row's sum over its 4 threads, then the rows out (columns < head_dim).
    l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
    l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
    l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
    const float inv0 = l0 > 0.0f ? 1.0f / l0 : 0.0f, inv1 = l1 > 0.0f ? 1.0f / l1 : 0.0f;
    const u32 r0 = q0 + qr, r1 = r0 + 8;
#pragma unroll
    for (u32 n = 0; n < DP / 8; ++n) {
        const u32 d = n * 8 + 2 * t;
        if (d < HD) {
            if (r0 < seq_q) {
                __nv_bfloat16* p = oh + (size_t)r0 * os[2] + (size_t)d * os[3];
                p[0] = __float2bfloat16(o[n][0] * inv0);
                p[os[3]] = __float2bfloat16(o[n][1] * inv0);
            }
            if (r1 < seq_q) {
                __nv_bfloat16* p = oh + (size_t)r1 * os[2] + (size_t)d * os[3];
                p[0] = __float2bfloat16(o[n][2] * inv1);
                p[os[3]] = __float2bfloat16(o[n][3] * inv1);
            }
        }
    }
}

// The flash-outside stage's entry: cubecl's flash-kernel arguments.
extern "C" __global__ void __launch_bounds__(128) flash_hand_bf16(
    const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ k,
    const __nv_bfloat16* __restrict__ v, __nv_bfloat16* __restrict__ out,
    const u32* __restrict__ meta, const __grid_constant__ info_st info) {
    flash_body(q, k, v, out, info.scalars_u32[0], info.scalars_u32[1], info.scalars_u32[2], info.scalars_f32[0],
               meta + info.static_meta[8], meta + info.static_meta[9], meta + info.static_meta[10],
               meta + info.static_meta[11]);
}

// The library's arguments after the four buffers: u64 words (cubecl's info words of a
// precompiled kernel, passed by value), in this order — `dam_vision::flash::hand` writes
// them; `scale_bits` holds the f32 scale's bits.
struct FlashHandArgs {
    unsigned long long heads, seq_q, seq_kv, scale_bits;
    unsigned long long qs[4], ks[4], vs[4], os[4];
};

// The library's entry.
extern "C" __global__ void __launch_bounds__(128) flash_hand(
    const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ k,
    const __nv_bfloat16* __restrict__ v, __nv_bfloat16* __restrict__ out, const __grid_constant__ FlashHandArgs args) {
    flash_body(q, k, v, out, (u32)args.heads, (u32)args.seq_q, (u32)args.seq_kv,
               __uint_as_float((u32)args.scale_bits), args.qs, args.ks, args.vs, args.os);
}
