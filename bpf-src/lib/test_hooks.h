// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Hooks for test objects. A test object (tests/dp_bench.c) that runs one packet many times with
 * BPF_PROG_TEST_RUN `repeat` defines some of these before including the endpoint code, so that
 * every run takes the same path; everywhere else they are these stubs, which compile to
 * nothing. Their bodies live in the tests, never in lib/. */
#pragma once

/* True: conntrack inserts are skipped (every run of a first packet stays a new connection). */
#ifndef MB_TEST_CT_CREATE_SKIP
#define MB_TEST_CT_CREATE_SKIP()	false
#endif

/* Called on an IPv4 packet that leaves from_container translated to a backend
 * (skb, struct mb_pkt4 *p, __be32 service address, __be16 service port). */
#ifndef MB_TEST_FORWARDED_SVC4
#define MB_TEST_FORWARDED_SVC4(skb, p, svc_addr, svc_port)	do { } while (0)
#endif
