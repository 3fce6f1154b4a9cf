// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Address/port rewrites with incremental checksum updates (IPv4 header, and the TCP/UDP
 * pseudo-header + port). UDP's "no checksum" (0) stays 0 (BPF_F_MARK_MANGLED_0). */
#pragma once

#include "lib/parse.h"

#define MB_IP_CSUM_OFF		(ETH_HLEN + offsetof(struct iphdr, check))
#define MB_IP_SADDR_OFF		(ETH_HLEN + offsetof(struct iphdr, saddr))
#define MB_IP_DADDR_OFF		(ETH_HLEN + offsetof(struct iphdr, daddr))

static __always_inline int mb_l4_rewrite(struct __sk_buff *skb, const struct mb_pkt4 *p,
					 __be32 old_addr, __be32 new_addr, __u32 port_off,
					 __be16 old_port, __be16 new_port)
{
	__u32 csum_off = mb_l4_csum_off(p->proto);
	__u64 mangled = p->proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;

	if (!csum_off)
		return 0;
	csum_off += p->l4_off;
	if (old_addr != new_addr &&
	    bpf_l4_csum_replace(skb, csum_off, old_addr, new_addr,
				BPF_F_PSEUDO_HDR | mangled | sizeof(new_addr)) < 0)
		return DROP_CSUM_L4;
	if (old_port != new_port) {
		if (bpf_l4_csum_replace(skb, csum_off, old_port, new_port,
					mangled | sizeof(new_port)) < 0)
			return DROP_CSUM_L4;
		if (bpf_skb_store_bytes(skb, p->l4_off + port_off, &new_port, sizeof(new_port),
					0) < 0)
			return DROP_WRITE_ERROR;
	}
	return 0;
}

/* Rewrite the destination to new_addr:new_port (DNAT). */
static __always_inline int mb_dnat4(struct __sk_buff *skb, struct mb_pkt4 *p, __be32 new_addr,
				    __be16 new_port)
{
	int ret;

	if (p->proto == IPPROTO_TCP || p->proto == IPPROTO_UDP) {
		ret = mb_l4_rewrite(skb, p, p->daddr, new_addr, 2, p->dport, new_port);
		if (ret < 0)
			return ret;
		p->dport = new_port;
	}
	if (p->daddr != new_addr) {
		if (bpf_l3_csum_replace(skb, MB_IP_CSUM_OFF, p->daddr, new_addr,
					sizeof(new_addr)) < 0)
			return DROP_CSUM_L3;
		if (bpf_skb_store_bytes(skb, MB_IP_DADDR_OFF, &new_addr, sizeof(new_addr), 0) < 0)
			return DROP_WRITE_ERROR;
		p->daddr = new_addr;
	}
	return 0;
}

/* Rewrite the source to new_addr:new_port (reverse NAT of a reply). */
static __always_inline int mb_snat4(struct __sk_buff *skb, struct mb_pkt4 *p, __be32 new_addr,
				    __be16 new_port)
{
	int ret;

	if (p->proto == IPPROTO_TCP || p->proto == IPPROTO_UDP) {
		ret = mb_l4_rewrite(skb, p, p->saddr, new_addr, 0, p->sport, new_port);
		if (ret < 0)
			return ret;
		p->sport = new_port;
	}
	if (p->saddr != new_addr) {
		if (bpf_l3_csum_replace(skb, MB_IP_CSUM_OFF, p->saddr, new_addr,
					sizeof(new_addr)) < 0)
			return DROP_CSUM_L3;
		if (bpf_skb_store_bytes(skb, MB_IP_SADDR_OFF, &new_addr, sizeof(new_addr), 0) < 0)
			return DROP_WRITE_ERROR;
		p->saddr = new_addr;
	}
	return 0;
}
