// A hand-written bf16 matrix product for the vision tower's linears: what a kernel with
// Ampere's tools — `cp.async` into a shared-memory ring of 2–4 stages, fragments read with
// `ldmatrix` and multiplied with `mma.sync.m16n8k16` (bf16, f32 accumulators) — does at
// SigLIP's shapes. cubek's routines reach 30–65 TFLOP/s there on the LLVM build, which
// withholds `cp.async` (cuBLAS: 150–260; docs/performance.md, "The matmul routines").
//
// Two users of this one text:
// - the library (`dam_core::matmul_kernel::hand`, the `hand` matmul kernels): cubecl's
//   precompiled-kernel path hands it to NVRTC at run time on the CUDA build whose compiler is
//   CUDA C++ (the facade's `cuda-nvrtc`), with `GEMM_HAND_LIBRARY` and one variant's
//   `GEMM_HAND_*` numbers defined in front — one entry point, `gemm_hand`, static shared
//   memory (that path launches with no dynamic shared memory), sizes and flags in a struct
//   passed by value (see `GemmHandArgs`);
// - the scripts: scripts/gemm-outside.py times every variant (entry points
//   `gemm_hand_<BM>x<BN>x<BK>_s<STAGES>`, dynamic shared memory) beside cuBLAS from PTX
//   compiled offline by scripts/nvrtc-compile.py; scripts/gemm-hand-check.cpp runs both kinds
//   of entry on the CPU against scripts/cuda-emulation.h (one OS thread per CUDA thread, the
//   barriers real, the copies landing only at their wait, `ldmatrix` and `mma.sync` done lane
//   by lane with the PTX ISA's fragment layouts) — `.ci/run` does that on every change.
// (The `wmma` API was tried first: NVRTC lowers its fragment loads from shared memory to
// generic `LD`s, not `LDSM` — the same thing seen in cubecl's NVRTC build of the flash kernel.)
//
//   y[M, N] = x[M, K] · w[K, N] (+ bias[N]) (then GELU, tanh form, if `gelu`)
//
// x, w, y row-major bf16 with unit column stride and row strides sx, sw, sy (elements) — w as
// the library holds a linear's weight, `[d_in, d_out]`; bias bf16 or null. M any; K, N and
// the row strides multiples of 8 and every pointer 16-byte aligned (a 16-byte copy is all-in
// or all-out at the edges, which are zero-filled). Accumulation in f32, bias added in f32,
// one rounding to bf16 — what cuBLAS's bias epilogue does for PyTorch's `F.linear`; with
// `gelu` the sum is rounded to bf16 first and GELU taken of that and rounded again, as HF's
// SigLIP MLP does (`fc1` in bf16, then `gelu_pytorch_tanh`).
//
// Launch: grid (⌈N / BN⌉, ⌈M / BM⌉), block 256 threads (8 warps), shared memory
// `Shape<BM, BN, BK, STAGES>::SHARED_BYTES` (dynamic for the scripts' entries — over 48 KiB for
// most, the launch raises the function's limit — static for the library's, which therefore
// takes only the variants within 48 KiB). Several tile shapes, ring depths and K steps
// (GEMM_HAND_VARIANTS below), so that one run on the card says which suits these shapes:
// M = 729 gives only 6 row blocks of 128, and the 132 SMs want more blocks than 128 × 128
// makes of the narrower products.

typedef unsigned int u32;

#ifndef CUDA_HOST_EMULATION
#include <cuda_bf16.h>

// A 16-byte global → shared copy that lands asynchronously; `src_bytes` 0 fills the 16
// bytes with zeros and reads nothing.
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, int src_bytes) {
    u32 s = (u32)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
// Wait until at most N of this thread's committed groups are still in flight.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}
// Four 8 × 8 b16 matrices from shared memory: lane l gives the address of row l % 8 of
// matrix l / 8; register j gets matrix j's row l / 4, columns 2 (l % 4) and + 1 (`.trans`:
// its column l / 4, rows 2 (l % 4) and + 1).
__device__ __forceinline__ void ldmatrix_x4(u32* r, const void* row) {
    u32 s = (u32)__cvta_generic_to_shared(row);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(s));
}
__device__ __forceinline__ void ldmatrix_x4_trans(u32* r, const void* row) {
    u32 s = (u32)__cvta_generic_to_shared(row);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(s));
}
// c (16 × 8, f32) += a (16 × 16, bf16) · b (16 × 8, bf16), the PTX ISA's fragments: lane
// l = 4 g + t holds a (rows g, g + 8; columns 2t, 2t + 1, 2t + 8, 2t + 9), b (rows 2t, 2t + 1,
// 2t + 8, 2t + 9; column g), c (rows g, g + 8; columns 2t, 2t + 1).
__device__ __forceinline__ void mma16816(float* c, const u32* a, const u32* b) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
        "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
#define DYNAMIC_SHARED(name) extern __shared__ __align__(128) unsigned char name[]
#define STATIC_SHARED(name, bytes) __shared__ __align__(128) unsigned char name[bytes]
#endif

typedef __nv_bfloat16 bf16;

#define THREADS 256

// Each variant: X(BM, BN, BK, STAGES, WM, WN, MIN_BLOCKS) — the block's tile (BM × BN), the K
// of a stage, the ring's depth (STAGES - 1 tiles in flight while one computes), a warp's tile
// (8 warps: (BM / WM) × (BN / WN) = 8), and the blocks an SM should hold (`__launch_bounds__`,
// which caps the registers). scripts/gemm-hand-check.cpp and scripts/gemm-outside.py read
// this list. The first four fit in 48 KiB of shared memory: the most a kernel can declare
// statically, and a kernel launched through cubecl's precompiled path gets no dynamic shared
// memory (cubecl-runtime 0.11 `PrecompiledSource`) — so only those go into the library
// (`HAND_VARIANTS` in hand.rs repeats their numbers; a unit test there reads this list and
// compares); they run first on the card (a fault in one kernel poisons the context for every
// launch after it).
#define GEMM_HAND_VARIANTS(X)          \
    X(64, 128, 32, 3, 32, 32, 2)      \
    X(128, 128, 32, 2, 64, 32, 2)     \
    X(128, 64, 32, 3, 32, 32, 2)      \
    X(64, 64, 32, 4, 32, 16, 3)       \
    X(128, 128, 32, 3, 64, 32, 2)     \
    X(128, 128, 32, 4, 64, 32, 2)     \
    X(128, 128, 64, 3, 64, 32, 2)     \
    X(64, 128, 64, 4, 32, 32, 2)      \
    X(128, 256, 32, 3, 64, 64, 1)     \
    X(64, 64, 64, 4, 32, 16, 3)

template <int BM, int BN, int BK, int STAGES>
struct Shape {
    // Row strides padded by 16 bytes: 80 / 144 bytes (BK 32 / 64) for x, 144 / 272 / 528 for
    // w (BN 64 / 128 / 256) — ≡ 16 mod 128 or 80 mod 128, so the 8 rows of an `ldmatrix`
    // phase land on distinct banks.
    static constexpr int LDA = BK + 8;
    static constexpr int LDB = BN + 8;
    static constexpr int A_ELEMS = BM * LDA;
    static constexpr int B_ELEMS = BK * LDB;
    static constexpr int STAGE_ELEMS = A_ELEMS + B_ELEMS;
    // The dynamic shared memory a launch gives the ring.
    static constexpr int SHARED_BYTES = STAGES * STAGE_ELEMS * 2;
    // `ldmatrix` rows and 16-byte copies need 16-byte alignment: every tile and stage offset
    // and every row stride keeps it.
    static_assert((A_ELEMS * 2) % 16 == 0 && (STAGE_ELEMS * 2) % 16 == 0 && (LDB * 2) % 16 == 0, "alignment");
    static_assert(STAGES >= 2 && BK % 16 == 0, "ring, K steps of 16");
};

// ROWS × COLS of a row-major `rows` × `cols` matrix (rows `ld` elements apart) from (r0, c0)
// into shared memory with row stride LD: 16-byte copies, (ROWS · COLS / 8) / THREADS a thread;
// outside the matrix, zeros.
template <int ROWS, int COLS, int LD>
__device__ __forceinline__ void copy_tile(bf16* dst, const bf16* __restrict__ src, int rows, int cols, int ld,
                                          int r0, int c0, int tid) {
    static_assert((ROWS * (COLS / 8)) % THREADS == 0, "copy split");
#pragma unroll
    for (int i = 0; i < ROWS * (COLS / 8) / THREADS; ++i) {
        const int c = tid + i * THREADS;
        const int r = c / (COLS / 8), col = (c % (COLS / 8)) * 8;
        const int gr = r0 + r, gc = c0 + col;
        const bool in = gr < rows && gc < cols;
        cp_async16(dst + r * LD + col, in ? src + (size_t)gr * ld + gc : src, in ? 16 : 0);
    }
}

// One stage: the x tile (BM rows of BK from (m0, k0)), then the w tile (BK rows of BN from
// (k0, n0)).
template <int BM, int BN, int BK, int STAGES>
__device__ __forceinline__ void load_stage(bf16* sa, const bf16* __restrict__ x, const bf16* __restrict__ w,
                                           int m, int n, int k, int sx, int sw, int m0, int n0, int k0, int tid) {
    typedef Shape<BM, BN, BK, STAGES> S;
    copy_tile<BM, BK, S::LDA>(sa, x, m, k, sx, m0, k0, tid);
    copy_tile<BK, BN, S::LDB>(sa + S::A_ELEMS, w, k, n, sw, k0, n0, tid);
}

__device__ __forceinline__ float gelu_tanh(float v) {
    // gelu_pytorch_tanh: 0.5 v (1 + tanh(√(2/π) (v + 0.044715 v³)))
    return 0.5f * v * (1.0f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));
}

// The epilogue of one output value: + bias, rounded; with `gelu`, GELU of the rounded sum.
__device__ __forceinline__ float finish(float s, const bf16* __restrict__ bias, int col, int gelu) {
    if (bias) s += __bfloat162float(bias[col]);
    if (gelu) s = gelu_tanh(__bfloat162float(__float2bfloat16(s)));
    return s;
}

__device__ __forceinline__ u32 pack_bf16(float lo, float hi) {
    return (u32)__bfloat16_as_ushort(__float2bfloat16(lo)) | ((u32)__bfloat16_as_ushort(__float2bfloat16(hi)) << 16);
}

template <int BM, int BN, int BK, int STAGES, int WM, int WN>
__device__ __forceinline__ void gemm_body(unsigned char* smem_raw, const bf16* __restrict__ x,
                                          const bf16* __restrict__ w, const bf16* __restrict__ bias,
                                          bf16* __restrict__ y, int m, int n, int k, int sx, int sw, int sy,
                                          int gelu) {
    typedef Shape<BM, BN, BK, STAGES> S;
    // A warp's tile: FM blocks of 16 rows × FN blocks of 8 columns.
    constexpr int FM = WM / 16, FN = WN / 8, WARPS_N = BN / WN;
    static_assert((BM / WM) * (BN / WN) * 32 == THREADS && WN % 16 == 0, "8 warps, n in pairs of 8");
    bf16* smem = reinterpret_cast<bf16*>(smem_raw);
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    const int wm = (warp / WARPS_N) * WM, wn = (warp % WARPS_N) * WN;

    float acc[FM][FN][4];
#pragma unroll
    for (int i = 0; i < FM; ++i)
#pragma unroll
        for (int j = 0; j < FN; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.0f;

    // The rows this lane points `ldmatrix` at. x (non-transposed, one x4 per 16 rows):
    // matrices (rows 0–7, k 0–7), (8–15, 0–7), (0–7, 8–15), (8–15, 8–15) = the A fragment's
    // registers in order. w (transposed, one x4 per 16 columns): (k 0–7, n 0–7), (8–15, 0–7),
    // (0–7, 8–15), (8–15, 8–15) = the B fragments of two 8-wide column blocks.
    const int mat = lane / 8, row8 = lane % 8;
    const int a_row = (mat % 2) * 8 + row8, a_col = (mat / 2) * 8;
    const int b_k = (mat % 2) * 8 + row8, b_n = (mat / 2) * 8;

    const int kt_count = (k + BK - 1) / BK;
    // The ring's first STAGES - 1 tiles; one commit group a tile, empty past the end, so that
    // "tile kt has landed" is always "at most STAGES - 2 groups in flight".
#pragma unroll
    for (int s = 0; s < STAGES - 1; ++s) {
        if (s < kt_count) load_stage<BM, BN, BK, STAGES>(smem + s * S::STAGE_ELEMS, x, w, m, n, k, sx, sw, m0, n0, s * BK, tid);
        cp_async_commit();
    }
    for (int kt = 0; kt < kt_count; ++kt) {
        cp_async_wait<STAGES - 2>();
        // Tile kt visible to every warp, and every warp done with tile kt - 1, whose stage the
        // copies below overwrite.
        __syncthreads();
        const int next = kt + STAGES - 1;
        if (next < kt_count)
            load_stage<BM, BN, BK, STAGES>(smem + (next % STAGES) * S::STAGE_ELEMS, x, w, m, n, k, sx, sw, m0, n0,
                                           next * BK, tid);
        cp_async_commit();

        const bf16* sa = smem + (kt % STAGES) * S::STAGE_ELEMS;
        const bf16* sb = sa + S::A_ELEMS;
#pragma unroll
        for (int kk = 0; kk < BK; kk += 16) {
            u32 a[FM][4], b[FN][2];
#pragma unroll
            for (int i = 0; i < FM; ++i) ldmatrix_x4(a[i], sa + (wm + 16 * i + a_row) * S::LDA + kk + a_col);
#pragma unroll
            for (int j = 0; j < FN; j += 2) {
                u32 r[4];
                ldmatrix_x4_trans(r, sb + (kk + b_k) * S::LDB + wn + 8 * j + b_n);
                b[j][0] = r[0];
                b[j][1] = r[1];
                b[j + 1][0] = r[2];
                b[j + 1][1] = r[3];
            }
#pragma unroll
            for (int i = 0; i < FM; ++i)
#pragma unroll
                for (int j = 0; j < FN; ++j) mma16816(acc[i][j], a[i], b[j]);
        }
    }
    // No copy is left in flight (the groups past the end are empty); nothing reads the ring.

    // Out from the accumulators: lane 4g + t holds rows g and g + 8, columns 2t and 2t + 1 of
    // each 16 × 8 block — two adjacent bf16, one 4-byte store. N is a multiple of 8, so a
    // block's columns are all inside or all outside.
    const int g = lane / 4, t = lane % 4;
#pragma unroll
    for (int i = 0; i < FM; ++i) {
#pragma unroll
        for (int j = 0; j < FN; ++j) {
            const int col = n0 + wn + 8 * j + 2 * t;
            if (col >= n) continue;
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const int row = m0 + wm + 16 * i + g + 8 * h;
                if (row < m) {
                    float lo = finish(acc[i][j][2 * h], bias, col, gelu);
                    float hi = finish(acc[i][j][2 * h + 1], bias, col + 1, gelu);
                    *reinterpret_cast<u32*>(y + (size_t)row * sy + col) = pack_bf16(lo, hi);
                }
            }
        }
    }
}

// The scripts' entry points, one per variant: contiguous rows, dynamic shared memory.
#define GEMM_HAND_KERNEL(BM, BN, BK, STAGES, WM, WN, MIN_BLOCKS)                                           \
    extern "C" __global__ void __launch_bounds__(THREADS, MIN_BLOCKS) gemm_hand_##BM##x##BN##x##BK##_s##STAGES( \
        const bf16* __restrict__ x, const bf16* __restrict__ w, const bf16* __restrict__ bias,                   \
        bf16* __restrict__ y, int m, int n, int k, int gelu) {                                                   \
        DYNAMIC_SHARED(smem_raw);                                                                                \
        gemm_body<BM, BN, BK, STAGES, WM, WN>(smem_raw, x, w, bias, y, m, n, k, k, n, n, gelu);                  \
    }

// The library's arguments after the four buffers: cubecl hands a precompiled kernel's info
// (`MetadataBindingInfo`, u64 words) to the launch as one parameter passed by value when the
// device takes grid constants (every CUDA device from sm_70; this kernel needs sm_80), so the
// layout is eight u64 in this order — `dam_core::matmul_kernel::hand` writes them. `bias` and
// `gelu` are 0 or 1; without bias the bias buffer is bound to x and never read.
struct GemmHandArgs {
    unsigned long long m, n, k, sx, sw, sy, bias, gelu;
};

// The library's kind of entry point, named NAME: strided rows, sizes and flags in
// `GemmHandArgs`, static shared memory.
#define GEMM_HAND_STRIDED_KERNEL(NAME, BM, BN, BK, STAGES, WM, WN, MIN_BLOCKS)                                 \
    extern "C" __global__ void __launch_bounds__(THREADS, MIN_BLOCKS)                                          \
        NAME(const bf16* __restrict__ x, const bf16* __restrict__ w, const bf16* __restrict__ bias,            \
             bf16* __restrict__ y, const GemmHandArgs args) {                                                  \
        STATIC_SHARED(smem_raw, (Shape<BM, BN, BK, STAGES>::SHARED_BYTES));                                    \
        gemm_body<BM, BN, BK, STAGES, WM, WN>(smem_raw, x, w, args.bias ? bias : nullptr, y, (int)args.m,      \
                                              (int)args.n, (int)args.k, (int)args.sx, (int)args.sw,            \
                                              (int)args.sy, (int)args.gelu);                                   \
    }

#ifdef GEMM_HAND_LIBRARY
// The library's one entry point, `gemm_hand`: the variant whose numbers are defined in front of
// this text. A static `__shared__` array may take at most 48 KiB.
static_assert(Shape<GEMM_HAND_BM, GEMM_HAND_BN, GEMM_HAND_BK, GEMM_HAND_STAGES>::SHARED_BYTES <= 48 * 1024,
              "a precompiled kernel gets no dynamic shared memory");
GEMM_HAND_STRIDED_KERNEL(gemm_hand, GEMM_HAND_BM, GEMM_HAND_BN, GEMM_HAND_BK, GEMM_HAND_STAGES, GEMM_HAND_WM,
                         GEMM_HAND_WN, GEMM_HAND_MIN_BLOCKS)
#else
GEMM_HAND_VARIANTS(GEMM_HAND_KERNEL)
#endif
