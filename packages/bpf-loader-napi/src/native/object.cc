// SPDX-License-Identifier: Apache-2.0
// NativeObject: one libbpf bpf_object (open from a path or memory, globals, pin checks, load).
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <regex>

#include "common.h"

namespace membrane {

// A BTF type as a plain layout tree: { name, kind, size, fields | elem+len | signed }.
// Typedefs keep their name and show what they resolve to; const/volatile are skipped.
Napi::Value BtfLayout(Napi::Env env, const btf* b, uint32_t id, int depth) {
  Napi::Object o = Napi::Object::New(env);
  const btf_type* t = btf__type_by_id(b, id);
  std::string alias;
  while (t && (btf_is_mod(t) || btf_is_typedef(t))) {
    if (btf_is_typedef(t) && alias.empty()) alias = btf__name_by_offset(b, t->name_off);
    id = t->type;
    t = btf__type_by_id(b, id);
  }
  if (!t) {
    o.Set("kind", "void");
    o.Set("size", 0.0);
    return o;
  }
  const char* name = btf__name_by_offset(b, t->name_off);
  o.Set("name", alias.empty() ? std::string(name ? name : "") : alias);
  long long size = btf__resolve_size(b, id);
  o.Set("size", (double)(size < 0 ? 0 : size));
  if (btf_is_int(t)) {
    o.Set("kind", "int");
    o.Set("signed", (btf_int_encoding(t) & BTF_INT_SIGNED) != 0);
    o.Set("bool", (btf_int_encoding(t) & BTF_INT_BOOL) != 0);
    o.Set("bits", (double)btf_int_bits(t));
  } else if (btf_is_array(t)) {
    const struct btf_array* a = btf_array(t);
    o.Set("kind", "array");
    o.Set("len", (double)a->nelems);
    if (depth < 8) o.Set("elem", BtfLayout(env, b, a->type, depth + 1));
  } else if (btf_is_struct(t) || btf_is_union(t)) {
    o.Set("kind", btf_is_struct(t) ? "struct" : "union");
    Napi::Array fields = Napi::Array::New(env);
    const btf_member* m = btf_members(t);
    for (uint16_t i = 0; i < btf_vlen(t); i++, m++) {
      Napi::Object f = Napi::Object::New(env);
      const char* fname = btf__name_by_offset(b, m->name_off);
      uint32_t bitOff = btf_member_bit_offset(t, i);
      uint32_t bitSize = btf_member_bitfield_size(t, i);
      f.Set("name", fname ? fname : "");
      f.Set("offset", (double)(bitOff / 8));
      if (bitSize) {
        f.Set("bitOffset", (double)bitOff);
        f.Set("bitSize", (double)bitSize);
      }
      if (depth < 8) f.Set("type", BtfLayout(env, b, m->type, depth + 1));
      fields.Set(i, f);
    }
    o.Set("fields", fields);
  } else if (btf_is_enum(t) || btf_is_enum64(t)) {
    o.Set("kind", "enum");
  } else if (btf_is_ptr(t)) {
    o.Set("kind", "ptr");
  } else if (btf_is_float(t)) {
    o.Set("kind", "float");
  } else {
    o.Set("kind", "other");
  }
  return o;
}


class NativeObject : public Napi::ObjectWrap<NativeObject> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeObject",
                       {InstanceMethod("maps", &NativeObject::JS_Maps),
                        InstanceMethod("programs", &NativeObject::JS_Programs),
                        InstanceMethod("globals", &NativeObject::JS_Globals),
                        InstanceMethod("setGlobal", &NativeObject::JS_SetGlobal),
                        InstanceMethod("setAutoload", &NativeObject::JS_SetAutoload),
                        InstanceMethod("setMaxEntries", &NativeObject::JS_SetMaxEntries),
                        InstanceMethod("setPinPath", &NativeObject::JS_SetPinPath),
                        InstanceMethod("mapLayout", &NativeObject::JS_MapLayout),
                        InstanceMethod("typeLayout", &NativeObject::JS_TypeLayout),
                        InstanceMethod("load", &NativeObject::JS_Load),
                        InstanceMethod("close", &NativeObject::JS_Close)});
  }

  NativeObject(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeObject>(info) {
    Napi::Env env = info.Env();
    if (info.Length() > 1 && info[1].IsString()) pinRoot_ = info[1].As<Napi::String>().Utf8Value();
    if (info.Length() > 2 && info[2].IsString()) name_ = info[2].As<Napi::String>().Utf8Value();
    LIBBPF_OPTS(bpf_object_open_opts, opts);
    if (!pinRoot_.empty()) opts.pin_root_path = pinRoot_.c_str();
    if (!name_.empty()) opts.object_name = name_.c_str();
    LogCapture cap;
    if (info[0].IsBuffer()) {
      auto buf = info[0].As<Napi::Buffer<uint8_t>>();
      mem_.assign(buf.Data(), buf.Data() + buf.Length());
      obj_ = bpf_object__open_mem(mem_.data(), mem_.size(), &opts);
      source_ = "<buffer>";
    } else {
      source_ = ArgString(info, 0, "path");
      obj_ = bpf_object__open_file(source_.c_str(), &opts);
    }
    int err = obj_ ? 0 : errno;
    if (!obj_) {
      CallError e;
      e.err = err ? err : EINVAL;
      e.call = info[0].IsBuffer() ? "bpf_object__open_mem" : "bpf_object__open_file";
      e.detail = source_;
      e.libbpfLog = cap.Take();
      throw MakeError(env, e);
    }
  }

  ~NativeObject() override { Close(); }

 private:
  void Close() {
    if (obj_) bpf_object__close(obj_);
    obj_ = nullptr;
    mem_.clear();
  }

  bpf_object* Need(Napi::Env env) {
    if (!obj_) throw Napi::Error::New(env, "the BPF object is closed");
    return obj_;
  }

  Napi::Value JS_Maps(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    bpf_object* obj = Need(env);
    Napi::Array out = Napi::Array::New(env);
    bpf_map* map;
    uint32_t i = 0;
    bpf_object__for_each_map(map, obj) {
      Napi::Object m = Napi::Object::New(env);
      m.Set("name", bpf_map__name(map));
      m.Set("type", (double)bpf_map__type(map));
      m.Set("keySize", (double)bpf_map__key_size(map));
      m.Set("valueSize", (double)bpf_map__value_size(map));
      m.Set("maxEntries", (double)bpf_map__max_entries(map));
      m.Set("flags", (double)bpf_map__map_flags(map));
      m.Set("internal", bpf_map__is_internal(map));
      m.Set("fd", (double)bpf_map__fd(map));
      const char* pin = bpf_map__pin_path(map);
      if (pin) m.Set("pinPath", pin);
      m.Set("pinned", bpf_map__is_pinned(map));
      out.Set(i++, m);
    }
    return out;
  }

  Napi::Value JS_Programs(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    bpf_object* obj = Need(env);
    Napi::Array out = Napi::Array::New(env);
    bpf_program* prog;
    uint32_t i = 0;
    bpf_object__for_each_program(prog, obj) {
      Napi::Object p = Napi::Object::New(env);
      p.Set("name", bpf_program__name(prog));
      p.Set("section", bpf_program__section_name(prog));
      p.Set("type", (double)bpf_program__type(prog));
      p.Set("expectedAttachType", (double)bpf_program__expected_attach_type(prog));
      p.Set("fd", (double)bpf_program__fd(prog));
      p.Set("autoload", bpf_program__autoload(prog));
      out.Set(i++, p);
    }
    return out;
  }

  struct VarLoc {
    bpf_map* map = nullptr;
    uint32_t offset = 0;
    uint32_t size = 0;
  };

  // Finds a global variable in the BTF DATASEC of .rodata/.data/.bss (the internal maps).
  bool FindVar(const std::string& name, VarLoc* loc, std::vector<std::string>* all) {
    const btf* b = bpf_object__btf(obj_);
    if (!b) return false;
    bpf_map* map;
    bpf_object__for_each_map(map, obj_) {
      if (!bpf_map__is_internal(map)) continue;
      uint32_t tid = bpf_map__btf_value_type_id(map);
      if (!tid) continue;
      const btf_type* t = btf__type_by_id(b, tid);
      if (!t || !btf_is_datasec(t)) continue;
      const btf_var_secinfo* vs = btf_var_secinfos(t);
      for (uint16_t i = 0; i < btf_vlen(t); i++, vs++) {
        const btf_type* var = btf__type_by_id(b, vs->type);
        if (!var) continue;
        const char* vname = btf__name_by_offset(b, var->name_off);
        if (!vname) continue;
        if (all) all->push_back(vname);
        if (name == vname && loc) {
          loc->map = map;
          loc->offset = vs->offset;
          loc->size = vs->size;
          return true;
        }
      }
    }
    return false;
  }

  Napi::Value JS_Globals(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Need(env);
    std::vector<std::string> names;
    FindVar("\x01", nullptr, &names);
    Napi::Array out = Napi::Array::New(env, names.size());
    for (size_t i = 0; i < names.size(); i++) {
      VarLoc loc;
      FindVar(names[i], &loc, nullptr);
      Napi::Object o = Napi::Object::New(env);
      o.Set("name", names[i]);
      o.Set("size", (double)loc.size);
      o.Set("offset", (double)loc.offset);
      o.Set("section", loc.map ? bpf_map__name(loc.map) : "");
      out.Set(i, o);
    }
    return out;
  }

  Napi::Value JS_SetGlobal(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Need(env);
    std::string name = ArgString(info, 0, "name");
    auto buf = ArgBuffer(info, 1, "value");
    VarLoc loc;
    if (!FindVar(name, &loc, nullptr)) ThrowErrno(env, "setGlobal", ENOENT, "no global variable named " + name);
    if (buf.Length() != loc.size)
      ThrowErrno(env, "setGlobal", EINVAL,
                 "global " + name + " is " + std::to_string(loc.size) + " bytes, got " +
                     std::to_string(buf.Length()));
    size_t size = 0;
    const void* init = bpf_map__initial_value(loc.map, &size);
    if (!init || loc.offset + loc.size > size) ThrowErrno(env, "bpf_map__initial_value", EINVAL, name);
    std::vector<uint8_t> copy((const uint8_t*)init, (const uint8_t*)init + size);
    memcpy(copy.data() + loc.offset, buf.Data(), loc.size);
    int err = bpf_map__set_initial_value(loc.map, copy.data(), copy.size());
    if (err) ThrowErrno(env, "bpf_map__set_initial_value", -err, name);
    return env.Undefined();
  }

  Napi::Value JS_SetAutoload(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    bpf_object* obj = Need(env);
    std::string name = ArgString(info, 0, "program");
    bpf_program* prog = bpf_object__find_program_by_name(obj, name.c_str());
    if (!prog) ThrowErrno(env, "bpf_object__find_program_by_name", ENOENT, name);
    int err = bpf_program__set_autoload(prog, info[1].ToBoolean().Value());
    if (err) ThrowErrno(env, "bpf_program__set_autoload", -err, name);
    return env.Undefined();
  }

  Napi::Value JS_SetMaxEntries(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    bpf_object* obj = Need(env);
    std::string name = ArgString(info, 0, "map");
    bpf_map* map = bpf_object__find_map_by_name(obj, name.c_str());
    if (!map) ThrowErrno(env, "bpf_object__find_map_by_name", ENOENT, name);
    int err = bpf_map__set_max_entries(map, ArgU32(info, 1, "maxEntries"));
    if (err) ThrowErrno(env, "bpf_map__set_max_entries", -err, name);
    return env.Undefined();
  }

  Napi::Value JS_SetPinPath(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    bpf_object* obj = Need(env);
    std::string name = ArgString(info, 0, "map");
    bpf_map* map = bpf_object__find_map_by_name(obj, name.c_str());
    if (!map) ThrowErrno(env, "bpf_object__find_map_by_name", ENOENT, name);
    std::string path = info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "";
    int err = bpf_map__set_pin_path(map, path.empty() ? nullptr : path.c_str());
    if (err) ThrowErrno(env, "bpf_map__set_pin_path", -err, name);
    return env.Undefined();
  }

  // mapLayout(name) -> { key, value } from the map's BTF, or null without BTF.
  Napi::Value JS_MapLayout(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    bpf_object* obj = Need(env);
    std::string name = ArgString(info, 0, "map");
    bpf_map* map = bpf_object__find_map_by_name(obj, name.c_str());
    if (!map) ThrowErrno(env, "bpf_object__find_map_by_name", ENOENT, name);
    const btf* b = bpf_object__btf(obj);
    uint32_t k = bpf_map__btf_key_type_id(map), v = bpf_map__btf_value_type_id(map);
    if (!b || (!k && !v)) return env.Null();
    Napi::Object o = Napi::Object::New(env);
    o.Set("key", k ? BtfLayout(env, b, k, 0) : env.Null());
    o.Set("value", v ? BtfLayout(env, b, v, 0) : env.Null());
    return o;
  }

  // typeLayout(name) -> the struct/union/typedef/enum called `name` in the object's BTF.
  Napi::Value JS_TypeLayout(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    bpf_object* obj = Need(env);
    std::string name = ArgString(info, 0, "type");
    const btf* b = bpf_object__btf(obj);
    if (!b) return env.Null();
    for (uint32_t kind : {BTF_KIND_STRUCT, BTF_KIND_UNION, BTF_KIND_TYPEDEF, BTF_KIND_ENUM}) {
      int id = btf__find_by_name_kind(b, name.c_str(), kind);
      if (id > 0) return BtfLayout(env, b, id, 0);
    }
    return env.Null();
  }

  // An existing pin must match the map we would create; libbpf would only say "parameter
  // mismatch", so compare field by field and name the difference.
  static bool CheckPins(bpf_object* obj, CallError& e) {
    bpf_map* map;
    bpf_object__for_each_map(map, obj) {
      const char* path = bpf_map__pin_path(map);
      if (!path) continue;
      struct stat st;
      if (stat(path, &st) != 0) continue;
      int fd = bpf_obj_get(path);
      if (fd < 0) {
        e.err = errno;
        e.call = "bpf_obj_get";
        e.detail = std::string("existing pin of map '") + bpf_map__name(map) + "' at " + path;
        return false;
      }
      bpf_map_info mi;
      memset(&mi, 0, sizeof mi);
      uint32_t len = sizeof mi;
      int err = bpf_obj_get_info_by_fd(fd, &mi, &len);
      close(fd);
      if (err) {
        e.err = errno;
        e.call = "bpf_obj_get_info_by_fd";
        e.detail = std::string("existing pin at ") + path + " is not a map";
        return false;
      }
      std::string diff;
      auto cmp = [&](const char* field, uint64_t pinned, uint64_t want) {
        if (pinned != want) {
          if (!diff.empty()) diff += ", ";
          diff += std::string(field) + " pinned " + std::to_string(pinned) + " != object " +
                  std::to_string(want);
        }
      };
      cmp("type", mi.type, bpf_map__type(map));
      cmp("key_size", mi.key_size, bpf_map__key_size(map));
      cmp("value_size", mi.value_size, bpf_map__value_size(map));
      cmp("max_entries", mi.max_entries, bpf_map__max_entries(map));
      cmp("map_flags", mi.map_flags, bpf_map__map_flags(map));
      if (!diff.empty()) {
        e.err = EEXIST;
        e.code = "PIN_MISMATCH";
        e.call = "bpf_object__load";
        e.detail = std::string("map '") + bpf_map__name(map) + "' pinned at " + path +
                   " is incompatible: " + diff;
        return false;
      }
    }
    return true;
  }

  static std::vector<std::string> SplitLines(const char* s) {
    std::vector<std::string> out;
    std::string cur;
    for (; *s; s++) {
      if (*s == '\n') {
        out.push_back(cur);
        cur.clear();
      } else {
        cur.push_back(*s);
      }
    }
    if (!cur.empty()) out.push_back(cur);
    return out;
  }

  Napi::Value JS_Load(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    bpf_object* obj = Need(env);
    uint32_t level = info.Length() > 0 && info[0].IsNumber() ? info[0].As<Napi::Number>().Uint32Value() : 0;
    size_t logSize = info.Length() > 1 && info[1].IsNumber() ? info[1].As<Napi::Number>().Uint32Value() : (1u << 20);
    // Per-program log buffers so a rejection can be attributed to its program.
    auto logs = std::make_shared<std::vector<std::pair<std::string, std::vector<char>>>>();
    bpf_program* prog;
    bpf_object__for_each_program(prog, obj) {
      logs->emplace_back(bpf_program__name(prog), std::vector<char>(logSize, 0));
    }
    size_t i = 0;
    bpf_object__for_each_program(prog, obj) {
      auto& buf = (*logs)[i++].second;
      bpf_program__set_log_buf(prog, buf.data(), buf.size());
      if (level) bpf_program__set_log_level(prog, level);
    }
    Napi::Reference<Napi::Object>* self = new Napi::Reference<Napi::Object>(Napi::Persistent(Value()));
    loading_ = true;
    return PromiseWorker::Run(
        env,
        [obj, logs](CallError& e) {
          if (!CheckPins(obj, e)) return;
          LogCapture cap;
          int err = bpf_object__load(obj);
          std::string printed = cap.Take();
          if (err) {
            e.err = -err;
            e.call = "bpf_object__load";
            e.libbpfLog = printed;
            std::smatch m;
            std::regex re("prog '([^']+)': failed to load");
            std::string failed;
            if (std::regex_search(printed, m, re)) failed = m[1];
            for (auto& [name, buf] : *logs) {
              if ((!failed.empty() && name == failed) || (failed.empty() && buf[0])) {
                if (buf[0] && e.err == ENOSPC) {
                  // Not a rejection: the log outgrew its buffer (the load fails for that alone).
                  e.program = name;
                  e.detail = "verifier log of program '" + name + "' exceeded logSize";
                } else if (buf[0]) {
                  e.verifier = true;
                  e.program = name;
                  e.log = SplitLines(buf.data());
                  e.detail = "program '" + name + "' rejected by the verifier";
                } else {
                  e.program = name;
                  e.detail = "program '" + name + "' failed to load";
                }
                break;
              }
            }
          }
        },
        [obj, logs, level](Napi::Env env) -> Napi::Value {
          Napi::Object out = Napi::Object::New(env);
          if (level) {
            for (auto& [name, buf] : *logs) {
              auto lines = SplitLines(buf.data());
              Napi::Array arr = Napi::Array::New(env, lines.size());
              for (size_t j = 0; j < lines.size(); j++) arr.Set(j, lines[j]);
              out.Set(name, arr);
            }
          }
          return out;
        },
        [this, obj, self]() {
          loading_ = false;
          // The log buffers die with the worker: detach them from libbpf.
          bpf_program* p;
          bpf_object__for_each_program(p, obj) bpf_program__set_log_buf(p, nullptr, 0);
          self->Unref();
          delete self;
        });
  }

  Napi::Value JS_Close(const Napi::CallbackInfo& info) {
    if (loading_) throw Napi::Error::New(info.Env(), "cannot close a BPF object while it is loading");
    Close();
    return info.Env().Undefined();
  }

  bpf_object* obj_ = nullptr;
  std::vector<uint8_t> mem_;
  std::string pinRoot_;
  std::string name_;
  std::string source_;
  bool loading_ = false;
};

void InitObject(Napi::Env env, Napi::Object exports) {
  exports.Set("NativeObject", NativeObject::Define(env));
}

}  // namespace membrane
