// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Test/bench producer for @membrane/flows: every run copies the 120-byte struct mb_event carried
 * as packet data into the real `mb_events` ring buffer (lib/events.h), stamps the time and
 * varies the source port, so the flows pipeline is fed by the kernel exactly as the datapath
 * feeds it. A full ring counts a loss in `mb_events_lost`. */
#define MB_EVENTS_DEFINE_MAPS
#include "lib/events.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

__u32 seq;

SEC("tc")
int emit_event(struct __sk_buff *skb)
{
	struct mb_event *ev = mb_event_reserve();

	if (!ev)
		return 0;
	if (bpf_skb_load_bytes(skb, 0, ev, sizeof(*ev)) < 0) {
		bpf_ringbuf_discard(ev, 0);
		return 0;
	}
	ev->ktime_ns = bpf_ktime_get_ns();
	ev->sport = (__u16)(1024 + (__sync_fetch_and_add(&seq, 1) & 0x7fff));
	bpf_ringbuf_submit(ev, 0);
	return 1;
}
