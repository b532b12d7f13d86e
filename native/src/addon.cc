// Module entry: registers the shim's functions. Everything above this layer is TypeScript.
#include "handle.h"

#include <malloc.h>
#include <cstdlib>

// Training allocates and frees large activations every step. glibc's default serves blocks this
// size with fresh mmaps, so each step page-faults them in again (~1 µs per 4 KiB page, measured:
// 70k faults per ResNet-50 Mona step; a tiny ViT step 1.6x slower). Keep blocks up to glibc's
// 32 MiB maximum on the heap, keep up to 1 GiB of freed heap for reuse, and use one arena: with
// libtorch's worker threads allocating in arenas of their own, freed blocks were stranded and the
// heap kept growing (tiny ViT, 200 steps: 2.2 GiB with several arenas, 1.4 GiB with one; glibc's
// default grew too). Skipped when the user tunes malloc through the environment.
static void tuneMalloc() {
  for (const char* name : {"GLIBC_TUNABLES", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_ARENA_MAX",
                           "DELTATUNE_DEFAULT_MALLOC"}) {
    if (std::getenv(name)) return;
  }
  mallopt(M_ARENA_MAX, 1);
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) {
  tuneMalloc();
  dt::initTensor(env, exports);
  dt::initOps(env, exports);
  return exports;
}

NODE_API_MODULE(deltatune_native, InitAddon)
