// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The endpoint programs built for BPF_PROG_TEST_RUN benchmarks with `repeat`, through the test
 * hooks of lib/test_hooks.h: no conntrack inserts (every run of a new connection's packet takes
 * the new-connection path again) and service DNAT undone at the end (every run translates
 * again). Never attached anywhere. */
#define MB_TEST_CT_CREATE_SKIP()	true
#define MB_TEST_FORWARDED_SVC4(skb, p, svc_addr, svc_port)	\
	mb_dnat4_fast(skb, p, svc_addr, svc_port)
#include "../endpoint.c"
