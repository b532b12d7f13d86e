// Two autograd ops, each composed of ATen ops with a backward written out so that training does
// less work or keeps less memory than autograd's graph of the same ops. Same math, same gradients
// (to float32 rounding): tests in test/ops/fused.test.ts and Mona's oracle parity tests.
//
// deltatune::trainable_conv2d — conv2d for a weight or bias that trains, with two of oneDNN's slow
// backward paths replaced: the bias gradient is a sum, and a depthwise kernel wider than 3 columns
// (stride 1, 'same' padding) gets its weight gradient from k×3 column bands, each against the input
// shifted sideways — oneDNN computes a 3-column depthwise weight gradient far faster than a
// 7-column one (figures: docs/performance.md#trainable-convolutions).
//
// deltatune::mona_folded_project — z = W1·(LN(x)·s1 + x·s2) + b1 with the scaled LayerNorm folded
// into the projection (see MonaBase.foldedProject1): one 1×1 conv of x with the stacked weights
// [W1·diag(w·s1); W1·diag(s2)] plus per-position statistics. Autograd's graph of those ops keeps
// several temporaries and sums gradients op by op; this backward keeps x, the statistics and one
// d-wide tensor, and gives x's gradient as one conv backward plus one fused correction.
#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

at::MemoryFormat formatOf(const at::Tensor& t) {
  return t.suggest_memory_format() == at::MemoryFormat::ChannelsLast ? at::MemoryFormat::ChannelsLast
                                                                      : at::MemoryFormat::Contiguous;
}

at::Tensor depthwiseWeightGrad(const at::Tensor& grad, const at::Tensor& input, int64_t kh, int64_t kw) {
  const int64_t channels = input.size(1);
  const int64_t ph = (kh - 1) / 2;
  const auto bandGrad = [&](const at::Tensor& in, int64_t width, int64_t pw) {
    const at::Tensor shape = at::empty({channels, 1, kh, width}, input.options());
    return std::get<1>(at::convolution_backward(grad, in, shape, c10::nullopt, {1, 1}, {ph, pw}, {1, 1}, false, {0, 0},
                                                channels, {false, true, false}));
  };
  if (kw <= 3) return bandGrad(input, kw, (kw - 1) / 2);
  at::Tensor weightGrad = at::empty({channels, 1, kh, kw}, input.options());
  const auto format = formatOf(input);
  const int64_t centre = (kw - 1) / 2;
  // The centre band (columns centre−1..centre+1) is an ordinary 3-wide 'same' conv of the input.
  weightGrad.narrow(3, centre - 1, 3).copy_(bandGrad(input, 3, 1));
  // Bands outward from it (the outermost may overlap its neighbour): columns start..start+2 see
  // input columns w + start − centre + (0..2), so each gets exactly those (W + 2 columns, zero
  // outside the input; negative padding crops) and no padding of its own.
  std::vector<int64_t> starts;
  for (int64_t s = centre - 4; s > -3; s -= 3) starts.push_back(std::max<int64_t>(s, 0));
  for (int64_t s = centre + 2; s < kw; s += 3) starts.push_back(std::min(s, kw - 3));
  for (const int64_t start : starts) {
    const at::Tensor window = at::constant_pad_nd(input, {centre - start, start + 2 - centre}).contiguous(format);
    weightGrad.narrow(3, start, 3).copy_(bandGrad(window, 3, 0));
  }
  return weightGrad;
}

// Band decomposition applies to a stride-1, undilated, 'same'-padded depthwise conv whose kernel is
// wider than 3 columns, on a map at least as wide as the kernel (narrower maps: aten's kernel).
bool bandsApply(const at::Tensor& input, const at::Tensor& weight, at::IntArrayRef stride, at::IntArrayRef padding,
                at::IntArrayRef dilation, int64_t groups) {
  const int64_t kh = weight.size(2), kw = weight.size(3);
  return groups == input.size(1) && weight.size(0) == groups && weight.size(1) == 1 && kw > 3 && kh % 2 == 1 &&
         kw % 2 == 1 && stride[0] == 1 && stride[1] == 1 && dilation[0] == 1 && dilation[1] == 1 &&
         padding[0] == (kh - 1) / 2 && padding[1] == (kw - 1) / 2 && input.size(3) >= kw;
}

// conv2d whose weight or bias trains. aten's backward has oneDNN compute the bias gradient, several
// times slower than a plain sum (docs/performance.md#trainable-convolutions), and a wide depthwise
// kernel's weight gradient slowly (above); this backward sums for the bias and uses the bands
// where they apply.
struct TrainableConv2d : public torch::autograd::Function<TrainableConv2d> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input, const at::Tensor& weight,
                            const c10::optional<at::Tensor>& bias, std::vector<int64_t> stride,
                            std::vector<int64_t> padding, std::vector<int64_t> dilation, int64_t groups) {
    ctx->save_for_backward({input, weight});
    ctx->saved_data["stride"] = stride;
    ctx->saved_data["padding"] = padding;
    ctx->saved_data["dilation"] = dilation;
    ctx->saved_data["groups"] = groups;
    ctx->saved_data["has_bias"] = bias.has_value() && bias->defined();  // an absent bias has no input edge
    return at::conv2d(input, weight, bias, stride, padding, dilation, groups);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& input = saved[0];
    const at::Tensor& weight = saved[1];
    const auto stride = ctx->saved_data["stride"].toIntVector();
    const auto padding = ctx->saved_data["padding"].toIntVector();
    const auto dilation = ctx->saved_data["dilation"].toIntVector();
    const int64_t groups = ctx->saved_data["groups"].toInt();
    const at::Tensor grad = grads[0].contiguous(formatOf(input));
    const bool bands = ctx->needs_input_grad(1) && bandsApply(input, weight, stride, padding, dilation, groups);
    at::Tensor inputGrad, weightGrad, biasGrad;
    if (ctx->needs_input_grad(0) || (ctx->needs_input_grad(1) && !bands)) {
      auto result = at::convolution_backward(grad, input, weight, c10::nullopt, stride, padding, dilation, false, {0, 0},
                                             groups, {ctx->needs_input_grad(0), ctx->needs_input_grad(1) && !bands, false});
      inputGrad = std::get<0>(result);
      weightGrad = std::get<1>(result);
    }
    if (bands) weightGrad = depthwiseWeightGrad(grad, input, weight.size(2), weight.size(3));
    if (ctx->saved_data["has_bias"].toBool() && ctx->needs_input_grad(2)) biasGrad = grad.sum({0, 2, 3});
    return {inputGrad, weightGrad, biasGrad, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

at::Tensor trainableConv2d(const at::Tensor& input, const at::Tensor& weight, const c10::optional<at::Tensor>& bias,
                           at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  TORCH_CHECK(input.dim() == 4 && weight.dim() == 4, "trainable_conv2d: expected a 4-d input and weight, got ", input.sizes(),
              " and ", weight.sizes());
  return TrainableConv2d::apply(input, weight, bias, stride.vec(), padding.vec(), dilation.vec(), groups);
}

// z = ρ·(Y1 − μ·r) + Y2 + c, with [Y1; Y2] = conv1x1(x, wcat), ρ = 1/√(var + eps); mean and var
// are x's per-position channel statistics, computed by the caller without autograd (this op's
// backward accounts for their dependence on x).
struct MonaFoldedProject : public torch::autograd::Function<MonaFoldedProject> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& wcat, const at::Tensor& r,
                            const at::Tensor& c, const at::Tensor& mean, const at::Tensor& var, double eps) {
    const int64_t d = wcat.size(0) / 2;
    const at::Tensor rho = (var + eps).rsqrt();
    const at::Tensor both = at::conv2d(x, wcat);
    const at::Tensor centred = at::addcmul(both.narrow(1, 0, d), mean, r.view({1, d, 1, 1}), -1);  // Y1 − μ·r
    at::Tensor z = at::addcmul(both.narrow(1, d, d), centred, rho);
    z.add_(c.view({1, d, 1, 1}));
    ctx->save_for_backward({x, wcat, r, mean, rho, centred});
    return z;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &wcat = saved[1], &r = saved[2], &mean = saved[3], &rho = saved[4], &centred = saved[5];
    const int64_t d = wcat.size(0) / 2;
    const int64_t channels = x.size(1);
    const at::Tensor gz = grads[0].contiguous(formatOf(x));
    at::Tensor xGrad, wGrad, rGrad, cGrad;
    if (ctx->needs_input_grad(0) || ctx->needs_input_grad(1)) {
      // [ρ·gz; gz] written straight into one buffer (no separate product and concatenation).
      at::Tensor stacked = at::empty({gz.size(0), 2 * d, gz.size(2), gz.size(3)}, gz.options().memory_format(formatOf(x)));
      at::Tensor scaled = stacked.narrow(1, 0, d);
      at::mul_out(scaled, gz, rho);
      stacked.narrow(1, d, d).copy_(gz);
      auto result = at::convolution_backward(stacked, x, wcat, c10::nullopt, {1, 1}, {0, 0}, {1, 1}, false, {0, 0}, 1,
                                             {ctx->needs_input_grad(0), ctx->needs_input_grad(1), false});
      xGrad = std::get<0>(result);
      wGrad = std::get<1>(result);
    }
    if (ctx->needs_input_grad(0)) {
      // Through the statistics: ∂z/∂ρ = Y1 − μr, ∂z/∂μ = −ρ·r; ρ = (v + eps)^−½ with
      // v = mean(x²) − μ², μ = mean(x), so x gains α·x + β per position.
      const at::Tensor rhoGrad = (gz * centred).sum(1, true);
      const at::Tensor varGrad = rhoGrad * rho.pow(3) * -0.5;
      const at::Tensor meanGrad = -(rho * at::conv2d(gz, r.view({1, d, 1, 1}))) - 2 * mean * varGrad;
      xGrad.addcmul_(x, varGrad, 2.0 / static_cast<double>(channels)).add_(meanGrad / static_cast<double>(channels));
    }
    if (ctx->needs_input_grad(2)) rGrad = -(gz * (mean * rho)).sum({0, 2, 3});
    if (ctx->needs_input_grad(3)) cGrad = gz.sum({0, 2, 3});
    return {xGrad, wGrad, rGrad, cGrad, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

at::Tensor monaFoldedProject(const at::Tensor& x, const at::Tensor& wcat, const at::Tensor& r, const at::Tensor& c,
                             const at::Tensor& mean, const at::Tensor& var, double eps) {
  TORCH_CHECK(x.dim() == 4, "mona_folded_project: expected a 4-d [N,C,H,W] map, got ", x.dim(), " dimensions");
  const int64_t channels = x.size(1);
  TORCH_CHECK(wcat.dim() == 4 && wcat.size(0) % 2 == 0 && wcat.size(1) == channels && wcat.size(2) == 1 && wcat.size(3) == 1,
              "mona_folded_project: expected stacked weights [2d,", channels, ",1,1], got ", wcat.sizes());
  const int64_t d = wcat.size(0) / 2;
  TORCH_CHECK(r.dim() == 1 && r.size(0) == d && c.dim() == 1 && c.size(0) == d,
              "mona_folded_project: expected r and c of shape [", d, "], got ", r.sizes(), " and ", c.sizes());
  const std::vector<int64_t> statShape{x.size(0), 1, x.size(2), x.size(3)};
  TORCH_CHECK(mean.sizes() == statShape && var.sizes() == statShape, "mona_folded_project: expected mean and var of shape ",
              c10::IntArrayRef(statShape), ", got ", mean.sizes(), " and ", var.sizes());
  TORCH_CHECK(!mean.requires_grad() && !var.requires_grad(),
              "mona_folded_project: mean and var must be computed without autograd (the op differentiates through them)");
  return MonaFoldedProject::apply(x, wcat, r, c, mean, var, eps);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(deltatune, m) {
  m.def("trainable_conv2d(Tensor input, Tensor weight, Tensor? bias, int[2] stride, int[2] padding, int[2] dilation, int groups) -> Tensor",
        &trainableConv2d);
  m.def("mona_folded_project(Tensor x, Tensor wcat, Tensor r, Tensor c, Tensor mean, Tensor var, float eps) -> Tensor",
        &monaFoldedProject);
}
