// Package raceserver is a DNS server that models the conntrack insert race behind the 5 s
// (glibc) and 2.5 s (musl) lookup stalls in Kubernetes pods on kernels before 5.6, where the
// race drops a packet. With Config.Plain it answers everything, for the real-kernel lab.
//
// Both queries of a getaddrinfo() leave one UDP socket back to back. The kube-dns Service
// DNATs them, and the two packets race to insert the same conntrack entry: the loser is
// dropped. The model: the first query from a source ip:port creates an unconfirmed entry; a
// query from the same source that arrives while that entry is unconfirmed (the first query
// still unanswered, at most Window after it arrived) is dropped. Everything else is answered
// after Delay. Retransmissions from the same socket, serialised queries and one socket per
// query are never dropped, exactly as with the real race, and the model is deterministic:
// every parallel pair loses its second query.
package raceserver

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/miekg/dns"
)

// Config configures a Server. Zero values take the defaults below.
type Config struct {
	// Addr is the first loopback address tried; port 53 always, since resolv.conf cannot
	// name a port. If it is taken, the next addresses are tried (parallel test runs).
	Addr string
	// Delay is how long an answered query waits: the cluster DNS service time.
	Delay time.Duration
	// Window bounds how long a new entry stays unconfirmed.
	Window time.Duration
	// Expire is the idle time after which a source's entry is forgotten. The kernel keeps
	// one 30 s (nf_conntrack_udp_timeout), but the lab sends far more lookups than a pod, and
	// ephemeral ports reused within 30 s would skip the race: measured, up to a third of
	// musl's lookups in a full run. Forgetting sooner is safe, since no resolver resends a
	// parallel pair from the same socket after a timeout (glibc falls back to
	// single-request, musl resends only the lost query).
	Expire time.Duration
	// ClusterDomain is the cluster's DNS domain.
	ClusterDomain string
	// Services exist as <name>.<namespace>.svc.<ClusterDomain>, given as "name.namespace".
	Services []string
	// External names resolve as themselves (what CoreDNS would forward upstream).
	External []string
	// Plain turns the race model off: every query is answered. The real-kernel lab uses it,
	// where the kernel does the racing.
	Plain bool
	// InNamespace, when set, opens the sockets inside a network namespace (it runs the given
	// function there). Addr may then be any IPv4 address of that namespace, and no other
	// address is tried.
	InNamespace func(func() error) error
}

// Defaults.
const (
	DefaultAddr   = "127.0.10.10"
	DefaultDelay  = time.Millisecond
	DefaultWindow = 5 * time.Millisecond
	DefaultExpire = 2 * time.Second
)

func (c *Config) setDefaults() {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.Delay == 0 {
		c.Delay = DefaultDelay
	}
	if c.Window == 0 {
		c.Window = DefaultWindow
	}
	if c.Expire == 0 {
		c.Expire = DefaultExpire
	}
	if c.ClusterDomain == "" {
		c.ClusterDomain = "cluster.local"
	}
}

// Stats counts the queries of one lookup (or of all of them).
type Stats struct {
	Queries int // every query received, UDP and TCP, retransmissions included
	Dropped int // queries lost to the race
	TCP     int // queries received over TCP
	Ignored int // queries received while the server was silent
}

type entry struct {
	created   int64 // arrival of the query that created it, unix ns
	confirmed int64 // from then on no query of this source is dropped
	last      int64
	first     uint16 // id of the creating query, whose answer confirms the entry
}

// Server answers DNS on a loopback address, port 53, over UDP (raced) and TCP.
type Server struct {
	cfg   Config
	ip    string
	udp   *net.UDPConn
	tcp   *dns.Server
	names map[string]net.IP

	mu      sync.Mutex
	silent  time.Time // queries arriving before this are read and ignored (Silence)
	entries map[string]*entry
	stats   map[uint64]*Stats
	asked   map[uint64]map[string]int // per tag, queries per name (search step)
	total   Stats
	wg      sync.WaitGroup
	closed  bool
}

// Start listens on cfg.Addr:53, or on the next loopback address that is free.
func Start(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if cfg.Window <= 0 || cfg.Delay < 0 {
		return nil, fmt.Errorf("window must be positive and delay not negative")
	}
	s := &Server{cfg: cfg, entries: map[string]*entry{}, stats: map[uint64]*Stats{}, asked: map[uint64]map[string]int{}, names: map[string]net.IP{}}
	for i, svc := range cfg.Services {
		name, ns, ok := strings.Cut(svc, ".")
		if !ok {
			return nil, fmt.Errorf("service %q is not name.namespace", svc)
		}
		s.names[fmt.Sprintf("%s.%s.svc.%s.", name, ns, cfg.ClusterDomain)] = net.IPv4(10, 96, 0, byte(20+i))
	}
	for i, n := range cfg.External {
		s.names[dns.Fqdn(strings.ToLower(n))] = net.IPv4(192, 0, 2, byte(10+i))
	}

	ip := net.ParseIP(cfg.Addr).To4()
	if cfg.InNamespace != nil {
		if ip == nil {
			return nil, fmt.Errorf("address %q is not an IPv4 address", cfg.Addr)
		}
		if err := cfg.InNamespace(func() error { return s.listen(ip.String()) }); err != nil {
			return nil, err
		}
	} else {
		if ip == nil || !ip.IsLoopback() {
			return nil, fmt.Errorf("address %q is not an IPv4 loopback address", cfg.Addr)
		}
		var err error
		for try := 0; try < 64; try++ {
			if err = s.listen(ip.String()); err == nil {
				break
			}
			if !errors.Is(err, syscall.EADDRINUSE) {
				return nil, err
			}
			ip[3]++
		}
		if err != nil {
			return nil, err
		}
	}
	s.wg.Add(1)
	go s.serveUDP()
	return s, nil
}

func (s *Server) listen(ip string) error {
	udp, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(ip), Port: 53})
	if err != nil {
		return err
	}
	// Kernel receive timestamps make the race decision independent of how late this
	// process gets to read a packet on a busy machine.
	raw, err := udp.SyscallConn()
	if err == nil {
		var serr error
		err = raw.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1)
			// A large receive buffer, as a busy DNS server has: thousands of lookups a second
			// on a loaded machine otherwise overflow the default and lose queries that have
			// nothing to do with the race (measured: 5 s stalls even for Go).
			if serr == nil {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, 8<<20)
			}
		})
		if err == nil {
			err = serr
		}
	}
	if err != nil {
		udp.Close()
		return err
	}
	ln, err := net.Listen("tcp4", net.JoinHostPort(ip, "53"))
	if err != nil {
		udp.Close()
		return err
	}
	s.udp, s.ip = udp, ip
	started := make(chan struct{})
	s.tcp = &dns.Server{Listener: ln, Handler: dns.HandlerFunc(s.serveTCP), NotifyStartedFunc: func() { close(started) }}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); _ = s.tcp.ActivateAndServe() }()
	<-started // Shutdown before the server started would leave it running
	return nil
}

// IP is the loopback address the server listens on, for resolv.conf's nameserver line.
func (s *Server) IP() string { return s.ip }

// Close stops the server.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.udp.Close()
	_ = s.tcp.Shutdown()
	s.wg.Wait()
}

// Stats returns the counts for one lookup tag (see Tag).
func (s *Server) Stats(tag uint64) Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.stats[tag]; st != nil {
		return *st
	}
	return Stats{}
}

// Total returns the counts over all queries.
func (s *Server) Total() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

var tagRE = regexp.MustCompile(`^([^.]*)-t([0-9]+)(\..*)?$`)

// Tag marks a name so that the queries of one lookup are counted apart: the first label gets
// a "-t<n>" suffix ("web" → "web-t7", "example.com" → "example-t7.com"), which the server
// strips before answering.
func Tag(name string, tag uint64) string {
	first, rest, _ := strings.Cut(name, ".")
	out := first + "-t" + strconv.FormatUint(tag, 10)
	if rest != "" {
		out += "." + rest
	}
	return out
}

func untag(qname string) (string, uint64) {
	m := tagRE.FindStringSubmatch(qname)
	if m == nil {
		return qname, 0
	}
	tag, err := strconv.ParseUint(m[2], 10, 64)
	if err != nil {
		return qname, 0
	}
	return m[1] + m[3], tag
}

// Silence makes the server read and ignore every query for d from now, as a DNS server that
// restarts (or a backend that disappears) does: queries are lost, not refused.
func (s *Server) Silence(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.silent = time.Now().Add(d)
}

func (s *Server) isSilent(arrival int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return arrival < s.silent.UnixNano()
}

// Asked returns, for one lookup tag, how many queries each name (each search step) received.
func (s *Server) Asked(tag uint64) map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.asked[tag])
}

func (s *Server) count(tag uint64, qname string, dropped, tcp, ignored bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.asked[tag] == nil {
		s.asked[tag] = map[string]int{}
	}
	s.asked[tag][qname]++
	st := s.stats[tag]
	if st == nil {
		st = &Stats{}
		s.stats[tag] = st
	}
	for _, c := range []*Stats{st, &s.total} {
		c.Queries++
		if dropped {
			c.Dropped++
		}
		if tcp {
			c.TCP++
		}
		if ignored {
			c.Ignored++
		}
	}
}

func (s *Server) serveUDP() {
	defer s.wg.Done()
	buf := make([]byte, 65536)
	oob := make([]byte, 512)
	lastSweep := time.Now()
	for {
		n, oobn, _, src, err := s.udp.ReadMsgUDP(buf, oob)
		if err != nil {
			return
		}
		arrival := kernelTime(oob[:oobn])
		req := new(dns.Msg)
		if err := req.Unpack(buf[:n]); err != nil || len(req.Question) != 1 {
			continue
		}
		qname := strings.ToLower(req.Question[0].Name)
		_, tag := untag(qname)
		if s.isSilent(arrival) {
			s.count(tag, qname, false, false, true)
			continue
		}
		drop := !s.cfg.Plain && s.race(src.String(), req.Id, arrival)
		s.count(tag, qname, drop, false, false)
		if time.Since(lastSweep) > s.cfg.Expire {
			s.sweep(arrival)
			lastSweep = time.Now()
		}
		if drop {
			continue
		}
		resp := s.answer(req)
		time.AfterFunc(s.cfg.Delay, func() {
			s.mu.Lock()
			if s.closed {
				s.mu.Unlock()
				return
			}
			// Confirm before writing, so a query sent after this answer reached the client
			// is never taken for a racing one.
			if e := s.entries[src.String()]; e != nil && e.first == req.Id {
				e.confirmed = min(e.confirmed, time.Now().UnixNano())
			}
			s.mu.Unlock()
			if b, err := resp.Pack(); err == nil {
				_, _ = s.udp.WriteToUDP(b, src)
			}
		})
	}
}

// race decides whether a query loses the conntrack insert race.
func (s *Server) race(src string, id uint16, arrival int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[src]
	if e == nil || arrival-e.last > int64(s.cfg.Expire) {
		s.entries[src] = &entry{created: arrival, confirmed: arrival + int64(s.cfg.Window), last: arrival, first: id}
		return false
	}
	if arrival > e.last {
		e.last = arrival
	}
	return arrival < e.confirmed
}

func (s *Server) sweep(now int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, e := range s.entries {
		if now-e.last > int64(s.cfg.Expire) {
			delete(s.entries, k)
		}
	}
}

// kernelTime reads the SCM_TIMESTAMPNS control message; without one, now.
func kernelTime(oob []byte) int64 {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err == nil {
		for _, m := range msgs {
			if m.Header.Level == syscall.SOL_SOCKET && m.Header.Type == syscall.SCM_TIMESTAMPNS && len(m.Data) >= int(unsafe.Sizeof(syscall.Timespec{})) {
				sec := int64(binary.NativeEndian.Uint64(m.Data[0:8]))
				nsec := int64(binary.NativeEndian.Uint64(m.Data[8:16]))
				return sec*1e9 + nsec
			}
		}
	}
	return time.Now().UnixNano()
}

func (s *Server) serveTCP(w dns.ResponseWriter, req *dns.Msg) {
	if len(req.Question) != 1 {
		return
	}
	qname := strings.ToLower(req.Question[0].Name)
	_, tag := untag(qname)
	if s.isSilent(time.Now().UnixNano()) {
		s.count(tag, qname, false, true, true)
		return // the client's TCP timeout, as with a server that does not answer
	}
	s.count(tag, qname, false, true, false)
	time.Sleep(s.cfg.Delay)
	_ = w.WriteMsg(s.answer(req))
}

// answer is what CoreDNS answers for an IPv4-only cluster: A for services and known external
// names, NOERROR without data (NODATA) for their AAAA, NXDOMAIN for everything else (the
// search-list misses that ndots:5 causes).
func (s *Server) answer(req *dns.Msg) *dns.Msg {
	resp := new(dns.Msg)
	resp.SetReply(req)
	resp.Authoritative = true
	resp.RecursionAvailable = true
	q := req.Question[0]
	name, _ := untag(strings.ToLower(q.Name))
	ip, ok := s.names[name]
	soa := &dns.SOA{
		Hdr:     dns.RR_Header{Name: dns.Fqdn(s.cfg.ClusterDomain), Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 30},
		Ns:      "ns.dns." + dns.Fqdn(s.cfg.ClusterDomain),
		Mbox:    "hostmaster." + dns.Fqdn(s.cfg.ClusterDomain),
		Serial:  1,
		Refresh: 7200, Retry: 1800, Expire: 86400, Minttl: 30,
	}
	switch {
	case !ok:
		resp.Rcode = dns.RcodeNameError
		resp.Ns = []dns.RR{soa}
	case q.Qtype == dns.TypeA && q.Qclass == dns.ClassINET:
		resp.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 30}, A: ip}}
	default:
		resp.Ns = []dns.RR{soa}
	}
	return resp
}
