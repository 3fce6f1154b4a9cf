// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Socket-level load balancing: connect/sendmsg translate a service address to a backend once
 * per socket (or datagram); recvmsg/getpeername translate back through mb_sock_revnat4 /
 * mb_sock_revnat6, keyed by the socket cookie and the backend, so the application only ever
 * sees the service address. The IPv6 hooks are compiled in with ENABLE_IPV6. */
#pragma once

#include "lib/common.h"
#include "lib/events.h"
#include "lib/lb.h"

/* mb_event.subtype of MB_EVENT_SOCK_LB */
#define MB_SOCK_HOOK_CONNECT4		1
#define MB_SOCK_HOOK_SENDMSG4		2
#define MB_SOCK_HOOK_RECVMSG4		3
#define MB_SOCK_HOOK_GETPEERNAME4	4

struct mb_sock_revnat4_key {
	__u64  cookie;
	__be32 address;		/* backend */
	__be16 port;
	__u16  pad;
};

struct mb_sock_revnat4_value {
	__be32 address;		/* service */
	__be16 port;
	__u16  rev_nat_index;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct mb_sock_revnat4_key);
	__type(value, struct mb_sock_revnat4_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mb_sock_revnat4 SEC(".maps");

static __always_inline void mb_sock_event(struct bpf_sock_addr *ctx, __u8 hook, __u64 cookie,
					  __be32 from_addr, __be16 from_port, __be32 to_addr,
					  __be16 to_port, __u8 proto)
{
	struct mb_config *cfg = mb_get_config();
	struct mb_event *ev;

	if (!cfg || !(cfg->flags & MB_CFG_SOCK_LB_EVENTS))
		return;
	ev = mb_event_reserve();
	if (!ev)
		return;
	ev->type = MB_EVENT_SOCK_LB;
	ev->subtype = hook;
	ev->direction = MB_DIR_EGRESS;
	ev->flags = MB_EVF_NAT;
	ev->protocol = proto;
	ev->ktime_ns = bpf_ktime_get_ns();
	ev->sock_cookie = cookie;
	ev->dport = bpf_ntohs(to_port);
	ev->orig_dport = bpf_ntohs(from_port);
	__builtin_memcpy(ev->daddr, &to_addr, 4);
	__builtin_memcpy(ev->orig_daddr, &from_addr, 4);
	bpf_ringbuf_submit(ev, 0);
}

/* connect4 / sendmsg4: service -> backend. Always returns 1 (never refuses the call). */
static __always_inline int mb_sock4_forward(struct bpf_sock_addr *ctx, __u8 hook)
{
	__be32 addr = ctx->user_ip4;
	__be16 port = (__be16)ctx->user_port;
	__u8 proto = ctx->protocol;
	struct mb_lb_service *svc;
	struct mb_lb4_backend *be;
	__u32 backend_id;
	__u64 cookie;

	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return 1;
	svc = mb_lb4_lookup(addr, port, proto);
	if (!svc || (svc->flags & MB_SVC_F_SOCK_LB_SKIP) || svc->count == 0)
		return 1;
	/* No 5-tuple exists yet at connect time: socket LB always picks at random. */
	backend_id = mb_lb_random(svc);
	be = mb_lb4_backend(&backend_id);
	if (!be)
		return 1;
	cookie = bpf_get_socket_cookie(ctx);
	{
		struct mb_sock_revnat4_key k = {
			.cookie = cookie,
			.address = be->address,
			.port = be->port,
		};
		struct mb_sock_revnat4_value v = {
			.address = addr,
			.port = port,
			.rev_nat_index = svc->rev_nat_index,
		};

		bpf_map_update_elem(&mb_sock_revnat4, &k, &v, BPF_ANY);
	}
	ctx->user_ip4 = be->address;
	ctx->user_port = be->port;
	mb_sock_event(ctx, hook, cookie, addr, port, be->address, be->port, proto);
	return 1;
}

/* recvmsg4 / getpeername4: backend -> service, when this socket was translated. */
static __always_inline int mb_sock4_reverse(struct bpf_sock_addr *ctx)
{
	struct mb_sock_revnat4_key k = {
		.cookie = bpf_get_socket_cookie(ctx),
		.address = ctx->user_ip4,
		.port = (__be16)ctx->user_port,
	};
	struct mb_sock_revnat4_value *v = bpf_map_lookup_elem(&mb_sock_revnat4, &k);

	if (v) {
		ctx->user_ip4 = v->address;
		ctx->user_port = v->port;
	}
	return 1;
}

#ifdef ENABLE_IPV6

#define MB_SOCK_HOOK_CONNECT6		5
#define MB_SOCK_HOOK_SENDMSG6		6
#define MB_SOCK_HOOK_RECVMSG6		7
#define MB_SOCK_HOOK_GETPEERNAME6	8

struct mb_sock_revnat6_key {
	__u64  cookie;
	union mb_v6addr address;	/* backend */
	__be16 port;
	__u16  pad[3];
};

struct mb_sock_revnat6_value {
	union mb_v6addr address;	/* service */
	__be16 port;
	__u16  rev_nat_index;
	__u32  pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct mb_sock_revnat6_key);
	__type(value, struct mb_sock_revnat6_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mb_sock_revnat6 SEC(".maps");

/* connect6 / sendmsg6: IPv6 service -> backend (random slot). Always returns 1. */
static __always_inline int mb_sock6_forward(struct bpf_sock_addr *ctx)
{
	union mb_v6addr addr;
	__be16 port = (__be16)ctx->user_port;
	struct mb_lb_service *svc;
	struct mb_lb6_backend *be;
	__u8 proto = ctx->protocol;
	__u32 backend_id;

	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return 1;
	addr.w[0] = ctx->user_ip6[0];
	addr.w[1] = ctx->user_ip6[1];
	addr.w[2] = ctx->user_ip6[2];
	addr.w[3] = ctx->user_ip6[3];
	svc = mb_lb6_lookup(&addr, port, proto);
	if (!svc || (svc->flags & MB_SVC_F_SOCK_LB_SKIP) || svc->count == 0)
		return 1;
	backend_id = mb_lb_random(svc);
	be = mb_lb6_backend(&backend_id);
	if (!be)
		return 1;
	{
		struct mb_sock_revnat6_key k = {
			.cookie = bpf_get_socket_cookie(ctx),
			.port = be->port,
		};
		struct mb_sock_revnat6_value v = {
			.address = addr,
			.port = port,
			.rev_nat_index = svc->rev_nat_index,
		};

		__builtin_memcpy(&k.address, &be->address, 16);
		bpf_map_update_elem(&mb_sock_revnat6, &k, &v, BPF_ANY);
	}
	ctx->user_ip6[0] = be->address.w[0];
	ctx->user_ip6[1] = be->address.w[1];
	ctx->user_ip6[2] = be->address.w[2];
	ctx->user_ip6[3] = be->address.w[3];
	ctx->user_port = be->port;
	return 1;
}

/* recvmsg6 / getpeername6: backend -> service. */
static __always_inline int mb_sock6_reverse(struct bpf_sock_addr *ctx)
{
	struct mb_sock_revnat6_key k = {
		.cookie = bpf_get_socket_cookie(ctx),
		.port = (__be16)ctx->user_port,
	};
	struct mb_sock_revnat6_value *v;

	k.address.w[0] = ctx->user_ip6[0];
	k.address.w[1] = ctx->user_ip6[1];
	k.address.w[2] = ctx->user_ip6[2];
	k.address.w[3] = ctx->user_ip6[3];
	v = bpf_map_lookup_elem(&mb_sock_revnat6, &k);
	if (v) {
		ctx->user_ip6[0] = v->address.w[0];
		ctx->user_ip6[1] = v->address.w[1];
		ctx->user_ip6[2] = v->address.w[2];
		ctx->user_ip6[3] = v->address.w[3];
		ctx->user_port = v->port;
	}
	return 1;
}
#endif
