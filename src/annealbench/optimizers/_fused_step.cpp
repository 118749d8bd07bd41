// The μ[t]·Φ step of src/annealbench/optimizers/reference.py (docs/theory.md eqs. S1-S7, S6', F3, N1-N3) over all
// tensors of a param group in one call: the operator `annealbench::muphi_step`, built by
// src/annealbench/optimizers/native.py with torch.utils.cpp_extension, called as torch.ops.annealbench.muphi_step.
//
// Every tensor is a contiguous CPU tensor of one dtype, float or double. Each coordinate is read
// and written once; the work is split into fixed blocks shared out by at::parallel_for (torch's
// own intra-op pool), and Σ Δ² is summed in block order, so results do not depend on the number
// of threads. The parameters' and state tensors' versions are bumped as an in-place torch
// operation bumps them, so autograd refuses a backward through a graph that saved old values.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace {

constexpr int64_t BLOCK = 1 << 14;  // coordinates per work item

// The step's variant, fixed at compile time so that every loop is branch-free and vectorises.
// This encoding exists here only: the caller passes the variant by name (see muphi_step).
enum Numerator { ONE, MOMENT, PARCOR };
enum Decay { NONE, COUPLED, DECOUPLED, IN_STEP };
constexpr int variant(bool momentum, bool use_prev, int numerator, int decay, bool track) {
    return int(momentum) + 2 * int(use_prev) + 4 * numerator + 12 * decay + 48 * int(track);
}
constexpr int N_VARIANTS = 96;

// The scalars of one tensor's step t (its own update count): bias corrections of eqs. S3, S5,
// N2-N3 and the first-step gain of eq. F3, folded into `scale`.
struct Scalars {
    double scale, beta, eta, gamma, beta2, one_m_beta2, inv_bc2_sqrt, eps, beta_a, one_m_beta_a,
        inv_bc_a, shrink, wd, decay_step;
};

struct Hyper {
    double mu_t, beta, eta, gamma, beta2, eps, beta_a, wd;
};

Scalars scalars(const Hyper& h, int64_t t, bool momentum) {
    const double td = static_cast<double>(t);
    const double gain = t == 1 ? 1 - h.gamma : 1.0;  // F3: unit gain at the first step
    return {momentum ? -h.mu_t * gain / (1 - std::pow(h.beta, td)) : -h.mu_t * h.eta * gain,
            h.beta, h.eta, h.gamma, h.beta2, 1 - h.beta2,
            1 / std::sqrt(1 - std::pow(h.beta2, td)), h.eps, h.beta_a, 1 - h.beta_a,
            1 / (1 - std::pow(h.beta_a, td)), 1 - h.mu_t * h.wd, h.wd,
            -h.mu_t * (1 - h.beta) / (1 - h.gamma) * h.wd};  // S6': -μ[t]·η_F·λ
}

template <typename T, int V>
double update(int64_t n, T* __restrict w, const T* __restrict grad, T* __restrict sq,
              T* __restrict avg, T* __restrict prev, T* __restrict num, const Scalars& c) {
    constexpr bool momentum = V % 2, use_prev = V / 2 % 2, track = V / 48;
    constexpr int numerator = V / 4 % 3, decay = V / 12 % 4;
    const T scale = c.scale, beta = c.beta, eta = c.eta, gamma = c.gamma, beta2 = c.beta2,
            one_m_beta2 = c.one_m_beta2, inv_bc2_sqrt = c.inv_bc2_sqrt, eps = c.eps,
            beta_a = c.beta_a, one_m_beta_a = c.one_m_beta_a, inv_bc_a = c.inv_bc_a,
            shrink = c.shrink, wd = c.wd, decay_step = c.decay_step;
    double sumsq = 0.0;
#pragma omp simd reduction(+ : sumsq)
    for (int64_t j = 0; j < n; ++j) {
        const T wj = w[j];
        T g = grad[j];
        if constexpr (decay == COUPLED) g = g + wd * wj;
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
        if constexpr (decay == IN_STEP) delta = delta + decay_step * wj;
        if constexpr (numerator != ONE) {
            const T g_bar = g / denom;
            const T sample = numerator == MOMENT ? g_bar * g_bar : wj * g_bar;
            const T a_avg = num[j] * beta_a + one_m_beta_a * sample;
            num[j] = a_avg;
            T a = a_avg * inv_bc_a;
            if constexpr (numerator == PARCOR) a = a < T(0) ? T(0) : (a > T(1) ? T(1) : a);
            delta = a * delta;
        }
        sq[j] = second;
        if constexpr (decay == DECOUPLED) {
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
using Kernel = double (*)(int64_t, T*, const T*, T*, T*, T*, T*, const Scalars&);

template <typename T, int... V>
std::vector<Kernel<T>> make_kernels(std::integer_sequence<int, V...>) {
    return {&update<T, V>...};
}

template <typename T>
const std::vector<Kernel<T>>& kernels() {
    static const auto table = make_kernels<T>(std::make_integer_sequence<int, N_VARIANTS>{});
    return table;
}

using List = at::TensorList;

void check_list(const List& xs, const List& params, const char* what, bool used) {
    if (!used) return;
    TORCH_CHECK_VALUE(xs.size() == params.size(), "MuPhi's fused step: ", xs.size(), " ", what,
                      " tensors for ", params.size(), " parameters");
    const auto dtype = params[0].scalar_type();
    for (size_t i = 0; i < xs.size(); ++i) {
        const auto& x = xs[i];
        TORCH_CHECK_VALUE(x.device().is_cpu() && x.scalar_type() == dtype && x.is_contiguous(),
                          "MuPhi's fused step takes contiguous CPU tensors of one dtype (",
                          dtype, " here): a ", what, " is ", x.scalar_type(), " on ", x.device(),
                          ", contiguous=", x.is_contiguous());
        TORCH_CHECK_VALUE(x.numel() == params[i].numel(), "MuPhi: a ", what, " tensor has ",
                          x.numel(), " elements where its parameter has ", params[i].numel(),
                          " (a state dict loaded for another model?)");
    }
}

template <typename T>
T* at_or_null(const List& xs, size_t i, int64_t offset) {
    return xs.empty() ? nullptr : xs[i].data_ptr<T>() + offset;
}

template <typename T>
double run(const List& params, const List& grads, const List& sq, const List& avg,
           const List& prev, const List& num, const std::vector<Scalars>& rows, int code) {
    const Kernel<T> kernel = kernels<T>()[code];
    std::vector<std::pair<size_t, int64_t>> items;  // (tensor, first coordinate)
    for (size_t i = 0; i < params.size(); ++i) {
        for (int64_t lo = 0; lo < params[i].numel(); lo += BLOCK) items.emplace_back(i, lo);
    }
    std::vector<double> partial(items.size(), 0.0);
    at::parallel_for(0, static_cast<int64_t>(items.size()), 2, [&](int64_t begin, int64_t end) {
        for (int64_t k = begin; k < end; ++k) {
            const size_t i = items[k].first;
            const int64_t lo = items[k].second, len = std::min(BLOCK, params[i].numel() - lo);
            partial[k] = kernel(len, params[i].data_ptr<T>() + lo, grads[i].data_ptr<T>() + lo,
                                sq[i].data_ptr<T>() + lo, at_or_null<T>(avg, i, lo),
                                at_or_null<T>(prev, i, lo), at_or_null<T>(num, i, lo), rows[i]);
        }
    });
    double sumsq = 0.0;  // in item order: the same for any number of threads
    for (double x : partial) sumsq += x;
    return sumsq;
}

int numerator_code(const std::string& name) {
    if (name == "one") return ONE;
    if (name == "moment") return MOMENT;
    TORCH_CHECK_VALUE(name == "parcor", "MuPhi's fused step: numerator='", name,
                      "' is unknown: allowed are one, moment, parcor");
    return PARCOR;
}

int decay_code(const std::string& name) {
    if (name == "none") return NONE;
    if (name == "coupled") return COUPLED;
    if (name == "in-step") return IN_STEP;
    TORCH_CHECK_VALUE(name == "decoupled", "MuPhi's fused step: weight_decay_mode='", name,
                      "' is unknown: allowed are none, coupled, decoupled, in-step");
    return DECOUPLED;
}

// One step over a group. `steps` holds each tensor's update count t (already incremented);
// exp_avg is empty when β = 0, prev_grad when γ = 0, numerator_avg when the numerator is `one`.
// Returns Σ Δ² over all coordinates (0 when `track` is false).
double muphi_step(const List& params, const List& grads, const List& exp_avg_sq,
                  const List& exp_avg, const List& prev_grad, const List& numerator_avg,
                  c10::IntArrayRef steps, double mu_t, double beta, double eta,
                  double gamma, double beta2, double eps, double numerator_beta,
                  double weight_decay, std::string numerator,
                  std::string weight_decay_mode, bool track) {
    if (params.empty()) return 0.0;
    const auto dtype = params[0].scalar_type();
    TORCH_CHECK_VALUE(dtype == at::kFloat || dtype == at::kDouble,
                      "MuPhi's fused step takes float32 or float64 parameters, not ", dtype);
    check_list(params, params, "parameter", true);
    check_list(grads, params, "gradient", true);
    check_list(exp_avg_sq, params, "exp_avg_sq", true);
    check_list(exp_avg, params, "exp_avg", !exp_avg.empty());
    check_list(prev_grad, params, "prev_grad", !prev_grad.empty());
    check_list(numerator_avg, params, "numerator_avg", !numerator_avg.empty());
    TORCH_CHECK_VALUE(steps.size() == params.size(), "MuPhi's fused step: ", steps.size(),
                      " step counts for ", params.size(), " parameters");
    const bool momentum = !exp_avg.empty();
    const int num = numerator_code(numerator);
    TORCH_CHECK_VALUE((num == ONE) == numerator_avg.empty(),
                      "MuPhi's fused step: numerator_avg must be given exactly when the numerator is not 'one'");
    const int code = variant(momentum, !prev_grad.empty(), num, decay_code(weight_decay_mode), track);
    const Hyper h{mu_t, beta, eta, gamma, beta2, eps, numerator_beta, weight_decay};
    std::vector<Scalars> rows;
    rows.reserve(steps.size());
    for (int64_t t : steps) rows.push_back(scalars(h, t, momentum));
    const double sumsq = dtype == at::kFloat
        ? run<float>(params, grads, exp_avg_sq, exp_avg, prev_grad, numerator_avg, rows, code)
        : run<double>(params, grads, exp_avg_sq, exp_avg, prev_grad, numerator_avg, rows, code);
    for (const List* written : {&params, &exp_avg_sq, &exp_avg, &prev_grad, &numerator_avg}) {
        for (const auto& x : *written) x.unsafeGetTensorImpl()->bump_version();
    }
    return sumsq;
}

}  // namespace

TORCH_LIBRARY(annealbench, m) {
    m.def("muphi_step(Tensor(a!)[] params, Tensor[] grads, Tensor(b!)[] exp_avg_sq, "
          "Tensor(c!)[] exp_avg, Tensor(d!)[] prev_grad, Tensor(e!)[] numerator_avg, int[] steps, float mu_t, float beta, "
          "float eta, float gamma, float beta2, float eps, float numerator_beta, "
          "float weight_decay, str numerator, str weight_decay_mode, bool track) -> float");
}

TORCH_LIBRARY_IMPL(annealbench, CompositeExplicitAutograd, m) {
    m.impl("muphi_step", &muphi_step);
}
