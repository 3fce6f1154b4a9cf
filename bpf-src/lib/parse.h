// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Packet parsing for the endpoint programs: Ethernet + IPv4 + TCP/UDP/ICMP into one summary.
 * Headers are read with bpf_skb_load_bytes (no packet pointers to re-validate after NAT). */
#pragma once

#include "lib/common.h"
#include "lib/drop_reasons.h"

struct mb_pkt4 {
	__u8   smac[6];
	__u8   dmac[6];
	__be32 saddr;
	__be32 daddr;
	__be16 sport;		/* TCP/UDP port; ICMP echo: identifier */
	__be16 dport;
	__u8   proto;		/* IPPROTO_* */
	__u8   tcp_flags;
	__u16  icmp_type_code;	/* type << 8 | code */
	__u32  l3_off;
	__u32  l4_off;
	__u32  len;		/* skb->len */
};

/* Offsets of the checksum field inside the L4 header, 0 when the protocol has none we fix. */
static __always_inline __u32 mb_l4_csum_off(__u8 proto)
{
	switch (proto) {
	case IPPROTO_TCP:
		return 16;
	case IPPROTO_UDP:
		return 6;
	default:
		return 0;
	}
}

/* Parse an IPv4 packet that starts at ETH_HLEN. Returns 0 or a DROP_* code. */
static __always_inline int mb_parse4(struct __sk_buff *skb, struct mb_pkt4 *p)
{
	struct {
		struct ethhdr eth;
		struct iphdr ip;
	} __attribute__((packed)) h;
	struct iphdr ip;

	/* Ethernet and IPv4 headers in one helper call. */
	if (bpf_skb_load_bytes(skb, 0, &h, sizeof(h)) < 0)
		return DROP_INVALID;
	__builtin_memcpy(p->smac, h.eth.h_source, ETH_ALEN);
	__builtin_memcpy(p->dmac, h.eth.h_dest, ETH_ALEN);
	__builtin_memcpy(&ip, &h.ip, sizeof(ip));
	p->l3_off = ETH_HLEN;
	p->len = skb->len;
	if (ip.version != 4 || ip.ihl < 5)
		return DROP_INVALID;
	if (ip.frag_off & bpf_htons(IP_MF | IP_OFFSET))
		return DROP_FRAG_NOSUPPORT;
	p->saddr = ip.saddr;
	p->daddr = ip.daddr;
	p->proto = ip.protocol;
	p->l4_off = ETH_HLEN + ip.ihl * 4;
	p->sport = 0;
	p->dport = 0;
	p->tcp_flags = 0;
	p->icmp_type_code = 0;

	switch (ip.protocol) {
	case IPPROTO_TCP: {
		__u8 hdr[14];

		if (bpf_skb_load_bytes(skb, p->l4_off, hdr, sizeof(hdr)) < 0)
			return DROP_CT_INVALID_HDR;
		__builtin_memcpy(&p->sport, &hdr[0], 2);
		__builtin_memcpy(&p->dport, &hdr[2], 2);
		p->tcp_flags = hdr[13];
		break;
	}
	case IPPROTO_UDP: {
		__be16 ports[2];

		if (bpf_skb_load_bytes(skb, p->l4_off, ports, sizeof(ports)) < 0)
			return DROP_CT_INVALID_HDR;
		p->sport = ports[0];
		p->dport = ports[1];
		break;
	}
	case IPPROTO_ICMP: {
		__u8 hdr[8];

		if (bpf_skb_load_bytes(skb, p->l4_off, hdr, sizeof(hdr)) < 0)
			return DROP_CT_INVALID_HDR;
		p->icmp_type_code = ((__u16)hdr[0] << 8) | hdr[1];
		/* Echo request/reply: the identifier plays the port, so that the reply's reversed
		 * tuple matches the request's (request: sport = id; reply: dport = id). */
		if (hdr[0] == ICMP_ECHO)
			__builtin_memcpy(&p->sport, &hdr[4], 2);
		else if (hdr[0] == ICMP_ECHOREPLY)
			__builtin_memcpy(&p->dport, &hdr[4], 2);
		break;
	}
	default:
		break;
	}
	return 0;
}
