// SPDX-License-Identifier: Apache-2.0
/* The syscall floor for the map bench: the same hash lookups/updates (4-byte keys, 8-byte
 * values, 1000 keys) straight from C through libbpf, no JavaScript. Prints JSON: operations
 * per second of wall time, and (the *Cpu fields) per second of this process's CPU time. */
#include <bpf/bpf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

/* user + system CPU time of this process: on a loaded machine it counts the work, not the
 * share of the CPUs the scheduler gave us */
static double cpu(void)
{
	struct rusage r;
	getrusage(RUSAGE_SELF, &r);
	return r.ru_utime.tv_sec + r.ru_stime.tv_sec + (r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
}

int main(int argc, char **argv)
{
	const double secs = argc > 1 ? atof(argv[1]) / 1000.0 : 0.7;
	const int batch = argc > 2;
	int fd = bpf_map_create(BPF_MAP_TYPE_HASH, "bench_floor", 4, 8, 4096, NULL);
	uint64_t v = 1;
	double t0, c0;
	long n;

	if (fd < 0)
		return 1;
	for (uint32_t i = 0; i < 1000; i++)
		bpf_map_update_elem(fd, &i, &v, 0);
	t0 = now();
	c0 = cpu();
	n = 0;
	while (now() - t0 < secs) {
		for (uint32_t i = 0; i < 1000; i++)
			bpf_map_lookup_elem(fd, &i, &v);
		n += 1000;
	}
	printf("{\"lookup\":%.0f,\"lookupCpu\":%.0f,", n / (now() - t0), n / (cpu() - c0));
	t0 = now();
	c0 = cpu();
	n = 0;
	while (now() - t0 < secs) {
		for (uint32_t i = 0; i < 1000; i++)
			bpf_map_update_elem(fd, &i, &v, 0);
		n += 1000;
	}
	printf("\"update\":%.0f,\"updateCpu\":%.0f", n / (now() - t0), n / (cpu() - c0));
	close(fd);
	if (!batch) {
		printf("}\n");
		return 0;
	}
	printf(",");

	/* batch: 100k entries into a fresh map, then read them all back */
	{
		const uint32_t N = 100000;
		uint32_t *k = malloc(4 * N), *k2 = malloc(4 * N), total = 0, cnt = N;
		uint64_t *val = malloc(8 * N), *v2 = malloc(8 * N), in = 0, out = 0;
		int first = 1;
		LIBBPF_OPTS(bpf_map_batch_opts, o);

		fd = bpf_map_create(BPF_MAP_TYPE_HASH, "bench_floor_b", 4, 8, N, NULL);
		for (uint32_t i = 0; i < N; i++) {
			k[i] = i;
			val[i] = i;
		}
		t0 = now();
		c0 = cpu();
		bpf_map_update_batch(fd, k, val, &cnt, &o);
		printf("\"batchUpdate\":%.0f,\"batchUpdateCpu\":%.0f,", N / (now() - t0), N / (cpu() - c0));
		t0 = now();
		c0 = cpu();
		while (total < N) {
			uint32_t c = N - total;
			int ret = bpf_map_lookup_batch(fd, first ? NULL : &in, &out, k2 + total, v2 + total, &c, &o);
			total += c;
			if (ret)
				break;
			in = out;
			first = 0;
		}
		printf("\"batchLookup\":%.0f,\"batchLookupCpu\":%.0f}\n", N / (now() - t0), N / (cpu() - c0));
		close(fd);
	}
	return 0;
}
