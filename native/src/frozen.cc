// deltatune::frozen_conv2d — conv2d for a frozen (no-grad) weight and bias whose input needs a
// gradient. aten::conv2d's autograd node keeps the input for the weight gradient even when the
// weight is frozen; this op keeps only the weight, so a frozen backbone does not hold every
// convolution's input until backward. Backward is libtorch's own convolution_backward restricted
// to the input gradient. Registered with the dispatcher, so TypeScript calls it like any ATen op.
#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct FrozenConv2d : public torch::autograd::Function<FrozenConv2d> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& input, const at::Tensor& weight,
                            const c10::optional<at::Tensor>& bias, std::vector<int64_t> stride,
                            std::vector<int64_t> padding, std::vector<int64_t> dilation, int64_t groups) {
    ctx->save_for_backward({weight});
    ctx->saved_data["input_sizes"] = input.sizes().vec();
    ctx->saved_data["channels_last"] = input.suggest_memory_format() == at::MemoryFormat::ChannelsLast;
    ctx->saved_data["stride"] = stride;
    ctx->saved_data["padding"] = padding;
    ctx->saved_data["dilation"] = dilation;
    ctx->saved_data["groups"] = groups;
    return at::conv2d(input, weight, bias, stride, padding, dilation, groups);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const at::Tensor weight = ctx->get_saved_variables()[0];
    const auto format = ctx->saved_data["channels_last"].toBool() ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
    // Stands in for the input: convolution_backward reads only its sizes, dtype and layout when
    // the weight gradient is not requested. Never written or read, so its pages are never touched.
    const at::Tensor shape = at::empty(ctx->saved_data["input_sizes"].toIntVector(), weight.options().memory_format(format));
    const at::Tensor grad = grads[0];
    auto result = at::convolution_backward(
        grad, shape, weight, c10::nullopt, ctx->saved_data["stride"].toIntVector(), ctx->saved_data["padding"].toIntVector(),
        ctx->saved_data["dilation"].toIntVector(), false, {0, 0}, ctx->saved_data["groups"].toInt(), {true, false, false});
    return {std::get<0>(result), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

at::Tensor frozenConv2d(const at::Tensor& input, const at::Tensor& weight, const c10::optional<at::Tensor>& bias,
                        at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  TORCH_CHECK(!weight.requires_grad() && !(bias && bias->defined() && bias->requires_grad()),
              "frozen_conv2d: the weight and bias must not require grad (use aten::conv2d)");
  TORCH_CHECK(input.dim() == 4, "frozen_conv2d: expected a 4-d [N,C,H,W] input, got ", input.dim(), " dimensions");
  return FrozenConv2d::apply(input, weight, bias, stride.vec(), padding.vec(), dilation.vec(), groups);
}

}  // namespace

TORCH_LIBRARY(deltatune, m) {
  m.def("frozen_conv2d(Tensor input, Tensor weight, Tensor? bias, int[2] stride, int[2] padding, int[2] dilation, int groups) -> Tensor",
        &frozenConv2d);
}
