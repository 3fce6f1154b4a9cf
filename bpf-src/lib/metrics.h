// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Per-CPU counters of forwarded and dropped packets by reason and direction (Cilium's metrics
 * map): reason 0 = forwarded, otherwise the positive drop reason (133, 181, ...). */
#pragma once

#include "lib/common.h"

#define MB_METRIC_FORWARD	0

struct mb_metrics_key {
	__u8  reason;		/* 0 forwarded, else positive drop reason */
	__u8  direction;	/* MB_DIR_INGRESS / MB_DIR_EGRESS (lib/events.h) */
	__u16 pad;
};

struct mb_metrics_value {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1024);
	__type(key, struct mb_metrics_key);
	__type(value, struct mb_metrics_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mb_metrics SEC(".maps");

static __always_inline void mb_count(__u8 reason, __u8 direction, __u32 bytes)
{
	struct mb_metrics_key key = { .reason = reason, .direction = direction };
	struct mb_metrics_value *v = bpf_map_lookup_elem(&mb_metrics, &key);

	if (likely(v)) {
		v->packets += 1;	/* per-CPU value: no atomics needed */
		v->bytes += bytes;
		return;
	}
	struct mb_metrics_value init = { .packets = 1, .bytes = bytes };

	bpf_map_update_elem(&mb_metrics, &key, &init, BPF_NOEXIST);
}
