// SPDX-License-Identifier: Apache-2.0
// Map operations on file descriptors: element ops, batches, create, pin, freeze, info.
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstddef>

#include <algorithm>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "common.h"

namespace membrane {

static int Fd(const Napi::CallbackInfo& info, size_t i = 0) { return ArgInt(info, i, "fd"); }

// The element calls (lookup, update, delete, lookup-and-delete) go straight to bpf(2), the
// bpf_attr on the stack (libbpf's element wrappers do the same memset + syscall, plus errno
// shuffling). On x86-64 the syscall instruction is issued inline: with page-table isolation and
// no PCID every syscall flushes the TLB, so each code page touched between two calls (libc's
// syscall()) costs a page walk.
static inline int SysBpf(int cmd, union bpf_attr* attr, unsigned size) {
#if defined(__x86_64__)
  long ret;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "0"((long)__NR_bpf), "D"((long)cmd), "S"(attr), "d"((long)size)
                   : "rcx", "r11", "memory");
  return ret < 0 ? (int)-ret : 0;
#else
  return syscall(__NR_bpf, cmd, attr, size) < 0 ? errno : 0;
#endif
}
static constexpr unsigned kElemAttrSize = offsetof(union bpf_attr, flags) + sizeof(__u64);

// Throws the errno error MakeError builds (errno, syscode, call) without a C++ exception escaping.
static napi_value RawThrow(napi_env env, const char* call, int err) {
  try {
    CallError e;
    e.err = err;
    e.call = call;
    MakeError(Napi::Env(env), e).ThrowAsJavaScriptException();
  } catch (...) {
    napi_throw_error(env, nullptr, call);
  }
  return nullptr;
}

// The element hot path, a plain N-API callback without per-call arguments: at its first element
// call, a map hands over one ArrayBuffer (its "slot": a 16-byte header, then the key, then the value, all in one page)
// and gets back a function bound to it. Each call reads the command and flags from the header,
// makes the bpf(2) call on the slot's own key and value, and writes the outcome back into the
// header. Nothing crosses N-API per call but the callback itself: no argument conversions, no
// buffer introspection, no result object. The kernel only ever sees the slot's memory, whose
// size was fixed at bind time, so no JS value can make it read or write out of bounds.
//
// Header (int32 words): [0] command in (BPF_MAP_*_ELEM), outcome out (0 done, 1 not found);
// [1] the map fd (the TS layer sets -1 at close, so a stale call gets EBADF); [2] flags.
struct ElemSlot {
  uint8_t* base;
  uint32_t keyOffset;   // 0 for maps without keys (queue/stack)
  uint32_t valueOffset;
  napi_ref keep;        // the slot's ArrayBuffer, alive as long as the function
};
static constexpr uint32_t kSlotHeader = 16;

static napi_value JS_SlotOp(napi_env env, napi_callback_info cb) {
  size_t argc = 0;
  void* data = nullptr;
  napi_get_cb_info(env, cb, &argc, nullptr, nullptr, &data);
  auto* s = static_cast<ElemSlot*>(data);
  int32_t* hdr = reinterpret_cast<int32_t*>(s->base);
  const int cmd = hdr[0];
  const char* call;
  bool notFoundOk = true;
  union bpf_attr attr;
  memset(&attr, 0, kElemAttrSize);
  attr.map_fd = (__u32)hdr[1];
  attr.key = s->keyOffset ? (__u64)(uintptr_t)(s->base + s->keyOffset) : 0;
  attr.flags = (__u64)(uint32_t)hdr[2];
  switch (cmd) {
    case BPF_MAP_LOOKUP_ELEM:
      call = "bpf_map_lookup_elem";
      attr.value = (__u64)(uintptr_t)(s->base + s->valueOffset);
      break;
    case BPF_MAP_LOOKUP_AND_DELETE_ELEM:
      call = "bpf_map_lookup_and_delete_elem";
      attr.value = (__u64)(uintptr_t)(s->base + s->valueOffset);
      break;
    case BPF_MAP_UPDATE_ELEM:
      call = "bpf_map_update_elem";
      attr.value = (__u64)(uintptr_t)(s->base + s->valueOffset);
      notFoundOk = false;
      break;
    case BPF_MAP_DELETE_ELEM:
      call = "bpf_map_delete_elem";
      break;
    default:
      return RawThrow(env, "map element call", EINVAL);
  }
  int err = SysBpf(cmd, &attr, kElemAttrSize);
  if (err == 0 || (notFoundOk && err == ENOENT)) {
    hdr[0] = err ? 1 : 0;
    return nullptr;
  }
  return RawThrow(env, call, err);
}

// mapBindSlot(slot: ArrayBuffer, keySize, valueStride) -> () => undefined (see ElemSlot)
static napi_value JS_MapBindSlot(napi_env env, napi_callback_info cb) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, cb, &argc, argv, nullptr, nullptr);
  int32_t ks = -1, vs = -1;
  void* base = nullptr;
  size_t len = 0;
  if (argc < 3 || napi_get_arraybuffer_info(env, argv[0], &base, &len) != napi_ok ||
      napi_get_value_int32(env, argv[1], &ks) != napi_ok || napi_get_value_int32(env, argv[2], &vs) != napi_ok ||
      ks < 0 || vs < 0) {
    napi_throw_type_error(env, nullptr, "mapBindSlot(slot: ArrayBuffer, keySize, valueStride)");
    return nullptr;
  }
  const size_t keyOffset = ks ? kSlotHeader : 0;
  const size_t valueOffset = kSlotHeader + (((size_t)ks + 7) & ~(size_t)7);
  if (len < valueOffset + (size_t)vs || ((uintptr_t)base & 7)) {
    napi_throw_range_error(env, nullptr, "mapBindSlot: the slot is smaller than header + key + value");
    return nullptr;
  }
  auto* s = new ElemSlot{static_cast<uint8_t*>(base), (uint32_t)keyOffset, (uint32_t)valueOffset, nullptr};
  napi_value fn;
  if (napi_create_reference(env, argv[0], 1, &s->keep) != napi_ok ||
      napi_create_function(env, "mapSlotOp", NAPI_AUTO_LENGTH, JS_SlotOp, s, &fn) != napi_ok ||
      napi_add_finalizer(
          env, fn, s,
          [](napi_env env, void* d, void*) {
            auto* slot = static_cast<ElemSlot*>(d);
            if (slot->keep) napi_delete_reference(env, slot->keep);
            delete slot;
          },
          nullptr, nullptr) != napi_ok) {
    if (s->keep) napi_delete_reference(env, s->keep);
    delete s;
    napi_throw_error(env, nullptr, "mapBindSlot: could not create the element function");
    return nullptr;
  }
  return fn;
}

static Napi::Value JS_MapNextKey(const Napi::CallbackInfo& info) {
  auto next = ArgBuffer(info, 2, "nextKey");
  const void* key = nullptr;
  if (!info[1].IsNull() && !info[1].IsUndefined()) key = ArgBuffer(info, 1, "key").Data();
  int ret = bpf_map_get_next_key(Fd(info), key, next.Data());
  if (ret == 0) return Napi::Boolean::New(info.Env(), true);
  if (-ret == ENOENT) return Napi::Boolean::New(info.Env(), false);
  ThrowErrno(info.Env(), "bpf_map_get_next_key", -ret);
}

static Napi::Value JS_MapInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bpf_map_info mi;
  memset(&mi, 0, sizeof mi);
  uint32_t len = sizeof mi;
  int ret = bpf_obj_get_info_by_fd(Fd(info), &mi, &len);
  if (ret) ThrowErrno(env, "bpf_obj_get_info_by_fd", -ret);
  Napi::Object o = Napi::Object::New(env);
  o.Set("type", (double)mi.type);
  o.Set("id", (double)mi.id);
  o.Set("keySize", (double)mi.key_size);
  o.Set("valueSize", (double)mi.value_size);
  o.Set("maxEntries", (double)mi.max_entries);
  o.Set("flags", (double)mi.map_flags);
  o.Set("name", mi.name);
  o.Set("btfId", (double)mi.btf_id);
  return o;
}

// mapLayout(fd) -> { key, value } from the map's BTF in the kernel, or null without BTF.
static Napi::Value JS_MapLayout(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bpf_map_info mi;
  memset(&mi, 0, sizeof mi);
  uint32_t len = sizeof mi;
  int ret = bpf_obj_get_info_by_fd(Fd(info), &mi, &len);
  if (ret) ThrowErrno(env, "bpf_obj_get_info_by_fd", -ret);
  if (!mi.btf_id || (!mi.btf_key_type_id && !mi.btf_value_type_id)) return env.Null();
  btf* b = btf__load_from_kernel_by_id(mi.btf_id);
  if (!b) ThrowErrno(env, "btf__load_from_kernel_by_id", errno ? errno : EINVAL);
  Napi::Object o = Napi::Object::New(env);
  try {
    o.Set("key", mi.btf_key_type_id ? BtfLayout(env, b, mi.btf_key_type_id, 0) : env.Null());
    o.Set("value", mi.btf_value_type_id ? BtfLayout(env, b, mi.btf_value_type_id, 0) : env.Null());
  } catch (...) {
    btf__free(b);
    throw;
  }
  btf__free(b);
  return o;
}

static Napi::Value JS_MapCreate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint32_t type = ArgU32(info, 0, "type");
  std::string name = info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "";
  uint32_t ks = ArgU32(info, 2, "keySize");
  uint32_t vs = ArgU32(info, 3, "valueSize");
  uint32_t max = ArgU32(info, 4, "maxEntries");
  LIBBPF_OPTS(bpf_map_create_opts, opts);
  opts.map_flags = ArgU32(info, 5, "flags");
  if (info.Length() > 6 && info[6].IsNumber()) opts.inner_map_fd = info[6].As<Napi::Number>().Uint32Value();
  LogCapture cap;
  int fd = bpf_map_create((enum bpf_map_type)type, name.empty() ? nullptr : name.c_str(), ks, vs, max, &opts);
  if (fd < 0) ThrowErrno(env, "bpf_map_create", -fd, name.empty() ? "" : "map " + name);
  return Napi::Number::New(env, fd);
}

static Napi::Value JS_ObjGet(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0, "path");
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) ThrowErrno(info.Env(), "bpf_obj_get", -fd, path);
  return Napi::Number::New(info.Env(), fd);
}

static Napi::Value JS_ObjPin(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 1, "path");
  int ret = bpf_obj_pin(Fd(info), path.c_str());
  if (ret) ThrowErrno(info.Env(), "bpf_obj_pin", -ret, path);
  return info.Env().Undefined();
}

static Napi::Value JS_MapFreeze(const Napi::CallbackInfo& info) {
  int ret = bpf_map_freeze(Fd(info));
  if (ret) ThrowErrno(info.Env(), "bpf_map_freeze", -ret);
  return info.Env().Undefined();
}

static Napi::Value JS_NumPossibleCpus(const Napi::CallbackInfo& info) {
  int n = libbpf_num_possible_cpus();
  if (n < 0) ThrowErrno(info.Env(), "libbpf_num_possible_cpus", -n);
  return Napi::Number::New(info.Env(), n);
}

// Memory a worker fills and the JS thread then hands to V8 as the backing store of a Buffer
// (napi_create_external_buffer: no copy of the batch, no zero-fill of the capacity beforehand).
struct RawBytes {
  uint8_t* data = nullptr;
  size_t size = 0;
  explicit RawBytes(size_t n) : data(static_cast<uint8_t*>(malloc(n ? n : 1))), size(n) {}
  ~RawBytes() { free(data); }
  RawBytes(const RawBytes&) = delete;
  RawBytes& operator=(const RawBytes&) = delete;
  // Moves ownership of the first `used` bytes into a JS Buffer.
  Napi::Value Release(Napi::Env env, size_t used) {
    if (used == 0) return Napi::Buffer<uint8_t>::New(env, 0);
    napi_value out;
    napi_status st = napi_create_external_buffer(
        env, used, data, [](napi_env, void* d, void*) { free(d); }, nullptr, &out);
    if (st != napi_ok) return Napi::Buffer<uint8_t>::Copy(env, data, used);  // e.g. no external buffers
    data = nullptr;
    return Napi::Value(env, out);
  }
};

// mapLookupBatch(fd, keySize, valueStride, capacity, deleteToo) -> Promise<{count, keys, values}>
static Napi::Value JS_MapLookupBatch(const Napi::CallbackInfo& info) {
  int fd = Fd(info);
  uint32_t ks = ArgU32(info, 1, "keySize");
  uint32_t vs = ArgU32(info, 2, "valueStride");
  uint32_t cap = ArgU32(info, 3, "capacity");
  bool del = info.Length() > 4 && info[4].ToBoolean().Value();
  struct Result {
    RawBytes keys, values;
    uint32_t count = 0;
    Result(size_t k, size_t v) : keys(k), values(v) {}
  };
  std::shared_ptr<Result> r;
  try {
    r = std::make_shared<Result>((size_t)cap * ks, (size_t)cap * vs);
  } catch (const std::bad_alloc&) {
    ThrowErrno(info.Env(), "malloc", ENOMEM, "batch lookup buffers");
  }
  if (!r->keys.data || !r->values.data) ThrowErrno(info.Env(), "malloc", ENOMEM, "batch lookup buffers");
  return PromiseWorker::Run(
      info.Env(),
      [=](CallError& e) {
        std::vector<uint8_t> in(std::max<uint32_t>(ks, 8)), out(std::max<uint32_t>(ks, 8));
        bool first = true;
        LIBBPF_OPTS(bpf_map_batch_opts, opts);
        while (r->count < cap) {
          uint32_t n = cap - r->count;
          int ret = del ? bpf_map_lookup_and_delete_batch(fd, first ? nullptr : in.data(), out.data(),
                                                          r->keys.data + (size_t)r->count * ks,
                                                          r->values.data + (size_t)r->count * vs, &n, &opts)
                        : bpf_map_lookup_batch(fd, first ? nullptr : in.data(), out.data(),
                                               r->keys.data + (size_t)r->count * ks,
                                               r->values.data + (size_t)r->count * vs, &n, &opts);
          r->count += n;
          if (ret == -ENOENT) break;
          if (ret) {
            e.err = -ret;
            e.call = del ? "bpf_map_lookup_and_delete_batch" : "bpf_map_lookup_batch";
            return;
          }
          in.swap(out);
          first = false;
        }
      },
      [r, ks, vs](Napi::Env env) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env);
        o.Set("count", (double)r->count);
        o.Set("keys", r->keys.Release(env, (size_t)r->count * ks));
        o.Set("values", r->values.Release(env, (size_t)r->count * vs));
        return o;
      });
}

// Large batch updates are split into parts written by parallel threads: the kernel's hash maps
// take per-bucket locks and per-CPU free lists, so two writers on two cores write a 100k batch
// about twice as fast as one (measured: 2.7M -> 6.3M entries/s with plain C on this machine's 2
// cores). Entries are split by a hash of the key, so every copy of a key lands in the same part in
// its original order and "the last one wins" still holds; what changes is that on an error the
// written entries are no longer a prefix of the batch (the error says so).
//
// Extra writers pay only on CPUs that are idle. On a busy machine (this one: 2 shared vCPUs,
// load ~15) a second writer waits for a CPU, and one preempted while it holds a bucket or
// free-list lock stalls the other: there, 100k packed entries in two parts ran at 0.3-0.6 of the
// one-thread C floor while one thread ran at 0.6-2.5 of it. So the part count is capped by the
// idle CPUs /proc/loadavg shows at the call (running tasks, ours included).
static constexpr uint32_t kParallelBatchMin = 16384;

enum class BatchParallel : uint32_t { Auto = 0, Never = 1, Always = 2 };

static unsigned RunnableTasks() {
  FILE* f = fopen("/proc/loadavg", "re");
  if (!f) return ~0u;
  double l1, l5, l15;
  unsigned running = ~0u, total;
  if (fscanf(f, "%lf %lf %lf %u/%u", &l1, &l5, &l15, &running, &total) != 5) running = ~0u;
  fclose(f);
  return running;
}

static uint32_t UpdateBatchParts(uint32_t count, BatchParallel mode) {
  if (count < kParallelBatchMin || mode == BatchParallel::Never) return 1;
  unsigned hw = std::thread::hardware_concurrency();
  if (hw < 2) return 1;
  uint32_t parts = std::min<uint32_t>(std::min<unsigned>(hw, 4u), count / (kParallelBatchMin / 2));
  if (mode == BatchParallel::Always) return parts;
  unsigned running = RunnableTasks();
  if (running >= hw) return 1;
  return std::min<uint32_t>(parts, 1 + (hw - running));
}

static void UpdateBatchParallel(int fd, const std::vector<uint8_t>& keys,
                                const std::vector<uint8_t>& values, uint32_t count,
                                uint64_t flags, uint32_t parts, uint32_t* done, CallError& e) {
  const size_t ks = keys.size() / count;
  const size_t vs = values.size() / count;
  std::vector<int> rets(parts, 0);
  std::vector<uint32_t> sizes(parts, 0), written(parts, 0);
  // Each thread picks its own part out of the whole batch (FNV-1a of the key modulo `parts`),
  // so the split itself runs in parallel too.
  auto run = [&](uint32_t p) {
    std::vector<uint8_t> pk, pv;
    pk.reserve((count / parts + count / 8) * ks);
    pv.reserve((count / parts + count / 8) * vs);
    for (uint32_t i = 0; i < count; i++) {
      uint32_t h = 2166136261u;
      const uint8_t* k = keys.data() + i * ks;
      for (size_t b = 0; b < ks; b++) h = (h ^ k[b]) * 16777619u;
      if (h % parts != p) continue;
      pk.insert(pk.end(), k, k + ks);
      pv.insert(pv.end(), values.data() + i * vs, values.data() + (i + 1) * vs);
    }
    sizes[p] = written[p] = (uint32_t)(pk.size() / ks);
    if (!sizes[p]) return;
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    opts.elem_flags = flags;
    rets[p] = bpf_map_update_batch(fd, pk.data(), pv.data(), &written[p], &opts);
  };
  std::vector<std::thread> threads;
  for (uint32_t p = 1; p < parts; p++) threads.emplace_back(run, p);
  run(0);
  for (auto& t : threads) t.join();
  uint32_t total = 0;
  int err = 0;
  for (uint32_t p = 0; p < parts; p++) {
    total += written[p];
    if (rets[p] && !err) err = -rets[p];
  }
  *done = total;
  if (err) {
    e.err = err;
    e.call = "bpf_map_update_batch";
    e.detail = std::to_string(total) + " of " + std::to_string(count) +
               " entries written (in " + std::to_string(parts) +
               " parallel parts split by key, so the written entries are not a prefix)";
  }
}

// The kernel reads count * keySize (and count * valueStride) bytes from the pointers it is given:
// check the lengths V8 reports, not the ones the TS layer saw (a `length` property can be shadowed).
static void CheckBatchBuffer(Napi::Env env, const Napi::Buffer<uint8_t>& b, uint32_t count,
                             uint32_t size, const char* what) {
  if (b.Length() != (size_t)count * size)
    throw Napi::RangeError::New(env, std::string(what) + ": expected " + std::to_string((size_t)count * size) +
                                         " bytes (" + std::to_string(count) + " x " + std::to_string(size) +
                                         "), got a buffer of " + std::to_string(b.Length()) + " bytes");
}

// mapUpdateBatch(fd, keys, values, count, elemFlags, keySize, valueStride, parallel?) -> Promise<count>
// parallel: 0 (default) parts on idle CPUs, 1 one thread, 2 parts regardless of load (tests).
static Napi::Value JS_MapUpdateBatch(const Napi::CallbackInfo& info) {
  int fd = Fd(info);
  auto kb = ArgBuffer(info, 1, "keys");
  auto vb = ArgBuffer(info, 2, "values");
  uint32_t count = ArgU32(info, 3, "count");
  uint64_t flags = ArgU32(info, 4, "flags");
  CheckBatchBuffer(info.Env(), kb, count, ArgU32(info, 5, "keySize"), "packed keys");
  CheckBatchBuffer(info.Env(), vb, count, ArgU32(info, 6, "valueStride"), "packed values");
  auto mode = static_cast<BatchParallel>(info.Length() > 7 && info[7].IsNumber() ? ArgU32(info, 7, "parallel") : 0);
  auto keys = std::make_shared<std::vector<uint8_t>>(kb.Data(), kb.Data() + kb.Length());
  auto values = std::make_shared<std::vector<uint8_t>>(vb.Data(), vb.Data() + vb.Length());
  auto done = std::make_shared<uint32_t>(0);
  return PromiseWorker::Run(
      info.Env(),
      [=](CallError& e) {
        uint32_t parts = UpdateBatchParts(count, mode);
        if (parts > 1) {
          UpdateBatchParallel(fd, *keys, *values, count, flags, parts, done.get(), e);
          return;
        }
        LIBBPF_OPTS(bpf_map_batch_opts, opts);
        opts.elem_flags = flags;
        uint32_t n = count;
        int ret = bpf_map_update_batch(fd, keys->data(), values->data(), &n, &opts);
        *done = n;
        if (ret) {
          e.err = -ret;
          e.call = "bpf_map_update_batch";
          e.detail = std::to_string(n) + " of " + std::to_string(count) + " entries written";
        }
      },
      [done](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, *done); });
}

// mapDeleteBatch(fd, keys, count, keySize) -> Promise<count>
static Napi::Value JS_MapDeleteBatch(const Napi::CallbackInfo& info) {
  int fd = Fd(info);
  auto kb = ArgBuffer(info, 1, "keys");
  uint32_t count = ArgU32(info, 2, "count");
  CheckBatchBuffer(info.Env(), kb, count, ArgU32(info, 3, "keySize"), "packed keys");
  auto keys = std::make_shared<std::vector<uint8_t>>(kb.Data(), kb.Data() + kb.Length());
  auto done = std::make_shared<uint32_t>(0);
  return PromiseWorker::Run(
      info.Env(),
      [=](CallError& e) {
        LIBBPF_OPTS(bpf_map_batch_opts, opts);
        uint32_t n = count;
        int ret = bpf_map_delete_batch(fd, keys->data(), &n, &opts);
        *done = n;
        if (ret) {
          e.err = -ret;
          e.call = "bpf_map_delete_batch";
          e.detail = std::to_string(n) + " of " + std::to_string(count) + " entries deleted";
        }
      },
      [done](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, *done); });
}

void InitMaps(Napi::Env env, Napi::Object exports) {
  napi_value bind;
  NAPI_THROW_IF_FAILED_VOID(env, napi_create_function(env, "mapBindSlot", NAPI_AUTO_LENGTH, JS_MapBindSlot,
                                                      nullptr, &bind));
  exports.Set("mapBindSlot", Napi::Value(env, bind));
  exports.Set("mapNextKey", Napi::Function::New(env, JS_MapNextKey, "mapNextKey"));
  exports.Set("mapInfo", Napi::Function::New(env, JS_MapInfo, "mapInfo"));
  exports.Set("mapLayout", Napi::Function::New(env, JS_MapLayout, "mapLayout"));
  exports.Set("mapCreate", Napi::Function::New(env, JS_MapCreate, "mapCreate"));
  exports.Set("objGet", Napi::Function::New(env, JS_ObjGet, "objGet"));
  exports.Set("objPin", Napi::Function::New(env, JS_ObjPin, "objPin"));
  exports.Set("mapFreeze", Napi::Function::New(env, JS_MapFreeze, "mapFreeze"));
  exports.Set("numPossibleCpus", Napi::Function::New(env, JS_NumPossibleCpus, "numPossibleCpus"));
  exports.Set("mapLookupBatch", Napi::Function::New(env, JS_MapLookupBatch, "mapLookupBatch"));
  exports.Set("mapUpdateBatch", Napi::Function::New(env, JS_MapUpdateBatch, "mapUpdateBatch"));
  exports.Set("mapDeleteBatch", Napi::Function::New(env, JS_MapDeleteBatch, "mapDeleteBatch"));
}

}  // namespace membrane
