// SPDX-License-Identifier: Apache-2.0
// NativeRingBuffer: a BPF ring buffer consumed on the libuv loop thread. uv_poll watches
// ring_buffer__epoll_fd(); when it is readable ring_buffer__consume() copies records into one
// batch that is handed to JS as (Buffer, Uint32Array of [offset, length] pairs).
#include <bpf/libbpf.h>
#include <uv.h>

#include "common.h"

namespace membrane {

static constexpr int kBatchFull = -1000;

class NativeRingBuffer : public Napi::ObjectWrap<NativeRingBuffer> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeRingBuffer",
                       {InstanceMethod("start", &NativeRingBuffer::JS_Start),
                        InstanceMethod("stop", &NativeRingBuffer::JS_Stop),
                        InstanceMethod("consume", &NativeRingBuffer::JS_Consume),
                        InstanceMethod("close", &NativeRingBuffer::JS_Close),
                        InstanceMethod("setRef", &NativeRingBuffer::JS_SetRef)});
  }

  // new NativeRingBuffer(mapFd, callback(batch, offsets), maxBatch)
  NativeRingBuffer(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeRingBuffer>(info) {
    Napi::Env env = info.Env();
    int fd = ArgInt(info, 0, "mapFd");
    if (!info[1].IsFunction()) throw Napi::TypeError::New(env, "callback must be a function");
    cb_ = Napi::Persistent(info[1].As<Napi::Function>());
    if (info.Length() > 2 && info[2].IsNumber()) maxBatch_ = info[2].As<Napi::Number>().Uint32Value();
    if (maxBatch_ == 0) maxBatch_ = 1;
    LogCapture cap;
    rb_ = ring_buffer__new(fd, &NativeRingBuffer::Sample, this, nullptr);
    if (!rb_) {
      CallError e;
      e.err = errno ? errno : EINVAL;
      e.call = "ring_buffer__new";
      e.libbpfLog = cap.Take();
      throw MakeError(env, e);
    }
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    poll_ = new uv_poll_t;
    if (uv_poll_init(loop, poll_, ring_buffer__epoll_fd(rb_)) != 0) {
      delete poll_;
      poll_ = nullptr;
      ring_buffer__free(rb_);
      rb_ = nullptr;
      ThrowErrno(env, "uv_poll_init", EINVAL);
    }
    poll_->data = this;
    env_ = env;
  }

  ~NativeRingBuffer() override { Close(); }

 private:
  static int Sample(void* ctx, void* data, size_t size) {
    auto* self = static_cast<NativeRingBuffer*>(ctx);
    self->offsets_.push_back((uint32_t)self->batch_.size());
    self->offsets_.push_back((uint32_t)size);
    const uint8_t* p = static_cast<const uint8_t*>(data);
    self->batch_.insert(self->batch_.end(), p, p + size);
    // Stop after a full batch (the record itself is consumed); the rest stays in the ring
    // and the level-triggered poll fires again on the next loop turn.
    if (self->offsets_.size() / 2 >= self->maxBatch_) return kBatchFull;
    return 0;
  }

  // Consumes up to one batch and delivers it. Returns the number of records delivered.
  size_t DrainOnce() {
    if (!rb_) return 0;
    batch_.clear();
    offsets_.clear();
    int ret = ring_buffer__consume(rb_);
    size_t n = offsets_.size() / 2;
    if (ret < 0 && ret != kBatchFull) {
      Napi::HandleScope scope(env_);
      CallError e;
      e.err = -ret;
      e.call = "ring_buffer__consume";
      Deliver(nullptr, &e);
      return n;
    }
    if (n > 0) Deliver(nullptr, nullptr);
    return n;
  }

  void Deliver(Napi::Value* unused, CallError* err) {
    (void)unused;
    Napi::Env env = env_;
    Napi::HandleScope scope(env);
    std::vector<napi_value> args;
    if (err) {
      args.push_back(MakeError(env, *err).Value());
    } else {
      auto buf = Napi::Buffer<uint8_t>::Copy(env, batch_.data(), batch_.size());
      auto ab = Napi::ArrayBuffer::New(env, offsets_.size() * sizeof(uint32_t));
      memcpy(ab.Data(), offsets_.data(), offsets_.size() * sizeof(uint32_t));
      auto offs = Napi::Uint32Array::New(env, offsets_.size(), ab, 0);
      args.push_back(env.Null());
      args.push_back(buf);
      args.push_back(offs);
    }
    inCallback_ = true;
    try {
      cb_.MakeCallback(Value(), args);
    } catch (const Napi::Error& e) {
      inCallback_ = false;
      napi_fatal_exception(env, e.Value());
      return;
    }
    inCallback_ = false;
  }

  static void OnPoll(uv_poll_t* handle, int status, int events) {
    auto* self = static_cast<NativeRingBuffer*>(handle->data);
    if (!self || !self->rb_) return;
    (void)events;
    if (status < 0) return;
    self->DrainOnce();
  }

  Napi::Value JS_Start(const Napi::CallbackInfo& info) {
    if (!rb_) throw Napi::Error::New(info.Env(), "the ring buffer is closed");
    if (!polling_) {
      uv_poll_start(poll_, UV_READABLE, &NativeRingBuffer::OnPoll);
      polling_ = true;
      Ref();
    }
    return info.Env().Undefined();
  }

  void Stop() {
    if (polling_) {
      uv_poll_stop(poll_);
      polling_ = false;
      Unref();
    }
  }

  Napi::Value JS_Stop(const Napi::CallbackInfo& info) {
    Stop();
    return info.Env().Undefined();
  }

  // Drains synchronously: delivers batches until the ring is empty or `max` records were read.
  Napi::Value JS_Consume(const Napi::CallbackInfo& info) {
    if (!rb_) throw Napi::Error::New(info.Env(), "the ring buffer is closed");
    double total = 0;
    while (rb_) {
      size_t n = DrainOnce();
      total += n;
      if (n < maxBatch_) break;
    }
    return Napi::Number::New(info.Env(), total);
  }

  // setRef(false) lets the process exit while polling (uv_unref), like timer.unref().
  Napi::Value JS_SetRef(const Napi::CallbackInfo& info) {
    if (poll_) {
      if (info[0].ToBoolean().Value()) uv_ref(reinterpret_cast<uv_handle_t*>(poll_));
      else uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
    }
    return info.Env().Undefined();
  }

  void Close() {
    Stop();
    if (poll_) {
      poll_->data = nullptr;
      uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
      poll_ = nullptr;
    }
    if (rb_) {
      ring_buffer__free(rb_);
      rb_ = nullptr;
    }
  }

  Napi::Value JS_Close(const Napi::CallbackInfo& info) {
    Close();
    return info.Env().Undefined();
  }

  ring_buffer* rb_ = nullptr;
  uv_poll_t* poll_ = nullptr;
  Napi::FunctionReference cb_;
  Napi::Env env_ = Napi::Env(nullptr);
  std::vector<uint8_t> batch_;
  std::vector<uint32_t> offsets_;
  uint32_t maxBatch_ = 4096;
  bool polling_ = false;
  bool inCallback_ = false;
};

// NativePerfBuffer: a BPF perf event array read the same way (uv_poll on perf_buffer__epoll_fd,
// perf_buffer__consume on the loop thread). Offsets are [offset, length, cpu] triplets; the
// callback's 4th argument is the number of records the kernel reported lost since the last batch.
class NativePerfBuffer : public Napi::ObjectWrap<NativePerfBuffer> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativePerfBuffer",
                       {InstanceMethod("start", &NativePerfBuffer::JS_Start),
                        InstanceMethod("stop", &NativePerfBuffer::JS_Stop),
                        InstanceMethod("consume", &NativePerfBuffer::JS_Consume),
                        InstanceMethod("close", &NativePerfBuffer::JS_Close),
                        InstanceMethod("setRef", &NativePerfBuffer::JS_SetRef)});
  }

  // new NativePerfBuffer(mapFd, pageCount, callback(err, batch, offsets, lost))
  NativePerfBuffer(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativePerfBuffer>(info) {
    Napi::Env env = info.Env();
    int fd = ArgInt(info, 0, "mapFd");
    uint32_t pages = ArgU32(info, 1, "pageCount");
    if (!info[2].IsFunction()) throw Napi::TypeError::New(env, "callback must be a function");
    cb_ = Napi::Persistent(info[2].As<Napi::Function>());
    LogCapture cap;
    pb_ = perf_buffer__new(fd, pages, &NativePerfBuffer::Sample, &NativePerfBuffer::Lost, this, nullptr);
    if (!pb_) {
      CallError e;
      e.err = errno ? errno : EINVAL;
      e.call = "perf_buffer__new";
      e.libbpfLog = cap.Take();
      throw MakeError(env, e);
    }
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    poll_ = new uv_poll_t;
    if (uv_poll_init(loop, poll_, perf_buffer__epoll_fd(pb_)) != 0) {
      delete poll_;
      poll_ = nullptr;
      perf_buffer__free(pb_);
      pb_ = nullptr;
      ThrowErrno(env, "uv_poll_init", EINVAL);
    }
    poll_->data = this;
    env_ = env;
  }

  ~NativePerfBuffer() override { Close(); }

 private:
  static void Sample(void* ctx, int cpu, void* data, __u32 size) {
    auto* self = static_cast<NativePerfBuffer*>(ctx);
    self->offsets_.push_back((uint32_t)self->batch_.size());
    self->offsets_.push_back(size);
    self->offsets_.push_back((uint32_t)cpu);
    const uint8_t* p = static_cast<const uint8_t*>(data);
    self->batch_.insert(self->batch_.end(), p, p + size);
  }

  static void Lost(void* ctx, int cpu, __u64 cnt) {
    (void)cpu;
    static_cast<NativePerfBuffer*>(ctx)->lost_ += cnt;
  }

  size_t DrainOnce() {
    if (!pb_) return 0;
    batch_.clear();
    offsets_.clear();
    lost_ = 0;
    int ret = perf_buffer__consume(pb_);
    size_t n = offsets_.size() / 3;
    Napi::Env env = env_;
    Napi::HandleScope scope(env);
    std::vector<napi_value> args;
    if (ret < 0) {
      CallError e;
      e.err = -ret;
      e.call = "perf_buffer__consume";
      args.push_back(MakeError(env, e).Value());
    } else if (n > 0 || lost_ > 0) {
      auto buf = Napi::Buffer<uint8_t>::Copy(env, batch_.data(), batch_.size());
      auto ab = Napi::ArrayBuffer::New(env, offsets_.size() * sizeof(uint32_t));
      if (!offsets_.empty()) memcpy(ab.Data(), offsets_.data(), offsets_.size() * sizeof(uint32_t));
      args.push_back(env.Null());
      args.push_back(buf);
      args.push_back(Napi::Uint32Array::New(env, offsets_.size(), ab, 0));
      args.push_back(Napi::Number::New(env, (double)lost_));
    } else {
      return 0;
    }
    try {
      cb_.MakeCallback(Value(), args);
    } catch (const Napi::Error& e) {
      napi_fatal_exception(env, e.Value());
    }
    return n;
  }

  static void OnPoll(uv_poll_t* handle, int status, int events) {
    (void)events;
    auto* self = static_cast<NativePerfBuffer*>(handle->data);
    if (!self || !self->pb_ || status < 0) return;
    self->DrainOnce();
  }

  Napi::Value JS_Start(const Napi::CallbackInfo& info) {
    if (!pb_) throw Napi::Error::New(info.Env(), "the perf buffer is closed");
    if (!polling_) {
      uv_poll_start(poll_, UV_READABLE, &NativePerfBuffer::OnPoll);
      polling_ = true;
      Ref();
    }
    return info.Env().Undefined();
  }

  void Stop() {
    if (polling_) {
      uv_poll_stop(poll_);
      polling_ = false;
      Unref();
    }
  }

  Napi::Value JS_Stop(const Napi::CallbackInfo& info) {
    Stop();
    return info.Env().Undefined();
  }

  Napi::Value JS_Consume(const Napi::CallbackInfo& info) {
    if (!pb_) throw Napi::Error::New(info.Env(), "the perf buffer is closed");
    return Napi::Number::New(info.Env(), (double)DrainOnce());
  }

  // setRef(false) lets the process exit while polling (uv_unref), like timer.unref().
  Napi::Value JS_SetRef(const Napi::CallbackInfo& info) {
    if (poll_) {
      if (info[0].ToBoolean().Value()) uv_ref(reinterpret_cast<uv_handle_t*>(poll_));
      else uv_unref(reinterpret_cast<uv_handle_t*>(poll_));
    }
    return info.Env().Undefined();
  }

  void Close() {
    Stop();
    if (poll_) {
      poll_->data = nullptr;
      uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
      poll_ = nullptr;
    }
    if (pb_) {
      perf_buffer__free(pb_);
      pb_ = nullptr;
    }
  }

  Napi::Value JS_Close(const Napi::CallbackInfo& info) {
    Close();
    return info.Env().Undefined();
  }

  perf_buffer* pb_ = nullptr;
  uv_poll_t* poll_ = nullptr;
  Napi::FunctionReference cb_;
  Napi::Env env_ = Napi::Env(nullptr);
  std::vector<uint8_t> batch_;
  std::vector<uint32_t> offsets_;
  uint64_t lost_ = 0;
  bool polling_ = false;
};

void InitRingBuffer(Napi::Env env, Napi::Object exports) {
  exports.Set("NativeRingBuffer", NativeRingBuffer::Define(env));
  exports.Set("NativePerfBuffer", NativePerfBuffer::Define(env));
}

}  // namespace membrane
