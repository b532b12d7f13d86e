// Module entry: registers the shim's functions. Everything above this layer is TypeScript.
#include "handle.h"

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) {
  dt::initAllocator(env, exports);
  dt::initTensor(env, exports);
  dt::initOps(env, exports);
  dt::initProfiler(env, exports);
  dt::initDist(env, exports);
  return exports;
}

NODE_API_MODULE(deltatune_native, InitAddon)
