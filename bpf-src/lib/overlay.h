// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* The overlay between nodes: one VXLAN device per node in external (collect-metadata) mode,
 * its ifindex in mb_config.tunnel_ifindex (0: no overlay, e.g. native routing).
 *
 * Sending node: a packet whose destination the ipcache places behind another node
 * (mb_ipcache_value.tunnel_endpoint) gets a tunnel key with that node's address and, as the
 * VNI, the sender's security identity (as Cilium does), and is redirected to the VXLAN device;
 * its conntrack entry carries MB_CT_F_OVERLAY so later packets and replies of the flow take the
 * same way without another ipcache lookup. Receiving node: the program on the VXLAN device's
 * ingress takes the source identity from the VNI (lib/lxc.h, mb_from_overlay).
 *
 * The underlay is IPv4 (tunnel_endpoint is an IPv4 address); the inner packet may be either
 * family. Features: ENABLE_OVERLAY (without it nothing here is compiled and no flow is ever
 * sent to a tunnel). */
#pragma once

#include "lib/common.h"
#include "lib/conntrack.h"
#include "lib/drop_reasons.h"
#include "lib/ipcache.h"

/* Outer IPv4 TTL of encapsulated packets (IPDEFTTL). */
#define MB_OVERLAY_TTL		64

/* Bytes the encapsulation adds: outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8. A workload's MTU
 * is the underlay's minus this (@membrane/datapath: VXLAN_OVERHEAD, podMtu). */
#define MB_OVERLAY_OVERHEAD	50

#ifdef ENABLE_OVERLAY

/* The conntrack flag of a new flow to `remote` (the destination's ipcache entry, or NULL for a
 * local one): MB_CT_F_OVERLAY when the overlay is on and the entry names a tunnel endpoint. */
static __always_inline __u16 mb_overlay_flag(const struct mb_config *cfg,
					     const struct mb_ipcache_value *remote)
{
	if (remote && remote->tunnel_endpoint && cfg && cfg->tunnel_ifindex)
		return MB_CT_F_OVERLAY;
	return 0;
}

/* Does this flow's traffic go through the overlay? */
static __always_inline bool mb_overlay_flow(const struct mb_ct_entry *ct)
{
	return ct->flags & MB_CT_F_OVERLAY;
}

/* Encapsulate towards `endpoint` (the remote node, network order) with the VNI `identity`, then
 * redirect to the VXLAN device. Returns the redirect verdict or a DROP_* code. */
static __always_inline int mb_overlay_encap(struct __sk_buff *skb, const struct mb_config *cfg,
					    __be32 endpoint, __u32 identity)
{
	struct bpf_tunnel_key key = {
		.tunnel_id = identity,
		.remote_ipv4 = bpf_ntohl(endpoint),	/* the helper takes host order */
		.tunnel_ttl = MB_OVERLAY_TTL,
	};

	if (!endpoint || !cfg || !cfg->tunnel_ifindex)
		return DROP_NO_TUNNEL_ENDPOINT;
	if (bpf_skb_set_tunnel_key(skb, &key, sizeof(key), BPF_F_ZERO_CSUM_TX) < 0)
		return DROP_WRITE_ERROR;
	return bpf_redirect(cfg->tunnel_ifindex, 0);
}

/* The source identity of a packet from the overlay: its VNI. 0 (unknown) is refused, and so is
 * a packet without tunnel metadata (the device is not in external mode). Returns 0 or a DROP_*
 * code. */
static __always_inline int mb_overlay_identity(struct __sk_buff *skb, __u32 *identity)
{
	struct bpf_tunnel_key key = {};

	if (bpf_skb_get_tunnel_key(skb, &key, sizeof(key), 0) < 0)
		return DROP_NO_TUNNEL_KEY;
	if (key.tunnel_id == MB_ID_UNKNOWN)
		return DROP_INVALID_IDENTITY;
	*identity = key.tunnel_id;
	return 0;
}

/* Address a decapsulated frame to a local endpoint: destination its MAC, source its host-side
 * veth's (mb_endpoint keeps them in Ethernet header order). Returns 0 or a DROP_* code. */
static __always_inline int mb_overlay_set_macs(struct __sk_buff *skb,
					       const struct mb_endpoint *ep)
{
	if (bpf_skb_store_bytes(skb, 0, ep->mac, 2 * ETH_ALEN, 0) < 0)
		return DROP_WRITE_ERROR;
	return 0;
}

#else

static __always_inline __u16 mb_overlay_flag(const struct mb_config *cfg,
					     const struct mb_ipcache_value *remote)
{
	return 0;
}

static __always_inline bool mb_overlay_flow(const struct mb_ct_entry *ct)
{
	return false;
}

#endif /* ENABLE_OVERLAY */
