// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Standalone bandwidth enforcement for one device, outside the endpoint program: the same
 * throttle map and functions as the endpoint datapath (lib/edt.h), for hosts that attach
 * shaping by itself (and for @membrane/bandwidth's kernel tests and benchmarks).
 *
 * Globals (set before load): cfg_endpoint_id selects the throttle entry; cfg_direction the
 * entry direction for mb_bw_police (MB_DIR_INGRESS by default).
 *
 *   mb_bw_egress  egress of the endpoint: EDT (skb->tstamp for fq) or, for an entry in
 *                 MB_THROTTLE_MODE_POLICE, the token bucket. Attach where the endpoint's
 *                 egress traffic passes: the host-side veth's tc ingress, or a device's egress.
 *   mb_bw_police  token bucket of (cfg_endpoint_id, cfg_direction).
 * Both return TC_ACT_SHOT on a drop (counted in the entry) and TC_ACT_OK otherwise. */
#define ENABLE_BANDWIDTH 1
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "lib/edt.h"

#define TC_ACT_OK	0
#define TC_ACT_SHOT	2

volatile const __u16 cfg_endpoint_id = 0;
volatile const __u8 cfg_direction = MB_DIR_INGRESS;

SEC("tc")
int mb_bw_egress(struct __sk_buff *skb)
{
	return mb_edt_sched(skb, cfg_endpoint_id) < 0 ? TC_ACT_SHOT : TC_ACT_OK;
}

SEC("tc")
int mb_bw_police(struct __sk_buff *skb)
{
	return mb_tb_police(skb, cfg_endpoint_id, cfg_direction) < 0 ? TC_ACT_SHOT : TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
