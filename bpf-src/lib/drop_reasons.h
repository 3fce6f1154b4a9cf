// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* Drop reasons: negative return codes of the datapath, numbered like Cilium's so that flows read
 * the same way in Hubble-style tools (a drop event carries the positive value, e.g. 133).
 * This header is the single source of truth: @membrane/datapath derives its TS enum from it
 * (a test parses this file and compares). Keep one `#define DROP_<NAME> -<n>` per line. */
#pragma once

#define DROP_INVALID_SIP		-132
#define DROP_POLICY			-133	/* policy denied (no allow entry) */
#define DROP_INVALID			-134	/* invalid packet */
#define DROP_CT_INVALID_HDR		-135
#define DROP_FRAG_NEEDED		-136
#define DROP_CT_UNKNOWN_PROTO		-137
#define DROP_UNKNOWN_L3			-139
#define DROP_MISSED_TAIL_CALL		-140
#define DROP_WRITE_ERROR		-141
#define DROP_UNKNOWN_L4			-142
#define DROP_UNKNOWN_ICMP_CODE		-143
#define DROP_UNKNOWN_ICMP_TYPE		-144
#define DROP_UNKNOWN_ICMP6_CODE		-145
#define DROP_UNKNOWN_ICMP6_TYPE		-146
#define DROP_NO_TUNNEL_KEY		-147	/* overlay packet without tunnel metadata */
#define DROP_UNKNOWN_TARGET		-150
#define DROP_UNROUTABLE			-151
#define DROP_CSUM_L3			-153
#define DROP_CSUM_L4			-154
#define DROP_CT_CREATE_FAILED		-155
#define DROP_INVALID_EXTHDR		-156
#define DROP_FRAG_NOSUPPORT		-157
#define DROP_NO_SERVICE			-158	/* service without a usable backend */
#define DROP_UNSUPP_SERVICE_PROTO	-159
#define DROP_EDT_HORIZON		-162	/* EDT: departure beyond the drop horizon */
#define DROP_NO_TUNNEL_ENDPOINT		-160	/* remote destination, no tunnel endpoint */
#define DROP_UNKNOWN_CT			-163
#define DROP_HOST_UNREACHABLE		-164
#define DROP_NO_CONFIG			-165	/* endpoint has no config entry */
#define DROP_UNSUPPORTED_L2		-166
#define DROP_NO_FIB			-169
#define DROP_INVALID_IDENTITY		-171
#define DROP_UNKNOWN_SENDER		-172
#define DROP_FRAG_NOT_FOUND		-175	/* a later fragment before the first (no ports) */
#define DROP_PROXY_LOOKUP_FAILED	-178
#define DROP_PROXY_SET_FAILED		-179
#define DROP_PROXY_UNKNOWN_PROTO	-180
#define DROP_POLICY_DENY		-181	/* explicit deny entry */
#define DROP_POLICY_AUTH_REQUIRED	-189
#define DROP_TTL_EXCEEDED		-196
#define DROP_RATE_LIMITED		-198	/* ingress/egress token bucket */

#define IS_DROP(ret) ((ret) <= -130 && (ret) >= -255)
