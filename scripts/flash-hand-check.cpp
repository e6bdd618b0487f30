// Runs dam-vision/src/flash/flash_hand.cu — its own source, both entry points — on the CPU
// through scripts/cuda-emulation.h: `flash_hand_bf16` launched as scripts/flash-outside.py
// launches it on the GPU (the four buffers, the strides in the "dynamic metadata" buffer, the
// 104-byte grid-constant struct), and `flash_hand` as the library does (`FlashHandArgs`); grid
// (⌈seq_q / 64⌉, B·H), block (32, 4); against a double-precision softmax attention of the
// same bf16 values. Sizes and layouts that exercise its edges: query and key counts not multiples of
// 64 and unequal, a single key, contiguous `[B, H, S, D]`, `[B, S, H, D]` (heads interleaved,
// as a fused q|k|v projection leaves them) and head_dim strided (`[B, H, D, S]` storage), and
// keys whose scores grow along the sequence so that every key block raises the running row
// maximum (the rescaling path). The kernel rounds the probabilities to bf16 before P·V, as
// PyTorch's flash attention does, so it is compared with a tolerance: the largest difference
// within 2e-2 and the mean within 2e-3 of outputs of order 1; a wrong fragment or a lost
// block is off by ≈ 0.1–1 (the 2026-11-28 Python model of its fragments: 0.51 for two
// swapped registers).
//
//     g++ -std=c++20 -O2 -fno-strict-aliasing -pthread -o /tmp/flash-hand-check scripts/flash-hand-check.cpp
//     /tmp/flash-hand-check
#include "cuda-emulation.h"
#include "../dam-vision/src/flash/flash_hand.cu"

#include <algorithm>
#include <array>
#include <random>

namespace {

using bf16 = __nv_bfloat16;

enum class Layout { Bhsd, Bshd, Bhds };

struct Case {
    const char* what;
    int batch, heads, seq_q, seq_kv;
    Layout layout;
    bool growing_keys;
};

// Strides (elements) of a logical [B, H, S, D] tensor stored in `layout`.
std::array<u32, 4> strides(Layout layout, int h, int s, int d) {
    switch (layout) {
        case Layout::Bhsd:
            return {u32(h * s * d), u32(s * d), u32(d), 1};
        case Layout::Bshd:
            return {u32(s * h * d), u32(d), u32(h * d), 1};
        case Layout::Bhds:
            return {u32(h * d * s), u32(d * s), 1, u32(s)};
    }
    return {};
}

size_t at(const std::array<u32, 4>& st, int b, int h, int s, int d) {
    return size_t(b) * st[0] + size_t(h) * st[1] + size_t(s) * st[2] + size_t(d) * st[3];
}

// `library`: through `flash_hand` and `FlashHandArgs`, else `flash_hand_bf16`.
bool run(const Case& c, bool library, std::mt19937& rng) {
    std::normal_distribution<float> normal(0.0f, 1.0f);
    const int d = HD;
    const auto qst = strides(c.layout, c.heads, c.seq_q, d), kst = strides(c.layout, c.heads, c.seq_kv, d);
    const auto ost = strides(Layout::Bhsd, c.heads, c.seq_q, d);
    std::vector<bf16> q(size_t(c.batch) * c.heads * c.seq_q * d), k(size_t(c.batch) * c.heads * c.seq_kv * d),
        v(k.size()), out(q.size(), bf16{0x7fc1});
    for (int b = 0; b < c.batch; ++b)
        for (int h = 0; h < c.heads; ++h) {
            for (int s = 0; s < c.seq_q; ++s)
                for (int e = 0; e < d; ++e) q[at(qst, b, h, s, e)] = __float2bfloat16(normal(rng));
            for (int s = 0; s < c.seq_kv; ++s)
                for (int e = 0; e < d; ++e) {
                    // Growing keys: scores rise by ≈ 3 a block of 64 keys.
                    const float grow = c.growing_keys ? 1.0f + 0.05f * float(s) : 1.0f;
                    k[at(kst, b, h, s, e)] = __float2bfloat16(normal(rng) * grow);
                    v[at(kst, b, h, s, e)] = __float2bfloat16(normal(rng));
                }
        }
    const float scale = 1.0f / std::sqrt(float(d));

    // The launch's arguments, as cubecl-cuda passes them (scripts/flash-outside.py).
    std::vector<u32> meta;
    for (const auto& st : {qst, kst, kst, ost}) meta.insert(meta.end(), st.begin(), st.end());
    info_st info{};
    info.scalars_f32[0] = scale;
    info.scalars_u32[0] = u32(c.heads);
    info.scalars_u32[1] = u32(c.seq_q);
    info.scalars_u32[2] = u32(c.seq_kv);
    for (int i = 0; i < 4; ++i) info.static_meta[8 + i] = u32(4 * i);
    FlashHandArgs args{};
    args.heads = c.heads;
    args.seq_q = c.seq_q;
    args.seq_kv = c.seq_kv;
    std::memcpy(&args.scale_bits, &scale, 4);
    for (int i = 0; i < 4; ++i) {
        args.qs[i] = qst[i];
        args.ks[i] = kst[i];
        args.vs[i] = kst[i];
        args.os[i] = ost[i];
    }
    emu::globals.clear();
    emu::launch((c.seq_q + BM - 1) / BM, c.batch * c.heads, 32, 4, 0, [&] {
        if (library)
            flash_hand(q.data(), k.data(), v.data(), out.data(), args);
        else
            flash_hand_bf16(q.data(), k.data(), v.data(), out.data(), meta.data(), info);
    });

    double worst = 0.0, total = 0.0;
    long count = 0;
    for (int b = 0; b < c.batch; ++b)
        for (int h = 0; h < c.heads; ++h)
            for (int i = 0; i < c.seq_q; ++i) {
                std::vector<double> p(c.seq_kv);
                double mx = -1e300, sum = 0.0;
                for (int j = 0; j < c.seq_kv; ++j) {
                    double s = 0.0;
                    for (int e = 0; e < d; ++e)
                        s += double(__bfloat162float(q[at(qst, b, h, i, e)])) * __bfloat162float(k[at(kst, b, h, j, e)]);
                    p[j] = s * scale;
                    mx = std::max(mx, p[j]);
                }
                for (auto& x : p) sum += (x = std::exp(x - mx));
                for (int e = 0; e < d; ++e) {
                    double o = 0.0;
                    for (int j = 0; j < c.seq_kv; ++j) o += p[j] / sum * __bfloat162float(v[at(kst, b, h, j, e)]);
                    const float got = __bfloat162float(out[at(ost, b, h, i, e)]);
                    const double diff = std::isfinite(got) ? std::fabs(got - o) : 1e9;
                    worst = std::max(worst, diff);
                    total += diff;
                    ++count;
                }
            }
    const double mean = total / double(count);
    const bool ok = worst <= 2e-2 && mean <= 2e-3;
    std::printf("%-4s %-15s %-44s B %d H %d seq_q %4d seq_kv %4d: max diff %.3e, mean %.3e\n", ok ? "ok" : "FAIL",
                library ? "flash_hand" : "flash_hand_bf16", c.what, c.batch, c.heads, c.seq_q, c.seq_kv, worst, mean);
    return ok;
}

}  // namespace

int main() {
    std::mt19937 rng(11);
    const Case cases[] = {
        {"[B, H, S, D], 3 query and key blocks", 1, 2, 150, 150, Layout::Bhsd, false},
        {"[B, S, H, D], fewer queries than keys", 2, 2, 70, 129, Layout::Bshd, false},
        {"[B, H, D, S] (head_dim strided), exactly 64", 1, 2, 64, 64, Layout::Bhds, false},
        {"a single key", 1, 1, 17, 1, Layout::Bhsd, false},
        {"growing keys: every block raises the maximum", 1, 1, 40, 200, Layout::Bhsd, true},
    };
    bool all = true;
    for (bool library : {false, true})
        for (const auto& c : cases) all &= run(c, library, rng);
    std::printf(all ? "flash-hand-check: all ok\n" : "flash-hand-check: FAILED\n");
    return all ? 0 : 1;
}
