package verdicts

import (
	"reflect"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/dns-tuner/dns-tuner/internal/libc"
)

// Size estimates for the byte budgets. They err high: a string costs its length rounded up as
// the allocator does, and each entry adds the fixed cost of its key and value types in the
// LRU's list element and map slot (withFixed). The estimators below count what varies.

// heapString is what the allocator spends on a string of n bytes: small sizes round up to a
// size class (at most 1/8 more, plus alignment), large ones to whole 8 KiB pages.
func heapString(n int) int64 {
	switch {
	case n == 0:
		return 0
	case n > 32<<10:
		return int64((n + 8<<10 - 1) &^ (8<<10 - 1))
	}
	return int64(n + n/8 + 16)
}

func strs(ss ...string) int64 {
	var n int64
	for _, s := range ss {
		n += heapString(len(s))
	}
	return n
}

// withFixed adds to size the cost of one entry beyond what its strings point to: the list
// element (links, key, value, expiry) and the map slot (key, pointer, control byte, load
// factor).
func withFixed[K comparable, V any](size func(K, V) int64) func(K, V) int64 {
	k, v := int64(reflect.TypeFor[K]().Size()), int64(reflect.TypeFor[sized[V]]().Size())
	fixed := 64 + k + v + 2*(k+8)
	return func(key K, val V) int64 { return fixed + size(key, val) }
}

func (s scope) bytes() int64 { return strs(s.namespace, s.serviceAccount, s.pullSecrets) }

func hashBytes(h v1.Hash) int64 { return strs(h.Algorithm, h.Hex) }

func verdictBytes(v libc.Verdict) int64 {
	n := strs(string(v.Libc), string(v.Source), v.Evidence, v.Version, v.Digest, v.Reason)
	if v.CGO != nil {
		n += 8
	}
	return n
}

// scopeSlot is one scope in an entry's set: the map slot and its share of the map's groups.
var scopeSlot = 2 * int64(reflect.TypeFor[scope]().Size()+8)

func entryBytes(k verdictKey, e entry) int64 {
	n := hashBytes(k.digest) + strs(k.cmd) + verdictBytes(e.v)
	if e.scopes != nil {
		n += 64 // map header
	}
	for s := range e.scopes {
		n += scopeSlot + s.bytes()
	}
	return n
}

func tagBytes(k tagKey, e expiring[v1.Hash]) int64 {
	return k.principal.bytes() + strs(k.ref) + hashBytes(e.val)
}

func keychainEntryBytes(k scope, e expiring[authn.Keychain]) int64 {
	return k.bytes() + keychainBytes(e.val)
}

func failureBytes(k flightKey, f failure) int64 {
	n := k.scope.bytes() + strs(k.image, k.cmd, f.reason)
	if f.err != nil {
		n += 64 + strs(f.err.Error()) // a *cachedError
	}
	return n
}

// refBytes counts the image string and the parsed reference: its struct and up to three more
// strings about as long (repository, name, and a defaulted "index.docker.io/library/" part).
func refBytes(image string, _ parsedRef) int64 {
	return 128 + 4*heapString(len(image)+24)
}
