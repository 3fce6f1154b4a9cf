// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Loader test object: a prog_array and an entry program that tail-calls slot 0, returning 1
 * when the slot is empty; the target returns 7. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 4);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} jmp_table SEC(".maps");

SEC("tc")
int tail_target(struct __sk_buff *skb)
{
	return 7;
}

SEC("tc")
int tail_entry(struct __sk_buff *skb)
{
	bpf_tail_call(skb, &jmp_table, 0);
	return 1; /* slot empty */
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
