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
	/* ICMP errors (destination unreachable, time exceeded, parameter problem): the packet they
	 * are about (the inner IPv4 header's addresses and the first 4 bytes of its L4 header). */
	__u8   related;
	__u8   in_proto;
	__be16 in_sport;
	__be16 in_dport;
	__u16  pad;
	__be32 in_saddr;
	__be32 in_daddr;
};

#define ICMP_DEST_UNREACH	3
#define ICMP_TIME_EXCEEDED	11
#define ICMP_PARAMETERPROB	12

/* Read the inner packet of an ICMP error (inner header without options only). */
static __always_inline void mb_parse4_related(struct __sk_buff *skb, struct mb_pkt4 *p)
{
	struct {
		struct iphdr ip;
		__be16 ports[2];
	} __attribute__((packed)) in;

	if (bpf_skb_load_bytes(skb, p->l4_off + 8, &in, sizeof(in)) < 0)
		return;
	if (in.ip.version != 4 || in.ip.ihl != 5)
		return;
	p->related = 1;
	p->in_proto = in.ip.protocol;
	p->in_saddr = in.ip.saddr;
	p->in_daddr = in.ip.daddr;
	p->in_sport = in.ports[0];
	p->in_dport = in.ports[1];
}

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

/* The L4 fields of a parsed header (hdr: the first bytes of the L4 header). */
static __always_inline void mb_parse4_l4(struct mb_pkt4 *p, const __u8 *hdr)
{
	switch (p->proto) {
	case IPPROTO_TCP:
		__builtin_memcpy(&p->sport, &hdr[0], 2);
		__builtin_memcpy(&p->dport, &hdr[2], 2);
		p->tcp_flags = hdr[13];
		break;
	case IPPROTO_UDP:
		__builtin_memcpy(&p->sport, &hdr[0], 2);
		__builtin_memcpy(&p->dport, &hdr[2], 2);
		break;
	case IPPROTO_ICMP:
		p->icmp_type_code = ((__u16)hdr[0] << 8) | hdr[1];
		/* Echo request/reply: the identifier plays the port, so that the reply's reversed
		 * tuple matches the request's (request: sport = id; reply: dport = id). */
		if (hdr[0] == ICMP_ECHO)
			__builtin_memcpy(&p->sport, &hdr[4], 2);
		else if (hdr[0] == ICMP_ECHOREPLY)
			__builtin_memcpy(&p->dport, &hdr[4], 2);
		break;
	}
}

static __always_inline __u32 mb_l4_hdr_len(__u8 proto)
{
	switch (proto) {
	case IPPROTO_TCP:
		return 14;
	case IPPROTO_UDP:
		return 4;
	case IPPROTO_ICMP:
		return 8;
	default:
		return 0;
	}
}

/* Parse an IPv4 packet that starts at ETH_HLEN. Returns 0 or a DROP_* code. Headers in the
 * linear area are read directly; otherwise through bpf_skb_load_bytes. */
static __always_inline int mb_parse4(struct __sk_buff *skb, struct mb_pkt4 *p)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ipd = data + ETH_HLEN;
	__u8 l4[14] = {};
	__u32 need;

	p->l3_off = ETH_HLEN;
	p->len = skb->len;
	p->sport = 0;
	p->dport = 0;
	p->tcp_flags = 0;
	p->icmp_type_code = 0;
	p->related = 0;
	if ((void *)(ipd + 1) <= data_end) {
		__u32 ihl = ipd->ihl;

		if (ipd->version != 4 || ihl < 5)
			return DROP_INVALID;
		if (ipd->frag_off & bpf_htons(IP_MF | IP_OFFSET))
			return DROP_FRAG_NOSUPPORT;
		__builtin_memcpy(p->smac, eth->h_source, ETH_ALEN);
		__builtin_memcpy(p->dmac, eth->h_dest, ETH_ALEN);
		p->saddr = ipd->saddr;
		p->daddr = ipd->daddr;
		p->proto = ipd->protocol;
		p->l4_off = ETH_HLEN + ihl * 4;
		need = mb_l4_hdr_len(p->proto);
		if (!need)
			return 0;
		if (ihl == 5 && data + ETH_HLEN + 20 + 14 <= data_end) {
			mb_parse4_l4(p, data + ETH_HLEN + 20);
			goto related;
		}
		if (bpf_skb_load_bytes(skb, p->l4_off, l4, need) < 0)
			return DROP_CT_INVALID_HDR;
		mb_parse4_l4(p, l4);
		goto related;
	}

	{
		struct {
			struct ethhdr eth;
			struct iphdr ip;
		} __attribute__((packed)) h;

		if (bpf_skb_load_bytes(skb, 0, &h, sizeof(h)) < 0)
			return DROP_INVALID;
		if (h.ip.version != 4 || h.ip.ihl < 5)
			return DROP_INVALID;
		if (h.ip.frag_off & bpf_htons(IP_MF | IP_OFFSET))
			return DROP_FRAG_NOSUPPORT;
		__builtin_memcpy(p->smac, h.eth.h_source, ETH_ALEN);
		__builtin_memcpy(p->dmac, h.eth.h_dest, ETH_ALEN);
		p->saddr = h.ip.saddr;
		p->daddr = h.ip.daddr;
		p->proto = h.ip.protocol;
		p->l4_off = ETH_HLEN + h.ip.ihl * 4;
	}
	need = mb_l4_hdr_len(p->proto);
	if (!need)
		return 0;
	if (bpf_skb_load_bytes(skb, p->l4_off, l4, need) < 0)
		return DROP_CT_INVALID_HDR;
	mb_parse4_l4(p, l4);
related:
	if (p->proto == IPPROTO_ICMP) {
		__u8 type = p->icmp_type_code >> 8;

		if (type == ICMP_DEST_UNREACH || type == ICMP_TIME_EXCEEDED ||
		    type == ICMP_PARAMETERPROB)
			mb_parse4_related(skb, p);
	}
	return 0;
}
