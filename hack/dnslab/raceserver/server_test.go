package raceserver

import (
	"net"
	"os"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func start(t *testing.T) *Server {
	t.Helper()
	if os.Geteuid() != 0 {
		if testing.Short() {
			t.Skip("binding port 53 needs root")
		}
		t.Fatal("binding port 53 needs root (run as root, or with -short to skip)")
	}
	s, err := Start(Config{Delay: 20 * time.Millisecond, Window: 50 * time.Millisecond,
		Services: []string{"web.default"}, External: []string{"example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func query(name string, qtype uint16, id uint16) []byte {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.Id = id
	b, _ := m.Pack()
	return b
}

// exchange sends the queries from one socket, each after the previous is answered when
// serial, all at once otherwise, and returns the answered ids within the deadline.
func exchange(t *testing.T, conn *net.UDPConn, serial bool, deadline time.Duration, qs ...[]byte) map[uint16]*dns.Msg {
	t.Helper()
	got := map[uint16]*dns.Msg{}
	read := func() bool {
		buf := make([]byte, 4096)
		_ = conn.SetReadDeadline(time.Now().Add(deadline))
		n, err := conn.Read(buf)
		if err != nil {
			return false
		}
		m := new(dns.Msg)
		if err := m.Unpack(buf[:n]); err != nil {
			t.Fatal(err)
		}
		got[m.Id] = m
		return true
	}
	for _, q := range qs {
		if _, err := conn.Write(q); err != nil {
			t.Fatal(err)
		}
		if serial {
			read()
		}
	}
	if !serial {
		for len(got) < len(qs) && read() {
		}
	}
	return got
}

func dial(t *testing.T, s *Server) *net.UDPConn {
	t.Helper()
	c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.ParseIP(s.IP()), Port: 53})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRace(t *testing.T) {
	s := start(t)
	tests := []struct {
		name    string
		serial  bool
		sockets int // 1: both queries from one socket; 2: one socket each
		answers int
	}{
		{name: "parallel pair from one socket: the second query is lost", sockets: 1, answers: 1},
		{name: "serialised pair from one socket (single-request): both answered", serial: true, sockets: 1, answers: 2},
		{name: "one socket per query (Go, single-request-reopen): both answered", sockets: 2, answers: 2},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tag := uint64(100 + i)
			a, aaaa := query(Tag("web", tag)+".default.svc.cluster.local", dns.TypeA, 1), query(Tag("web", tag)+".default.svc.cluster.local", dns.TypeAAAA, 2)
			var got map[uint16]*dns.Msg
			if tt.sockets == 1 {
				got = exchange(t, dial(t, s), tt.serial, 300*time.Millisecond, a, aaaa)
			} else {
				got = exchange(t, dial(t, s), false, 300*time.Millisecond, a)
				for k, v := range exchange(t, dial(t, s), false, 300*time.Millisecond, aaaa) {
					got[k] = v
				}
			}
			if len(got) != tt.answers {
				t.Fatalf("%d answers, want %d", len(got), tt.answers)
			}
			if st := s.Stats(tag); st.Queries != 2 || st.Dropped != 2-tt.answers {
				t.Errorf("stats %+v, want 2 queries, %d dropped", st, 2-tt.answers)
			}
		})
	}
}

func TestRetransmissionFromSameSocketIsAnswered(t *testing.T) {
	s := start(t)
	conn := dial(t, s)
	name := Tag("web", 7) + ".default.svc.cluster.local"
	got := exchange(t, conn, false, 200*time.Millisecond, query(name, dns.TypeA, 1), query(name, dns.TypeAAAA, 2))
	if len(got) != 1 {
		t.Fatalf("first round: %d answers, want 1", len(got))
	}
	// The resolver's retry: the entry is confirmed now, so nothing races.
	got = exchange(t, conn, false, 200*time.Millisecond, query(name, dns.TypeA, 3), query(name, dns.TypeAAAA, 4))
	if len(got) != 2 {
		t.Fatalf("retry: %d answers, want 2", len(got))
	}
	if st := s.Stats(7); st.Queries != 4 || st.Dropped != 1 {
		t.Errorf("stats %+v, want 4 queries, 1 dropped", st)
	}
}

func TestAnswers(t *testing.T) {
	s := start(t)
	tests := []struct {
		name    string
		qtype   uint16
		rcode   int
		answers int
	}{
		{"web-t1.default.svc.cluster.local", dns.TypeA, dns.RcodeSuccess, 1},
		{"web-t1.default.svc.cluster.local", dns.TypeAAAA, dns.RcodeSuccess, 0}, // NODATA: IPv4-only cluster
		{"web-t1.default.default.svc.cluster.local", dns.TypeA, dns.RcodeNameError, 0},
		{"example-t1.com.svc.cluster.local", dns.TypeA, dns.RcodeNameError, 0},
		{"example-t1.com", dns.TypeA, dns.RcodeSuccess, 1},
		{"example.org", dns.TypeA, dns.RcodeNameError, 0},
	}
	for _, proto := range []string{"udp", "tcp"} {
		for _, tt := range tests {
			t.Run(proto+"/"+tt.name+"/"+dns.TypeToString[tt.qtype], func(t *testing.T) {
				c := &dns.Client{Net: proto, Timeout: time.Second}
				m := new(dns.Msg)
				m.SetQuestion(dns.Fqdn(tt.name), tt.qtype)
				r, _, err := c.Exchange(m, net.JoinHostPort(s.IP(), "53"))
				if err != nil {
					t.Fatal(err)
				}
				if r.Rcode != tt.rcode || len(r.Answer) != tt.answers {
					t.Errorf("rcode %s with %d answers, want %s with %d", dns.RcodeToString[r.Rcode], len(r.Answer), dns.RcodeToString[tt.rcode], tt.answers)
				}
			})
		}
	}
	if st := s.Total(); st.TCP != len(tests) || st.Dropped != 0 {
		t.Errorf("totals %+v: want %d TCP queries and nothing dropped", st, len(tests))
	}
}

func TestStartMovesToAFreeAddress(t *testing.T) {
	a := start(t)
	b := start(t)
	if a.IP() == b.IP() {
		t.Fatalf("both servers on %s", a.IP())
	}
}

func TestTag(t *testing.T) {
	for _, tt := range []struct{ name, tagged string }{
		{"web", "web-t9"}, {"api.payments", "api-t9.payments"}, {"example.com", "example-t9.com"},
	} {
		got := Tag(tt.name, 9)
		if got != tt.tagged {
			t.Errorf("Tag(%q) = %q, want %q", tt.name, got, tt.tagged)
		}
		if name, tag := untag(got + ".default.svc.cluster.local."); tag != 9 || name != tt.name+".default.svc.cluster.local." {
			t.Errorf("untag(%q) = %q, %d", got, name, tag)
		}
	}
}

func startCfg(t *testing.T, cfg Config) *Server {
	t.Helper()
	if os.Geteuid() != 0 {
		if testing.Short() {
			t.Skip("binding port 53 needs root")
		}
		t.Fatal("binding port 53 needs root (run as root, or with -short to skip)")
	}
	cfg.Services = []string{"web.default"}
	s, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// Plain (the real-kernel lab's server) answers a parallel pair from one socket: the kernel,
// not the server, does the racing there.
func TestPlainAnswersEverything(t *testing.T) {
	s := startCfg(t, Config{Plain: true})
	name := Tag("web", 9) + ".default.svc.cluster.local"
	got := exchange(t, dial(t, s), false, 300*time.Millisecond, query(name, dns.TypeA, 1), query(name, dns.TypeAAAA, 2))
	if len(got) != 2 {
		t.Fatalf("%d answers, want 2", len(got))
	}
	if st := s.Stats(9); st.Queries != 2 || st.Dropped != 0 {
		t.Errorf("stats %+v, want 2 queries, none dropped", st)
	}
}

// A silent server (a restart) reads and ignores queries for the given time, then answers
// again: the queries are lost, not refused.
func TestSilence(t *testing.T) {
	s := startCfg(t, Config{Plain: true})
	conn := dial(t, s)
	name := Tag("web", 11) + ".default.svc.cluster.local"
	s.Silence(300 * time.Millisecond)
	if got := exchange(t, conn, false, 100*time.Millisecond, query(name, dns.TypeA, 1)); len(got) != 0 {
		t.Fatalf("answered while silent: %v", got)
	}
	time.Sleep(300 * time.Millisecond)
	if got := exchange(t, conn, false, 300*time.Millisecond, query(name, dns.TypeA, 2)); len(got) != 1 {
		t.Fatalf("%d answers after the silence, want 1", len(got))
	}
	if st := s.Stats(11); st.Queries != 2 || st.Ignored != 1 {
		t.Errorf("stats %+v, want 2 queries, 1 ignored", st)
	}
}

// In a namespace, the server takes the address it is given (no loopback check, no other
// address tried) and opens its sockets through InNamespace.
func TestInNamespace(t *testing.T) {
	called := false
	s := startCfg(t, Config{Addr: "127.0.10.200", Plain: true, InNamespace: func(fn func() error) error {
		called = true
		return fn()
	}})
	if !called || s.IP() != "127.0.10.200" {
		t.Errorf("InNamespace called %v, listening on %s", called, s.IP())
	}
	if _, err := Start(Config{Addr: "not-an-ip", InNamespace: func(fn func() error) error { return fn() }}); err == nil {
		t.Error("a bad address was accepted")
	}
}
