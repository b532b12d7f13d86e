// libtorch's operator profiler, for finding where training time goes: start, run, stop; stop
// returns per-operator totals (self time excludes nested operators, as torch.profiler's table).
#include "handle.h"

#include <torch/csrc/autograd/profiler_legacy.h>

#include <map>
#include <string>
#include <vector>

namespace dt {

namespace {

namespace prof = torch::autograd::profiler;

bool g_profiling = false;
bool g_shapes = false;  // key operators by name and input shapes

std::string keyOf(const prof::LegacyEvent& e) {
  std::string key = e.name();
  if (!g_shapes) return key;
  key += " ";
  for (const auto& shape : e.shapes()) {
    key += "[";
    for (size_t i = 0; i < shape.size(); i++) key += (i ? "," : "") + std::to_string(shape[i]);
    key += "]";
  }
  return key;
}

Napi::Value ProfilerStart(const Napi::CallbackInfo& info) {
  if (g_profiling) throw Napi::Error::New(info.Env(), "profiler: already running (call profilerStop first)");
  g_shapes = info.Length() > 0 && info[0].ToBoolean().Value();
  prof::enableProfilerLegacy(torch::profiler::impl::ProfilerConfig(torch::profiler::impl::ProfilerState::CPU, g_shapes));
  g_profiling = true;
  return info.Env().Undefined();
}

Napi::Value ProfilerStop(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!g_profiling) throw Napi::Error::New(env, "profiler: not running (call profilerStart first)");
  g_profiling = false;
  const prof::thread_event_lists lists = prof::disableProfilerLegacy();
  struct Total { double selfUs = 0, totalUs = 0; int64_t count = 0; };
  struct Open { const prof::LegacyEvent* event; double childUs; };
  std::map<std::string, Total> totals;
  for (const auto& events : lists) {
    std::vector<Open> stack;
    for (const auto& e : events) {
      if (e.kind() == prof::EventKind::PushRange) {
        stack.push_back({&e, 0});
      } else if (e.kind() == prof::EventKind::PopRange && !stack.empty()) {
        const Open open = stack.back();
        stack.pop_back();
        const double elapsed = open.event->cpuElapsedUs(e);
        Total& t = totals[keyOf(*open.event)];
        t.totalUs += elapsed;
        t.selfUs += elapsed - open.childUs;
        t.count += 1;
        if (!stack.empty()) stack.back().childUs += elapsed;
      }
    }
  }
  Napi::Array out = Napi::Array::New(env, totals.size());
  uint32_t i = 0;
  for (const auto& [name, t] : totals) {
    Napi::Object row = Napi::Object::New(env);
    row.Set("name", name);
    row.Set("selfUs", t.selfUs);
    row.Set("totalUs", t.totalUs);
    row.Set("count", static_cast<double>(t.count));
    out.Set(i++, row);
  }
  return out;
}

}  // namespace

void initProfiler(Napi::Env env, Napi::Object exports) {
  exports.Set("profilerStart", Napi::Function::New(env, ProfilerStart));
  exports.Set("profilerStop", Napi::Function::New(env, ProfilerStop));
}

}  // namespace dt
