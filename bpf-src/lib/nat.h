// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Address/port rewrites with incremental checksum updates, both families: IPv4 (header
 * checksum, and the TCP/UDP pseudo-header + port, computed inline on the hot paths) and IPv6
 * (no header checksum; the L4 checksum through bpf_csum_diff). UDP's "no checksum" (0) stays 0
 * (BPF_F_MARK_MANGLED_0). */
#pragma once

#include "lib/parse.h"
#include <bpf/bpf_core_read.h>

/* The kernel's skb behind the program's context (a trusted, read-only BTF pointer). */
extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;

/* skb->ip_summed values (include/linux/skbuff.h). */
#define MB_CHECKSUM_COMPLETE	2
#define MB_CHECKSUM_PARTIAL	3

#define MB_IP_CSUM_OFF		(ETH_HLEN + offsetof(struct iphdr, check))
#define MB_IP_SADDR_OFF		(ETH_HLEN + offsetof(struct iphdr, saddr))
#define MB_IP_DADDR_OFF		(ETH_HLEN + offsetof(struct iphdr, daddr))

/* The L4 checksum of an address/port change, without touching the port itself. */
static __always_inline int mb_l4_rewrite_csum(struct __sk_buff *skb, const struct mb_pkt4 *p,
					      __be32 old_addr, __be32 new_addr, __be16 old_port,
					      __be16 new_port)
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
	if (old_port != new_port &&
	    bpf_l4_csum_replace(skb, csum_off, old_port, new_port, mangled | sizeof(new_port)) < 0)
		return DROP_CSUM_L4;
	return 0;
}

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

static __always_inline __u32 mb_csum_fold(__u32 csum)
{
	csum = (csum & 0xffff) + (csum >> 16);
	csum = (csum & 0xffff) + (csum >> 16);
	return csum;
}

/* The L4 checksum of an address (pseudo-header) and port change, computed here rather than by
 * two bpf_l4_csum_replace calls (~20 ns each): what those helpers do, per skb->ip_summed —
 *   CHECKSUM_PARTIAL: the field holds the (uncomplemented) pseudo-header sum the device or
 *     the stack completes later: only the address change goes in, the port is covered when
 *     the checksum is completed;
 *   NONE / UNNECESSARY: the field is the full checksum: RFC 1624 update with both changes.
 * CHECKSUM_COMPLETE needs skb->csum adjusted for the pseudo-header change, which only the
 * helper can do: returns 1 so the caller uses it. UDP's "no checksum" (0) stays 0 and a
 * computed 0 is sent as 0xffff (BPF_F_MARK_MANGLED_0). Returns 0 when done. */
static __always_inline int mb_l4_csum_inline(struct __sk_buff *skb, void *data, void *data_end,
					     const struct mb_pkt4 *p, __be32 old_addr,
					     __be32 new_addr, __be16 old_port, __be16 new_port)
{
	struct sk_buff *kskb = bpf_cast_to_kern_ctx(skb);
	__u32 csum_off = mb_l4_csum_off(p->proto);
	__u8 summed = BPF_CORE_READ_BITFIELD(kskb, ip_summed);
	__u16 *field;
	__u32 csum;

	if (!csum_off)
		return 0;
	if (summed == MB_CHECKSUM_COMPLETE)
		return 1;
	if (p->l4_off > ETH_HLEN + 60)
		return 1;
	field = data + p->l4_off + csum_off;
	if ((void *)(field + 1) > data_end)
		return 1;
	if (p->proto == IPPROTO_UDP && *field == 0)
		return 0;
	if (summed == MB_CHECKSUM_PARTIAL) {
		csum = *field;
	} else {
		csum = (~*field) & 0xffff;
		csum += ((~old_port) & 0xffff) + new_port;
	}
	csum += (~old_addr & 0xffff) + (~old_addr >> 16);
	csum += (new_addr & 0xffff) + (new_addr >> 16);
	csum = mb_csum_fold(csum);
	if (summed != MB_CHECKSUM_PARTIAL)
		csum = ~csum & 0xffff;
	if (p->proto == IPPROTO_UDP && csum == 0)
		csum = 0xffff;
	*field = csum;
	return 0;
}

/* Rewrite one address (and port) of the packet: the IPv4 header directly (its checksum is
 * always complete, so it is updated here, RFC 1624), the port directly, and the L4 checksum
 * through bpf_l4_csum_replace, which knows about CHECKSUM_PARTIAL. Falls back to the
 * store/replace helpers when the headers are not in the linear area. */
static __always_inline int mb_nat4(struct __sk_buff *skb, struct mb_pkt4 *p, bool dst,
				   __be32 new_addr, __be16 new_port, bool inline_csum)
{
	__be32 old_addr = dst ? p->daddr : p->saddr;
	__be16 old_port = dst ? p->dport : p->sport;
	/* A later fragment has no L4 header: only its IPv4 header is rewritten (the first
	 * fragment's carries the checksum of the whole datagram). */
	bool l4 = p->frag != MB_FRAG_LATER;
	bool has_ports = p->proto == IPPROTO_TCP || p->proto == IPPROTO_UDP;
	bool ports = l4 && has_ports;
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + ETH_HLEN;
	__u32 l4_off = p->l4_off;
	__be16 *port;
	__u32 csum;
	int ret;

	if ((void *)(ip + 1) > data_end || l4_off > ETH_HLEN + 60)
		goto slow;
	port = data + l4_off + (dst ? 2 : 0);
	if ((void *)(port + 1) > data_end)
		goto slow;
	if (old_addr != new_addr) {
		csum = (~ip->check) & 0xffff;
		csum += (~old_addr & 0xffff) + (~old_addr >> 16);
		csum += (new_addr & 0xffff) + (new_addr >> 16);
		ip->check = ~mb_csum_fold(csum);
		if (dst)
			ip->daddr = new_addr;
		else
			ip->saddr = new_addr;
	}
	if (ports)
		*port = new_port;
	if (l4) {
		if (!ports)
			old_port = new_port;	/* no port in the checksum (ICMP has no pseudo-header) */
		ret = inline_csum ? mb_l4_csum_inline(skb, data, data_end, p, old_addr, new_addr,
						      old_port, new_port) : 1;
		if (ret > 0)
			ret = mb_l4_rewrite_csum(skb, p, old_addr, new_addr, old_port, new_port);
		if (ret < 0)
			return ret;
	}
	goto done;
slow:
	if (ports) {
		ret = mb_l4_rewrite(skb, p, old_addr, new_addr, dst ? 2 : 0, old_port, new_port);
		if (ret < 0)
			return ret;
	}
	if (old_addr != new_addr) {
		if (bpf_l3_csum_replace(skb, MB_IP_CSUM_OFF, old_addr, new_addr,
					sizeof(new_addr)) < 0)
			return DROP_CSUM_L3;
		if (bpf_skb_store_bytes(skb, dst ? MB_IP_DADDR_OFF : MB_IP_SADDR_OFF, &new_addr,
					sizeof(new_addr), 0) < 0)
			return DROP_WRITE_ERROR;
	}
done:
	if (dst) {
		p->daddr = new_addr;
		if (has_ports)
			p->dport = new_port;
	} else {
		p->saddr = new_addr;
		if (has_ports)
			p->sport = new_port;
	}
	return 0;
}

/* Rewrite the destination to new_addr:new_port (DNAT), the L4 checksum through the helpers.
 * The _fast variants compute it inline (mb_l4_csum_inline): they are used on the hot paths
 * only (service DNAT, reverse NAT of service replies), because every inlined copy of that
 * code multiplies the verifier's work on from_container, which is near its 1M-instruction
 * limit. */
static __always_inline int mb_dnat4(struct __sk_buff *skb, struct mb_pkt4 *p, __be32 new_addr,
				    __be16 new_port)
{
	return mb_nat4(skb, p, true, new_addr, new_port, false);
}

static __always_inline int mb_dnat4_fast(struct __sk_buff *skb, struct mb_pkt4 *p,
					 __be32 new_addr, __be16 new_port)
{
	return mb_nat4(skb, p, true, new_addr, new_port, true);
}

/* Rewrite the source to new_addr:new_port (reverse NAT of a reply). */
static __always_inline int mb_snat4(struct __sk_buff *skb, struct mb_pkt4 *p, __be32 new_addr,
				    __be16 new_port)
{
	return mb_nat4(skb, p, false, new_addr, new_port, false);
}

static __always_inline int mb_snat4_fast(struct __sk_buff *skb, struct mb_pkt4 *p,
					 __be32 new_addr, __be16 new_port)
{
	return mb_nat4(skb, p, false, new_addr, new_port, true);
}

#define MB_IP6_SADDR_OFF	(ETH_HLEN + offsetof(struct ipv6hdr, saddr))
#define MB_IP6_DADDR_OFF	(ETH_HLEN + offsetof(struct ipv6hdr, daddr))

/* Rewrite the destination (dst) or source address and port of an IPv6 TCP/UDP packet. IPv6 has
 * no header checksum; the L4 checksum gets the address difference as a pseudo-header change. */
static __always_inline int mb_nat6(struct __sk_buff *skb, struct mb_pkt6 *p, bool dst,
				   const union mb_v6addr *new_addr, __be16 new_port)
{
	union mb_v6addr old, neu;
	__be16 old_port = dst ? p->dport : p->sport;
	__u32 csum_off = mb_l4_csum_off(p->proto);
	__u64 mangled = p->proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
	__s64 diff;

	if (!csum_off)
		return DROP_UNSUPP_SERVICE_PROTO;
	csum_off += p->l4_off;
	__builtin_memcpy(&old, dst ? &p->daddr : &p->saddr, 16);
	__builtin_memcpy(&neu, new_addr, 16);
	diff = bpf_csum_diff((__be32 *)&old, 16, (__be32 *)&neu, 16, 0);
	if (diff < 0)
		return DROP_CSUM_L4;
	if (bpf_l4_csum_replace(skb, csum_off, 0, diff, BPF_F_PSEUDO_HDR | mangled) < 0)
		return DROP_CSUM_L4;
	if (bpf_skb_store_bytes(skb, dst ? MB_IP6_DADDR_OFF : MB_IP6_SADDR_OFF, &neu, 16, 0) < 0)
		return DROP_WRITE_ERROR;
	if (old_port != new_port) {
		if (bpf_l4_csum_replace(skb, csum_off, old_port, new_port,
					mangled | sizeof(new_port)) < 0)
			return DROP_CSUM_L4;
		if (bpf_skb_store_bytes(skb, p->l4_off + (dst ? 2 : 0), &new_port,
					sizeof(new_port), 0) < 0)
			return DROP_WRITE_ERROR;
	}
	if (dst) {
		__builtin_memcpy(&p->daddr, &neu, 16);
		p->dport = new_port;
	} else {
		__builtin_memcpy(&p->saddr, &neu, 16);
		p->sport = new_port;
	}
	return 0;
}
