#!/usr/bin/env python3
"""Checks scripts/flash-hand.cu's warp-level logic without a GPU: one warp (16 query rows)
over 100 keys (a full and a partial key block), head_dim 72 padded to 80, written step for
step as the kernel does it — which element each lane loads into which fragment register, the
online softmax with its shuffles, P's A fragments taken from S's accumulators — with the
`mma.m16n8k16` fragment layouts of the PTX ISA (A: rows g / g+8, columns 2t / 2t+8; B:
rows 2t / 2t+8, column g; C: rows g / g+8, columns 2t, 2t+1), against a plain attention in
floats. A mistake in the kernel's fragment mapping shows as an O(1) difference (swapping two
of P's registers: 0.51 against 0.96e-3). It mirrors the .cu by hand: change both together.
Standard-library Python; `python3 scripts/flash-hand-emulate.py`.
"""
# with mma.m16n8k16 fragments mapped as the PTX ISA states, against a reference attention.
import math, random, struct
random.seed(1)
HD, DP, BN = 72, 80, 64
SEQ_KV = 100
ROWS = 16
def bf16(x):
    b = struct.unpack('<I', struct.pack('<f', x))[0]
    b = (b + 0x7fff + ((b >> 16) & 1)) & 0xffff0000
    return struct.unpack('<f', struct.pack('<I', b))[0]
Q = [[bf16(random.gauss(0,1)) for _ in range(HD)] for _ in range(ROWS)]
K = [[bf16(random.gauss(0,1)) for _ in range(HD)] for _ in range(SEQ_KV)]
V = [[bf16(random.gauss(0,1)) for _ in range(HD)] for _ in range(SEQ_KV)]
scale = HD ** -0.5
# reference
ref = []
for i in range(ROWS):
    s = [sum(Q[i][d]*K[j][d] for d in range(HD))*scale for j in range(SEQ_KV)]
    m = max(s); p = [math.exp(x-m) for x in s]; l = sum(p)
    ref.append([sum(p[j]*V[j][d] for j in range(SEQ_KV))/l for d in range(HD)])
# shared tiles (padded); a "u32 pair" is a tuple of two values (lo, hi)
def sq(r, d): return Q[r][d] if d < HD else 0.0
lanes = [(l >> 2, l & 3) for l in range(32)]
# ISA: A regs per lane: [(g,2t..), (g+8,2t..), (g,2t+8..), (g+8,2t+8..)]; B: [(k=2t..,n=g),(k=2t+8..,n=g)]
def mma(C, A, B):
    # C: per lane [c0..c3]; A: per lane 4 pairs; B: per lane 2 pairs. Rebuild, multiply, scatter.
    a = [[0.0]*16 for _ in range(16)]; bm = [[0.0]*8 for _ in range(16)]
    for lane,(g,t) in enumerate(lanes):
        for reg,(r,c) in enumerate([(g,2*t),(g+8,2*t),(g,2*t+8),(g+8,2*t+8)]):
            a[r][c], a[r][c+1] = A[lane][reg]
        for reg,k0 in enumerate([2*t, 2*t+8]):
            bm[k0][g], bm[k0+1][g] = B[lane][reg]
    for lane,(g,t) in enumerate(lanes):
        for e,(r,c) in enumerate([(g,2*t),(g,2*t+1),(g+8,2*t),(g+8,2*t+1)]):
            C[lane][e] += sum(a[r][kk]*bm[kk][c] for kk in range(16))
# kernel logic
qa = [[[ (sq(g,kk*16+2*t), sq(g,kk*16+2*t+1)), (sq(g+8,kk*16+2*t), sq(g+8,kk*16+2*t+1)),
         (sq(g,kk*16+2*t+8), sq(g,kk*16+2*t+9)), (sq(g+8,kk*16+2*t+8), sq(g+8,kk*16+2*t+9)) ]
       for (g,t) in lanes] for kk in range(DP//16)]
o = [[[0.0]*4 for _ in range(32)] for _ in range(DP//8)]
m0 = [-math.inf]*32; m1 = [-math.inf]*32; l0 = [0.0]*32; l1 = [0.0]*32
sl2 = scale * 1.4426950408889634
for n0 in range(0, SEQ_KV, BN):
    def skk(r, d): return K[n0+r][d] if n0+r < SEQ_KV and d < HD else 0.0
    def svt(d, r): return V[n0+r][d] if n0+r < SEQ_KV and d < HD else 0.0
    s = [[[0.0]*4 for _ in range(32)] for _ in range(BN//8)]
    for n in range(BN//8):
        for kk in range(DP//16):
            B = [((skk(n*8+g, kk*16+2*t), skk(n*8+g, kk*16+2*t+1)), (skk(n*8+g, kk*16+2*t+8), skk(n*8+g, kk*16+2*t+9))) for (g,t) in lanes]
            mma(s[n], qa[kk], B)
    mx0 = [-math.inf]*32; mx1 = [-math.inf]*32
    for lane,(g,t) in enumerate(lanes):
        for n in range(BN//8):
            for e in range(4):
                key = n0 + n*8 + 2*t + (e & 1)
                s[n][lane][e] = s[n][lane][e]*sl2 if key < SEQ_KV else -math.inf
            mx0[lane] = max(mx0[lane], s[n][lane][0], s[n][lane][1])
            mx1[lane] = max(mx1[lane], s[n][lane][2], s[n][lane][3])
    # shuffles xor 1, 2
    for arr in (mx0, mx1):
        for mask in (1, 2):
            arr[:] = [max(arr[l], arr[l ^ mask]) for l in range(32)]
    for lane in range(32):
        new0 = max(m0[lane], mx0[lane]); new1 = max(m1[lane], mx1[lane])
        a0 = 1.0 if new0 == -math.inf else 2 ** (m0[lane]-new0)
        a1 = 1.0 if new1 == -math.inf else 2 ** (m1[lane]-new1)
        b0 = 0.0 if new0 == -math.inf else new0; b1 = 0.0 if new1 == -math.inf else new1
        m0[lane], m1[lane] = new0, new1
        s0 = s1 = 0.0
        for n in range(BN//8):
            v = s[n][lane]
            v[0] = 2 ** (v[0]-b0) if v[0] != -math.inf else 0.0
            v[1] = 2 ** (v[1]-b0) if v[1] != -math.inf else 0.0
            v[2] = 2 ** (v[2]-b1) if v[2] != -math.inf else 0.0
            v[3] = 2 ** (v[3]-b1) if v[3] != -math.inf else 0.0
            s0 += v[0]+v[1]; s1 += v[2]+v[3]
        l0[lane] = l0[lane]*a0 + s0; l1[lane] = l1[lane]*a1 + s1
        for n in range(DP//8):
            o[n][lane][0] *= a0; o[n][lane][1] *= a0; o[n][lane][2] *= a1; o[n][lane][3] *= a1
    for kk in range(BN//16):
        pa = [((bf16(s[2*kk][l][0]), bf16(s[2*kk][l][1])), (bf16(s[2*kk][l][2]), bf16(s[2*kk][l][3])),
               (bf16(s[2*kk+1][l][0]), bf16(s[2*kk+1][l][1])), (bf16(s[2*kk+1][l][2]), bf16(s[2*kk+1][l][3]))) for l in range(32)]
        for n in range(DP//8):
            B = [((svt(n*8+g, kk*16+2*t), svt(n*8+g, kk*16+2*t+1)), (svt(n*8+g, kk*16+2*t+8), svt(n*8+g, kk*16+2*t+9))) for (g,t) in lanes]
            mma(o[n], pa, B)
for arr in (l0, l1):
    for mask in (1, 2):
        arr[:] = [arr[l] + arr[l ^ mask] for l in range(32)]
out = [[None]*HD for _ in range(ROWS)]
for lane,(g,t) in enumerate(lanes):
    for n in range(DP//8):
        d = n*8 + 2*t
        if d < HD:
            out[g][d] = o[n][lane][0]/l0[lane]; out[g][d+1] = o[n][lane][1]/l0[lane]
            out[g+8][d] = o[n][lane][2]/l1[lane]; out[g+8][d+1] = o[n][lane][3]/l1[lane]
err = max(abs(out[i][d]-ref[i][d]) for i in range(ROWS) for d in range(HD))
print("max abs diff vs reference:", err, "max |ref|:", max(abs(x) for r in ref for x in r))
assert all(out[i][d] is not None for i in range(ROWS) for d in range(HD))
assert err < 5e-3, err
