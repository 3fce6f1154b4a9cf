// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Loader test object: every map kind the loader handles (hash, per-CPU, LPM trie, map-in-map,
 * ring buffer), globals in .rodata/.data/.bss, and tc programs that use
 * them so BPF_PROG_TEST_RUN can observe the effects. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#define TC_ACT_OK 0
#define TC_ACT_SHOT 2

const volatile __u32 cfg_magic = 0;      /* .rodata: set by setGlobal before load */
const volatile __u64 cfg_wide = 0;       /* .rodata, 8 bytes */
__u32 seen_runs = 0;                     /* .bss */
__u32 verdict_override = TC_ACT_OK;      /* .data */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} hash_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} percpu_counts SEC(".maps");

struct lpm_v4_key {
	__u32 prefixlen;
	__u8 addr[4];
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 256);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_v4_key);
	__type(value, __u32);
} lpm_v4 SEC(".maps");

struct inner_map {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} inner_a SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 4);
	__type(key, __u32);
	__array(values, struct inner_map);
} outer SEC(".maps") = {
	.values = { [0] = &inner_a },
};

struct event32 {
	__u64 seq;
	__u64 magic;
	__u32 cpu;
	__u32 len;
	__u64 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} ev_state SEC(".maps"); /* [0] next sequence number, [1] reserve failures */

/* Counts runs per CPU, reports the globals through hash_map, looks the packet's source IPv4 up
 * in the LPM trie and stores the matched value under key 2, reads the inner map of outer[0]. */
SEC("tc")
int exercise(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	__u32 k0 = 0, k1 = 1, k2 = 2, k3 = 3;
	__u64 *pc = bpf_map_lookup_elem(&percpu_counts, &k0);
	__u64 magic = cfg_magic, wide = cfg_wide;

	if (pc)
		*pc += 1;
	__sync_fetch_and_add(&seen_runs, 1);
	bpf_map_update_elem(&hash_map, &k0, &magic, BPF_ANY);
	bpf_map_update_elem(&hash_map, &k1, &wide, BPF_ANY);

	if (data + 14 + 20 <= end) {
		struct lpm_v4_key key = { .prefixlen = 32 };
		__u8 *ip = data + 14;
		__builtin_memcpy(key.addr, ip + 12, 4);
		__u32 *v = bpf_map_lookup_elem(&lpm_v4, &key);
		__u64 found = v ? *v : 0xffffffff;
		bpf_map_update_elem(&hash_map, &k2, &found, BPF_ANY);
	}

	void *inner = bpf_map_lookup_elem(&outer, &k0);
	if (inner) {
		__u32 *iv = bpf_map_lookup_elem(inner, &k0);
		__u64 got = iv ? *iv : 0;
		bpf_map_update_elem(&hash_map, &k3, &got, BPF_ANY);
	}
	return verdict_override;
}

/* One 32-byte ring buffer event per run, numbered from ev_state[0]. */
SEC("tc")
int emit_event(struct __sk_buff *skb)
{
	__u32 k0 = 0, k1 = 1;
	__u64 *seq = bpf_map_lookup_elem(&ev_state, &k0);
	__u64 *lost = bpf_map_lookup_elem(&ev_state, &k1);
	struct event32 *e;

	if (!seq || !lost)
		return TC_ACT_OK;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		__sync_fetch_and_add(lost, 1);
		return TC_ACT_OK;
	}
	e->seq = __sync_fetch_and_add(seq, 1);
	e->magic = 0x6d656d6272616e65ULL; /* "membrane" */
	e->cpu = bpf_get_smp_processor_id();
	e->len = skb->len;
	e->pad = 0;
	bpf_ringbuf_submit(e, 0);
	return TC_ACT_OK;
}

/* Rewrites the first IPv4 byte of the payload after the Ethernet header to 0x45 and marks the
 * skb, so testRun can observe data out and ctx out. */
SEC("tc")
int rewrite(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	__u8 *p = data + 14;

	if ((void *)(p + 1) > end)
		return TC_ACT_SHOT;
	*p = 0x45;
	skb->mark = 0x1234;
	skb->priority = 7;
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
