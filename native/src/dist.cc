// libtorch's own c10d for data-parallel training: TCPStore / FileStore and ProcessGroupGloo, with
// collectives on tensor handles. Thin on purpose: argument conversion, one call into c10d, errors.
//
// The async rule: everything that can block (a store's rendezvous, a process group's connection
// to its peers, every collective) returns a Promise and blocks a libuv pool thread, never the JS
// thread. Collectives are *enqueued* on the JS thread, in the order the program issues them (the
// order must match across ranks), and only the wait runs on the pool thread. The tensors stay
// alive in the worker until the promise settles (the caller must not dispose them before).
// Every failure (timeout, dead peer, bad argument) rejects with c10d's text, the op, the rank and
// the world size; nothing here aborts the process.
#include "handle.h"

#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/variable.h>
#include <ATen/ops/empty_like.h>
#include <torch/csrc/autograd/custom_function.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace dt {
namespace {

const napi_type_tag kStoreTag = {0x6465'6c74'6174'756eULL, 0x7374'6f72'6500'0001ULL};
const napi_type_tag kGroupTag = {0x6465'6c74'6174'756eULL, 0x7067'6c6f'6f00'0001ULL};
const napi_type_tag kHooksTag = {0x6465'6c74'6174'756eULL, 0x686f'6f6b'7300'0001ULL};

struct StoreBox {
  c10::intrusive_ptr<c10d::Store> store;
  std::string what;  // "TCPStore(127.0.0.1:29500, server)" for messages
};
struct GroupBox {
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
  int rank = 0;
  int size = 0;
};

std::string messageOf(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const c10::Error& err) {
    return err.what_without_backtrace();
  } catch (const std::exception& err) {
    return err.what();
  } catch (...) {
    return "unknown error";
  }
}

// Runs `body` on a libuv pool thread and settles a promise: `done` builds the value on the JS
// thread; any exception becomes a rejection whose message starts with `context`.
class Task : public Napi::AsyncWorker {
 public:
  Task(Napi::Env env, std::string context, std::function<void()> body, std::function<Napi::Value(Napi::Env)> done)
      : Napi::AsyncWorker(env, "deltatune:dist"),
        deferred_(Napi::Promise::Deferred::New(env)),
        context_(std::move(context)),
        body_(std::move(body)),
        done_(std::move(done)) {}

  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      body_();
    } catch (...) {
      SetError(context_ + ": " + messageOf(std::current_exception()));
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    Napi::Value value;
    try {
      value = done_ ? done_(env) : env.Undefined();
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
      return;
    } catch (...) {
      deferred_.Reject(Napi::Error::New(env, context_ + ": " + messageOf(std::current_exception())).Value());
      return;
    }
    deferred_.Resolve(value);
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::string context_;
  std::function<void()> body_;
  std::function<Napi::Value(Napi::Env)> done_;
};

Napi::Value run(Napi::Env env, std::string context, std::function<void()> body,
                std::function<Napi::Value(Napi::Env)> done = nullptr) {
  auto* task = new Task(env, std::move(context), std::move(body), std::move(done));
  Napi::Promise p = task->promise();
  task->Queue();
  return p;
}

Napi::Value wrapStore(Napi::Env env, std::shared_ptr<StoreBox> box) {
  auto* owned = new StoreBox(*box);
  auto ext = Napi::External<StoreBox>::New(env, owned, [](Napi::Env, StoreBox* b) { delete b; });
  ext.TypeTag(&kStoreTag);
  return ext;
}

StoreBox* storeOf(const Napi::Value& v, const char* what) {
  if (!v.IsExternal() || !v.As<Napi::External<StoreBox>>().CheckTypeTag(&kStoreTag))
    throw Napi::TypeError::New(v.Env(), std::string(what) + ": expected a store");
  StoreBox* b = v.As<Napi::External<StoreBox>>().Data();
  if (!b->store) throw Napi::Error::New(v.Env(), std::string(what) + ": the store was disposed");
  return b;
}

GroupBox* groupOf(const Napi::Value& v, const char* what) {
  if (!v.IsExternal() || !v.As<Napi::External<GroupBox>>().CheckTypeTag(&kGroupTag))
    throw Napi::TypeError::New(v.Env(), std::string(what) + ": expected a process group");
  GroupBox* g = v.As<Napi::External<GroupBox>>().Data();
  if (!g->pg) throw Napi::Error::New(v.Env(), std::string(what) + ": the process group was disposed");
  return g;
}

std::chrono::milliseconds msOf(const Napi::Value& v) {
  return std::chrono::milliseconds(static_cast<int64_t>(v.As<Napi::Number>().DoubleValue()));
}

std::vector<at::Tensor> tensorsOf(const Napi::Value& v, const char* what) {
  if (!v.IsArray()) throw Napi::TypeError::New(v.Env(), std::string(what) + ": expected an array of tensors");
  auto arr = v.As<Napi::Array>();
  std::vector<at::Tensor> out;
  for (uint32_t i = 0; i < arr.Length(); i++) out.push_back(tensorOf(arr.Get(i), what));
  return out;
}

std::string groupContext(const char* op, const GroupBox* g) {
  return std::string(op) + " (rank " + std::to_string(g->rank) + " of world size " + std::to_string(g->size) + ")";
}

// tcpStore(host, port, worldSize, isServer, timeoutMs, waitWorkers) -> Promise<store>
Napi::Value TcpStore(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string host = info[0].As<Napi::String>();
  const int port = info[1].As<Napi::Number>().Int32Value();
  const int world = info[2].As<Napi::Number>().Int32Value();
  const bool server = info[3].ToBoolean().Value();
  const auto timeout = msOf(info[4]);
  const bool waitWorkers = info[5].ToBoolean().Value();
  if (port < 0 || port > 65535) throw Napi::RangeError::New(env, "tcpStore: port must be in 0..65535");
  auto box = std::make_shared<StoreBox>();
  box->what = "TCPStore(" + host + ":" + std::to_string(port) + (server ? ", server" : ", client") + ", world size " +
              std::to_string(world) + ")";
  return run(env, box->what, [=]() {
    c10d::TCPStoreOptions opts;
    opts.port = static_cast<std::uint16_t>(port);
    opts.isServer = server;
    opts.numWorkers = static_cast<std::size_t>(world);
    opts.waitWorkers = waitWorkers;
    opts.timeout = timeout;
    const auto start = std::chrono::steady_clock::now();
    box->store = c10::make_intrusive<c10d::TCPStore>(host, opts);
    // libtorch 1.13's server stops waiting for its clients at the timeout without saying so (later
    // versions throw); it only gives up by reaching the timeout, so the elapsed time tells.
    if (server && waitWorkers && world > 1 && std::chrono::steady_clock::now() - start >= timeout) {
      box->store.reset();
      throw std::runtime_error("timed out after " + std::to_string(timeout.count()) + " ms waiting for all " +
                               std::to_string(world) + " ranks to connect");
    }
  }, [=](Napi::Env e) { return wrapStore(e, box); });
}

// fileStore(path, worldSize, timeoutMs) -> Promise<store>
Napi::Value FileStore(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string path = info[0].As<Napi::String>();
  const int world = info[1].As<Napi::Number>().Int32Value();
  const auto timeout = msOf(info[2]);
  auto box = std::make_shared<StoreBox>();
  box->what = "FileStore(" + path + ", world size " + std::to_string(world) + ")";
  return run(env, box->what, [=]() {
    box->store = c10::make_intrusive<c10d::FileStore>(path, world);
    box->store->setTimeout(timeout);
  }, [=](Napi::Env e) { return wrapStore(e, box); });
}

// storeSet(store, key, bytes) / storeGet(store, key) -> Promise<Buffer> / storeAdd(store, key, n) -> Promise<number>
Napi::Value StoreSet(const Napi::CallbackInfo& info) {
  StoreBox* b = storeOf(info[0], "store.set");
  const std::string key = info[1].As<Napi::String>();
  auto buf = info[2].As<Napi::Buffer<uint8_t>>();
  std::vector<uint8_t> value(buf.Data(), buf.Data() + buf.Length());
  auto store = b->store;
  return run(info.Env(), b->what + ".set(" + key + ")", [=]() { store->set(key, value); });
}

Napi::Value StoreGet(const Napi::CallbackInfo& info) {
  StoreBox* b = storeOf(info[0], "store.get");
  const std::string key = info[1].As<Napi::String>();
  auto store = b->store;
  auto value = std::make_shared<std::vector<uint8_t>>();
  return run(info.Env(), b->what + ".get(" + key + ")", [=]() { *value = store->get(key); },
             [=](Napi::Env e) -> Napi::Value { return Napi::Buffer<uint8_t>::Copy(e, value->data(), value->size()); });
}

Napi::Value StoreAdd(const Napi::CallbackInfo& info) {
  StoreBox* b = storeOf(info[0], "store.add");
  const std::string key = info[1].As<Napi::String>();
  const int64_t delta = info[2].As<Napi::Number>().Int64Value();
  auto store = b->store;
  auto result = std::make_shared<int64_t>(0);
  return run(info.Env(), b->what + ".add(" + key + ")", [=]() { *result = store->add(key, delta); },
             [=](Napi::Env e) -> Napi::Value { return Napi::Number::New(e, static_cast<double>(*result)); });
}

Napi::Value StoreDispose(const Napi::CallbackInfo& info) {
  if (info[0].IsExternal() && info[0].As<Napi::External<StoreBox>>().CheckTypeTag(&kStoreTag))
    info[0].As<Napi::External<StoreBox>>().Data()->store.reset();
  return info.Env().Undefined();
}

// processGroupGloo(store, rank, size, timeoutMs, devices: [{hostname} | {interface}], threads) -> Promise<group>
Napi::Value ProcessGroupGloo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  StoreBox* b = storeOf(info[0], "processGroupGloo");
  const int rank = info[1].As<Napi::Number>().Int32Value();
  const int size = info[2].As<Napi::Number>().Int32Value();
  const auto timeout = msOf(info[3]);
  std::vector<std::pair<bool, std::string>> devices;  // (isInterface, name)
  auto arr = info[4].As<Napi::Array>();
  for (uint32_t i = 0; i < arr.Length(); i++) {
    Napi::Object d = arr.Get(i).As<Napi::Object>();
    if (d.Has("interface")) devices.emplace_back(true, d.Get("interface").As<Napi::String>().Utf8Value());
    else devices.emplace_back(false, d.Get("hostname").As<Napi::String>().Utf8Value());
  }
  const int threads = info[5].As<Napi::Number>().Int32Value();
  auto store = b->store;
  auto group = std::make_shared<GroupBox>();
  group->rank = rank;
  group->size = size;
  return run(env, groupContext("ProcessGroupGloo", group.get()), [=]() {
    auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
    for (const auto& [isInterface, name] : devices)
      opts->devices.push_back(isInterface ? c10d::ProcessGroupGloo::createDeviceForInterface(name)
                                          : c10d::ProcessGroupGloo::createDeviceForHostname(name));
    if (opts->devices.empty()) opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    opts->threads = threads;
    // The store's own timeout bounds the rendezvous (GlooStore reads keys through it).
    store->setTimeout(timeout);
    group->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, size, opts);
  }, [=](Napi::Env e) -> Napi::Value {
    auto* owned = new GroupBox(*group);
    auto ext = Napi::External<GroupBox>::New(e, owned, [](Napi::Env, GroupBox* g) { delete g; });
    ext.TypeTag(&kGroupTag);
    return ext;
  });
}

Napi::Value GroupDispose(const Napi::CallbackInfo& info) {
  if (info[0].IsExternal() && info[0].As<Napi::External<GroupBox>>().CheckTypeTag(&kGroupTag))
    info[0].As<Napi::External<GroupBox>>().Data()->pg.reset();
  return info.Env().Undefined();
}

// Waits for an enqueued collective off the JS thread. Holds the group, the work and the tensors.
Napi::Value waitFor(Napi::Env env, const GroupBox* g, const char* op, c10::intrusive_ptr<c10d::Work> work,
                    std::vector<at::Tensor> keep, std::function<Napi::Value(Napi::Env)> done = nullptr) {
  auto pg = g->pg;
  return run(env, groupContext(op, g), [pg, work, keep]() { work->wait(); }, std::move(done));
}

c10d::ReduceOp reduceOpOf(const std::string& name, Napi::Env env) {
  if (name == "sum") return c10d::ReduceOp::SUM;
  if (name == "product") return c10d::ReduceOp::PRODUCT;
  if (name == "min") return c10d::ReduceOp::MIN;
  if (name == "max") return c10d::ReduceOp::MAX;
  throw Napi::RangeError::New(env, "allreduce: op must be sum, product, min or max, got " + name);
}

// allreduce(group, tensors, op) -> Promise<void>: in place.
Napi::Value Allreduce(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  GroupBox* g = groupOf(info[0], "allreduce");
  auto tensors = tensorsOf(info[1], "allreduce");
  c10d::AllreduceOptions opts;
  opts.reduceOp = reduceOpOf(info[2].As<Napi::String>(), env);
  c10::intrusive_ptr<c10d::Work> work;
  guard(env, groupContext("allreduce", g), [&]() -> Napi::Value {
    work = g->pg->allreduce(tensors, opts);
    return env.Undefined();
  });
  return waitFor(env, g, "allreduce", work, tensors);
}

// allreduceCoalesced(group, tensors) -> Promise<void>: one sum over several tensors, in place.
Napi::Value AllreduceCoalesced(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  GroupBox* g = groupOf(info[0], "allreduceCoalesced");
  auto tensors = tensorsOf(info[1], "allreduceCoalesced");
  c10::intrusive_ptr<c10d::Work> work;
  guard(env, groupContext("allreduceCoalesced", g), [&]() -> Napi::Value {
    work = g->pg->allreduce_coalesced(tensors);
    return env.Undefined();
  });
  return waitFor(env, g, "allreduceCoalesced", work, tensors);
}

// broadcast(group, tensors, root) -> Promise<void>: in place.
Napi::Value Broadcast(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  GroupBox* g = groupOf(info[0], "broadcast");
  auto tensors = tensorsOf(info[1], "broadcast");
  c10d::BroadcastOptions opts;
  opts.rootRank = info[2].As<Napi::Number>().Int32Value();
  c10::intrusive_ptr<c10d::Work> work;
  guard(env, groupContext("broadcast", g), [&]() -> Napi::Value {
    work = g->pg->broadcast(tensors, opts);
    return env.Undefined();
  });
  return waitFor(env, g, "broadcast", work, tensors);
}

// allgather(group, tensor) -> Promise<handle[]>: one new tensor per rank.
Napi::Value Allgather(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  GroupBox* g = groupOf(info[0], "allgather");
  std::vector<at::Tensor> inputs{tensorOf(info[1], "allgather")};
  auto outputs = std::make_shared<std::vector<std::vector<at::Tensor>>>(1);
  c10::intrusive_ptr<c10d::Work> work;
  guard(env, groupContext("allgather", g), [&]() -> Napi::Value {
    for (int r = 0; r < g->size; r++) (*outputs)[0].push_back(at::empty_like(inputs[0], inputs[0].options(), at::MemoryFormat::Contiguous));
    work = g->pg->allgather(*outputs, inputs);
    return env.Undefined();
  });
  return waitFor(env, g, "allgather", work, inputs, [outputs](Napi::Env e) -> Napi::Value {
    auto arr = Napi::Array::New(e, (*outputs)[0].size());
    for (size_t i = 0; i < (*outputs)[0].size(); i++) arr.Set(static_cast<uint32_t>(i), wrap(e, (*outputs)[0][i]));
    return arr;
  });
}

// barrier(group) -> Promise<void>
Napi::Value Barrier(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  GroupBox* g = groupOf(info[0], "barrier");
  c10::intrusive_ptr<c10d::Work> work;
  guard(env, groupContext("barrier", g), [&]() -> Napi::Value {
    work = g->pg->barrier();
    return env.Undefined();
  });
  return waitFor(env, g, "barrier", work, {});
}

// A sum over the ranks that autograd sees through: its backward sums the gradient over the ranks
// too (every rank's loss depends on every rank's input). SyncBatchNorm's statistics go through it.
// Blocking on purpose: it runs inside a forward or a backward, which are synchronous; every rank
// runs the same graph, so the collectives meet in the same order. The group rides in the graph as
// a capsule, so it lives as long as a backward may still need it.
struct AllreduceSum : public torch::autograd::Function<AllreduceSum> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& input,
                            c10::intrusive_ptr<c10d::ProcessGroupGloo> pg) {
    ctx->saved_data["pg"] = c10::IValue::make_capsule(c10::static_intrusive_pointer_cast<torch::CustomClassHolder>(pg));
    return sum(pg, input);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    auto pg = c10::static_intrusive_pointer_cast<c10d::ProcessGroupGloo>(ctx->saved_data["pg"].toCapsule());
    return {sum(pg, grads[0]), at::Tensor()};
  }
  static at::Tensor sum(const c10::intrusive_ptr<c10d::ProcessGroupGloo>& pg, const at::Tensor& t) {
    std::vector<at::Tensor> one{t.detach().contiguous().clone()};
    pg->allreduce(one)->wait();
    return one[0];
  }
};

// allreduceSumAutograd(group, tensor) -> handle: synchronous, differentiable (see AllreduceSum).
Napi::Value AllreduceSumAutograd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  GroupBox* g = groupOf(info[0], "allreduceSumAutograd");
  const at::Tensor& input = tensorOf(info[1], "allreduceSumAutograd");
  auto pg = g->pg;
  return guard(env, groupContext("allreduceSumAutograd", g), [&]() -> Napi::Value { return wrap(env, AllreduceSum::apply(input, pg)); });
}

// Gradient-ready hooks, for starting gradient allreduces while the backward still runs (what
// c10d::Reducer does inside torch's DDP; its header needs torch/csrc/distributed/autograd, which
// Debian's libtorch-dev does not ship). A post-hook on each parameter's gradient accumulator calls
// a JS function with the parameter's index once its .grad holds this backward's gradient; the
// bucketing and the collectives are TypeScript's (src/train/grad-sync.ts). CPU backwards run on
// the thread that called backward — the JS thread — so the call is synchronous and in order.
struct HookSet {
  Napi::FunctionReference onReady;
  napi_env env = nullptr;
  bool active = true;
  std::vector<std::pair<std::shared_ptr<torch::autograd::Node>, uintptr_t>> installed;
  void remove() {
    for (auto& [node, key] : installed) node->del_post_hook(key);
    installed.clear();
    active = false;
  }
};

struct GradReadyHook : public torch::autograd::FunctionPostHook {
  GradReadyHook(HookSet* set, uint32_t index) : set_(set), index_(index) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list& /*inputs*/) override {
    if (set_->active) {
      Napi::Env env(set_->env);
      Napi::HandleScope scope(env);
      set_->onReady.Call({Napi::Number::New(env, index_)});  // a JS exception propagates and fails the backward
    }
    return outputs;
  }

 private:
  HookSet* set_;
  uint32_t index_;
};

// gradHooks(params, onReady(index)) -> hooks: onReady runs inside backward once params[index].grad is final.
Napi::Value GradHooks(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto params = tensorsOf(info[0], "gradHooks");
  if (!info[1].IsFunction()) throw Napi::TypeError::New(env, "gradHooks: expected a function");
  auto set = std::make_unique<HookSet>();
  set->onReady = Napi::Persistent(info[1].As<Napi::Function>());
  set->env = env;
  return guard(env, "gradHooks", [&]() -> Napi::Value {
    for (uint32_t i = 0; i < params.size(); i++) {
      TORCH_CHECK(params[i].requires_grad() && params[i].is_leaf(), "gradHooks: parameter ", i, " is not a leaf that requires grad");
      auto accumulator = torch::autograd::impl::grad_accumulator(params[i]);
      const uintptr_t key = accumulator->add_post_hook(std::make_unique<GradReadyHook>(set.get(), i));
      set->installed.emplace_back(std::move(accumulator), key);  // kept: the tensor only holds it weakly
    }
    auto ext = Napi::External<HookSet>::New(env, set.release(), [](Napi::Env, HookSet* h) {
      h->remove();
      delete h;
    });
    ext.TypeTag(&kHooksTag);
    return ext;
  });
}

Napi::Value GradHooksRemove(const Napi::CallbackInfo& info) {
  if (info[0].IsExternal() && info[0].As<Napi::External<HookSet>>().CheckTypeTag(&kHooksTag))
    info[0].As<Napi::External<HookSet>>().Data()->remove();
  return info.Env().Undefined();
}

}  // namespace

void initDist(Napi::Env env, Napi::Object exports) {
  auto d = Napi::Object::New(env);
  d.Set("tcpStore", Napi::Function::New(env, TcpStore));
  d.Set("fileStore", Napi::Function::New(env, FileStore));
  d.Set("storeSet", Napi::Function::New(env, StoreSet));
  d.Set("storeGet", Napi::Function::New(env, StoreGet));
  d.Set("storeAdd", Napi::Function::New(env, StoreAdd));
  d.Set("storeDispose", Napi::Function::New(env, StoreDispose));
  d.Set("processGroupGloo", Napi::Function::New(env, ProcessGroupGloo));
  d.Set("groupDispose", Napi::Function::New(env, GroupDispose));
  d.Set("allreduce", Napi::Function::New(env, Allreduce));
  d.Set("allreduceCoalesced", Napi::Function::New(env, AllreduceCoalesced));
  d.Set("broadcast", Napi::Function::New(env, Broadcast));
  d.Set("allgather", Napi::Function::New(env, Allgather));
  d.Set("barrier", Napi::Function::New(env, Barrier));
  d.Set("allreduceSumAutograd", Napi::Function::New(env, AllreduceSumAutograd));
  d.Set("gradHooks", Napi::Function::New(env, GradHooks));
  d.Set("gradHooksRemove", Napi::Function::New(env, GradHooksRemove));
  exports.Set("dist", d);
}

}  // namespace dt
