// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Loader test object: a LIBBPF_PIN_BY_NAME map `pinned_cfg` for the pin-reuse tests. Always
 * open it with a pinRoot: without one libbpf pins at /sys/fs/bpf/pinned_cfg. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pinned_cfg SEC(".maps");

SEC("tc")
int reads_cfg(struct __sk_buff *skb)
{
	__u32 k = 0;
	__u32 *v = bpf_map_lookup_elem(&pinned_cfg, &k);

	return v ? *v : 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
