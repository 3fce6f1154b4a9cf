// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Test object for @membrane/bandwidth: runs mb_tb_police() on the test packet and returns its
 * raw verdict (0, or DROP_RATE_LIMITED = -198). cfg_direction picks the entry's direction. */
#define ENABLE_BANDWIDTH 1
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "lib/edt.h"

volatile const __u16 cfg_endpoint_id = 1;
volatile const __u8 cfg_direction = MB_DIR_INGRESS;

SEC("tc")
int bw_tb(struct __sk_buff *skb)
{
	return mb_tb_police(skb, cfg_endpoint_id, cfg_direction);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
