// SPDX-License-Identifier: Apache-2.0
// Shared helpers of the membrane BPF addon: errno errors, libbpf log capture, promise workers.
#pragma once

#include <napi.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

struct btf;  // libbpf's, declared in <bpf/btf.h>

namespace membrane {

// What a failed kernel/libbpf call left behind, carried from a worker thread to the JS thread.
struct CallError {
  int err = 0;           // positive errno, 0 when the call succeeded
  std::string call;      // the failing syscall or libbpf function
  std::string detail;    // extra words (a path, a map name)
  std::string code;      // a membrane error code overriding the errno name (PIN_MISMATCH...)
  std::vector<std::string> log;  // verifier log, when the failure is a verifier rejection
  std::string program;   // the program the verifier rejected
  bool verifier = false;
  std::string libbpfLog; // what libbpf printed during the call
};

// Builds a JS Error carrying errno/call/code/libbpfLog; the TS layer turns it into BpfError.
Napi::Error MakeError(Napi::Env env, const CallError& e);
[[noreturn]] void ThrowErrno(Napi::Env env, const char* call, int err, const std::string& detail = "");

// Captures libbpf's print output on this thread while alive.
class LogCapture {
 public:
  LogCapture();
  ~LogCapture();
  std::string Take();
 private:
  std::string* prev_;
  std::string buf_;
};

// A Promise-returning worker: `exec` runs on the thread pool and fills CallError on failure;
// `done` builds the result on the JS thread.
class PromiseWorker : public Napi::AsyncWorker {
 public:
  using Exec = std::function<void(CallError&)>;
  using Done = std::function<Napi::Value(Napi::Env)>;
  using Finally = std::function<void()>;
  PromiseWorker(Napi::Env env, Exec exec, Done done, Finally fin)
      : Napi::AsyncWorker(env, "membrane-bpf"),
        deferred_(Napi::Promise::Deferred::New(env)),
        exec_(std::move(exec)),
        done_(std::move(done)),
        fin_(std::move(fin)) {}
  // Queues `exec` on the libuv pool; `fin` (optional) runs on the JS thread either way.
  static Napi::Promise Run(Napi::Env env, Exec exec, Done done, Finally fin = nullptr) {
    auto* w = new PromiseWorker(env, std::move(exec), std::move(done), std::move(fin));
    auto p = w->deferred_.Promise();
    w->Queue();
    return p;
  }
  void Execute() override {
    LogCapture cap;
    exec_(error_);
    if (error_.err) error_.libbpfLog = cap.Take();
  }
  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (fin_) fin_();
    if (error_.err) {
      deferred_.Reject(MakeError(env, error_).Value());
      return;
    }
    try {
      deferred_.Resolve(done_ ? done_(env) : env.Undefined());
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }
  void OnError(const Napi::Error& e) override {
    if (fin_) fin_();
    deferred_.Reject(e.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  Exec exec_;
  Done done_;
  Finally fin_;
  CallError error_;
};

// Argument helpers (the TS layer validates; these only guard against misuse of the raw binding).
int32_t ArgInt(const Napi::CallbackInfo& info, size_t i, const char* what);
uint32_t ArgU32(const Napi::CallbackInfo& info, size_t i, const char* what);
Napi::Buffer<uint8_t> ArgBuffer(const Napi::CallbackInfo& info, size_t i, const char* what);
std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* what);

// A BTF type as a plain layout tree: { name, kind, size, fields | elem+len | signed } (object.cc).
Napi::Value BtfLayout(Napi::Env env, const ::btf* b, uint32_t id, int depth);

// Module parts
void InitObject(Napi::Env env, Napi::Object exports);
void InitMaps(Napi::Env env, Napi::Object exports);
void InitPrograms(Napi::Env env, Napi::Object exports);
void InitRingBuffer(Napi::Env env, Napi::Object exports);
void InitProbes(Napi::Env env, Napi::Object exports);
void InitSockets(Napi::Env env, Napi::Object exports);

}  // namespace membrane
