// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The endpoint programs built for BPF_PROG_TEST_RUN benchmarks with `repeat`: no conntrack
 * inserts (every run of a new connection's packet takes the new-connection path again) and
 * service DNAT undone at the end (every run translates again). Never attached anywhere. */
#define MB_CT_CREATE_DISABLED 1
#define MB_BENCH_RESTORE_DNAT 1
#include "../endpoint.c"
