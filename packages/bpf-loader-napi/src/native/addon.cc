// SPDX-License-Identifier: Apache-2.0
// Module entry, errors and the libbpf print hook.
#include <bpf/libbpf.h>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <string.h>
#include <unistd.h>

#include "common.h"

namespace membrane {

static thread_local std::string* tl_capture = nullptr;
static bool g_debug = false;

static int PrintHook(enum libbpf_print_level level, const char* fmt, va_list args) {
  char buf[2048];
  va_list copy;
  va_copy(copy, args);
  int n = vsnprintf(buf, sizeof buf, fmt, copy);
  va_end(copy);
  if (n < 0) return 0;
  if (tl_capture != nullptr && level != LIBBPF_DEBUG) tl_capture->append(buf);
  if (g_debug) fputs(buf, stderr);
  return n;
}

LogCapture::LogCapture() : prev_(tl_capture) { tl_capture = &buf_; }
LogCapture::~LogCapture() { tl_capture = prev_; }
std::string LogCapture::Take() {
  std::string out;
  out.swap(buf_);
  return out;
}

static const char* ErrnoName(int err) {
  const char* n = strerrorname_np(err);
  return n ? n : "EUNKNOWN";
}

Napi::Error MakeError(Napi::Env env, const CallError& e) {
  std::string msg = e.call + ": " + strerror(e.err);
  if (!e.detail.empty()) msg += " (" + e.detail + ")";
  Napi::Error error = Napi::Error::New(env, msg);
  Napi::Object o = error.Value();
  o.Set("errno", Napi::Number::New(env, e.err));
  o.Set("syscode", Napi::String::New(env, ErrnoName(e.err)));
  o.Set("call", Napi::String::New(env, e.call));
  o.Set("detail", Napi::String::New(env, e.detail));
  if (!e.code.empty()) o.Set("membraneCode", Napi::String::New(env, e.code));
  if (!e.libbpfLog.empty()) o.Set("libbpfLog", Napi::String::New(env, e.libbpfLog));
  if (e.verifier) {
    o.Set("verifier", Napi::Boolean::New(env, true));
    o.Set("program", Napi::String::New(env, e.program));
    Napi::Array lines = Napi::Array::New(env, e.log.size());
    for (size_t i = 0; i < e.log.size(); i++) lines.Set(i, Napi::String::New(env, e.log[i]));
    o.Set("log", lines);
  }
  return error;
}

void ThrowErrno(Napi::Env env, const char* call, int err, const std::string& detail) {
  CallError e;
  e.err = err;
  e.call = call;
  e.detail = detail;
  throw MakeError(env, e);
}

int32_t ArgInt(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a number");
  return info[i].As<Napi::Number>().Int32Value();
}
uint32_t ArgU32(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a number");
  return info[i].As<Napi::Number>().Uint32Value();
}
Napi::Buffer<uint8_t> ArgBuffer(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (!info[i].IsBuffer()) throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a Buffer");
  return info[i].As<Napi::Buffer<uint8_t>>();
}
std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (!info[i].IsString()) throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

static Napi::Value JS_Close(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0, "fd");
  if (fd >= 0) close(fd);
  return info.Env().Undefined();
}

static Napi::Value JS_SetDebug(const Napi::CallbackInfo& info) {
  g_debug = info[0].ToBoolean().Value();
  return info.Env().Undefined();
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  const char* dbg = getenv("MEMBRANE_LIBBPF_DEBUG");
  g_debug = dbg != nullptr && dbg[0] == '1';
  libbpf_set_print(PrintHook);
  libbpf_set_strict_mode(LIBBPF_STRICT_ALL);
  exports.Set("close", Napi::Function::New(env, JS_Close, "close"));
  exports.Set("setDebug", Napi::Function::New(env, JS_SetDebug, "setDebug"));
  exports.Set("libbpfVersion",
              Napi::String::New(env, std::to_string(libbpf_major_version()) + "." +
                                         std::to_string(libbpf_minor_version())));
  InitObject(env, exports);
  InitMaps(env, exports);
  InitPrograms(env, exports);
  InitRingBuffer(env, exports);
  InitProbes(env, exports);
  InitSockets(env, exports);
  return exports;
}

}  // namespace membrane

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) {
  return membrane::Init(env, exports);
}

NODE_API_MODULE(membrane_bpf, InitModule)
