// Command goprobe looks names up with Go's pure resolver (built with CGO_ENABLED=0), the way a
// static Go binary in a pod does. Usage and output are those of ../cprobe/probe.c.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"time"
)

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: goprobe SPACING_MICROSECONDS NAME...")
		os.Exit(2)
	}
	us, _ := strconv.Atoi(os.Args[1])
	spacing := time.Duration(us) * time.Microsecond
	names := os.Args[2:]
	base := time.Now().Add(10 * time.Millisecond)
	type result struct {
		d      time.Duration
		status string
		n      int
	}
	res := make([]result, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Until(base.Add(time.Duration(i) * spacing)))
			t0 := time.Now()
			// "ip": A and AAAA, as getaddrinfo(AF_UNSPEC).
			ips, err := net.DefaultResolver.LookupIP(context.Background(), "ip", name)
			res[i] = result{time.Since(t0), status(err), len(ips)}
		}()
	}
	wg.Wait()
	for i, r := range res {
		fmt.Printf("%d %d %s %d\n", i, r.d.Nanoseconds(), r.status, r.n)
	}
}

func status(err error) string {
	var dnsErr *net.DNSError
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return "EAI_NONAME"
	case errors.As(err, &dnsErr) && (dnsErr.IsTimeout || dnsErr.IsTemporary):
		return "EAI_AGAIN"
	}
	return "EAI_FAIL"
}
