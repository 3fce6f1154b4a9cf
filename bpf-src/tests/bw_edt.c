// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Test object for @membrane/bandwidth: runs mb_edt_sched() on the test packet and returns its
 * raw verdict (0, or a negative drop reason such as DROP_EDT_HORIZON = -162), so that
 * BPF_PROG_TEST_RUN shows the reason. skb->tstamp comes back through ctx_out, and is also kept
 * in bw_edt_out[0] (last tstamp after the program) for loaders without ctx_out. */
#define ENABLE_BANDWIDTH 1
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "lib/edt.h"

volatile const __u16 cfg_endpoint_id = 1;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} bw_edt_out SEC(".maps");

SEC("tc")
int bw_edt(struct __sk_buff *skb)
{
	int ret = mb_edt_sched(skb, cfg_endpoint_id);
	__u32 zero = 0;
	__u64 *out = bpf_map_lookup_elem(&bw_edt_out, &zero);

	if (out)
		*out = skb->tstamp;
	return ret;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
