// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Loader test object: a perf event array written by a tc program (one 16-byte sample per run,
 * numbered), for the loader's PerfBuffer. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} perf_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} perf_seq SEC(".maps");

struct perf_sample {
	__u64 seq;
	__u32 len;
	__u32 magic;
};

SEC("tc")
int emit_perf(struct __sk_buff *skb)
{
	__u32 k = 0;
	__u64 *seq = bpf_map_lookup_elem(&perf_seq, &k);
	struct perf_sample s = { .len = skb->len, .magic = 0x70657266 /* "perf" */ };

	if (!seq)
		return 0;
	s.seq = __sync_fetch_and_add(seq, 1);
	bpf_perf_event_output(skb, &perf_events, BPF_F_CURRENT_CPU, &s, sizeof(s));
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
