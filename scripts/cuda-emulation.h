// The CUDA pieces our hand-written kernels use (dam-core/src/matmul_kernel/gemm_hand.cu,
// dam-vision/src/flash/flash_hand.cu),
// emulated on the CPU, so that a kernel's own source can be run and checked without a GPU
// (scripts/gemm-hand-check.cpp, scripts/flash-hand-check.cpp). Not a CUDA emulator: exactly
// what those kernels touch, each as the PTX ISA defines it. A kernel's device-only helpers
// (inline PTX) sit under `#ifndef CUDA_HOST_EMULATION`; this header gives their host forms.
//
// * One OS thread per CUDA thread, a block at a time; `__syncthreads` is a real barrier over
//   the block's threads, so a missing barrier shows as a race, not as luck. Warps are 32
//   consecutive threads of the block's linear index, as on the hardware. Static `__shared__`
//   arrays become function-local statics — one copy, right while blocks run one at a time.
// * `cp.async` copies land only when a `cp.async.wait_group` lets them — the latest the
//   hardware may land them — so reading a stage before waiting for it reads stale bytes.
//   Shared memory starts as 0xff bytes (bf16 NaN): reading bytes never written poisons the
//   result.
// * `ldmatrix`, `mma.sync` and `shfl.sync.bfly` are warp-collective: each lane posts its
//   operands, the warp meets at a barrier, and each lane computes its own results from every
//   lane's operands
//   with the ISA's fragment layouts (mma.m16n8k16 .bf16: lane 4g + t; A rows g, g + 8 and
//   columns 2t, 2t + 1, 2t + 8, 2t + 9; B rows 2t, 2t + 1, 2t + 8, 2t + 9 and column g; C / D
//   rows g, g + 8 and columns 2t, 2t + 1). Products in f32 with the k terms summed in order.
// * Every `ldmatrix` row address and every 16-byte copy's two addresses are checked for
//   16-byte alignment, every shared address for lying inside the block's allocation, and
//   every copy's source for lying inside a buffer the test registered (`emu::global`).
#pragma once
#define CUDA_HOST_EMULATION 1

#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __restrict__ __restrict
#define __grid_constant__
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))

typedef unsigned int u32;

struct __nv_bfloat16 {
    uint16_t bits;
};

inline __nv_bfloat16 __float2bfloat16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffff) > 0x7f800000) return {uint16_t((u >> 16) | 0x40)};  // NaN stays NaN
    u += 0x7fff + ((u >> 16) & 1);                                              // nearest, ties to even
    return {uint16_t(u >> 16)};
}
inline float __bfloat162float(__nv_bfloat16 b) {
    uint32_t u = uint32_t(b.bits) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 b) { return b.bits; }
struct __nv_bfloat162 {
    __nv_bfloat16 x, y;
};
inline __nv_bfloat162 __floats2bfloat162_rn(float lo, float hi) { return {__float2bfloat16(lo), __float2bfloat16(hi)}; }
inline float __int_as_float(int i) {
    float f;
    std::memcpy(&f, &i, 4);
    return f;
}
inline float __uint_as_float(unsigned u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

struct dim3 {
    unsigned x = 0, y = 0, z = 0;
};

namespace emu {

struct Copy {
    void* dst;
    const void* src;
    int bytes;
};

struct Warp {
    std::barrier<> bar{32};
    const unsigned char* rows[32];
    u32 a[32][4], b[32][2];
    float c[32][4];
    float f[32];
};

struct Block {
    std::barrier<> bar;
    std::vector<Warp> warps;
    unsigned char* shared;
    size_t shared_bytes;
    Block(int threads, unsigned char* s, size_t n) : bar(threads), warps(threads / 32), shared(s), shared_bytes(n) {}
};

inline thread_local Block* block = nullptr;
// The global buffers a kernel may read, [begin, end) (`emu::global`); copies from anywhere
// else fail.
inline std::vector<std::pair<const unsigned char*, const unsigned char*>> globals;
inline void global(const void* p, size_t bytes) {
    auto b = static_cast<const unsigned char*>(p);
    globals.emplace_back(b, b + bytes);
}
inline thread_local dim3 thread_idx, block_idx;
inline thread_local int linear = 0;  // the thread's index in its block
inline thread_local std::vector<std::vector<Copy>> groups;  // committed, oldest first
inline thread_local std::vector<Copy> open_group;

[[noreturn]] inline void fail(const char* what, const void* p) {
    std::fprintf(stderr, "emulation: %s (%p, thread (%u, %u) of block (%u, %u))\n", what, p, thread_idx.x,
                 thread_idx.y, block_idx.x, block_idx.y);
    std::abort();
}
// (Dynamic shared memory, and static arrays declared with STATIC_SHARED; any other
// `__shared__` array is a plain static here.)
inline void check_shared(const void* p, size_t bytes) {
    auto s = static_cast<const unsigned char*>(p);
    if (s < block->shared || s + bytes > block->shared + block->shared_bytes) fail("shared address outside the block's", p);
}
inline void check_aligned16(const void* p) {
    if (reinterpret_cast<uintptr_t>(p) % 16) fail("address not 16-byte aligned", p);
}
inline void check_global(const void* p, size_t bytes) {
    auto s = static_cast<const unsigned char*>(p);
    for (auto& [b, e] : globals)
        if (s >= b && s + bytes <= e) return;
    fail("global read outside every buffer", p);
}
inline void land(const Copy& c) {
    std::memset(c.dst, 0, 16);
    std::memcpy(c.dst, c.src, c.bytes);
}

// Launch `kernel` over a grid of (gx, gy) blocks of (dx, dy) threads with `shared` bytes of
// dynamic shared memory, one block after another.
inline void launch(unsigned gx, unsigned gy, unsigned dx, unsigned dy, size_t shared,
                   const std::function<void()>& kernel) {
    const int threads = int(dx * dy);
    if (threads % 32) fail("a block of a partial warp", nullptr);
    for (unsigned by = 0; by < gy; ++by)
        for (unsigned bx = 0; bx < gx; ++bx) {
            // 128-byte aligned like CUDA's dynamic shared memory, poisoned with bf16 NaNs.
            std::unique_ptr<unsigned char, void (*)(void*)> mem(
                static_cast<unsigned char*>(std::aligned_alloc(128, (shared + 127) / 128 * 128)), std::free);
            std::memset(mem.get(), 0xff, shared);
            Block b(threads, mem.get(), shared);
            std::vector<std::thread> pool;
            for (int t = 0; t < threads; ++t)
                pool.emplace_back([&, t] {
                    block = &b;
                    thread_idx = {unsigned(t) % dx, unsigned(t) / dx, 0};
                    linear = t;
                    block_idx = {bx, by, 0};
                    groups.clear();
                    open_group.clear();
                    kernel();
                    for (auto& g : groups)
                        if (!g.empty()) fail("copies still in flight at exit", g[0].dst);
                    if (!open_group.empty()) fail("copies never committed", open_group[0].dst);
                });
            for (auto& th : pool) th.join();
        }
}

inline Warp& warp() { return block->warps[linear / 32]; }
inline int lane() { return linear % 32; }

}  // namespace emu

#define threadIdx (emu::thread_idx)
#define blockIdx (emu::block_idx)
#define DYNAMIC_SHARED(name) unsigned char* name = emu::block->shared
// A static `__shared__` array of `bytes`, given the block's (poisoned) shared memory: the launch
// must pass at least that many bytes.
#define STATIC_SHARED(name, bytes) \
    unsigned char* name = (emu::block->shared_bytes < size_t(bytes) ? emu::fail("static shared memory larger than the launch gave", nullptr), nullptr : emu::block->shared)

inline void __syncthreads() { emu::block->bar.arrive_and_wait(); }

inline void cp_async16(void* smem, const void* gmem, int src_bytes) {
    emu::check_shared(smem, 16);
    emu::check_aligned16(smem);
    emu::check_aligned16(gmem);
    if (src_bytes != 0 && src_bytes != 16) emu::fail("a copy of neither 0 nor 16 bytes", smem);
    if (src_bytes) emu::check_global(gmem, src_bytes);
    emu::open_group.push_back({smem, gmem, src_bytes});
}
inline void cp_async_commit() {
    emu::groups.push_back(std::move(emu::open_group));
    emu::open_group.clear();
}
template <int N>
inline void cp_async_wait() {
    while (emu::groups.size() > size_t(N)) {
        for (auto& c : emu::groups.front()) emu::land(c);
        emu::groups.erase(emu::groups.begin());
    }
}

inline uint16_t b16_at(const unsigned char* row, int col) {
    uint16_t v;
    std::memcpy(&v, row + 2 * col, 2);
    return v;
}

template <bool TRANS>
inline void ldmatrix_x4_impl(u32* r, const void* row) {
    emu::check_shared(row, 16);
    emu::check_aligned16(row);
    auto& w = emu::warp();
    const int lane = emu::lane();
    w.rows[lane] = static_cast<const unsigned char*>(row);
    w.bar.arrive_and_wait();
    const int g = lane / 4, t = lane % 4;
    for (int j = 0; j < 4; ++j) {
        uint16_t lo, hi;
        if (TRANS) {  // matrix j's column g, rows 2t and 2t + 1
            lo = b16_at(w.rows[8 * j + 2 * t], g);
            hi = b16_at(w.rows[8 * j + 2 * t + 1], g);
        } else {  // matrix j's row g, columns 2t and 2t + 1
            lo = b16_at(w.rows[8 * j + g], 2 * t);
            hi = b16_at(w.rows[8 * j + g], 2 * t + 1);
        }
        r[j] = u32(lo) | (u32(hi) << 16);
    }
    w.bar.arrive_and_wait();
}
inline void ldmatrix_x4(u32* r, const void* row) { ldmatrix_x4_impl<false>(r, row); }
inline void ldmatrix_x4_trans(u32* r, const void* row) { ldmatrix_x4_impl<true>(r, row); }

inline float b16f(u32 reg, int half) { return __bfloat162float({uint16_t(half ? reg >> 16 : reg & 0xffff)}); }

inline void mma16816(float* c, const u32* a, const u32* b) {
    auto& w = emu::warp();
    const int lane = emu::lane();
    std::memcpy(w.a[lane], a, 16);
    std::memcpy(w.b[lane], b, 8);
    std::memcpy(w.c[lane], c, 16);
    w.bar.arrive_and_wait();
    float A[16][16], B[16][8], C[16][8];
    for (int l = 0; l < 32; ++l) {
        const int g = l / 4, t = l % 4;
        for (int h = 0; h < 2; ++h) {
            A[g][2 * t + h] = b16f(w.a[l][0], h);
            A[g + 8][2 * t + h] = b16f(w.a[l][1], h);
            A[g][2 * t + 8 + h] = b16f(w.a[l][2], h);
            A[g + 8][2 * t + 8 + h] = b16f(w.a[l][3], h);
            B[2 * t + h][g] = b16f(w.b[l][0], h);
            B[2 * t + 8 + h][g] = b16f(w.b[l][1], h);
            C[g][2 * t + h] = w.c[l][h];
            C[g + 8][2 * t + h] = w.c[l][2 + h];
        }
    }
    w.bar.arrive_and_wait();
    const int g = lane / 4, t = lane % 4;
    const int rows[4] = {g, g, g + 8, g + 8}, cols[4] = {2 * t, 2 * t + 1, 2 * t, 2 * t + 1};
    for (int e = 0; e < 4; ++e) {
        float s = C[rows[e]][cols[e]];
        for (int kk = 0; kk < 16; ++kk) s += A[rows[e]][kk] * B[kk][cols[e]];
        c[e] = s;
    }
}
// The form flash_hand.cu uses: B's two registers apart.
inline void mma16816(float* c, const u32* a, u32 b0, u32 b1) {
    const u32 b[2] = {b0, b1};
    mma16816(c, a, b);
}

// `shfl.sync.bfly` over the full warp: lane l gets lane (l ^ m)'s value.
inline float __shfl_xor_sync(unsigned mask, float v, int m) {
    if (mask != 0xffffffffu) emu::fail("a partial-warp shuffle", nullptr);
    auto& w = emu::warp();
    const int lane = emu::lane();
    w.f[lane] = v;
    w.bar.arrive_and_wait();
    const float got = w.f[lane ^ m];
    w.bar.arrive_and_wait();
    return got;
}
