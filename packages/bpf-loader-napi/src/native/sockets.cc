// SPDX-License-Identifier: Apache-2.0
// Socket options Node has no API for: SO_MARK, SO_COOKIE, IP_TRANSPARENT (transparent proxy).
#include <netinet/in.h>
#include <sys/socket.h>

#include "common.h"

#ifndef SO_COOKIE
#define SO_COOKIE 57
#endif
#ifndef IP_TRANSPARENT
#define IP_TRANSPARENT 19
#endif
#ifndef IPV6_TRANSPARENT
#define IPV6_TRANSPARENT 75
#endif

namespace membrane {

static Napi::Value JS_SetSocketMark(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0, "fd");
  uint32_t mark = ArgU32(info, 1, "mark");
  if (setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof mark) != 0)
    ThrowErrno(info.Env(), "setsockopt(SO_MARK)", errno, "fd " + std::to_string(fd));
  return info.Env().Undefined();
}

static Napi::Value JS_GetSocketMark(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0, "fd");
  uint32_t mark = 0;
  socklen_t len = sizeof mark;
  if (getsockopt(fd, SOL_SOCKET, SO_MARK, &mark, &len) != 0)
    ThrowErrno(info.Env(), "getsockopt(SO_MARK)", errno, "fd " + std::to_string(fd));
  return Napi::Number::New(info.Env(), mark);
}

static Napi::Value JS_GetSocketCookie(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0, "fd");
  uint64_t cookie = 0;
  socklen_t len = sizeof cookie;
  if (getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len) != 0)
    ThrowErrno(info.Env(), "getsockopt(SO_COOKIE)", errno, "fd " + std::to_string(fd));
  return Napi::BigInt::New(info.Env(), cookie);
}

// setIpTransparent(fd, ipv6)
static Napi::Value JS_SetIpTransparent(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0, "fd");
  bool v6 = info.Length() > 1 && info[1].ToBoolean().Value();
  int one = 1;
  int ret = v6 ? setsockopt(fd, SOL_IPV6, IPV6_TRANSPARENT, &one, sizeof one)
               : setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, sizeof one);
  if (ret != 0)
    ThrowErrno(info.Env(), v6 ? "setsockopt(IPV6_TRANSPARENT)" : "setsockopt(IP_TRANSPARENT)", errno,
               "fd " + std::to_string(fd));
  return info.Env().Undefined();
}

// getIpTransparent(fd, ipv6) -> boolean
static Napi::Value JS_GetIpTransparent(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0, "fd");
  bool v6 = info.Length() > 1 && info[1].ToBoolean().Value();
  int on = 0;
  socklen_t len = sizeof on;
  int ret = v6 ? getsockopt(fd, SOL_IPV6, IPV6_TRANSPARENT, &on, &len)
               : getsockopt(fd, SOL_IP, IP_TRANSPARENT, &on, &len);
  if (ret != 0)
    ThrowErrno(info.Env(), v6 ? "getsockopt(IPV6_TRANSPARENT)" : "getsockopt(IP_TRANSPARENT)", errno,
               "fd " + std::to_string(fd));
  return Napi::Boolean::New(info.Env(), on != 0);
}

// socketDomain(fd) -> AF_INET/AF_INET6/...
static Napi::Value JS_SocketDomain(const Napi::CallbackInfo& info) {
  int fd = ArgInt(info, 0, "fd");
  int domain = 0;
  socklen_t len = sizeof domain;
  if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0)
    ThrowErrno(info.Env(), "getsockopt(SO_DOMAIN)", errno, "fd " + std::to_string(fd));
  return Napi::Number::New(info.Env(), domain);
}

void InitSockets(Napi::Env env, Napi::Object exports) {
  exports.Set("setSocketMark", Napi::Function::New(env, JS_SetSocketMark, "setSocketMark"));
  exports.Set("getSocketMark", Napi::Function::New(env, JS_GetSocketMark, "getSocketMark"));
  exports.Set("getSocketCookie", Napi::Function::New(env, JS_GetSocketCookie, "getSocketCookie"));
  exports.Set("setIpTransparent", Napi::Function::New(env, JS_SetIpTransparent, "setIpTransparent"));
  exports.Set("getIpTransparent", Napi::Function::New(env, JS_GetIpTransparent, "getIpTransparent"));
  exports.Set("socketDomain", Napi::Function::New(env, JS_SocketDomain, "socketDomain"));
}

}  // namespace membrane
