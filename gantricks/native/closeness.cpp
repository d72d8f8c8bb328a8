// Minibatch discrimination's pairwise sums (Salimans et al. 2016, arXiv:1606.03498, §3.2), fused: each pair
// of samples is visited once per kernel (K is symmetric), its L1 distance, kernel value and gradient terms
// computed in vector registers, nothing of size N x N stored. Plain C++ with GCC/Clang vector extensions and
// no torch headers: gantricks/native builds it with the system's compiler at first use and calls it through
// ctypes. The torch formulation in gantricks/tricks/minibatch_discrimination.py computes the same function
// where this is not built.
//
// Tensors, all contiguous: M and H (N, B, C) (sample i, kernel b, dimension c), g and o (N, B).
//   K_ij   = 2^max(-log2(e) Σ_c |M_ibc - M_jbc|, -64)   (the kernel's floor, as the torch formulation)
//   forward:          o_ib  = Σ_{j≠i} K_ij  (+1 with include_self)
//   backward:         F_ibc = -Σ_j (g_ib + g_jb) K_ij s_ijc,  s_ijc = sign(M_ibc - M_jbc)
//   double backward:  A_ij  = Σ_c s_ijc (H_ibc - H_jbc);  dg_ib = -Σ_j K_ij A_ij;
//                     dM_ibc = Σ_j (g_ib + g_jb) K_ij A_ij s_ijc
// Each kernel b is copied into a padded (C, Np) buffer, Np a multiple of the vector width, and the pairs
// (i, j > i) are taken a vector of j at a time from the block holding i + 1, the others masked to 0. A kernel b
// with a non-finite value of M gets NaN in all its outputs where N > 1, as the torch formulation does (its
// centring over the batch spreads the NaN; a single sample has no pair, and its outputs stay 0 or 1); the pair
// loops see finite values only.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <type_traits>

namespace {

constexpr double kLog2e = 1.4426950408889634;
constexpr double kMinExponent = -64.0;
template <typename T> constexpr T kNaN = std::numeric_limits<T>::quiet_NaN();
constexpr int kMaxDims = 64;      // the generic path's stack arrays (kernel_dim above this: the torch formulation)

template <typename T> struct Lanes;
template <> struct Lanes<float> {
    static constexpr int n = 8;
    typedef float V __attribute__((vector_size(32)));
    typedef int32_t I __attribute__((vector_size(32)));
    typedef uint32_t U __attribute__((vector_size(32)));
    typedef int32_t Index;
    static constexpr uint32_t sign_bit = 0x80000000u;
};
template <> struct Lanes<double> {
    static constexpr int n = 4;
    typedef double V __attribute__((vector_size(32)));
    typedef int64_t I __attribute__((vector_size(32)));
    typedef uint64_t U __attribute__((vector_size(32)));
    typedef int64_t Index;
    static constexpr uint64_t sign_bit = 0x8000000000000000ull;
};

// exp(-d) with the exponent floored at -64, lane by lane, for d >= 0 (finite or +inf: the callers leave
// kernels with a non-finite input out of the pair loops). Written for a short dependency chain
// (the pair loops are bound by its latency): y = -d log2(e) in [-64, 0] is split as n + f, n = round(y) and
// f in [-0.5, 0.5], by adding 1.5 * 2^23 (which rounds y to an integer in the low bits of the sum); 2^f is
// Cephes' exp2f polynomial (relative error below 2e-7) evaluated by Estrin's scheme, 2^n set as exponent bits.
inline Lanes<float>::V kernel_value(Lanes<float>::V d) {
    typedef Lanes<float>::V V;
    typedef Lanes<float>::U U;
    const V floor_ = V{} + static_cast<float>(kMinExponent);
    const float round_shift = 12582912.0f;                              // 1.5 * 2^23
    V y = d * static_cast<float>(-kLog2e);
#if defined(__AVX__)
    y = __builtin_ia32_maxps256(y, floor_);                            // one instruction for the floor
#else
    y = y < floor_ ? floor_ : y;
#endif
    V shifted = y + round_shift;                                         // bits: those of 1.5 * 2^23, plus n
    V f = y - (shifted - round_shift);
    V f2 = f * f;
    V low = (1.0f + 6.931472028550421e-1f * f) + f2 * (2.402264791363012e-1f + 5.550332471162809e-2f * f);
    V high = (9.618437357674640e-3f + 1.339887440266574e-3f * f) + f2 * 1.535336188319500e-4f;
    V p = low + (f2 * f2) * high;
    U bits = ((U)shifted + 127u) << 23;                                  // 2^n: biased exponent n + 127
    return p * (V)bits;
}

inline Lanes<double>::V kernel_value(Lanes<double>::V d) {
    Lanes<double>::V k;
    for (int l = 0; l < Lanes<double>::n; ++l) {
        double y = -d[l] * kLog2e;
        k[l] = std::exp2(y < kMinExponent ? kMinExponent : y);
    }
    return k;
}

// v * sign(s), lane by lane: v with its sign flipped where s < 0, 0 where s == 0.
template <typename V, typename U, typename S> inline V times_sign(V v, V s, S sign_bit) {
    return (V)((((U)v) ^ ((U)s & sign_bit)) & (U)(s != 0));
}

template <typename V, typename I> inline V masked(V v, I keep) { return (V)((I)v & keep); }

template <typename V> inline double lane_sum(V v, int n) {
    double s = 0;
    for (int l = 0; l < n; ++l) s += v[l];
    return s;
}

template <typename T> struct Buffer {      // 64-byte aligned scratch, zeroed
    T* p;
    explicit Buffer(int64_t n) : p(static_cast<T*>(::operator new[](sizeof(T) * n, std::align_val_t(64)))) {
        std::memset(p, 0, sizeof(T) * n);
    }
    ~Buffer() { ::operator delete[](p, std::align_val_t(64)); }
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;
};

// One kernel b's problem in padded (C, Np) buffers, and the pair loops. A row i takes the pairs (i, j > i) a
// vector of j at a time, from the block that holds i + 1; in its first block and in a last, partial one the
// lanes outside (i, N) are masked to 0. K, where the forward stores it for the backward, is (N, Np) per kernel,
// each row written (and read) in the blocks it visits.
template <typename T, int FixedC> struct Pairs {
    typedef Lanes<T> L;
    typedef typename L::V V;
    typedef typename L::I I;
    typedef typename L::U U;
    typedef typename L::Index S;
    static constexpr int W = L::n;
    static constexpr int kSlots = FixedC ? FixedC : kMaxDims;

    int64_t N, B, Np;
    int C;     // read through dims(), a compile-time constant where FixedC is given
    Pairs(int64_t N_, int64_t B_, int C_) : N(N_), B(B_), Np((N_ + W - 1) / W * W), C(C_) {}
    int dims() const { return FixedC ? FixedC : C; }

    // (N, B, width)[:, b] -> (width, Np); whether every value is finite
    bool load(const T* src, int64_t b, int width, T* dst) const {
        bool finite = true;
        for (int64_t i = 0; i < N; ++i)
            for (int c = 0; c < width; ++c) {
                T v = src[(i * B + b) * width + c];
                finite &= std::isfinite(v);
                dst[c * Np + i] = v;
            }
        return finite;
    }
    void fill(T value, int64_t b, int width, T* dst) const {
        for (int64_t i = 0; i < N; ++i)
            for (int c = 0; c < width; ++c) dst[(i * B + b) * width + c] = value;
    }
    void store(const T* src, int64_t b, int width, T* dst) const {
        for (int64_t i = 0; i < N; ++i)
            for (int c = 0; c < width; ++c) dst[(i * B + b) * width + c] = src[c * Np + i];
    }
    static V at(const T* p, int64_t j) { return *reinterpret_cast<const V*>(p + j); }
    static V& at(T* p, int64_t j) { return *reinterpret_cast<V*>(p + j); }

    // body(j0, edge) for each block of row i; edge (a std::bool_constant): lanes outside (i, N) to mask
    template <typename Body> void each_block(int64_t i, Body&& body) const {
        int64_t j0 = (i + 1) / W * W;
        const int64_t full_end = N / W * W;              // the blocks before it have every lane below N
        if (j0 >= Np) return;
        body(j0, std::true_type{});
        for (j0 += W; j0 < full_end; j0 += W) body(j0, std::false_type{});
        if (j0 < Np) body(j0, std::true_type{});
    }

    template <bool Edge> V mask(V v, int64_t i, int64_t j0) const {
        if constexpr (!Edge) {
            return v;
        } else {
            I j = I{} + static_cast<S>(j0);
            for (int l = 0; l < W; ++l) j[l] += l;
            return masked(v, (j > static_cast<S>(i)) & (j < static_cast<S>(N)));
        }
    }

    // K_ij for the block of j from j0 (masked on an edge), read from the forward's K where given, and
    // diff[c] = M_ic - M_jc
    template <bool Edge> V kernel(const T* x, const T* xi, int64_t i, int64_t j0, V* diff, const T* k_row) const {
        const int C = dims();
        if (k_row) {
            for (int c = 0; c < C; ++c) diff[c] = xi[c] - at(x + c * Np, j0);
            return at(k_row, j0);
        }
        V dist[2];                                    // two sums, for a shorter chain of additions
        for (int c = 0; c < C; ++c) {
            diff[c] = xi[c] - at(x + c * Np, j0);
            V magnitude = (V)((U)diff[c] & (~U{} >> 1));
            dist[c % 2] = c < 2 ? magnitude : dist[c % 2] + magnitude;
        }
        return mask<Edge>(kernel_value(C > 1 ? dist[0] + dist[1] : dist[0]), i, j0);
    }

    void forward(const T* x, T* o, T* own, T* k_out, bool include_self) const {
        const int C = dims();
        for (int64_t j = 0; j < Np; ++j) o[j] = include_self && j < N ? T(1) : T(0);
        V diff[kSlots];
        T xi[kSlots];
        for (int64_t i = 0; i < N; ++i) {
            for (int c = 0; c < C; ++c) xi[c] = x[c * Np + i];
            T* k_row = k_out ? k_out + i * Np : nullptr;
            V row = V{};
            each_block(i, [&](int64_t j0, auto edge) {
                V k = kernel<decltype(edge)::value>(x, xi, i, j0, diff, nullptr);
                row += k;
                at(o, j0) += k;
                if (k_row) at(k_row, j0) = k;
            });
            // a row's own sum is added after the loop: written into o now, it would stall the next row's
            // read of the same block (a vector load over a scalar store)
            own[i] = lane_sum(row, W);
        }
        for (int64_t i = 0; i < N; ++i) o[i] += own[i];
    }

    void backward(const T* x, const T* g, const T* k_in, T* f, T* own) const {
        const int C = dims();
        V diff[kSlots], acc[kSlots];
        T xi[kSlots];
        for (int64_t i = 0; i < N; ++i) {
            for (int c = 0; c < C; ++c) xi[c] = x[c * Np + i], acc[c] = V{};
            const T gi = g[i];
            const T* k_row = k_in ? k_in + i * Np : nullptr;
            each_block(i, [&](int64_t j0, auto edge) {
                V w = kernel<decltype(edge)::value>(x, xi, i, j0, diff, k_row) * (gi + at(g, j0));
                for (int c = 0; c < C; ++c) {
                    V t = times_sign<V, U>(w, diff[c], L::sign_bit);
                    acc[c] += t;
                    at(f + c * Np, j0) += t;
                }
            });
            for (int c = 0; c < C; ++c) own[c * Np + i] = lane_sum(acc[c], W);
        }
        for (int64_t e = 0; e < C * Np; ++e) f[e] -= own[e];
    }

    void double_backward(const T* x, const T* g, const T* h, const T* k_in, T* dm, T* dg, T* own) const {
        const int C = dims();
        V diff[kSlots], acc[kSlots];
        T xi[kSlots], hi[kSlots];
        for (int64_t i = 0; i < N; ++i) {
            for (int c = 0; c < C; ++c) xi[c] = x[c * Np + i], hi[c] = h[c * Np + i], acc[c] = V{};
            const T gi = g[i];
            const T* k_row = k_in ? k_in + i * Np : nullptr;
            V row = V{};
            each_block(i, [&](int64_t j0, auto edge) {
                V k = kernel<decltype(edge)::value>(x, xi, i, j0, diff, k_row);
                V a = V{};
                for (int c = 0; c < C; ++c) a += times_sign<V, U>(hi[c] - at(h + c * Np, j0), diff[c], L::sign_bit);
                V ka = k * a;
                row += ka;
                at(dg, j0) -= ka;
                V w = (gi + at(g, j0)) * ka;
                for (int c = 0; c < C; ++c) {
                    V t = times_sign<V, U>(w, diff[c], L::sign_bit);
                    acc[c] += t;
                    at(dm + c * Np, j0) -= t;
                }
            });
            own[C * Np + i] = lane_sum(row, W);
            for (int c = 0; c < C; ++c) own[c * Np + i] = lane_sum(acc[c], W);
        }
        for (int64_t e = 0; e < C * Np; ++e) dm[e] += own[e];
        for (int64_t i = 0; i < Np; ++i) dg[i] -= own[C * Np + i];
    }
};

template <typename T, int FixedC>
void run_forward(const T* M, T* o, T* K, int64_t N, int64_t B, int C, int include_self, int threads) {
    Pairs<T, FixedC> p(N, B, C);
#pragma omp parallel num_threads(threads)
    {
        Buffer<T> x(p.dims() * p.Np), out(p.Np), own(p.Np);
#pragma omp for schedule(static)
        for (int64_t b = 0; b < B; ++b) {
            if (!p.load(M, b, p.dims(), x.p) && N > 1) {
                p.fill(kNaN<T>, b, 1, o);
                continue;
            }
            p.forward(x.p, out.p, own.p, K ? K + b * N * p.Np : nullptr, include_self);
            p.store(out.p, b, 1, o);
        }
    }
}

template <typename T, int FixedC>
void run_backward(const T* M, const T* G, const T* K, T* F, int64_t N, int64_t B, int C, int threads) {
    Pairs<T, FixedC> p(N, B, C);
#pragma omp parallel num_threads(threads)
    {
        Buffer<T> x(p.dims() * p.Np), g(p.Np), f(p.dims() * p.Np), own(p.dims() * p.Np);
#pragma omp for schedule(static)
        for (int64_t b = 0; b < B; ++b) {
            if (!p.load(M, b, p.dims(), x.p) && N > 1) {
                p.fill(kNaN<T>, b, p.dims(), F);
                continue;
            }
            p.load(G, b, 1, g.p);
            std::memset(f.p, 0, sizeof(T) * p.dims() * p.Np);
            p.backward(x.p, g.p, K ? K + b * N * p.Np : nullptr, f.p, own.p);
            p.store(f.p, b, p.dims(), F);
        }
    }
}

template <typename T, int FixedC>
void run_double_backward(const T* M, const T* G, const T* H, const T* K, T* dM, T* dG, int64_t N, int64_t B, int C,
                         int threads) {
    Pairs<T, FixedC> p(N, B, C);
#pragma omp parallel num_threads(threads)
    {
        Buffer<T> x(p.dims() * p.Np), g(p.Np), h(p.dims() * p.Np), dm(p.dims() * p.Np), dg(p.Np),
            own((p.dims() + 1) * p.Np);
#pragma omp for schedule(static)
        for (int64_t b = 0; b < B; ++b) {
            if (!p.load(M, b, p.dims(), x.p) && N > 1) {
                p.fill(kNaN<T>, b, p.dims(), dM);
                p.fill(kNaN<T>, b, 1, dG);
                continue;
            }
            p.load(G, b, 1, g.p);
            p.load(H, b, p.dims(), h.p);
            std::memset(dm.p, 0, sizeof(T) * p.dims() * p.Np);
            std::memset(dg.p, 0, sizeof(T) * p.Np);
            p.double_backward(x.p, g.p, h.p, K ? K + b * N * p.Np : nullptr, dm.p, dg.p, own.p);
            p.store(dm.p, b, p.dims(), dM);
            p.store(dg.p, b, 1, dG);
        }
    }
}

// The kernel dimension C as a compile-time constant for 1..8 in float32 (the loops over it unrolled, its
// vectors in registers), else a runtime one up to kMaxDims (float64, which training does not use, always:
// half the compile time); 0 returned for a C this does not take.
template <typename T, typename F> int dispatch(int C, F&& call) {
    if (C < 1 || C > kMaxDims) return 0;
    if constexpr (std::is_same_v<T, float>) {
        switch (C) {
#define GANTRICKS_CASE(n) \
    case n: call(std::integral_constant<int, n>{}); return 1;
            GANTRICKS_CASE(1) GANTRICKS_CASE(2) GANTRICKS_CASE(3) GANTRICKS_CASE(4)
            GANTRICKS_CASE(5) GANTRICKS_CASE(6) GANTRICKS_CASE(7) GANTRICKS_CASE(8)
#undef GANTRICKS_CASE
            default: break;
        }
    }
    call(std::integral_constant<int, 0>{});
    return 1;
}

template <typename T> int forward_entry(const T* M, T* o, T* K, int64_t N, int64_t B, int64_t C, int include_self,
                                        int threads) {
    return dispatch<T>(static_cast<int>(C), [&](auto fixed) {
        run_forward<T, decltype(fixed)::value>(M, o, K, N, B, static_cast<int>(C), include_self, threads);
    });
}
template <typename T> int backward_entry(const T* M, const T* G, const T* K, T* F, int64_t N, int64_t B, int64_t C,
                                         int threads) {
    return dispatch<T>(static_cast<int>(C), [&](auto fixed) {
        run_backward<T, decltype(fixed)::value>(M, G, K, F, N, B, static_cast<int>(C), threads);
    });
}
template <typename T> int double_backward_entry(const T* M, const T* G, const T* H, const T* K, T* dM, T* dG,
                                                int64_t N, int64_t B, int64_t C, int threads) {
    return dispatch<T>(static_cast<int>(C), [&](auto fixed) {
        run_double_backward<T, decltype(fixed)::value>(M, G, H, K, dM, dG, N, B, static_cast<int>(C), threads);
    });
}

}  // namespace

// Each returns 1 when done, 0 for a kernel dimension it does not take (then nothing is written). K: null, or
// a (B, N, padded_size(N)) buffer the forward fills and the backward passes read instead of recomputing it.
extern "C" {
int closeness_abi_version() { return 2; }
int closeness_max_dims() { return kMaxDims; }
int64_t closeness_padded_size(int64_t N, int64_t itemsize) {
    const int64_t lanes = itemsize == 4 ? Lanes<float>::n : Lanes<double>::n;
    return (N + lanes - 1) / lanes * lanes;
}

#define GANTRICKS_ENTRIES(T, SUFFIX)                                                                               \
    int closeness_forward_##SUFFIX(const T* M, T* o, T* K, int64_t N, int64_t B, int64_t C, int include_self,     \
                                   int threads) {                                                                  \
        return forward_entry(M, o, K, N, B, C, include_self, threads);                                             \
    }                                                                                                              \
    int closeness_backward_##SUFFIX(const T* M, const T* g, const T* K, T* F, int64_t N, int64_t B, int64_t C,     \
                                    int threads) {                                                                 \
        return backward_entry(M, g, K, F, N, B, C, threads);                                                       \
    }                                                                                                              \
    int closeness_double_backward_##SUFFIX(const T* M, const T* g, const T* H, const T* K, T* dM, T* dg,           \
                                           int64_t N, int64_t B, int64_t C, int threads) {                         \
        return double_backward_entry(M, g, H, K, dM, dg, N, B, C, threads);                                        \
    }
GANTRICKS_ENTRIES(float, f32)
GANTRICKS_ENTRIES(double, f64)
#undef GANTRICKS_ENTRIES
}
