// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Packet parsing for the endpoint programs: Ethernet + IPv4 or IPv6 + TCP/UDP/ICMP(v6) into
 * one summary per family (mb_pkt4, mb_pkt6). The L4 fields are read by one core for both
 * families (mb_parse_l4, mb_parse_related_l4); only the address handling is per family.
 * Headers are read directly when they are in the linear area, else with bpf_skb_load_bytes. */
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
	__u8   frag;		/* MB_FRAG_* */
	__u8   pad;
	__be32 in_saddr;
	__be32 in_daddr;
};

/* mb_pkt4.frag: IPv4 fragments. The first fragment carries the L4 header: its ports (and ICMP
 * type) are recorded in mb_frag4 under the datagram's {daddr, saddr, id, proto}; a later
 * fragment has no L4 header and takes them from there, so conntrack, services and policy treat
 * every fragment like the first (Cilium's fragment tracking). A later fragment that arrives
 * before its first one is dropped (DROP_FRAG_NOT_FOUND). */
#define MB_FRAG_NONE	0
#define MB_FRAG_FIRST	1
#define MB_FRAG_LATER	2	/* no L4 header in this packet */

struct mb_frag4_key {
	__be32 daddr;
	__be32 saddr;
	__be16 id;
	__u8   proto;
	__u8   pad;
};

struct mb_frag4_l4 {
	__be16 sport;
	__be16 dport;
	__u16  icmp_type_code;
	__u16  pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct mb_frag4_key);
	__type(value, struct mb_frag4_l4);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mb_frag4 SEC(".maps");

#define ICMP_DEST_UNREACH	3
#define ICMP_TIME_EXCEEDED	11
#define ICMP_PARAMETERPROB	12

#ifndef IPPROTO_ICMPV6
#define IPPROTO_ICMPV6		58
#endif

#define ICMPV6_DEST_UNREACH	1	/* 1..4 are the error messages */
#define ICMPV6_PARAMPROB	4
#define ICMPV6_ECHO_REQUEST	128
#define ICMPV6_ECHO_REPLY	129
#define ICMPV6_ND_FIRST		133	/* router solicitation .. redirect (133..137) */
#define ICMPV6_ND_LAST		137

/* The ports of an ICMP error's inner packet (l4: its first 8 bytes): TCP/UDP ports, or an
 * echo's identifier as the outer parse reads it for the echo itself. Returns false for
 * anything else (no conntrack entry can match it). Both families; icmp_proto, echo_req and
 * echo_reply name the family's ICMP. */
static __always_inline bool mb_parse_related_l4(const __be16 *l4, __u8 proto, __u8 icmp_proto,
						__u8 echo_req, __u8 echo_reply, __be16 *sport,
						__be16 *dport)
{
	*sport = 0;
	*dport = 0;
	if (proto == IPPROTO_TCP || proto == IPPROTO_UDP) {
		*sport = l4[0];
		*dport = l4[1];
		return true;
	}
	if (proto == icmp_proto) {
		__u8 type = bpf_ntohs(l4[0]) >> 8;

		if (type == echo_req)
			*sport = l4[2];
		else if (type == echo_reply)
			*dport = l4[2];
		else
			return false;
		return true;
	}
	return false;
}

/* Read the inner packet of an ICMP error (inner header without options only). */
static __always_inline void mb_parse4_related(struct __sk_buff *skb, struct mb_pkt4 *p)
{
	struct {
		struct iphdr ip;
		__be16 l4[4];
	} __attribute__((packed)) in;

	if (bpf_skb_load_bytes(skb, p->l4_off + 8, &in, sizeof(in)) < 0)
		return;
	if (in.ip.version != 4 || in.ip.ihl != 5)
		return;
	if (!mb_parse_related_l4(in.l4, in.ip.protocol, IPPROTO_ICMP, ICMP_ECHO, ICMP_ECHOREPLY,
				 &p->in_sport, &p->in_dport))
		return;
	p->related = 1;
	p->in_proto = in.ip.protocol;
	p->in_saddr = in.ip.saddr;
	p->in_daddr = in.ip.daddr;
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

/* The L4 fields of a parsed header (hdr: the first mb_l4_hdr_len() bytes of the L4 header),
 * both families. ICMP echo request/reply: the identifier plays the port, so that the reply's
 * reversed tuple matches the request's (request: sport = id; reply: dport = id). */
static __always_inline void mb_parse_l4(const __u8 *hdr, __u8 proto, __u8 icmp_proto,
					__u8 echo_req, __u8 echo_reply, __be16 *sport,
					__be16 *dport, __u8 *tcp_flags, __u16 *icmp_type_code)
{
	if (proto == IPPROTO_TCP || proto == IPPROTO_UDP) {
		__builtin_memcpy(sport, &hdr[0], 2);
		__builtin_memcpy(dport, &hdr[2], 2);
		if (proto == IPPROTO_TCP)
			*tcp_flags = hdr[13];
	} else if (proto == icmp_proto) {
		*icmp_type_code = ((__u16)hdr[0] << 8) | hdr[1];
		if (hdr[0] == echo_req)
			__builtin_memcpy(sport, &hdr[4], 2);
		else if (hdr[0] == echo_reply)
			__builtin_memcpy(dport, &hdr[4], 2);
	}
}

static __always_inline void mb_parse4_l4(struct mb_pkt4 *p, const __u8 *hdr)
{
	mb_parse_l4(hdr, p->proto, IPPROTO_ICMP, ICMP_ECHO, ICMP_ECHOREPLY, &p->sport, &p->dport,
		    &p->tcp_flags, &p->icmp_type_code);
}

/* How many bytes of the L4 header the parse reads (0: a protocol it does not read). */
static __always_inline __u32 mb_l4_hdr_len(__u8 proto, __u8 icmp_proto)
{
	if (proto == IPPROTO_TCP)
		return 14;
	if (proto == IPPROTO_UDP)
		return 4;
	if (proto == icmp_proto)
		return 8;
	return 0;
}

/* A fragment's L4 fields: the first one records them, a later one reads them back. */
static __always_inline int mb_parse4_frag(struct mb_pkt4 *p, __be16 id, bool later)
{
	struct mb_frag4_key k = {
		.daddr = p->daddr,
		.saddr = p->saddr,
		.id = id,
		.proto = p->proto,
	};
	struct mb_frag4_l4 *l4;

	if (!later) {
		struct mb_frag4_l4 v = {
			.sport = p->sport,
			.dport = p->dport,
			.icmp_type_code = p->icmp_type_code,
		};

		p->frag = MB_FRAG_FIRST;
		bpf_map_update_elem(&mb_frag4, &k, &v, BPF_ANY);
		return 0;
	}
	p->frag = MB_FRAG_LATER;
	l4 = bpf_map_lookup_elem(&mb_frag4, &k);
	if (!l4)
		return DROP_FRAG_NOT_FOUND;
	p->sport = l4->sport;
	p->dport = l4->dport;
	p->icmp_type_code = l4->icmp_type_code;
	return 0;
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
	__be16 frag_off, frag_id;
	__u32 need;

	p->l3_off = ETH_HLEN;
	p->frag = MB_FRAG_NONE;
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
		__builtin_memcpy(p->smac, eth->h_source, ETH_ALEN);
		__builtin_memcpy(p->dmac, eth->h_dest, ETH_ALEN);
		p->saddr = ipd->saddr;
		p->daddr = ipd->daddr;
		p->proto = ipd->protocol;
		p->l4_off = ETH_HLEN + ihl * 4;
		frag_off = ipd->frag_off;
		frag_id = ipd->id;
		if (unlikely(frag_off & bpf_htons(IP_MF | IP_OFFSET)))
			goto fragment;
		need = mb_l4_hdr_len(p->proto, IPPROTO_ICMP);
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
		__builtin_memcpy(p->smac, h.eth.h_source, ETH_ALEN);
		__builtin_memcpy(p->dmac, h.eth.h_dest, ETH_ALEN);
		p->saddr = h.ip.saddr;
		p->daddr = h.ip.daddr;
		p->proto = h.ip.protocol;
		p->l4_off = ETH_HLEN + h.ip.ihl * 4;
		frag_off = h.ip.frag_off;
		frag_id = h.ip.id;
		if (unlikely(frag_off & bpf_htons(IP_MF | IP_OFFSET)))
			goto fragment;
	}
	need = mb_l4_hdr_len(p->proto, IPPROTO_ICMP);
	if (!need)
		return 0;
	if (bpf_skb_load_bytes(skb, p->l4_off, l4, need) < 0)
		return DROP_CT_INVALID_HDR;
	mb_parse4_l4(p, l4);
	goto related;
fragment:
	if (frag_off & bpf_htons(IP_OFFSET))
		return mb_parse4_frag(p, frag_id, true);
	need = mb_l4_hdr_len(p->proto, IPPROTO_ICMP);
	if (need) {
		if (bpf_skb_load_bytes(skb, p->l4_off, l4, need) < 0)
			return DROP_CT_INVALID_HDR;
		mb_parse4_l4(p, l4);
	}
	return mb_parse4_frag(p, frag_id, false);
related:
	if (p->proto == IPPROTO_ICMP) {
		__u8 type = p->icmp_type_code >> 8;

		if (type == ICMP_DEST_UNREACH || type == ICMP_TIME_EXCEEDED ||
		    type == ICMP_PARAMETERPROB)
			mb_parse4_related(skb, p);
	}
	return 0;
}

struct mb_pkt6 {
	__u8   smac[6];
	__u8   dmac[6];
	union mb_v6addr saddr;
	union mb_v6addr daddr;
	__be16 sport;		/* TCP/UDP port; ICMPv6 echo: identifier */
	__be16 dport;
	__u8   proto;		/* IPPROTO_* (no extension header is followed) */
	__u8   tcp_flags;
	__u16  icmp_type_code;	/* type << 8 | code */
	__u32  l4_off;
	__u32  len;		/* skb->len */
	/* ICMPv6 errors (destination unreachable, packet too big, time exceeded, parameter
	 * problem): the packet they are about (inner header without extension headers). */
	__u8   related;
	__u8   in_proto;
	__be16 in_sport;
	__be16 in_dport;
	__u16  pad;
	union mb_v6addr in_saddr;
	union mb_v6addr in_daddr;
};

/* Read the inner packet of an ICMPv6 error. */
static __always_inline void mb_parse6_related(struct __sk_buff *skb, struct mb_pkt6 *p)
{
	struct {
		struct ipv6hdr ip;
		__be16 l4[4];
	} __attribute__((packed)) in;

	if (bpf_skb_load_bytes(skb, p->l4_off + 8, &in, sizeof(in)) < 0)
		return;
	if (in.ip.version != 6)
		return;
	if (!mb_parse_related_l4(in.l4, in.ip.nexthdr, IPPROTO_ICMPV6, ICMPV6_ECHO_REQUEST,
				 ICMPV6_ECHO_REPLY, &p->in_sport, &p->in_dport))
		return;
	p->in_proto = in.ip.nexthdr;
	__builtin_memcpy(&p->in_saddr, &in.ip.saddr, 16);
	__builtin_memcpy(&p->in_daddr, &in.ip.daddr, 16);
	p->related = 1;
}

/* Parse an IPv6 packet without extension headers. Returns 0, 1 for neighbour discovery (to be
 * passed without policy), or a DROP_* code. */
static __always_inline int mb_parse6(struct __sk_buff *skb, struct mb_pkt6 *p)
{
	struct {
		struct ethhdr eth;
		struct ipv6hdr ip;
	} __attribute__((packed)) h;
	__u8 l4[14];
	__u32 need;

	if (bpf_skb_load_bytes(skb, 0, &h, sizeof(h)) < 0)
		return DROP_INVALID;
	if (h.ip.version != 6)
		return DROP_INVALID;
	__builtin_memcpy(p->smac, h.eth.h_source, ETH_ALEN);
	__builtin_memcpy(p->dmac, h.eth.h_dest, ETH_ALEN);
	__builtin_memcpy(&p->saddr, &h.ip.saddr, 16);
	__builtin_memcpy(&p->daddr, &h.ip.daddr, 16);
	p->proto = h.ip.nexthdr;
	p->l4_off = ETH_HLEN + sizeof(struct ipv6hdr);
	p->len = skb->len;
	p->sport = 0;
	p->dport = 0;
	p->tcp_flags = 0;
	p->icmp_type_code = 0;
	p->related = 0;

	/* Extension headers (hop-by-hop for MLD, fragments, ...) are not followed. */
	need = mb_l4_hdr_len(p->proto, IPPROTO_ICMPV6);
	if (!need)
		return DROP_INVALID_EXTHDR;
	if (bpf_skb_load_bytes(skb, p->l4_off, l4, need) < 0)
		return DROP_CT_INVALID_HDR;
	mb_parse_l4(l4, p->proto, IPPROTO_ICMPV6, ICMPV6_ECHO_REQUEST, ICMPV6_ECHO_REPLY,
		    &p->sport, &p->dport, &p->tcp_flags, &p->icmp_type_code);
	if (p->proto == IPPROTO_ICMPV6) {
		__u8 type = p->icmp_type_code >> 8;

		if (type >= ICMPV6_ND_FIRST && type <= ICMPV6_ND_LAST)
			return 1;
		if (type >= ICMPV6_DEST_UNREACH && type <= ICMPV6_PARAMPROB)
			mb_parse6_related(skb, p);
	}
	return 0;
}

/* The port a policy lookup uses: the destination port, or for ICMP the message type (as
 * @membrane/policy writes ICMP rules). Both families. */
static __always_inline __be16 mb_policy_port(__u8 proto, __u8 icmp_proto, __u16 icmp_type_code,
					     __be16 dport)
{
	if (proto == icmp_proto)
		return bpf_htons(icmp_type_code >> 8);
	return dport;
}

static __always_inline __be16 mb_policy_port4(const struct mb_pkt4 *p)
{
	return mb_policy_port(p->proto, IPPROTO_ICMP, p->icmp_type_code, p->dport);
}

static __always_inline __be16 mb_policy_port6(const struct mb_pkt6 *p)
{
	return mb_policy_port(p->proto, IPPROTO_ICMPV6, p->icmp_type_code, p->dport);
}
