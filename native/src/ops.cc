// One generic entry point for every ATen operator: the operator's schema drives the argument
// conversion, the boxed dispatcher call keeps autograd, and results come back as handles.
// Adding an op therefore needs no C++: see docs/adding-an-op.md.
#include "handle.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/ivalue.h>
#include <ATen/core/jit_type.h>

#include <memory>
#include <sstream>

namespace dt {

namespace {

enum class Kind : uint8_t {
  Tensor, TensorList, OptTensorList, Int, IntList, Float, FloatList, Bool, BoolList,
  Scalar, Str, Device, Generator, Unsupported
};

struct ArgSpec {
  std::string name;
  std::string typeName;
  Kind kind;
  bool optional;
  c10::optional<int32_t> fixedLength;
  c10::optional<c10::IValue> defaultValue;
};

struct OpEntry {
  c10::OperatorHandle handle;
  std::string name;
  std::vector<ArgSpec> args;
};

std::vector<std::unique_ptr<OpEntry>> g_ops;

Kind listKind(const c10::TypePtr& elem) {
  switch (elem->kind()) {
    case c10::TypeKind::IntType:
    case c10::TypeKind::SymIntType: return Kind::IntList;
    case c10::TypeKind::TensorType: return Kind::TensorList;
    case c10::TypeKind::FloatType: return Kind::FloatList;
    case c10::TypeKind::BoolType: return Kind::BoolList;
    case c10::TypeKind::OptionalType:
      if (elem->castRaw<c10::OptionalType>()->getElementType()->kind() == c10::TypeKind::TensorType)
        return Kind::OptTensorList;
      return Kind::Unsupported;
    default: return Kind::Unsupported;
  }
}

Kind kindOf(const c10::TypePtr& type) {
  switch (type->kind()) {
    case c10::TypeKind::TensorType: return Kind::Tensor;
    case c10::TypeKind::IntType:
    case c10::TypeKind::SymIntType: return Kind::Int;  // also ScalarType, Layout, MemoryFormat codes
    case c10::TypeKind::FloatType: return Kind::Float;
    case c10::TypeKind::BoolType: return Kind::Bool;
    case c10::TypeKind::NumberType: return Kind::Scalar;
    case c10::TypeKind::StringType: return Kind::Str;
    case c10::TypeKind::DeviceObjType: return Kind::Device;
    case c10::TypeKind::GeneratorType: return Kind::Generator;
    case c10::TypeKind::ListType: return listKind(type->castRaw<c10::ListType>()->getElementType());
    default: return Kind::Unsupported;
  }
}

[[noreturn]] void badArg(Napi::Env env, const OpEntry& op, const ArgSpec& spec, const char* expected) {
  throw Napi::TypeError::New(env, op.name + ": argument '" + spec.name + "' (" + spec.typeName + ") expects " + expected);
}

int64_t toInt(Napi::Env env, const Napi::Value& v, const OpEntry& op, const ArgSpec& spec) {
  if (v.IsBigInt()) {
    bool lossless = true;
    int64_t x = v.As<Napi::BigInt>().Int64Value(&lossless);
    if (!lossless) badArg(env, op, spec, "an integer that fits in int64");
    return x;
  }
  if (!v.IsNumber()) badArg(env, op, spec, "an integer");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= -9007199254740992.0 && d <= 9007199254740992.0) || d != static_cast<double>(static_cast<int64_t>(d)))
    badArg(env, op, spec, "an integer");
  return static_cast<int64_t>(d);
}

double toFloat(Napi::Env env, const Napi::Value& v, const OpEntry& op, const ArgSpec& spec) {
  if (!v.IsNumber()) badArg(env, op, spec, "a number");
  return v.As<Napi::Number>().DoubleValue();
}

// JS numbers carry no int/float distinction: an integral value becomes an integer Scalar so
// integer tensors stay integer (x.mul(2)), anything else a double.
c10::Scalar toScalar(Napi::Env env, const Napi::Value& v, const OpEntry& op, const ArgSpec& spec) {
  if (v.IsBoolean()) return c10::Scalar(v.As<Napi::Boolean>().Value());
  if (v.IsBigInt()) return c10::Scalar(toInt(env, v, op, spec));
  if (!v.IsNumber()) badArg(env, op, spec, "a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (d >= -9007199254740992.0 && d <= 9007199254740992.0 && d == static_cast<double>(static_cast<int64_t>(d)) &&
      !(d == 0 && std::signbit(d)))
    return c10::Scalar(static_cast<int64_t>(d));
  return c10::Scalar(d);
}

struct TensorArg {
  const at::TensorImpl* impl;
  Napi::Value js;
};

c10::IValue toIValue(Napi::Env env, const Napi::Value& v, const OpEntry& op, const ArgSpec& spec,
                     std::vector<TensorArg>& tensors) {
  if (v.IsNull() || v.IsUndefined()) {
    if (spec.optional) return c10::IValue();
    badArg(env, op, spec, "a value (it is not optional)");
  }
  switch (spec.kind) {
    case Kind::Tensor: {
      if (!isHandle(v)) badArg(env, op, spec, "a tensor");
      const at::Tensor& t = tensorOf(v, op.name.c_str());
      tensors.push_back({t.unsafeGetTensorImpl(), v});
      return c10::IValue(t);
    }
    case Kind::TensorList:
    case Kind::OptTensorList: {
      if (!v.IsArray()) badArg(env, op, spec, "an array of tensors");
      auto arr = v.As<Napi::Array>();
      if (spec.kind == Kind::TensorList) {
        std::vector<at::Tensor> list;
        list.reserve(arr.Length());
        for (uint32_t i = 0; i < arr.Length(); i++) {
          Napi::Value e = arr[i];
          if (!isHandle(e)) badArg(env, op, spec, "an array of tensors");
          list.push_back(tensorOf(e, op.name.c_str()));
        }
        return c10::IValue(list);
      }
      c10::List<c10::optional<at::Tensor>> list;
      for (uint32_t i = 0; i < arr.Length(); i++) {
        Napi::Value e = arr[i];
        if (e.IsNull() || e.IsUndefined()) list.push_back(c10::nullopt);
        else if (isHandle(e)) list.push_back(tensorOf(e, op.name.c_str()));
        else badArg(env, op, spec, "an array of tensors or nulls");
      }
      return c10::IValue(list);
    }
    case Kind::Int: return c10::IValue(toInt(env, v, op, spec));
    case Kind::Float: return c10::IValue(toFloat(env, v, op, spec));
    case Kind::Bool:
      if (!v.IsBoolean()) badArg(env, op, spec, "a boolean");
      return c10::IValue(v.As<Napi::Boolean>().Value());
    case Kind::Scalar: return c10::IValue(toScalar(env, v, op, spec));
    case Kind::Str:
      if (!v.IsString()) badArg(env, op, spec, "a string");
      return c10::IValue(v.As<Napi::String>().Utf8Value());
    case Kind::Device:
      if (!v.IsString()) badArg(env, op, spec, "a device string such as 'cpu' or 'cuda:0'");
      return c10::IValue(c10::Device(v.As<Napi::String>().Utf8Value()));
    case Kind::IntList:
    case Kind::FloatList:
    case Kind::BoolList: {
      // A single number stands for a repeated list, as in PyTorch (stride=2 means [2, 2]).
      if (!v.IsArray()) {
        if (spec.kind == Kind::IntList && (v.IsNumber() || v.IsBigInt())) {
          int64_t x = toInt(env, v, op, spec);
          return c10::IValue(std::vector<int64_t>(spec.fixedLength.value_or(1), x));
        }
        badArg(env, op, spec, "an array");
      }
      auto arr = v.As<Napi::Array>();
      const uint32_t n = arr.Length();
      if (spec.kind == Kind::IntList) {
        std::vector<int64_t> list(n);
        for (uint32_t i = 0; i < n; i++) list[i] = toInt(env, arr[i], op, spec);
        return c10::IValue(list);
      }
      if (spec.kind == Kind::FloatList) {
        std::vector<double> list(n);
        for (uint32_t i = 0; i < n; i++) list[i] = toFloat(env, arr[i], op, spec);
        return c10::IValue(list);
      }
      c10::List<bool> list;
      for (uint32_t i = 0; i < n; i++) {
        Napi::Value e = arr[i];
        if (!e.IsBoolean()) badArg(env, op, spec, "an array of booleans");
        list.push_back(e.As<Napi::Boolean>().Value());
      }
      return c10::IValue(list);
    }
    case Kind::Generator: badArg(env, op, spec, "null (pass seeds with manualSeed)");
    case Kind::Unsupported: break;
  }
  badArg(env, op, spec, "a type the binding does not convert; leave it undefined");
}

Napi::Value fromIValue(Napi::Env env, const c10::IValue& r, const std::vector<TensorArg>& tensors) {
  if (r.isTensor()) {
    const at::Tensor& t = r.toTensor();
    if (!t.defined()) return env.Null();
    // In-place ops return their input: hand back the caller's own handle.
    for (const auto& in : tensors)
      if (in.impl == t.unsafeGetTensorImpl()) return in.js;
    return wrap(env, t);
  }
  if (r.isTensorList()) {
    auto list = r.toTensorVector();
    auto out = Napi::Array::New(env, list.size());
    for (size_t i = 0; i < list.size(); i++) out.Set(i, wrap(env, list[i]));
    return out;
  }
  if (r.isNone()) return env.Null();
  if (r.isInt()) return Napi::Number::New(env, static_cast<double>(r.toInt()));
  if (r.isDouble()) return Napi::Number::New(env, r.toDouble());
  if (r.isBool()) return Napi::Boolean::New(env, r.toBool());
  if (r.isString()) return Napi::String::New(env, r.toStringRef());
  if (r.isIntList()) {
    auto list = r.toIntVector();
    auto out = Napi::Array::New(env, list.size());
    for (size_t i = 0; i < list.size(); i++) out.Set(i, Napi::Number::New(env, static_cast<double>(list[i])));
    return out;
  }
  throw Napi::Error::New(env, "result of type " + r.tagKind() + " is not converted by the binding");
}

std::string describeJs(const Napi::Value& v) {
  if (isHandle(v)) {
    const at::Tensor& t = v.As<Napi::External<Handle>>().Data()->tensor;
    return t.defined() ? describe(t) : "<disposed>";
  }
  if (v.IsArray()) {
    auto arr = v.As<Napi::Array>();
    std::string s = "[";
    for (uint32_t i = 0; i < arr.Length() && i < 8; i++) s += (i ? "," : "") + describeJs(arr[i]);
    return s + (arr.Length() > 8 ? ",...]" : "]");
  }
  if (v.IsUndefined()) return "default";
  if (v.IsString()) return "'" + v.As<Napi::String>().Utf8Value() + "'";
  return v.ToString().Utf8Value();
}

std::string describeCall(const OpEntry& op, const Napi::Array& args) {
  std::string s = op.name + "(";
  bool first = true;
  for (uint32_t i = 0; i < args.Length() && i < op.args.size(); i++) {
    Napi::Value v = args[i];
    if (v.IsUndefined()) continue;
    s += (first ? "" : ", ") + op.args[i].name + "=" + describeJs(v);
    first = false;
  }
  return s + ")";
}

// resolveOp(name, overload) -> { id, args: string[], schema }
Napi::Value ResolveOp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string name = info[0].As<Napi::String>().Utf8Value();
  const std::string overload = info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "";
  const std::string full = overload.empty() ? name : name + "." + overload;
  return guard(env, "resolveOp " + full, [&]() -> Napi::Value {
    auto entry = std::make_unique<OpEntry>(OpEntry{c10::Dispatcher::singleton().findSchemaOrThrow(name.c_str(), overload.c_str()), full, {}});
    const auto& schema = entry->handle.schema();
    auto names = Napi::Array::New(env, schema.arguments().size());
    uint32_t i = 0;
    for (const auto& a : schema.arguments()) {
      c10::TypePtr type = a.type();
      bool optional = false;
      if (type->kind() == c10::TypeKind::OptionalType) {
        optional = true;
        type = type->castRaw<c10::OptionalType>()->getElementType();
      }
      entry->args.push_back({a.name(), a.type()->str(), kindOf(type), optional, a.N(), a.default_value()});
      names.Set(i++, Napi::String::New(env, a.name()));
    }
    auto out = Napi::Object::New(env);
    out.Set("id", Napi::Number::New(env, static_cast<double>(g_ops.size())));
    out.Set("args", names);
    std::ostringstream schemaText;
    schemaText << schema;
    out.Set("schema", Napi::String::New(env, schemaText.str()));
    g_ops.push_back(std::move(entry));
    return out;
  });
}

// call(id, args[]) -> result | result[] (several returns) | undefined (none)
Napi::Value Call(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint32_t id = info[0].As<Napi::Number>().Uint32Value();
  if (id >= g_ops.size()) throw Napi::RangeError::New(env, "call: unknown op id " + std::to_string(id));
  const OpEntry& op = *g_ops[id];
  auto args = info[1].As<Napi::Array>();
  const uint32_t given = args.Length();
  if (given > op.args.size())
    throw Napi::TypeError::New(env, op.name + ": takes " + std::to_string(op.args.size()) + " arguments, got " +
                                        std::to_string(given));
  torch::jit::Stack stack;
  stack.reserve(op.args.size());
  std::vector<TensorArg> tensors;
  for (uint32_t i = 0; i < op.args.size(); i++) {
    const ArgSpec& spec = op.args[i];
    Napi::Value v = i < given ? args.Get(i) : env.Undefined();
    if (v.IsUndefined() && spec.defaultValue) stack.push_back(*spec.defaultValue);
    else stack.push_back(toIValue(env, v, op, spec, tensors));
  }
  try {
    op.handle.callBoxed(&stack);
  } catch (const c10::Error& e) {
    throw Napi::Error::New(env, describeCall(op, args) + ": " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw Napi::Error::New(env, describeCall(op, args) + ": " + e.what());
  }
  if (stack.empty()) return env.Undefined();
  if (stack.size() == 1) return fromIValue(env, stack[0], tensors);
  auto out = Napi::Array::New(env, stack.size());
  for (size_t i = 0; i < stack.size(); i++) out.Set(i, fromIValue(env, stack[i], tensors));
  return out;
}

}  // namespace

void initOps(Napi::Env env, Napi::Object exports) {
  exports.Set("resolveOp", Napi::Function::New(env, ResolveOp));
  exports.Set("call", Napi::Function::New(env, Call));
}

}  // namespace dt
