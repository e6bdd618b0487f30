// Runs scripts/gemm-hand.cu — its own source, both tile shapes — on the CPU through
// scripts/gemm-hand-host.h, against a double-precision product of the same bf16 inputs, at
// sizes that exercise every edge: M not a multiple of the tile, N and K multiples of 8 but
// not of the tile (zero-filled copies), K shorter than the ring and many times longer, bias
// and GELU on and off. Passes when every output is within one bf16 step of the reference
// rounded the kernel's way and nothing outside y was written.
//
//     g++ -std=c++20 -O2 -pthread -o /tmp/gemm-hand-check scripts/gemm-hand-check.cpp && /tmp/gemm-hand-check
#include "gemm-hand-host.h"
#include "gemm-hand.cu"

#include <random>

namespace {

using bf16 = __nv_bfloat16;

struct Case {
    int m, n, k;
    bool bias, gelu, big_tiles;
};

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

bool run(const Case& c, std::mt19937& rng) {
    std::uniform_real_distribution<float> uni(-1.0f, 1.0f);
    const int guard = 64;  // bf16 after y that must stay untouched
    bf16* x = aligned<bf16>(size_t(c.m) * c.k);
    bf16* w = aligned<bf16>(size_t(c.k) * c.n);
    bf16* b = aligned<bf16>(c.n);
    bf16* y = aligned<bf16>(size_t(c.m) * c.n + guard);
    const float ws = 1.0f / std::sqrt(float(c.k));
    for (size_t i = 0; i < size_t(c.m) * c.k; ++i) x[i] = __float2bfloat16(uni(rng));
    for (size_t i = 0; i < size_t(c.k) * c.n; ++i) w[i] = __float2bfloat16(uni(rng) * ws);
    for (int i = 0; i < c.n; ++i) b[i] = __float2bfloat16(uni(rng) * 0.5f);
    for (size_t i = 0; i < size_t(c.m) * c.n + guard; ++i) y[i] = {0x7fc1};  // a NaN the kernel never writes

    emu::globals.clear();
    emu::global(x, size_t(c.m) * c.k * 2);
    emu::global(w, size_t(c.k) * c.n * 2);
    const int bm = c.big_tiles ? 128 : 64, bn = 128;
    const unsigned gx = (c.n + bn - 1) / bn, gy = (c.m + bm - 1) / bm;
    const bf16* bias = c.bias ? b : nullptr;
    emu::launch(gx, gy, THREADS, gemm_hand_shared_bytes(bm, bn), [&] {
        if (c.big_tiles)
            gemm_hand_128x128(x, w, bias, y, c.m, c.n, c.k, c.gelu);
        else
            gemm_hand_64x128(x, w, bias, y, c.m, c.n, c.k, c.gelu);
    });

    int worst = 0;
    long off = 0;
    for (int i = 0; i < c.m; ++i)
        for (int j = 0; j < c.n; ++j) {
            double s = 0.0;
            for (int kk = 0; kk < c.k; ++kk)
                s += double(__bfloat162float(x[size_t(i) * c.k + kk])) * double(__bfloat162float(w[size_t(kk) * c.n + j]));
            float v = float(s);
            if (c.bias) v += __bfloat162float(b[j]);
            if (c.gelu) v = gelu_ref(__bfloat162float(__float2bfloat16(v)));
            const uint16_t want = __float2bfloat16(v).bits, got = y[size_t(i) * c.n + j].bits;
            const int d = (got & 0x7f80) == 0x7f80 ? 1 << 20 : steps(want, got);  // NaN / inf: never right
            if (d > worst) worst = d;
            off += d > 1;
        }
    bool guard_ok = true;
    for (int i = 0; i < guard; ++i) guard_ok &= y[size_t(c.m) * c.n + i].bits == 0x7fc1;
    const bool ok = off == 0 && guard_ok;
    std::printf("%-5s %s M %4d N %4d K %5d bias %d gelu %d: worst %d bf16 step(s), %ld outputs > 1 step, guard %s\n",
                ok ? "ok" : "FAIL", c.big_tiles ? "128x128" : " 64x128", c.m, c.n, c.k, c.bias, c.gelu, worst, off,
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
        {150, 136, 88, true, false, true},    // M, N, K edges; K tail of 24 in the third tile
        {37, 264, 40, false, false, false},   // one row block; three column blocks, the last 8 wide
        {129, 8, 8, true, true, true},        // one K tile shorter than a stage; a row block of 1
        {200, 256, 200, true, true, false},   // the ring wraps (7 tiles); GELU
        {64, 128, 1152, true, false, false},  // SigLIP's K: 36 tiles through the ring
        {72, 120, 4304, false, false, true},  // fc2's K (not a multiple of 32)
    };
    bool all = true;
    for (const auto& c : cases) all &= run(c, rng);
    std::printf(all ? "gemm-hand-check: all ok\n" : "gemm-hand-check: FAILED\n");
    return all ? 0 : 1;
}
