// The μ[t]·Φ step of optimizers/reference.py over all tensors of a param group in one call.
//
// Built and loaded by optimizers/native.py (see there for why it exists). Every tensor is a
// contiguous CPU array of float or double; each coordinate is read and written once, and the
// work is split into equal blocks shared by the OpenMP threads. The per-tensor scalars come in a
// table whose columns are those of optimizers/functional.py (_SCALE .. _WD); the arithmetic is
// written in the same order as its compiled kernel, so both paths round alike.
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

namespace {

enum Column { SCALE, BETA, ETA, GAMMA, BETA2, ONE_M_BETA2, INV_BC2_SQRT, EPS, BETA_A, ONE_M_BETA_A,
              INV_BC_A, DECAY, WD, NCOL };
// Lists of the pointer table, in this order, each `n` long.
enum List { PARAM, GRAD, SQ, AVG, PREV, NUM, NLIST };

constexpr int64_t BLOCK = 1 << 14;         // coordinates per work item
constexpr int64_t SERIAL_BELOW = 1 << 15;  // a group this small is not worth waking the threads

// The step's variant, known at compile time so that every loop is branch-free and vectorises:
// index = momentum + 2*prev + 4*numerator + 12*weight_decay + 36*track, where numerator is
// 0 one / 1 moment / 2 parcor and weight_decay is 0 none / 1 coupled / 2 decoupled.
constexpr int N_VARIANTS = 72;

template <typename T, int V>
double update(int64_t n, T* __restrict w, const T* __restrict grad, T* __restrict sq,
              T* __restrict avg, T* __restrict prev, T* __restrict num, const double* c) {
    constexpr bool momentum = V % 2, use_prev = V / 2 % 2, track = V / 36;
    constexpr int numerator = V / 4 % 3, decay = V / 12 % 3;
    const T scale = c[SCALE], beta = c[BETA], eta = c[ETA], gamma = c[GAMMA], beta2 = c[BETA2],
            one_m_beta2 = c[ONE_M_BETA2], inv_bc2_sqrt = c[INV_BC2_SQRT], eps = c[EPS],
            beta_a = c[BETA_A], one_m_beta_a = c[ONE_M_BETA_A], inv_bc_a = c[INV_BC_A],
            shrink = c[DECAY], wd = c[WD];
    double sumsq = 0.0;
#pragma omp simd reduction(+ : sumsq)
    for (int64_t j = 0; j < n; ++j) {
        const T wj = w[j];
        T g = grad[j];
        if constexpr (decay == 1) g = g + wd * wj;
        const T second = sq[j] * beta2 + one_m_beta2 * (g * g);
        const T denom = std::sqrt(second) * inv_bc2_sqrt + eps;
        T filtered_in = g;
        if constexpr (use_prev) {
            filtered_in = g - gamma * prev[j];
            prev[j] = g;
        }
        T delta;
        if constexpr (momentum) {
            const T v = avg[j] * beta + eta * filtered_in;
            avg[j] = v;
            delta = scale * v / denom;
        } else {
            delta = scale * filtered_in / denom;
        }
        if constexpr (numerator != 0) {
            const T g_bar = g / denom;
            const T sample = numerator == 1 ? g_bar * g_bar : wj * g_bar;
            const T a_avg = num[j] * beta_a + one_m_beta_a * sample;
            num[j] = a_avg;
            T a = a_avg * inv_bc_a;
            if constexpr (numerator == 2) a = a < T(0) ? T(0) : (a > T(1) ? T(1) : a);
            delta = a * delta;
        }
        sq[j] = second;
        if constexpr (decay == 2) {
            w[j] = wj * shrink + delta;
        } else {
            w[j] = wj + delta;
        }
        if constexpr (track) {
            const float d = static_cast<float>(delta);
            sumsq += static_cast<double>(d) * d;
        }
    }
    return sumsq;
}

template <typename T>
using Kernel = double (*)(int64_t, T*, const T*, T*, T*, T*, T*, const double*);

template <typename T, int... V>
constexpr auto make_table(std::integer_sequence<int, V...>) {
    return std::vector<Kernel<T>>{&update<T, V>...};
}

template <typename T>
const std::vector<Kernel<T>>& kernels() {
    static const auto table = make_table<T>(std::make_integer_sequence<int, N_VARIANTS>{});
    return table;
}

template <typename T>
double step(int64_t n, const int64_t* ptrs, const int64_t* sizes, const double* table, int variant,
            int threads) {
    const Kernel<T> kernel = kernels<T>()[variant];
    auto at = [&](int list, int64_t i, int64_t offset) {
        return ptrs[list * n + i] ? reinterpret_cast<T*>(ptrs[list * n + i]) + offset : nullptr;
    };
    // Work items: (tensor, first coordinate), each at most BLOCK coordinates long.
    std::vector<std::pair<int64_t, int64_t>> items;
    int64_t total = 0;
    for (int64_t i = 0; i < n; ++i) {
        for (int64_t lo = 0; lo < sizes[i]; lo += BLOCK) items.emplace_back(i, lo);
        total += sizes[i];
    }
    const int64_t count = static_cast<int64_t>(items.size());
    std::vector<double> partial(count, 0.0);
#pragma omp parallel for schedule(static) num_threads(threads) if (total >= SERIAL_BELOW && threads > 1)
    for (int64_t k = 0; k < count; ++k) {
        const int64_t i = items[k].first, lo = items[k].second;
        const int64_t len = sizes[i] - lo < BLOCK ? sizes[i] - lo : BLOCK;
        partial[k] = kernel(len, at(PARAM, i, lo), at(GRAD, i, lo), at(SQ, i, lo), at(AVG, i, lo),
                            at(PREV, i, lo), at(NUM, i, lo), table + i * NCOL);
    }
    double sumsq = 0.0;  // summed in item order: the result does not depend on the thread count
    for (int64_t k = 0; k < count; ++k) sumsq += partial[k];
    return sumsq;
}

}  // namespace

extern "C" {

// One step over `n` tensors. `ptrs` holds NLIST lists of n addresses (0 for an unused list),
// `sizes` the coordinates of each tensor, `table` n rows of NCOL scalars. `dtype`: 0 float,
// 1 double. Returns Σ Δ² over all coordinates (0 when the variant does not track it), or -1 for
// an argument out of range.
double muphi_step(int dtype, int64_t n, const int64_t* ptrs, const int64_t* sizes,
                  const double* table, int variant, int threads) {
    if (variant < 0 || variant >= N_VARIANTS || n < 0 || threads < 1) return -1.0;
    if (dtype == 0) return step<float>(n, ptrs, sizes, table, variant, threads);
    if (dtype == 1) return step<double>(n, ptrs, sizes, table, variant, threads);
    return -1.0;
}

}  // extern "C"
