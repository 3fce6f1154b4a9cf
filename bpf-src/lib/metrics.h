// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Per-CPU counters of forwarded and dropped packets by reason and direction (Cilium's metrics
 * map): reason 0 = forwarded, otherwise the positive drop reason (133, 181, ...). */
#pragma once

#include "lib/common.h"

#define MB_METRIC_FORWARD	0

/* Row of a (reason, direction) pair: an array index, so the hot path is an inlined array
 * lookup rather than a hash lookup. */
#define MB_METRICS_INDEX(reason, direction)	(((__u32)(reason) << 2) | ((direction) & 3))
#define MB_METRICS_ENTRIES			1024

struct mb_metrics_value {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MB_METRICS_ENTRIES);
	__type(key, __u32);	/* MB_METRICS_INDEX(reason, direction) */
	__type(value, struct mb_metrics_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mb_metrics SEC(".maps");

static __always_inline void mb_count(__u8 reason, __u8 direction, __u32 bytes)
{
	__u32 idx = MB_METRICS_INDEX(reason, direction);
	struct mb_metrics_value *v = bpf_map_lookup_elem(&mb_metrics, &idx);

	if (likely(v)) {
		v->packets += 1;	/* per-CPU value: no atomics needed */
		v->bytes += bytes;
	}
}
