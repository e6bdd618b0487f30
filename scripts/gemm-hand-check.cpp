// Runs dam-core/src/matmul_kernel/gemm_hand.cu — its own source, every variant, through both
// kinds of entry point (the scripts' contiguous one with dynamic shared memory, and the
// library's with row strides, `GemmHandArgs` and static shared memory, at padded strides) —
// on the CPU through scripts/cuda-emulation.h, against a double-precision product of the same bf16 inputs, at
// sizes that exercise every edge: M not a multiple of the tile, N and K multiples of 8 but
// not of the tile (zero-filled copies), K shorter than the ring and many times longer, bias
// and GELU on and off. Passes when every output is within one bf16 step of the reference
// rounded the kernel's way (with GELU: GELU of the sum rounded to bf16 or to either of its
// neighbours, since f32 and double sums may round differently and one step of GELU's input
// can be two of its output) — or, where the sum nearly cancels and a bf16 step is tiny,
// within what f32 accumulation may lose: (8 + √K) f32 epsilons of Σ|x·w| + |bias| — and
// nothing outside y's rows (nor in the padding between them) was written. A wrong element or a lost tile is off by ≈ 0.1–1,
// thousands of times that.
//
//     g++ -std=c++20 -O2 -pthread -o /tmp/gemm-hand-check scripts/gemm-hand-check.cpp
//     /tmp/gemm-hand-check
#include "cuda-emulation.h"
#include "../dam-core/src/matmul_kernel/gemm_hand.cu"

// The library's entry point for every variant (in the library one at a time, as `gemm_hand`).
#define GEMM_HAND_LIB_ENTRY(BM, BN, BK, STAGES, WM, WN, MIN_BLOCKS) \
    GEMM_HAND_STRIDED_KERNEL(gemm_hand_lib_##BM##x##BN##x##BK##_s##STAGES, BM, BN, BK, STAGES, WM, WN, MIN_BLOCKS)
GEMM_HAND_VARIANTS(GEMM_HAND_LIB_ENTRY)

#include <algorithm>
#include <random>

namespace {

using bf16 = __nv_bfloat16;

struct Case {
    int m, n, k;
    bool bias, gelu;
};

using Kernel = void (*)(const bf16*, const bf16*, const bf16*, bf16*, int, int, int, int);
using LibKernel = void (*)(const bf16*, const bf16*, const bf16*, bf16*, GemmHandArgs);
struct Variant {
    const char* name;
    int bm, bn, shared_bytes;
    Kernel kernel;
    LibKernel lib;
};
#define GEMM_HAND_ENTRY(BM, BN, BK, STAGES, WM, WN, MIN_BLOCKS)                      \
    {"gemm_hand_" #BM "x" #BN "x" #BK "_s" #STAGES, BM, BN, Shape<BM, BN, BK, STAGES>::SHARED_BYTES, \
     gemm_hand_##BM##x##BN##x##BK##_s##STAGES, gemm_hand_lib_##BM##x##BN##x##BK##_s##STAGES},
const Variant VARIANTS[] = {GEMM_HAND_VARIANTS(GEMM_HAND_ENTRY)};

template <class T>
T* aligned(size_t count) {
    return static_cast<T*>(std::aligned_alloc(256, (count * sizeof(T) + 255) / 256 * 256));
}

float gelu_ref(float v) { return 0.5f * v * (1.0f + std::tanh(0.7978845608028654f * (v + 0.044715f * v * v * v))); }

// Distance in bf16 steps between two finite bf16 values of the same sign (or either zero).
int steps(uint16_t a, uint16_t b) {
    auto key = [](uint16_t v) { return (v & 0x8000) ? -int(v & 0x7fff) : int(v); };
    return std::abs(key(a) - key(b));
}

// `strided`: the library's entry, with rows padded (x by 8, w by 16, y by 24 elements) and no
// bias given as the library gives it (the flag off, the buffer bound to x).
bool run(const Variant& v, const Case& c, bool strided, std::mt19937& rng) {
    std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
    const int guard = 64;  // bf16 after y that must stay untouched
    const int sx = c.k + (strided ? 8 : 0), sw = c.n + (strided ? 16 : 0), sy = c.n + (strided ? 24 : 0);
    bf16* x = aligned<bf16>(size_t(c.m) * sx);
    bf16* w = aligned<bf16>(size_t(c.k) * sw);
    bf16* b = aligned<bf16>(c.n);
    bf16* y = aligned<bf16>(size_t(c.m) * sy + guard);
    const float ws = 1.0f / std::sqrt(float(c.k));
    // The padding holds NaNs: a read of it would show in y.
    for (size_t i = 0; i < size_t(c.m) * sx; ++i) x[i] = i % sx < size_t(c.k) ? __float2bfloat16(uni(rng)) : bf16{0x7fc2};
    for (size_t i = 0; i < size_t(c.k) * sw; ++i)
        w[i] = i % sw < size_t(c.n) ? __float2bfloat16(uni(rng) * ws) : bf16{0x7fc2};
    for (int i = 0; i < c.n; ++i) b[i] = __float2bfloat16(uni(rng) * 0.5f);
    for (size_t i = 0; i < size_t(c.m) * sy + guard; ++i) y[i] = {0x7fc1};  // a NaN the kernel never writes

    emu::globals.clear();
    emu::global(x, size_t(c.m) * sx * 2);
    emu::global(w, size_t(c.k) * sw * 2);
    const unsigned gx = (c.n + v.bn - 1) / v.bn, gy = (c.m + v.bm - 1) / v.bm;
    if (strided) {
        const GemmHandArgs args = {unsigned(c.m), unsigned(c.n), unsigned(c.k), unsigned(sx),
                                   unsigned(sw), unsigned(sy), c.bias, c.gelu};
        emu::launch(gx, gy, THREADS, 1, v.shared_bytes, [&] { v.lib(x, w, c.bias ? b : x, y, args); });
    } else {
        const bf16* bias = c.bias ? b : nullptr;
        emu::launch(gx, gy, THREADS, 1, v.shared_bytes, [&] { v.kernel(x, w, bias, y, c.m, c.n, c.k, c.gelu); });
    }

    int worst = 0;
    long off = 0;
    for (int i = 0; i < c.m; ++i)
        for (int j = 0; j < c.n; ++j) {
            double s = 0.0, mag = 0.0;
            for (int kk = 0; kk < c.k; ++kk) {
                const double p =
                    double(__bfloat162float(x[size_t(i) * sx + kk])) * double(__bfloat162float(w[size_t(kk) * sw + j]));
                s += p;
                mag += std::fabs(p);
            }
            if (c.bias) mag += std::fabs(__bfloat162float(b[j]));
            const double tol = (8.0 + std::sqrt(double(c.k))) * 0x1p-24 * mag;
            float r = float(s);
            if (c.bias) r += __bfloat162float(b[j]);
            const uint16_t got = y[size_t(i) * sy + j].bits;
            int d = 1 << 20;  // NaN / inf: never right
            if ((got & 0x7f80) != 0x7f80) {
                if (c.gelu) {
                    // GELU of the rounded sum, or of either neighbour (the top comment).
                    const uint16_t pre = __float2bfloat16(r).bits;
                    for (int delta = -1; delta <= 1; ++delta) {
                        const float in = __bfloat162float({uint16_t(pre + delta)});
                        d = std::min(d, steps(__float2bfloat16(gelu_ref(in)).bits, got));
                    }
                    r = gelu_ref(__bfloat162float({pre}));
                } else {
                    d = steps(__float2bfloat16(r).bits, got);
                }
            }
            if (d > worst) worst = d;
            off += d > 1 && !(std::fabs(double(__bfloat162float({got})) - double(r)) <= tol);
        }
    bool guard_ok = true;
    for (int i = 0; i < guard; ++i) guard_ok &= y[size_t(c.m) * sy + i].bits == 0x7fc1;
    for (int i = 0; i < c.m; ++i)
        for (int j = c.n; j < sy; ++j) guard_ok &= y[size_t(i) * sy + j].bits == 0x7fc1;
    const bool ok = off == 0 && guard_ok;
    std::printf("%-4s %-22s %-7s M %4d N %4d K %5d bias %d gelu %d: worst %d bf16 step(s), %ld off, guard %s\n",
                ok ? "ok" : "FAIL", v.name, strided ? "strided" : "dense", c.m, c.n, c.k, c.bias, c.gelu, worst, off,
                guard_ok ? "untouched" : "WRITTEN");
    std::free(x);
    std::free(w);
    std::free(b);
    std::free(y);
    return ok;
}

}  // namespace

int main() {
    std::mt19937 rng(7);
    const Case cases[] = {
        {150, 136, 88, true, false},    // M, N, K edges; a K tail of 24 whatever the K step
        {37, 264, 40, false, false},    // one row block; the last column block 8 (or 72) wide
        {129, 8, 8, true, true},        // one K tile shorter than a stage; a row block of 1
        {200, 256, 200, true, true},    // the ring wraps (7 or 4 tiles); GELU
        {64, 128, 1152, true, false},   // SigLIP's K: 36 or 18 tiles through the ring
        {72, 120, 4304, false, false},  // fc2's K (not a multiple of 32)
    };
    bool all = true;
    for (const auto& v : VARIANTS) {
        for (const auto& c : cases) all &= run(v, c, false, rng);
        // The library's entry, for the variants it takes (static shared memory, ≤ 48 KiB): the
        // edges again, strided (the K = 4304 case is the dense one's).
        if (v.shared_bytes <= 48 * 1024)
            for (const auto& c : cases)
                if (c.k < 4000) all &= run(v, c, true, rng);
    }
    std::printf(all ? "gemm-hand-check: all ok\n" : "gemm-hand-check: FAILED\n");
    return all ? 0 : 1;
}
