// Package cluster holds end-to-end tests against the real single-node cluster of
// hack/cluster (kubelet, containerd, kube-proxy, CoreDNS): they run only inside the cluster's
// network namespace (`make e2e-cluster`, or `hack/cluster/cluster.sh exec go test ...`), which
// sets CLUSTER_REGISTRY and KUBECONFIG, and are skipped otherwise and under -short.
package cluster

// probeC is the workload every test image runs: it prints its /etc/resolv.conf as the
// container sees it, then resolves each argument with getaddrinfo() (the libc it was linked
// against: glibc or musl) every PROBE_INTERVAL_MS milliseconds (once if unset), one line a
// lookup:
//
//	lookup NAME ok ADDR 1.2ms
//	lookup NAME fail -2 (Name or service not known) 5003.1ms
const probeC = `#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netdb.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

static double now_ms(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
	char line[1024];
	FILE *f = fopen("/etc/resolv.conf", "r");
	printf("resolv.conf-begin\n");
	while (f && fgets(line, sizeof line, f)) fputs(line, stdout);
	printf("resolv.conf-end\n");
	fflush(stdout);
	const char *iv = getenv("PROBE_INTERVAL_MS");
	int interval = iv ? atoi(iv) : 0;
	for (;;) {
		for (int i = 1; i < argc; i++) {
			struct addrinfo hints, *res = 0;
			memset(&hints, 0, sizeof hints);
			hints.ai_family = AF_INET;
			hints.ai_socktype = SOCK_STREAM;
			double t0 = now_ms();
			int rc = getaddrinfo(argv[i], 0, &hints, &res);
			double ms = now_ms() - t0;
			if (rc == 0) {
				char addr[INET_ADDRSTRLEN];
				inet_ntop(AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr, addr, sizeof addr);
				printf("lookup %s ok %s %.1fms\n", argv[i], addr, ms);
				freeaddrinfo(res);
			} else {
				printf("lookup %s fail %d (%s) %.1fms\n", argv[i], rc, gai_strerror(rc), ms);
			}
			fflush(stdout);
		}
		if (interval <= 0) break;
		usleep(interval * 1000);
	}
	for (;;) pause();
}
`

// probeGo is probeC for Go's pure resolver (CGO_ENABLED=0), with the same output.
const probeGo = `package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"
)

func main() {
	b, _ := os.ReadFile("/etc/resolv.conf")
	fmt.Printf("resolv.conf-begin\n%sresolv.conf-end\n", b)
	interval, _ := strconv.Atoi(os.Getenv("PROBE_INTERVAL_MS"))
	for {
		for _, n := range os.Args[1:] {
			t0 := time.Now()
			addrs, err := net.DefaultResolver.LookupIP(context.Background(), "ip4", n)
			ms := float64(time.Since(t0).Microseconds()) / 1000
			if err == nil {
				fmt.Printf("lookup %s ok %s %.1fms\n", n, addrs[0], ms)
			} else {
				fmt.Printf("lookup %s fail -2 (%v) %.1fms\n", n, err, ms)
			}
		}
		if interval <= 0 {
			break
		}
		time.Sleep(time.Duration(interval) * time.Millisecond)
	}
	select {}
}
`
