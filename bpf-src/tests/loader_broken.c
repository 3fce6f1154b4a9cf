// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Loader test object the verifier must reject: it reads packet data without a bounds check. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

SEC("tc")
int unchecked_read(struct __sk_buff *skb)
{
	__u8 *data = (__u8 *)(long)skb->data;

	return data[20]; /* no comparison against data_end: invalid access to packet */
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
