// deltatune::dropout_mask — dropout's keep mask, scaled: 1/(1−p) with probability 1−p, else 0, in
// `like`'s shape and layout. libtorch draws uniform_/bernoulli_ on one thread (mt19937), a large
// share of a Mona module's forward+backward (docs/performance.md#dropout-masks); this draws
// fixed-size chunks in parallel, each from its own generator seeded from the default one, so the
// mask depends on the seed (manualSeed) and not on the thread count.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <mutex>
#include <vector>

namespace {

constexpr int64_t kChunk = 1 << 16;

at::Tensor dropoutMask(const at::Tensor& like, double p) {
  TORCH_CHECK(p >= 0 && p < 1, "dropout_mask: p must be in [0, 1), got ", p);
  TORCH_CHECK(at::isFloatingType(like.scalar_type()), "dropout_mask: expected a floating-point tensor, got ", like.scalar_type());
  at::Tensor mask = at::empty_like(like);  // like's layout when that is dense, else contiguous
  if (!mask.is_non_overlapping_and_dense()) mask = at::empty(like.sizes(), like.options());
  const int64_t n = mask.numel();
  // A dense tensor's elements fill one block of memory in some order: draw over the block.
  const at::Tensor flat = mask.as_strided({n}, {1}, mask.storage_offset());
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<uint64_t> seeds(chunks);
  {
    at::Generator source = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(source.mutex());
    auto* impl = at::check_generator<at::CPUGeneratorImpl>(source);
    for (auto& s : seeds) s = impl->random64();
  }
  at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; c++) {
      at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seeds[c]);
      flat.narrow(0, c * kChunk, std::min(kChunk, n - c * kChunk)).uniform_(0, 1, gen);
    }
  });
  // U ≥ p keeps with probability 1 − p; as floats, 1·scale or 0.
  return mask.ge_(p).mul_(1.0 / (1.0 - p));
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(deltatune, m) {
  m.def("dropout_mask(Tensor like, float p) -> Tensor", &dropoutMask);
}
