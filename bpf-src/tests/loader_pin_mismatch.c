// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Loader test object: a pinned-by-name map `pinned_cfg` with the name of the one in
 * loader_pin.c but another max_entries, so reusing that pin must fail clearly. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 32);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pinned_cfg SEC(".maps");

SEC("tc")
int uses_cfg(struct __sk_buff *skb)
{
	__u32 k = 0;
	__u32 *v = bpf_map_lookup_elem(&pinned_cfg, &k);

	return v ? *v : 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
