// Tensor handles, data in and out, metadata, autograd entry points.
#include "handle.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <ATen/ops/empty.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/autograd.h>

#include <cerrno>
#include <cstring>
#include <unistd.h>
#include <sstream>

namespace dt {

const char* dtypeName(at::ScalarType type);

namespace {

const napi_type_tag kHandleTag = {0x6465'6c74'6174'756eULL, 0x7465'6e73'6f72'0001ULL};

int64_t g_live = 0;
int64_t g_peak = 0;

int64_t nativeBytes(const at::Tensor& t) {
  if (!t.defined() || !t.has_storage()) return 0;
  // A view shares its base's storage; report at most what the view itself spans.
  const int64_t storageBytes = static_cast<int64_t>(t.storage().nbytes());
  const int64_t viewBytes = t.numel() * static_cast<int64_t>(t.element_size());
  return std::min(storageBytes, viewBytes);
}

void finalizeHandle(Napi::Env env, Handle* handle) {
  release(env, handle);
  delete handle;
}

std::vector<int64_t> toShape(const Napi::Value& value, const char* what) {
  if (!value.IsArray()) throw Napi::TypeError::New(value.Env(), std::string(what) + ": shape must be an array of integers");
  auto arr = value.As<Napi::Array>();
  std::vector<int64_t> shape(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Value v = arr[i];
    if (!v.IsNumber()) throw Napi::TypeError::New(value.Env(), std::string(what) + ": shape entries must be numbers");
    double d = v.As<Napi::Number>().DoubleValue();
    if (d < 0 || d != static_cast<double>(static_cast<int64_t>(d)))
      throw Napi::RangeError::New(value.Env(), std::string(what) + ": shape entries must be non-negative integers");
    shape[i] = static_cast<int64_t>(d);
  }
  return shape;
}

Napi::Array intArray(Napi::Env env, c10::IntArrayRef values) {
  auto out = Napi::Array::New(env, values.size());
  for (size_t i = 0; i < values.size(); i++) out.Set(i, Napi::Number::New(env, static_cast<double>(values[i])));
  return out;
}

// fromBytes(bytes: ArrayBufferView, dtype: number, shape: number[]): one copy into libtorch memory,
// so the tensor never depends on a JS buffer that may be detached or reused.
Napi::Value FromBytes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "fromBytes", [&]() -> Napi::Value {
    if (!info[0].IsTypedArray() && !info[0].IsDataView() && !info[0].IsBuffer())
      throw Napi::TypeError::New(env, "fromBytes: data must be a typed array or Buffer");
    const uint8_t* src;
    size_t length;
    if (info[0].IsTypedArray()) {
      auto ta = info[0].As<Napi::TypedArray>();
      src = static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
      length = ta.ByteLength();
    } else {
      auto dv = info[0].As<Napi::DataView>();
      src = static_cast<const uint8_t*>(dv.ArrayBuffer().Data()) + dv.ByteOffset();
      length = dv.ByteLength();
    }
    auto dtype = static_cast<at::ScalarType>(info[1].As<Napi::Number>().Int32Value());
    auto shape = toShape(info[2], "fromBytes");
    // Check the byte count before allocating, so a hostile shape never triggers a huge allocation.
    uint64_t need = c10::elementSize(dtype);
    bool overflow = false;
    for (int64_t d : shape) overflow = overflow || __builtin_mul_overflow(need, static_cast<uint64_t>(d), &need);
    if (overflow || need != length) {
      std::ostringstream msg;
      msg << "fromBytes: shape " << c10::IntArrayRef(shape) << " of " << dtypeName(dtype) << " needs "
          << (overflow ? std::string("more than 2^64") : std::to_string(need)) << " bytes but the data has " << length;
      throw Napi::RangeError::New(env, msg.str());
    }
    at::Tensor t = at::empty(shape, at::TensorOptions().dtype(dtype));
    if (need) std::memcpy(t.data_ptr(), src, need);
    return wrap(env, t);
  });
}

// readFile(fd, offset, dtype, shape): reads a tensor's bytes from a file straight into libtorch
// memory (pread), so loading a checkpoint copies each byte once and has no JS buffer size limit.
Napi::Value ReadFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guard(env, "readFile", [&]() -> Napi::Value {
    const int fd = info[0].As<Napi::Number>().Int32Value();
    const int64_t offset = info[1].As<Napi::Number>().Int64Value();
    auto dtype = static_cast<at::ScalarType>(info[2].As<Napi::Number>().Int32Value());
    auto shape = toShape(info[3], "readFile");
    uint64_t need = c10::elementSize(dtype);
    bool overflow = offset < 0;
    for (int64_t d : shape) overflow = overflow || __builtin_mul_overflow(need, static_cast<uint64_t>(d), &need);
    if (overflow) throw Napi::RangeError::New(env, "readFile: size or offset out of range");
    at::Tensor t = at::empty(shape, at::TensorOptions().dtype(dtype));
    auto* dst = static_cast<char*>(t.data_ptr());
    uint64_t done = 0;
    while (done < need) {
      const ssize_t n = pread(fd, dst + done, std::min<uint64_t>(need - done, 1u << 30), offset + static_cast<off_t>(done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw Napi::Error::New(env, std::string("readFile: ") + std::strerror(errno) + " at byte " + std::to_string(offset + done));
      if (n == 0) throw Napi::Error::New(env, "readFile: the file ended at byte " + std::to_string(offset + done));
      done += static_cast<uint64_t>(n);
    }
    return wrap(env, t);
  });
}

// toBytes(t): a fresh ArrayBuffer holding a contiguous CPU copy of the data.
Napi::Value ToBytes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const at::Tensor& t = tensorOf(info[0], "toBytes");
  return guard(env, "toBytes(" + describe(t) + ")", [&]() -> Napi::Value {
    at::Tensor c = t.detach().to(at::kCPU).contiguous();
    const size_t n = static_cast<size_t>(c.numel()) * c.element_size();
    auto buf = Napi::ArrayBuffer::New(env, n);
    if (n) std::memcpy(buf.Data(), c.data_ptr(), n);
    return buf;
  });
}

// reportExternal(t): tells V8 about this tensor's native bytes. Only tensors left to the garbage
// collector are reported (TypeScript calls this when a tensor is outside every scope): reporting
// the scope-managed temporaries of every step made V8 run needless collections mid-forward.
Napi::Value ReportExternal(const Napi::CallbackInfo& info) {
  Handle* h = unwrap(info[0], "reportExternal");
  if (h->reportedBytes == 0) {
    h->reportedBytes = nativeBytes(h->tensor);
    if (h->reportedBytes) Napi::MemoryManagement::AdjustExternalMemory(info.Env(), h->reportedBytes);
  }
  return info.Env().Undefined();
}

Napi::Value Dispose(const Napi::CallbackInfo& info) {
  if (!isHandle(info[0])) throw Napi::TypeError::New(info.Env(), "dispose: not a tensor handle");
  release(info.Env(), info[0].As<Napi::External<Handle>>().Data());
  return info.Env().Undefined();
}

Napi::Value IsDisposed(const Napi::CallbackInfo& info) {
  if (!isHandle(info[0])) throw Napi::TypeError::New(info.Env(), "isDisposed: not a tensor handle");
  return Napi::Boolean::New(info.Env(), !info[0].As<Napi::External<Handle>>().Data()->tensor.defined());
}

// meta(t) -> [dtypeCode, shape, requiresGrad, deviceString]: one crossing for what TS caches.
Napi::Value Meta(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const at::Tensor& t = tensorOf(info[0], "meta");
  auto out = Napi::Array::New(env, 4);
  out.Set(0u, Napi::Number::New(env, static_cast<int>(t.scalar_type())));
  out.Set(1u, intArray(env, t.sizes()));
  out.Set(2u, Napi::Boolean::New(env, t.requires_grad()));
  out.Set(3u, Napi::String::New(env, t.device().str()));
  return out;
}

Napi::Value Strides(const Napi::CallbackInfo& info) {
  return intArray(info.Env(), tensorOf(info[0], "strides").strides());
}

Napi::Value IsContiguous(const Napi::CallbackInfo& info) {
  const at::Tensor& t = tensorOf(info[0], "isContiguous");
  auto format = static_cast<at::MemoryFormat>(info[1].IsNumber() ? info[1].As<Napi::Number>().Int32Value() : 0);
  return guard(info.Env(), "isContiguous", [&]() -> Napi::Value {
    return Napi::Boolean::New(info.Env(), t.is_contiguous(format));
  });
}

Napi::Value IsLeaf(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), tensorOf(info[0], "isLeaf").is_leaf());
}

Napi::Value SameStorage(const Napi::CallbackInfo& info) {
  const at::Tensor& a = tensorOf(info[0], "sameStorage");
  const at::Tensor& b = tensorOf(info[1], "sameStorage");
  return Napi::Boolean::New(info.Env(), a.has_storage() && b.has_storage() && a.storage().is_alias_of(b.storage()));
}

Napi::Value SetRequiresGrad(const Napi::CallbackInfo& info) {
  at::Tensor t = tensorOf(info[0], "requiresGrad_");
  const bool flag = info[1].ToBoolean().Value();
  return guard(info.Env(), "requiresGrad_(" + describe(t) + ")", [&]() -> Napi::Value {
    t.set_requires_grad(flag);
    return info.Env().Undefined();
  });
}

Napi::Value SetData(const Napi::CallbackInfo& info) {
  at::Tensor t = tensorOf(info[0], "setData");
  const at::Tensor& src = tensorOf(info[1], "setData source");
  return guard(info.Env(), "setData(" + describe(t) + " <- " + describe(src) + ")", [&]() -> Napi::Value {
    t.set_data(src);
    return info.Env().Undefined();
  });
}

Napi::Value Grad(const Napi::CallbackInfo& info) {
  const at::Tensor& t = tensorOf(info[0], "grad");
  const at::Tensor& g = t.grad();
  if (!g.defined()) return info.Env().Null();
  return wrap(info.Env(), g);
}

// setGrad(t, g | null): null drops the gradient (PyTorch's zero_grad(set_to_none=True)).
Napi::Value SetGrad(const Napi::CallbackInfo& info) {
  at::Tensor t = tensorOf(info[0], "setGrad");
  return guard(info.Env(), "setGrad(" + describe(t) + ")", [&]() -> Napi::Value {
    if (info[1].IsNull() || info[1].IsUndefined()) {
      t.mutable_grad().reset();
    } else {
      const at::Tensor& g = tensorOf(info[1], "setGrad gradient");
      TORCH_CHECK(g.sizes() == t.sizes(), "gradient shape ", g.sizes(), " does not match tensor shape ", t.sizes());
      TORCH_CHECK(g.scalar_type() == t.scalar_type(), "gradient dtype ", g.scalar_type(), " does not match tensor dtype ",
                  t.scalar_type());
      t.mutable_grad() = g;
    }
    return info.Env().Undefined();
  });
}

// backward(roots: handle[], grads: (handle|null)[], retainGraph: boolean)
Napi::Value Backward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto roots = info[0].As<Napi::Array>();
  auto grads = info[1].As<Napi::Array>();
  std::vector<at::Tensor> outputs, gradOutputs;
  std::string shapes;
  for (uint32_t i = 0; i < roots.Length(); i++) {
    outputs.push_back(tensorOf(roots.Get(i), "backward"));
    Napi::Value g = grads.Get(i);
    gradOutputs.push_back(g.IsNull() || g.IsUndefined() ? at::Tensor() : tensorOf(g, "backward gradient"));
    shapes += (i ? ", " : "") + describe(outputs.back());
  }
  const bool retain = info[2].ToBoolean().Value();
  return guard(env, "backward(" + shapes + ")", [&]() -> Napi::Value {
    torch::autograd::backward(outputs, gradOutputs, retain, false);
    return env.Undefined();
  });
}

Napi::Value SetGradEnabled(const Napi::CallbackInfo& info) {
  const bool previous = c10::GradMode::is_enabled();
  c10::GradMode::set_enabled(info[0].ToBoolean().Value());
  return Napi::Boolean::New(info.Env(), previous);
}

Napi::Value IsGradEnabled(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), c10::GradMode::is_enabled());
}

Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  const int n = info[0].As<Napi::Number>().Int32Value();
  if (n < 1) throw Napi::RangeError::New(info.Env(), "setNumThreads: need at least 1 thread, got " + std::to_string(n));
  at::set_num_threads(n);
  return info.Env().Undefined();
}

Napi::Value GetNumThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), at::get_num_threads());
}

Napi::Value ManualSeed(const Napi::CallbackInfo& info) {
  bool lossless = true;
  const uint64_t seed = info[0].IsBigInt() ? info[0].As<Napi::BigInt>().Uint64Value(&lossless)
                                           : static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value());
  at::manual_seed(seed);
  return info.Env().Undefined();
}

Napi::Value Stats(const Napi::CallbackInfo& info) {
  auto out = Napi::Object::New(info.Env());
  out.Set("liveHandles", Napi::Number::New(info.Env(), static_cast<double>(g_live)));
  out.Set("peakHandles", Napi::Number::New(info.Env(), static_cast<double>(g_peak)));
  // V8's running total of external bytes (ours and other addons'); adjusting by 0 reads it.
  out.Set("externalBytes", Napi::Number::New(info.Env(), static_cast<double>(Napi::MemoryManagement::AdjustExternalMemory(info.Env(), 0))));
  if (info[0].ToBoolean().Value()) g_peak = g_live;
  return out;
}

Napi::Value BuildInfo(const Napi::CallbackInfo& info) {
  auto out = Napi::Object::New(info.Env());
  out.Set("cuda", Napi::Boolean::New(info.Env(), at::hasCUDA()));
  out.Set("parallel", Napi::String::New(info.Env(), at::get_parallel_info()));
  out.Set("config", Napi::String::New(info.Env(), at::show_config()));
  return out;
}

}  // namespace

Napi::Value wrap(Napi::Env env, at::Tensor tensor) {
  auto* handle = new Handle{std::move(tensor), 0};
  if (++g_live > g_peak) g_peak = g_live;
  auto ext = Napi::External<Handle>::New(env, handle, finalizeHandle);
  ext.TypeTag(&kHandleTag);
  return ext;
}

bool isHandle(const Napi::Value& value) {
  return value.IsExternal() && value.As<Napi::External<Handle>>().CheckTypeTag(&kHandleTag);
}

Handle* unwrap(const Napi::Value& value, const char* what) {
  if (!isHandle(value)) throw Napi::TypeError::New(value.Env(), std::string(what) + ": expected a tensor");
  Handle* h = value.As<Napi::External<Handle>>().Data();
  if (!h->tensor.defined())
    throw Napi::Error::New(value.Env(), std::string(what) + ": tensor was already disposed");
  return h;
}

const at::Tensor& tensorOf(const Napi::Value& value, const char* what) { return unwrap(value, what)->tensor; }

void release(Napi::Env env, Handle* handle) {
  if (!handle->tensor.defined()) return;
  handle->tensor.reset();
  if (handle->reportedBytes) Napi::MemoryManagement::AdjustExternalMemory(env, -handle->reportedBytes);
  handle->reportedBytes = 0;
  g_live--;
}

// The TypeScript dtype names, so messages read the same as the API.
const char* dtypeName(at::ScalarType type) {
  switch (type) {
    case at::kFloat: return "float32";
    case at::kDouble: return "float64";
    case at::kHalf: return "float16";
    case at::kBFloat16: return "bfloat16";
    case at::kLong: return "int64";
    case at::kInt: return "int32";
    case at::kShort: return "int16";
    case at::kChar: return "int8";
    case at::kByte: return "uint8";
    case at::kBool: return "bool";
    default: return c10::toString(type);
  }
}

std::string describe(const at::Tensor& t) {
  if (!t.defined()) return "undefined";
  std::ostringstream s;
  s << dtypeName(t.scalar_type()) << "[";
  for (size_t i = 0; i < t.sizes().size(); i++) s << (i ? "," : "") << t.sizes()[i];
  s << "]";
  if (!t.device().is_cpu()) s << "@" << t.device();
  return s.str();
}

void initTensor(Napi::Env env, Napi::Object exports) {
  exports.Set("fromBytes", Napi::Function::New(env, FromBytes));
  exports.Set("toBytes", Napi::Function::New(env, ToBytes));
  exports.Set("readFile", Napi::Function::New(env, ReadFile));
  exports.Set("dispose", Napi::Function::New(env, Dispose));
  exports.Set("reportExternal", Napi::Function::New(env, ReportExternal));
  exports.Set("isDisposed", Napi::Function::New(env, IsDisposed));
  exports.Set("meta", Napi::Function::New(env, Meta));
  exports.Set("strides", Napi::Function::New(env, Strides));
  exports.Set("isContiguous", Napi::Function::New(env, IsContiguous));
  exports.Set("isLeaf", Napi::Function::New(env, IsLeaf));
  exports.Set("sameStorage", Napi::Function::New(env, SameStorage));
  exports.Set("setRequiresGrad", Napi::Function::New(env, SetRequiresGrad));
  exports.Set("setData", Napi::Function::New(env, SetData));
  exports.Set("grad", Napi::Function::New(env, Grad));
  exports.Set("setGrad", Napi::Function::New(env, SetGrad));
  exports.Set("backward", Napi::Function::New(env, Backward));
  exports.Set("setGradEnabled", Napi::Function::New(env, SetGradEnabled));
  exports.Set("isGradEnabled", Napi::Function::New(env, IsGradEnabled));
  exports.Set("setNumThreads", Napi::Function::New(env, SetNumThreads));
  exports.Set("getNumThreads", Napi::Function::New(env, GetNumThreads));
  exports.Set("manualSeed", Napi::Function::New(env, ManualSeed));
  exports.Set("stats", Napi::Function::New(env, Stats));
  exports.Set("buildInfo", Napi::Function::New(env, BuildInfo));
}

}  // namespace dt
