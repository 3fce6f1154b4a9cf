// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Token bucket as a "virtual scheduling" rate check (GCRA), the form that needs no 128-bit math.
 *
 * A bucket of depth B bytes refilled at R bytes/s admits a packet of L bytes when it holds at
 * least L tokens. The same decision can be made with one timestamp instead of a token count:
 * keep `tat` (theoretical arrival time), the time at which the bucket would be full again.
 *
 *   cost    = L * 1e9 / R          (ns the bucket needs to refill L bytes)
 *   depth   = B * 1e9 / R          (ns of credit in a full bucket; "burst of one second" = 1e9)
 *   tat     = max(tat, now - depth)    (a bucket never holds more than B)
 *   admit  <=> tat + cost <= now       (enough tokens: L <= (now - tat) * R / 1e9)
 *   on admit: tat += cost          (take L tokens); on reject: tat unchanged (nothing taken)
 *
 * Tokens at time `now` are (now - tat) * R / 1e9, capped at B. Products stay below 2^64 for any
 * packet size (L <= 2^32) because the rate divides before anything is multiplied by a rate.
 * The TS model in @membrane/bandwidth (tokenBucketModel) implements the same arithmetic.
 *
 * This header has no maps: lib/edt.h owns the throttle map and calls mb_gcra_admit() under the
 * entry's spin lock. */
#pragma once

#include "vmlinux.h"

#define MB_NSEC_PER_SEC 1000000000ULL

/* Nanoseconds a bucket refilled at `bytes_per_sec` needs to earn `len` bytes (rounded up, so a
 * packet never costs less than its share). `bytes_per_sec` must be non-zero. */
static __always_inline __u64 mb_tb_cost_ns(__u64 len, __u64 bytes_per_sec)
{
	return (len * MB_NSEC_PER_SEC + bytes_per_sec - 1) / bytes_per_sec;
}

/* One admission decision. `*tat` is the bucket state (0 = never used: a full bucket).
 * Returns 1 and takes the tokens when the packet fits, 0 (state unchanged) when it does not. */
static __always_inline int mb_gcra_admit(__u64 *tat, __u64 now, __u64 cost_ns, __u64 depth_ns)
{
	__u64 t = *tat;
	__u64 floor = now > depth_ns ? now - depth_ns : 0;

	if (t < floor)
		t = floor;
	if (t + cost_ns > now)
		return 0;
	*tat = t + cost_ns;
	return 1;
}
