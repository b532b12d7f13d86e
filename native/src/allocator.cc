// A caching CPU allocator for large tensors, installed as libtorch's CPU allocator.
//
// Training allocates and frees the same large activations every step. Through glibc they either
// come from fresh mmaps that page-fault in again every step, or (kept on the heap) they fragment it:
// a tiny ViT's training loop grew to several times its live bytes in resident memory, with glibc's
// defaults and with every mallopt setting tried. Here each block of kLargeBytes or more is its own
// mmap, and a freed block is kept for a later request of the same size, as PyTorch's CUDA caching
// allocator does, so steady training reuses warm pages and gives nothing to fragmentation (that
// loop stays flat; figures: docs/performance.md#caching-cpu-allocator). Smaller blocks stay with
// libtorch's default allocator. oneDNN's scratch memory comes through here too (PyTorch registers
// the CPU allocator with ideep).
//
// Bounds: the cache holds at most max(1 GiB, 1.25 × the peak of large live bytes) and at most
// DELTATUNE_CPU_CACHE_MB if set, dropping the oldest freed blocks first. DELTATUNE_CPU_CACHE_MB=0
// turns the allocator off.
#include "handle.h"

#include <c10/core/CPUAllocator.h>
#include <sys/mman.h>

#include <cstdint>
#include <cstdlib>
#include <iterator>
#include <map>
#include <mutex>
#include <unordered_map>

namespace dt {
namespace {

constexpr size_t kLargeBytes = size_t{1} << 20;
constexpr size_t kPage = 4096;
constexpr size_t kCacheFloor = size_t{1} << 30;

struct CachedBlock {
  void* ptr;
  uint64_t freedAt;
};

struct State {
  std::mutex mutex;
  std::multimap<size_t, CachedBlock> cached;  // by size
  std::unordered_map<void*, size_t> live;      // large blocks handed out, by address
  size_t liveBytes = 0;
  size_t peakLiveBytes = 0;
  size_t cachedBytes = 0;
  size_t limitBytes = SIZE_MAX;
  uint64_t clock = 0;
  uint64_t hits = 0;
  uint64_t misses = 0;
};

State& state() {
  static State* s = new State();  // never destroyed: tensors may be freed during exit
  return *s;
}

// A step needs, of each size, as many blocks as it holds at once at that size's busiest moment;
// those moments differ, so the sum over sizes exceeds the step's peak. A quarter more than the peak
// covered it in the models tried (at exactly the peak, a tiny ViT's step re-faulted blocks:
// docs/performance.md#caching-cpu-allocator).
// An eval forward holds little at once but walks through many sizes, so the bound is at least
// kCacheFloor.
size_t cacheBound(const State& s) {
  return std::min(s.limitBytes, std::max(kCacheFloor, s.peakLiveBytes + s.peakLiveBytes / 4));
}

// Unmaps cached blocks, oldest first, until `bytes` more fit under the cache's bounds. Holds the lock.
void evictFor(State& s, size_t bytes) {
  const size_t bound = cacheBound(s);
  while (!s.cached.empty() && s.cachedBytes + bytes > bound) {
    auto oldest = s.cached.begin();
    for (auto it = s.cached.begin(); it != s.cached.end(); ++it) {
      if (it->second.freedAt < oldest->second.freedAt) oldest = it;
    }
    munmap(oldest->second.ptr, oldest->first);
    s.cachedBytes -= oldest->first;
    s.cached.erase(oldest);
  }
}

c10::DeleterFnPtr smallDeleter = nullptr;

// One deleter for every block, so that libtorch's raw_allocate/raw_deallocate work too. Large
// blocks are mmaps, so page-aligned; any other address is a small block, freed without the lock.
void freeBlock(void* ptr) {
  if (reinterpret_cast<uintptr_t>(ptr) % kPage != 0) {
    smallDeleter(ptr);
    return;
  }
  State& s = state();
  std::unique_lock<std::mutex> lock(s.mutex);
  auto found = s.live.find(ptr);
  if (found == s.live.end()) {
    lock.unlock();
    smallDeleter(ptr);
    return;
  }
  const size_t size = found->second;
  s.live.erase(found);
  s.liveBytes -= size;
  evictFor(s, size);
  if (s.cachedBytes + size > cacheBound(s)) {
    munmap(ptr, size);
    return;
  }
  s.cached.emplace(size, CachedBlock{ptr, ++s.clock});
  s.cachedBytes += size;
}

struct CachingCpuAllocator final : public c10::Allocator {
  c10::Allocator* fallback;

  explicit CachingCpuAllocator(c10::Allocator* small) : fallback(small) {}

  c10::DeleterFnPtr raw_deleter() const override { return &freeBlock; }

  c10::DataPtr allocate(size_t n) const override {
    if (n < kLargeBytes) {
      void* ptr = fallback->raw_allocate(n);
      return {ptr, ptr, &freeBlock, c10::Device(c10::DeviceType::CPU)};
    }
    const size_t size = (n + kPage - 1) / kPage * kPage;
    State& s = state();
    void* ptr = nullptr;
    {
      std::lock_guard<std::mutex> lock(s.mutex);
      // Exact sizes only: a training step repeats the same requests, and handing a larger block
      // to a smaller request would leave the larger request of the same step without one. Of
      // equal sizes the last freed (last in its range) goes first: its lines are likely still in
      // the CPU's caches (taking the oldest made a MobileNetV2 forward measurably slower:
      // docs/performance.md#caching-cpu-allocator).
      auto [first, last] = s.cached.equal_range(size);
      if (first != last) {
        auto it = std::prev(last);
        ptr = it->second.ptr;
        const size_t got = it->first;
        s.cachedBytes -= got;
        s.cached.erase(it);
        s.live.emplace(ptr, got);
        s.liveBytes += got;
        s.hits++;
      } else {
        s.misses++;
      }
      s.peakLiveBytes = std::max(s.peakLiveBytes, s.liveBytes);
    }
    if (!ptr) {
      ptr = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (ptr == MAP_FAILED) {
        releaseCache();
        ptr = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      }
      TORCH_CHECK(ptr != MAP_FAILED, "out of memory: cannot allocate ", n, " bytes for a tensor");
      std::lock_guard<std::mutex> lock(s.mutex);
      s.live.emplace(ptr, size);
      s.liveBytes += size;
      s.peakLiveBytes = std::max(s.peakLiveBytes, s.liveBytes);
    }
    return {ptr, ptr, &freeBlock, c10::Device(c10::DeviceType::CPU)};
  }

  static void releaseCache() {
    State& s = state();
    std::lock_guard<std::mutex> lock(s.mutex);
    for (auto& [size, block] : s.cached) munmap(block.ptr, size);
    s.cached.clear();
    s.cachedBytes = 0;
  }
};

Napi::Value CpuMemoryStats(const Napi::CallbackInfo& info) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("liveBytes", Napi::Number::New(info.Env(), static_cast<double>(s.liveBytes)));
  out.Set("peakLiveBytes", Napi::Number::New(info.Env(), static_cast<double>(s.peakLiveBytes)));
  out.Set("cachedBytes", Napi::Number::New(info.Env(), static_cast<double>(s.cachedBytes)));
  out.Set("cachedBlocks", Napi::Number::New(info.Env(), static_cast<double>(s.cached.size())));
  out.Set("hits", Napi::Number::New(info.Env(), static_cast<double>(s.hits)));
  out.Set("misses", Napi::Number::New(info.Env(), static_cast<double>(s.misses)));
  out.Set("enabled", Napi::Boolean::New(info.Env(), c10::GetCPUAllocator() != c10::GetDefaultCPUAllocator()));
  return out;
}

Napi::Value EmptyCpuCache(const Napi::CallbackInfo& info) {
  CachingCpuAllocator::releaseCache();
  return info.Env().Undefined();
}

Napi::Value ResetPeakCpuMemory(const Napi::CallbackInfo& info) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  s.peakLiveBytes = s.liveBytes;
  return info.Env().Undefined();
}

}  // namespace

void initAllocator(Napi::Env env, Napi::Object exports) {
  const char* limit = std::getenv("DELTATUNE_CPU_CACHE_MB");
  if (limit && *limit) {
    char* end = nullptr;
    const double mb = std::strtod(limit, &end);
    if (*end != '\0' || !(mb >= 0)) {
      throw Napi::Error::New(env, std::string("DELTATUNE_CPU_CACHE_MB must be a number of MiB >= 0, got '") + limit + "'");
    }
    state().limitBytes = static_cast<size_t>(mb * 1024 * 1024);
  }
  c10::Allocator* standard = c10::GetDefaultCPUAllocator();
  smallDeleter = standard->raw_deleter();
  if (state().limitBytes > 0 && smallDeleter) {
    static CachingCpuAllocator* allocator = new CachingCpuAllocator(standard);
    // Priority above the default's so the registration sticks.
    c10::SetCPUAllocator(allocator, /*priority=*/1);
  }
  exports.Set("cpuMemoryStats", Napi::Function::New(env, CpuMemoryStats));
  exports.Set("emptyCpuCache", Napi::Function::New(env, EmptyCpuCache));
  exports.Set("resetPeakCpuMemory", Napi::Function::New(env, ResetPeakCpuMemory));
}

}  // namespace dt
