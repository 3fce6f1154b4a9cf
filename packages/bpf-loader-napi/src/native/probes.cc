// SPDX-License-Identifier: Apache-2.0
// Kernel feature probes (libbpf_probe_*) and a statfs check for bpffs/cgroup2 mounts.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "common.h"

#ifndef BPF_FS_MAGIC
#define BPF_FS_MAGIC 0xcafe4a11
#endif
#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

namespace membrane {

// probe(kind, a, b): kind 'prog' (type), 'map' (type), 'helper' (progType, helperId).
// Returns 1 supported, 0 unsupported, or throws.
static Napi::Value JS_Probe(const Napi::CallbackInfo& info) {
  std::string kind = ArgString(info, 0, "kind");
  uint32_t a = ArgU32(info, 1, "a");
  LogCapture cap;
  int ret;
  if (kind == "prog") ret = libbpf_probe_bpf_prog_type((enum bpf_prog_type)a, nullptr);
  else if (kind == "map") ret = libbpf_probe_bpf_map_type((enum bpf_map_type)a, nullptr);
  else if (kind == "helper")
    ret = libbpf_probe_bpf_helper((enum bpf_prog_type)a, (enum bpf_func_id)ArgU32(info, 2, "helper"), nullptr);
  else throw Napi::TypeError::New(info.Env(), "unknown probe kind " + kind);
  if (ret < 0) ThrowErrno(info.Env(), "libbpf_probe", -ret, kind + " " + std::to_string(a));
  return Napi::Boolean::New(info.Env(), ret == 1);
}

// probeLinkAttach(progType, expectedAttachType, attachType, targetFd) -> errno of a
// bpf_link_create with a trivial program (0 on success; the link is closed at once).
static Napi::Value JS_ProbeLinkAttach(const Napi::CallbackInfo& info) {
  uint32_t progType = ArgU32(info, 0, "progType");
  uint32_t expected = ArgU32(info, 1, "expectedAttachType");
  uint32_t attachType = ArgU32(info, 2, "attachType");
  int target = ArgInt(info, 3, "targetFd");
  struct bpf_insn insns[2] = {};
  insns[0].code = BPF_ALU64 | BPF_MOV | BPF_K;  // r0 = 0
  insns[0].dst_reg = BPF_REG_0;
  insns[1].code = BPF_JMP | BPF_EXIT;
  LIBBPF_OPTS(bpf_prog_load_opts, opts, .expected_attach_type = (enum bpf_attach_type)expected);
  LogCapture cap;
  int prog = bpf_prog_load((enum bpf_prog_type)progType, nullptr, "GPL", insns, 2, &opts);
  if (prog < 0) ThrowErrno(info.Env(), "bpf_prog_load", -prog, "probe program");
  LIBBPF_OPTS(bpf_link_create_opts, lopts);
  int link = bpf_link_create(prog, target, (enum bpf_attach_type)attachType, &lopts);
  close(prog);
  if (link >= 0) {
    close(link);
    return Napi::Number::New(info.Env(), 0);
  }
  return Napi::Number::New(info.Env(), -link);
}

// fsType(path) -> 'bpf' | 'cgroup2' | 'other' | null (missing)
static Napi::Value JS_FsType(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0, "path");
  struct statfs st;
  if (statfs(path.c_str(), &st) != 0) return info.Env().Null();
  if ((unsigned long)st.f_type == BPF_FS_MAGIC) return Napi::String::New(info.Env(), "bpf");
  if ((unsigned long)st.f_type == CGROUP2_SUPER_MAGIC) return Napi::String::New(info.Env(), "cgroup2");
  return Napi::String::New(info.Env(), "other");
}

static Napi::Value JS_KernelRelease(const Napi::CallbackInfo& info) {
  struct utsname u;
  uname(&u);
  return Napi::String::New(info.Env(), u.release);
}

void InitProbes(Napi::Env env, Napi::Object exports) {
  exports.Set("probe", Napi::Function::New(env, JS_Probe, "probe"));
  exports.Set("probeLinkAttach", Napi::Function::New(env, JS_ProbeLinkAttach, "probeLinkAttach"));
  exports.Set("fsType", Napi::Function::New(env, JS_FsType, "fsType"));
  exports.Set("kernelRelease", Napi::Function::New(env, JS_KernelRelease, "kernelRelease"));
}

}  // namespace membrane
