// SPDX-License-Identifier: Apache-2.0
// Program operations: info, BPF_PROG_TEST_RUN, tc/clsact, XDP, cgroup and raw bpf_link attach.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <unistd.h>

#include <memory>

#include "common.h"

namespace membrane {

static Napi::Value JS_ProgInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bpf_prog_info pi;
  memset(&pi, 0, sizeof pi);
  uint32_t len = sizeof pi;
  int ret = bpf_obj_get_info_by_fd(ArgInt(info, 0, "fd"), &pi, &len);
  if (ret) ThrowErrno(env, "bpf_obj_get_info_by_fd", -ret);
  Napi::Object o = Napi::Object::New(env);
  o.Set("type", (double)pi.type);
  o.Set("id", (double)pi.id);
  o.Set("name", pi.name);
  char tag[17];
  for (int i = 0; i < 8; i++) snprintf(tag + 2 * i, 3, "%02x", pi.tag[i]);
  o.Set("tag", tag);
  return o;
}

static Napi::Value JS_LinkInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bpf_link_info li;
  memset(&li, 0, sizeof li);
  uint32_t len = sizeof li;
  int ret = bpf_obj_get_info_by_fd(ArgInt(info, 0, "fd"), &li, &len);
  if (ret) ThrowErrno(env, "bpf_obj_get_info_by_fd", -ret);
  Napi::Object o = Napi::Object::New(env);
  o.Set("type", (double)li.type);
  o.Set("id", (double)li.id);
  o.Set("progId", (double)li.prog_id);
  return o;
}

// progTestRun(fd, data|null, dataSizeOut, ctxIn|null, ctxSizeOut, repeat, flags, cpu)
static Napi::Value JS_ProgTestRun(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0, "fd");
  auto data = std::make_shared<std::vector<uint8_t>>();
  auto ctx = std::make_shared<std::vector<uint8_t>>();
  if (info[1].IsBuffer()) {
    auto b = info[1].As<Napi::Buffer<uint8_t>>();
    data->assign(b.Data(), b.Data() + b.Length());
  }
  uint32_t dataOut = ArgU32(info, 2, "dataSizeOut");
  if (info[3].IsBuffer()) {
    auto b = info[3].As<Napi::Buffer<uint8_t>>();
    ctx->assign(b.Data(), b.Data() + b.Length());
  }
  uint32_t ctxOut = ArgU32(info, 4, "ctxSizeOut");
  uint32_t repeat = ArgU32(info, 5, "repeat");
  uint32_t flags = ArgU32(info, 6, "flags");
  uint32_t cpu = info.Length() > 7 && info[7].IsNumber() ? info[7].As<Napi::Number>().Uint32Value() : 0;
  struct Out {
    std::vector<uint8_t> data, ctx;
    uint32_t retval = 0, duration = 0, dataLen = 0, ctxLen = 0;
  };
  auto out = std::make_shared<Out>();
  return PromiseWorker::Run(
      info.Env(),
      [=](CallError& e) {
        out->data.resize(dataOut);
        out->ctx.resize(ctxOut);
        LIBBPF_OPTS(bpf_test_run_opts, opts);
        if (!data->empty()) {
          opts.data_in = data->data();
          opts.data_size_in = data->size();
        }
        if (dataOut) {
          opts.data_out = out->data.data();
          opts.data_size_out = dataOut;
        }
        if (!ctx->empty()) {
          opts.ctx_in = ctx->data();
          opts.ctx_size_in = ctx->size();
        }
        if (ctxOut) {
          opts.ctx_out = out->ctx.data();
          opts.ctx_size_out = ctxOut;
        }
        opts.repeat = repeat;
        opts.flags = flags;
        opts.cpu = cpu;
        int ret = bpf_prog_test_run_opts(fd, &opts);
        if (ret) {
          e.err = -ret;
          e.call = "bpf_prog_test_run_opts";
          if (e.err == ENOSPC) e.detail = "dataSizeOut too small for the output packet";
          return;
        }
        out->retval = opts.retval;
        out->duration = opts.duration;
        out->dataLen = opts.data_size_out;
        out->ctxLen = opts.ctx_size_out;
      },
      [out, dataOut, ctxOut](Napi::Env env) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env);
        o.Set("retval", (double)out->retval);
        o.Set("durationNs", (double)out->duration);
        o.Set("data", Napi::Buffer<uint8_t>::Copy(env, out->data.data(), dataOut ? out->dataLen : 0));
        o.Set("ctx", Napi::Buffer<uint8_t>::Copy(env, out->ctx.data(), ctxOut ? out->ctxLen : 0));
        return o;
      });
}

// tcAttach(ifindex, ingress, progFd, priority, handle, replace) -> Promise<{handle, priority}>
static Napi::Value JS_TcAttach(const Napi::CallbackInfo& info) {
  int ifindex = ArgInt(info, 0, "ifindex");
  bool ingress = info[1].ToBoolean().Value();
  int progFd = ArgInt(info, 2, "progFd");
  uint32_t priority = ArgU32(info, 3, "priority");
  uint32_t handle = ArgU32(info, 4, "handle");
  bool replace = info[5].ToBoolean().Value();
  auto res = std::make_shared<std::pair<uint32_t, uint32_t>>(0, 0);
  return PromiseWorker::Run(
      info.Env(),
      [=](CallError& e) {
        LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex,
                    .attach_point = ingress ? BPF_TC_INGRESS : BPF_TC_EGRESS);
        int ret = bpf_tc_hook_create(&hook);
        if (ret && ret != -EEXIST) {
          e.err = -ret;
          e.call = "bpf_tc_hook_create";
          e.detail = "clsact on ifindex " + std::to_string(ifindex);
          return;
        }
        LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = progFd,
                    .flags = replace ? (uint32_t)BPF_TC_F_REPLACE : 0u, .handle = handle,
                    .priority = priority);
        ret = bpf_tc_attach(&hook, &opts);
        if (ret) {
          e.err = -ret;
          e.call = "bpf_tc_attach";
          e.detail = std::string(ingress ? "ingress" : "egress") + " of ifindex " + std::to_string(ifindex) +
                     (e.err == EEXIST ? ": a filter with this handle/priority exists (pass replace)" : "");
          return;
        }
        res->first = opts.handle;
        res->second = opts.priority;
      },
      [res](Napi::Env env) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env);
        o.Set("handle", (double)res->first);
        o.Set("priority", (double)res->second);
        return o;
      });
}

// tcDetach(ifindex, ingress, priority, handle) -> Promise<boolean> (false when already gone)
static Napi::Value JS_TcDetach(const Napi::CallbackInfo& info) {
  int ifindex = ArgInt(info, 0, "ifindex");
  bool ingress = info[1].ToBoolean().Value();
  uint32_t priority = ArgU32(info, 2, "priority");
  uint32_t handle = ArgU32(info, 3, "handle");
  auto gone = std::make_shared<bool>(false);
  return PromiseWorker::Run(
      info.Env(),
      [=](CallError& e) {
        LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex,
                    .attach_point = ingress ? BPF_TC_INGRESS : BPF_TC_EGRESS);
        LIBBPF_OPTS(bpf_tc_opts, opts, .handle = handle, .priority = priority);
        int ret = bpf_tc_detach(&hook, &opts);
        if (ret == -ENOENT || ret == -ENODEV || ret == -EINVAL) {
          *gone = true;
          return;
        }
        if (ret) {
          e.err = -ret;
          e.call = "bpf_tc_detach";
          e.detail = "ifindex " + std::to_string(ifindex);
        }
      },
      [gone](Napi::Env env) -> Napi::Value { return Napi::Boolean::New(env, !*gone); });
}

static Napi::Value JS_TcDetachSync(const Napi::CallbackInfo& info) {
  int ifindex = ArgInt(info, 0, "ifindex");
  bool ingress = info[1].ToBoolean().Value();
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex,
              .attach_point = ingress ? BPF_TC_INGRESS : BPF_TC_EGRESS);
  LIBBPF_OPTS(bpf_tc_opts, opts, .handle = ArgU32(info, 3, "handle"), .priority = ArgU32(info, 2, "priority"));
  int ret = bpf_tc_detach(&hook, &opts);
  if (ret == -ENOENT || ret == -ENODEV || ret == -EINVAL) return Napi::Boolean::New(info.Env(), false);
  if (ret) ThrowErrno(info.Env(), "bpf_tc_detach", -ret, "ifindex " + std::to_string(ifindex));
  return Napi::Boolean::New(info.Env(), true);
}

// tcHookDestroy(ifindex) -> removes the clsact qdisc (both directions)
static Napi::Value JS_TcHookDestroy(const Napi::CallbackInfo& info) {
  int ifindex = ArgInt(info, 0, "ifindex");
  LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex,
              .attach_point = (enum bpf_tc_attach_point)(BPF_TC_INGRESS | BPF_TC_EGRESS));
  int ret = bpf_tc_hook_destroy(&hook);
  if (ret && ret != -ENOENT && ret != -EINVAL) ThrowErrno(info.Env(), "bpf_tc_hook_destroy", -ret);
  return info.Env().Undefined();
}

// linkCreate(progFd, targetFd, attachType, flags) -> Promise<linkFd>
static Napi::Value JS_LinkCreate(const Napi::CallbackInfo& info) {
  int progFd = ArgInt(info, 0, "progFd");
  int target = ArgInt(info, 1, "targetFd");
  uint32_t type = ArgU32(info, 2, "attachType");
  uint32_t flags = ArgU32(info, 3, "flags");
  auto fd = std::make_shared<int>(-1);
  return PromiseWorker::Run(
      info.Env(),
      [=](CallError& e) {
        LIBBPF_OPTS(bpf_link_create_opts, opts, .flags = flags);
        int ret = bpf_link_create(progFd, target, (enum bpf_attach_type)type, &opts);
        if (ret < 0) {
          e.err = -ret;
          e.call = "bpf_link_create";
          e.detail = "attach type " + std::to_string(type);
          return;
        }
        *fd = ret;
      },
      [fd](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, *fd); });
}

static Napi::Value JS_LinkDetach(const Napi::CallbackInfo& info) {
  int ret = bpf_link_detach(ArgInt(info, 0, "fd"));
  if (ret && ret != -ENOLINK && ret != -EINVAL) ThrowErrno(info.Env(), "bpf_link_detach", -ret);
  return info.Env().Undefined();
}

// linkUpdate(linkFd, newProgFd, oldProgFd) -> replaces the link's program atomically
// (with oldProgFd >= 0: only if that program is still the one attached, BPF_F_REPLACE).
static Napi::Value JS_LinkUpdate(const Napi::CallbackInfo& info) {
  int link = ArgInt(info, 0, "linkFd");
  int prog = ArgInt(info, 1, "progFd");
  int old = ArgInt(info, 2, "oldProgFd");
  LIBBPF_OPTS(bpf_link_update_opts, opts);
  if (old >= 0) {
    opts.old_prog_fd = old;
    opts.flags = BPF_F_REPLACE;
  }
  int ret = bpf_link_update(link, prog, &opts);
  if (ret) ThrowErrno(info.Env(), "bpf_link_update", -ret);
  return info.Env().Undefined();
}

static Napi::Value JS_ProgAttach(const Napi::CallbackInfo& info) {
  int ret = bpf_prog_attach(ArgInt(info, 0, "progFd"), ArgInt(info, 1, "targetFd"),
                            (enum bpf_attach_type)ArgU32(info, 2, "attachType"), ArgU32(info, 3, "flags"));
  if (ret) ThrowErrno(info.Env(), "bpf_prog_attach", -ret);
  return info.Env().Undefined();
}

static Napi::Value JS_ProgDetach(const Napi::CallbackInfo& info) {
  int ret = bpf_prog_detach2(ArgInt(info, 0, "progFd"), ArgInt(info, 1, "targetFd"),
                             (enum bpf_attach_type)ArgU32(info, 2, "attachType"));
  if (ret && ret != -ENOENT) ThrowErrno(info.Env(), "bpf_prog_detach2", -ret);
  return Napi::Boolean::New(info.Env(), ret == 0);
}

// xdpAttach(ifindex, progFd, flags, oldProgFd) -> Promise
static Napi::Value JS_XdpAttach(const Napi::CallbackInfo& info) {
  int ifindex = ArgInt(info, 0, "ifindex");
  int progFd = ArgInt(info, 1, "progFd");
  uint32_t flags = ArgU32(info, 2, "flags");
  int old = ArgInt(info, 3, "oldProgFd");
  return PromiseWorker::Run(
      info.Env(),
      [=](CallError& e) {
        LIBBPF_OPTS(bpf_xdp_attach_opts, opts, .old_prog_fd = old);
        int ret = bpf_xdp_attach(ifindex, progFd, flags, old >= 0 ? &opts : nullptr);
        if (ret) {
          e.err = -ret;
          e.call = "bpf_xdp_attach";
          e.detail = "ifindex " + std::to_string(ifindex) +
                     (e.err == EBUSY || e.err == EEXIST ? ": a program is already attached (pass replace)" : "");
        }
      },
      nullptr);
}

// xdpDetach(ifindex, flags, expectedProgFd) -> Promise
static Napi::Value JS_XdpDetach(const Napi::CallbackInfo& info) {
  int ifindex = ArgInt(info, 0, "ifindex");
  uint32_t flags = ArgU32(info, 1, "flags");
  int old = ArgInt(info, 2, "oldProgFd");
  return PromiseWorker::Run(
      info.Env(),
      [=](CallError& e) {
        LIBBPF_OPTS(bpf_xdp_attach_opts, opts, .old_prog_fd = old);
        int ret = bpf_xdp_detach(ifindex, flags, old >= 0 ? &opts : nullptr);
        if (ret && ret != -ENODEV && ret != -EEXIST) {
          e.err = -ret;
          e.call = "bpf_xdp_detach";
          e.detail = "ifindex " + std::to_string(ifindex);
        }
      },
      nullptr);
}

static Napi::Value JS_XdpDetachSync(const Napi::CallbackInfo& info) {
  int ifindex = ArgInt(info, 0, "ifindex");
  uint32_t flags = ArgU32(info, 1, "flags");
  int old = ArgInt(info, 2, "oldProgFd");
  LIBBPF_OPTS(bpf_xdp_attach_opts, opts, .old_prog_fd = old);
  int ret = bpf_xdp_detach(ifindex, flags, old >= 0 ? &opts : nullptr);
  if (ret && ret != -ENODEV && ret != -EEXIST)
    ThrowErrno(info.Env(), "bpf_xdp_detach", -ret, "ifindex " + std::to_string(ifindex));
  return info.Env().Undefined();
}

static Napi::Value JS_DupFd(const Napi::CallbackInfo& info) {
  int fd = fcntl(ArgInt(info, 0, "fd"), F_DUPFD_CLOEXEC, 3);
  if (fd < 0) ThrowErrno(info.Env(), "fcntl(F_DUPFD_CLOEXEC)", errno);
  return Napi::Number::New(info.Env(), fd);
}

static Napi::Value JS_XdpQueryId(const Napi::CallbackInfo& info) {
  uint32_t id = 0;
  int ret = bpf_xdp_query_id(ArgInt(info, 0, "ifindex"), ArgU32(info, 1, "flags"), &id);
  if (ret) ThrowErrno(info.Env(), "bpf_xdp_query_id", -ret);
  return Napi::Number::New(info.Env(), id);
}

static Napi::Value JS_OpenDir(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0, "path");
  int fd = open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) ThrowErrno(info.Env(), "open", errno, path);
  return Napi::Number::New(info.Env(), fd);
}

static Napi::Value JS_IfNameToIndex(const Napi::CallbackInfo& info) {
  std::string name = ArgString(info, 0, "ifname");
  unsigned idx = if_nametoindex(name.c_str());
  if (idx == 0) ThrowErrno(info.Env(), "if_nametoindex", errno, name);
  return Napi::Number::New(info.Env(), idx);
}

void InitPrograms(Napi::Env env, Napi::Object exports) {
  exports.Set("progInfo", Napi::Function::New(env, JS_ProgInfo, "progInfo"));
  exports.Set("linkInfo", Napi::Function::New(env, JS_LinkInfo, "linkInfo"));
  exports.Set("progTestRun", Napi::Function::New(env, JS_ProgTestRun, "progTestRun"));
  exports.Set("tcAttach", Napi::Function::New(env, JS_TcAttach, "tcAttach"));
  exports.Set("tcDetach", Napi::Function::New(env, JS_TcDetach, "tcDetach"));
  exports.Set("tcDetachSync", Napi::Function::New(env, JS_TcDetachSync, "tcDetachSync"));
  exports.Set("xdpDetachSync", Napi::Function::New(env, JS_XdpDetachSync, "xdpDetachSync"));
  exports.Set("dupFd", Napi::Function::New(env, JS_DupFd, "dupFd"));
  exports.Set("tcHookDestroy", Napi::Function::New(env, JS_TcHookDestroy, "tcHookDestroy"));
  exports.Set("linkCreate", Napi::Function::New(env, JS_LinkCreate, "linkCreate"));
  exports.Set("linkDetach", Napi::Function::New(env, JS_LinkDetach, "linkDetach"));
  exports.Set("linkUpdate", Napi::Function::New(env, JS_LinkUpdate, "linkUpdate"));
  exports.Set("progAttach", Napi::Function::New(env, JS_ProgAttach, "progAttach"));
  exports.Set("progDetach", Napi::Function::New(env, JS_ProgDetach, "progDetach"));
  exports.Set("xdpAttach", Napi::Function::New(env, JS_XdpAttach, "xdpAttach"));
  exports.Set("xdpDetach", Napi::Function::New(env, JS_XdpDetach, "xdpDetach"));
  exports.Set("xdpQueryId", Napi::Function::New(env, JS_XdpQueryId, "xdpQueryId"));
  exports.Set("openDir", Napi::Function::New(env, JS_OpenDir, "openDir"));
  exports.Set("ifNameToIndex", Napi::Function::New(env, JS_IfNameToIndex, "ifNameToIndex"));
  Napi::Object c = Napi::Object::New(env);
#define ATTACH(n) c.Set(#n, (double)n)
  ATTACH(BPF_CGROUP_INET_INGRESS);
  ATTACH(BPF_CGROUP_INET_EGRESS);
  ATTACH(BPF_CGROUP_INET_SOCK_CREATE);
  ATTACH(BPF_CGROUP_INET4_CONNECT);
  ATTACH(BPF_CGROUP_INET6_CONNECT);
  ATTACH(BPF_CGROUP_UDP4_SENDMSG);
  ATTACH(BPF_CGROUP_UDP6_SENDMSG);
  ATTACH(BPF_CGROUP_UDP4_RECVMSG);
  ATTACH(BPF_CGROUP_UDP6_RECVMSG);
  ATTACH(BPF_CGROUP_INET4_GETPEERNAME);
  ATTACH(BPF_CGROUP_INET6_GETPEERNAME);
  ATTACH(BPF_CGROUP_INET4_BIND);
  ATTACH(BPF_CGROUP_INET6_BIND);
  ATTACH(BPF_CGROUP_SOCK_OPS);
  ATTACH(BPF_XDP);
  ATTACH(BPF_F_ALLOW_OVERRIDE);
  ATTACH(BPF_F_ALLOW_MULTI);
  ATTACH(BPF_F_REPLACE);
  ATTACH(XDP_FLAGS_UPDATE_IF_NOEXIST);
  ATTACH(XDP_FLAGS_SKB_MODE);
  ATTACH(XDP_FLAGS_DRV_MODE);
  ATTACH(XDP_FLAGS_HW_MODE);
  ATTACH(XDP_FLAGS_REPLACE);
#undef ATTACH
  exports.Set("constants", c);
}

}  // namespace membrane
