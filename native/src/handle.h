// Shared pieces of the N-API shim: the tensor handle, the error guard, dtype codes.
// The shim only converts, calls libtorch and converts back; all logic lives in TypeScript.
#pragma once

#include <napi.h>
#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <string>
#include <vector>

namespace dt {

// One JS handle owns one at::Tensor reference. dispose() drops it deterministically; the
// external's finalizer is only the backstop for handles the program forgot.
struct Handle {
  at::Tensor tensor;
  int64_t reportedBytes = 0;
};

Napi::Value wrap(Napi::Env env, at::Tensor tensor);
bool isHandle(const Napi::Value& value);
// Throws a JS TypeError naming `what` when the value is not a live tensor handle.
Handle* unwrap(const Napi::Value& value, const char* what);
const at::Tensor& tensorOf(const Napi::Value& value, const char* what);
void release(Napi::Env env, Handle* handle);

// "float32[2,3]" for error messages.
std::string describe(const at::Tensor& tensor);

// Runs `body`, turning every libtorch / C++ exception into a JS Error whose message starts
// with `context`, so a bad shape never aborts the process.
template <typename Body>
Napi::Value guard(Napi::Env env, const std::string& context, Body&& body) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (const c10::Error& e) {
    throw Napi::Error::New(env, context + ": " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, context + ": " + e.what());
  }
}

void initTensor(Napi::Env env, Napi::Object exports);
void initOps(Napi::Env env, Napi::Object exports);
void initAllocator(Napi::Env env, Napi::Object exports);
void initProfiler(Napi::Env env, Napi::Object exports);
void initDist(Napi::Env env, Napi::Object exports);

}  // namespace dt
