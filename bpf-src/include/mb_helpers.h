// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Small helpers shared by every Membrane BPF object: constants vmlinux.h does not carry
 * (they are #defines in uapi headers), byte order, and Linux's jhash (the flow hash that
 * Maglev selection uses; @membrane/datapath mirrors it in TS as flowHash4). */
#pragma once

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define TC_ACT_OK		0
#define TC_ACT_SHOT		2
#define TC_ACT_REDIRECT		7

#define ETH_HLEN		14
#define ETH_ALEN		6
#define ETH_P_IP		0x0800
#define ETH_P_ARP		0x0806
#define ETH_P_IPV6		0x86DD

#define IP_MF			0x2000
#define IP_OFFSET		0x1FFF

#define ICMP_ECHOREPLY		0
#define ICMP_ECHO		8

#define TCP_FLAG_FIN		0x01
#define TCP_FLAG_SYN		0x02
#define TCP_FLAG_RST		0x04
#define TCP_FLAG_PSH		0x08
#define TCP_FLAG_ACK		0x10

#define NSEC_PER_SEC		1000000000ULL

#ifndef likely
#define likely(x)		__builtin_expect(!!(x), 1)
#endif
#ifndef unlikely
#define unlikely(x)		__builtin_expect(!!(x), 0)
#endif

/* Linux's jhash final mix (include/linux/jhash.h), written out so C and TS agree bit for bit. */
static __always_inline __u32 mb_rol32(__u32 word, unsigned int shift)
{
	return (word << shift) | (word >> ((-shift) & 31));
}

#define MB_JHASH_INITVAL	0xdeadbeef

#define mb_jhash_mix(a, b, c) {			\
	a -= c; a ^= mb_rol32(c, 4);  c += b;	\
	b -= a; b ^= mb_rol32(a, 6);  a += c;	\
	c -= b; c ^= mb_rol32(b, 8);  b += a;	\
	a -= c; a ^= mb_rol32(c, 16); c += b;	\
	b -= a; b ^= mb_rol32(a, 19); a += c;	\
	c -= b; c ^= mb_rol32(b, 4);  b += a;	\
}

#define mb_jhash_final(a, b, c) {		\
	c ^= b; c -= mb_rol32(b, 14);		\
	a ^= c; a -= mb_rol32(c, 11);		\
	b ^= a; b -= mb_rol32(a, 25);		\
	c ^= b; c -= mb_rol32(b, 16);		\
	a ^= c; a -= mb_rol32(c, 4);		\
	b ^= a; b -= mb_rol32(a, 14);		\
	c ^= b; c -= mb_rol32(b, 24);		\
}

static __always_inline __u32 mb_jhash_3words(__u32 a, __u32 b, __u32 c, __u32 initval)
{
	initval += MB_JHASH_INITVAL + (3 << 2);
	a += initval;
	b += initval;
	c += initval;
	c ^= b; c -= mb_rol32(b, 14);
	a ^= c; a -= mb_rol32(c, 11);
	b ^= a; b -= mb_rol32(a, 25);
	c ^= b; c -= mb_rol32(b, 16);
	a ^= c; a -= mb_rol32(c, 4);
	b ^= a; b -= mb_rol32(a, 14);
	c ^= b; c -= mb_rol32(b, 24);
	return c;
}
