// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The endpoint programs' bandwidth hooks. With ENABLE_BANDWIDTH and lib/edt.h (the bandwidth
 * engineer's EDT + token bucket, map mb_throttle keyed by endpoint id + direction) they shape
 * the workload's egress (EDT; DROP_EDT_HORIZON beyond the horizon) and police its ingress
 * (DROP_RATE_LIMITED); otherwise they are no-ops returning 0. */
#pragma once

#include "lib/common.h"

#if defined(ENABLE_BANDWIDTH) && __has_include("lib/edt.h")
#include "lib/edt.h"

static __always_inline int mb_bandwidth_egress(struct __sk_buff *skb, __u32 endpoint_id)
{
	return mb_edt_sched(skb, (__u16)endpoint_id);
}

static __always_inline int mb_bandwidth_ingress(struct __sk_buff *skb, __u32 endpoint_id)
{
	return mb_tb_police(skb, (__u16)endpoint_id, MB_DIR_INGRESS);
}
#else
static __always_inline int mb_bandwidth_egress(struct __sk_buff *skb, __u32 endpoint_id)
{
	return 0;
}

static __always_inline int mb_bandwidth_ingress(struct __sk_buff *skb, __u32 endpoint_id)
{
	return 0;
}
#endif
