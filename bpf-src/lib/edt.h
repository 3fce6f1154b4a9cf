// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Bandwidth enforcement: Earliest Departure Time (EDT) egress shaping and token-bucket policing.
 *
 * Contract (mirrored by @membrane/bandwidth's throttle codec; a test reads this object's BTF and
 * compares every offset):
 *
 *   map mb_throttle: BPF_MAP_TYPE_HASH, pinned by name (LIBBPF_PIN_BY_NAME) so every object that
 *   includes this header under the same pin root shares one map, and the agent opens it as
 *   <pinRoot>/mb_throttle. max_entries MB_THROTTLE_MAX_ENTRIES.
 *
 *   map mb_throttle_on: BPF_MAP_TYPE_ARRAY of 65536 __u32, pinned by name: bit 1 << direction
 *   of slot <endpoint id> says the endpoint has an entry in that direction; slot 0 non-zero
 *   says the bits are kept (else every packet looks mb_throttle up). Written by
 *   BandwidthManager when given it (option `present`).
 *
 *   struct mb_throttle_key (4 bytes)
 *     0  __u16 endpoint_id
 *     2  __u8  direction        MB_DIR_INGRESS (1) or MB_DIR_EGRESS (2), lib/events.h numbers
 *     3  __u8  pad              zero
 *
 *   struct mb_throttle_val (80 bytes), written by the agent, state fields updated by BPF:
 *     0  __u64 bytes_per_sec    the limit; 0 = no limit (entry is ignored)
 *     8  __u64 horizon_ns       EDT drop horizon; 0 = MB_EDT_DEFAULT_HORIZON_NS (2 s)
 *    16  __u64 burst_ns         token-bucket depth as time at the rate; 0 = 1 s (burst = 1 s of
 *                               traffic). burst bytes = burst_ns * bytes_per_sec / 1e9
 *    24  __u64 t_last           EDT state: departure time of the last scheduled packet (ns,
 *                               CLOCK_MONOTONIC, same clock as bpf_ktime_get_ns)
 *    32  __u64 t_tat            token-bucket state (lib/token_bucket.h): the time at which the
 *                               bucket is full again; 0 = full bucket
 *    40  __u64 packets          packets passed (scheduled or admitted)
 *    48  __u64 bytes            bytes passed (wire length, GSO headers counted per segment)
 *    56  __u64 drops            packets dropped (horizon or rate limit)
 *    64  __u64 drop_bytes       bytes dropped
 *    72  __u32 mode             MB_THROTTLE_MODE_EDT (0): egress stamps skb->tstamp for fq;
 *                               MB_THROTTLE_MODE_POLICE (1): egress polices with the token bucket
 *                               (the fallback where the kernel lacks sch_fq). Ingress entries
 *                               always police.
 *    76  struct bpf_spin_lock lock   (4 bytes; userspace writes zero, the kernel ignores it)
 *
 * Functions (stable names; the endpoint program calls them behind ENABLE_BANDWIDTH):
 *
 *   int mb_edt_sched(struct __sk_buff *skb, __u16 endpoint_id)
 *     Egress of the endpoint. No entry or rate 0: returns 0. Mode EDT: per packet
 *     t = max(skb->tstamp, now); delay = wire_len * 1e9 / rate; t_next = t_last + delay;
 *     t_next <= t: t_last = t, packet leaves now (tstamp untouched);
 *     t_next - now > horizon: returns DROP_EDT_HORIZON (-162), t_last unchanged;
 *     else t_last = t_next and skb->tstamp = t_next (CLOCK_MONOTONIC delivery time).
 *     Mode POLICE: same as mb_tb_police(skb, endpoint_id, MB_DIR_EGRESS), so it may return
 *     DROP_RATE_LIMITED (-198).
 *
 *   int mb_tb_police(struct __sk_buff *skb, __u16 endpoint_id, __u8 direction)
 *     Token bucket (rate bytes_per_sec, depth burst_ns): returns 0 when the packet fits,
 *     DROP_RATE_LIMITED (-198) when it does not. Drops are counted in the entry.
 *
 * Without ENABLE_BANDWIDTH both functions are stubs that return 0 and no map is defined. */
#pragma once

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "lib/drop_reasons.h"
#include "lib/events.h"
#include "lib/token_bucket.h"

#define MB_THROTTLE_MAX_ENTRIES		16384
#define MB_EDT_DEFAULT_HORIZON_NS	2000000000ULL	/* 2 s, Cilium's default */
#define MB_TB_DEFAULT_BURST_NS		1000000000ULL	/* burst of one second of traffic */

#define MB_THROTTLE_MODE_EDT	0
#define MB_THROTTLE_MODE_POLICE	1

struct mb_throttle_key {
	__u16 endpoint_id;
	__u8  direction;	/* MB_DIR_INGRESS / MB_DIR_EGRESS */
	__u8  pad;
};

struct mb_throttle_val {
	__u64 bytes_per_sec;
	__u64 horizon_ns;
	__u64 burst_ns;
	__u64 t_last;
	__u64 t_tat;
	__u64 packets;
	__u64 bytes;
	__u64 drops;
	__u64 drop_bytes;
	__u32 mode;
	struct bpf_spin_lock lock;
};

_Static_assert(sizeof(struct mb_throttle_key) == 4, "struct mb_throttle_key must stay 4 bytes");
_Static_assert(sizeof(struct mb_throttle_val) == 80, "struct mb_throttle_val must stay 80 bytes");

#ifdef ENABLE_BANDWIDTH

#ifndef LIBBPF_PIN_BY_NAME
#define LIBBPF_PIN_BY_NAME 1
#endif

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MB_THROTTLE_MAX_ENTRIES);
	__type(key, struct mb_throttle_key);
	__type(value, struct mb_throttle_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mb_throttle SEC(".maps");

/* Which endpoints have limits, so that the rest skip the hash lookup above on every packet:
 * slot = endpoint id, value bits 1 << direction (MB_DIR_INGRESS / MB_DIR_EGRESS). Slot 0 is
 * the switch: non-zero once a BandwidthManager keeps the bits (it sets them after writing an
 * entry and clears them before deleting one); while it is zero every packet looks up
 * mb_throttle, so a writer that knows nothing of this map is still obeyed. Once it is on,
 * every writer of mb_throttle must keep the bits. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);	/* endpoint id; 0 = the switch */
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mb_throttle_on SEC(".maps");

/* Bytes on the wire. At tc egress the stack has set wire_len to every segment's headers plus
 * the payload of a GSO packet. At tc ingress (the host-side veth's hook, where the endpoint
 * program runs) wire_len is just skb->len, which counts the headers once for up to 64 KB of
 * segments: add (gso_segs - 1) header copies, the header length estimated as
 * len - gso_segs * gso_size (exact when every segment is full, as in bulk TCP; 0 otherwise). */
static __always_inline __u64 mb_bw_wire_len(struct __sk_buff *skb)
{
	__u64 len = skb->len;
	__u64 wire = skb->wire_len;
	__u64 segs = skb->gso_segs;
	__u64 size = skb->gso_size;

	if (wire > len)
		return wire;
	if (segs > 1 && size && len > segs * size)
		return len + (segs - 1) * (len - segs * size);
	return len;
}

static __always_inline struct mb_throttle_val *mb_throttle_lookup(__u16 endpoint_id,
								   __u8 direction)
{
	struct mb_throttle_key key = {
		.endpoint_id = endpoint_id,
		.direction = direction,
		.pad = 0,
	};
	__u32 slot = 0;
	__u32 *on = bpf_map_lookup_elem(&mb_throttle_on, &slot);

	if (on && *on) {
		slot = endpoint_id;
		on = bpf_map_lookup_elem(&mb_throttle_on, &slot);
		if (!on || !(*on & (1U << direction)))
			return NULL;
	}
	return bpf_map_lookup_elem(&mb_throttle, &key);
}

static __always_inline int mb_tb_police_entry(struct mb_throttle_val *v, __u64 len)
{
	__u64 rate = v->bytes_per_sec;
	__u64 depth, cost, now;
	int ok;

	if (!rate)
		return 0;
	depth = v->burst_ns ? v->burst_ns : MB_TB_DEFAULT_BURST_NS;
	cost = mb_tb_cost_ns(len, rate);
	now = bpf_ktime_get_ns();

	bpf_spin_lock(&v->lock);
	ok = mb_gcra_admit(&v->t_tat, now, cost, depth);
	if (ok) {
		v->packets += 1;
		v->bytes += len;
	} else {
		v->drops += 1;
		v->drop_bytes += len;
	}
	bpf_spin_unlock(&v->lock);
	return ok ? 0 : DROP_RATE_LIMITED;
}

/* Police one packet with the token bucket of (endpoint_id, direction). */
static __always_inline int mb_tb_police(struct __sk_buff *skb, __u16 endpoint_id, __u8 direction)
{
	struct mb_throttle_val *v = mb_throttle_lookup(endpoint_id, direction);

	if (!v)
		return 0;
	return mb_tb_police_entry(v, mb_bw_wire_len(skb));
}

/* Schedule one egress packet of endpoint_id (see the contract at the top). */
static __always_inline int mb_edt_sched(struct __sk_buff *skb, __u16 endpoint_id)
{
	struct mb_throttle_val *v = mb_throttle_lookup(endpoint_id, MB_DIR_EGRESS);
	__u64 rate, len, horizon, now, ts, t, t_next, delay;
	int verdict = 0;	/* 0 pass now, 1 pass with tstamp, <0 drop */

	if (!v)
		return 0;
	len = mb_bw_wire_len(skb);
	if (v->mode == MB_THROTTLE_MODE_POLICE)
		return mb_tb_police_entry(v, len);
	rate = v->bytes_per_sec;
	if (!rate)
		return 0;
	horizon = v->horizon_ns ? v->horizon_ns : MB_EDT_DEFAULT_HORIZON_NS;
	now = bpf_ktime_get_ns();

	/* Only a monotonic delivery time is comparable with now. A realtime receive timestamp
	 * (tstamp_type 0 on a forwarded packet) is decades ahead of CLOCK_MONOTONIC: ignore it. A
	 * type-0 stamp within the horizon is a monotonic EDT stamp from an older path (TCP, or a
	 * BPF_PROG_TEST_RUN context), so it counts. */
	ts = skb->tstamp;
	if (skb->tstamp_type != BPF_SKB_CLOCK_MONOTONIC && ts > now + horizon)
		ts = 0;
	t = ts > now ? ts : now;
	delay = len * MB_NSEC_PER_SEC / rate;

	bpf_spin_lock(&v->lock);
	t_next = v->t_last + delay;
	if (t_next <= t) {
		v->t_last = t;
		v->packets += 1;
		v->bytes += len;
	} else if (t_next - now > horizon) {
		v->drops += 1;
		v->drop_bytes += len;
		verdict = DROP_EDT_HORIZON;
	} else {
		v->t_last = t_next;
		v->packets += 1;
		v->bytes += len;
		verdict = 1;
	}
	bpf_spin_unlock(&v->lock);

	if (verdict == 1) {
		bpf_skb_set_tstamp(skb, t_next, BPF_SKB_CLOCK_MONOTONIC);
		return 0;
	}
	return verdict;
}

#else /* !ENABLE_BANDWIDTH */

static __always_inline int mb_edt_sched(struct __sk_buff *skb, __u16 endpoint_id)
{
	return 0;
}

static __always_inline int mb_tb_police(struct __sk_buff *skb, __u16 endpoint_id, __u8 direction)
{
	return 0;
}

#endif /* ENABLE_BANDWIDTH */
