/* dnslab probe: getaddrinfo(AF_UNSPEC) as applications call it, built against glibc (gcc)
 * and musl (musl-gcc). Usage: probe SPACING_MICROSECONDS NAME...
 * Lookup i starts i*SPACING after the first, each on a thread of its own: stalled lookups
 * overlap instead of queueing, and glibc's per-thread resolver state (which turns on
 * single-request after a timeout) starts fresh, as for a new worker thread or process.
 * Prints one line per lookup: INDEX NANOSECONDS STATUS ADDRESSES. */
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

struct job {
	const char *name;
	struct timespec start;
	long long ns;
	int rc, naddr;
};

static long long now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void *lookup(void *arg) {
	struct job *j = arg;
	struct addrinfo hints, *res = NULL, *p;
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &j->start, NULL) != 0) {
	}
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC; /* A and AAAA; no AI_ADDRCONFIG, which would skip AAAA */
	hints.ai_socktype = SOCK_STREAM;
	long long t0 = now();
	j->rc = getaddrinfo(j->name, NULL, &hints, &res);
	j->ns = now() - t0;
	for (p = res; p; p = p->ai_next) j->naddr++;
	if (res) freeaddrinfo(res);
	return NULL;
}

static const char *status(int rc) {
	switch (rc) {
	case 0: return "ok";
	case EAI_NONAME: return "EAI_NONAME";
	case EAI_AGAIN: return "EAI_AGAIN";
	case EAI_FAIL: return "EAI_FAIL";
#ifdef EAI_NODATA
	case EAI_NODATA: return "EAI_NODATA";
#endif
	case EAI_SYSTEM: return "EAI_SYSTEM";
	}
	return "EAI_OTHER";
}

int main(int argc, char **argv) {
	if (argc < 3) {
		fprintf(stderr, "usage: %s SPACING_MICROSECONDS NAME...\n", argv[0]);
		return 2;
	}
	long long spacing = atoll(argv[1]) * 1000LL, base = now() + 10000000LL; /* threads first */
	int n = argc - 2;
	struct job *jobs = calloc(n, sizeof *jobs);
	pthread_t *th = calloc(n, sizeof *th);
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	for (int i = 0; i < n; i++) {
		long long at = base + i * spacing;
		jobs[i].name = argv[i + 2];
		jobs[i].start.tv_sec = at / 1000000000LL;
		jobs[i].start.tv_nsec = at % 1000000000LL;
		if (pthread_create(&th[i], &attr, lookup, &jobs[i]) != 0) {
			perror("pthread_create");
			return 1;
		}
	}
	for (int i = 0; i < n; i++) pthread_join(th[i], NULL);
	for (int i = 0; i < n; i++) printf("%d %lld %s %d\n", i, jobs[i].ns, status(jobs[i].rc), jobs[i].naddr);
	return 0;
}
