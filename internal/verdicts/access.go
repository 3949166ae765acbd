package verdicts

import (
	"context"
	"maps"
	"slices"
	"strings"

	"github.com/go-logr/logr"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/dns-tuner/dns-tuner/internal/libc"
	"github.com/dns-tuner/dns-tuner/internal/metrics"
)

// scope names the credentials a pod pulls with: two pods with the same scope get the same
// keychain. As a principal it is who a pull acted as; anonymous is the zero scope, which no
// pod has (serviceAccount defaults to "default").
type scope struct {
	namespace, serviceAccount string
	pullSecrets               string // sorted, deduplicated, comma-separated (names have no commas)
}

// anonymous is the principal of a pull that used no credentials.
var anonymous scope

func scopeOf(t libc.Target) scope {
	secrets := slices.Clone(t.PullSecrets)
	slices.Sort(secrets)
	secrets = slices.Compact(secrets)
	sa := t.ServiceAccount
	if sa == "" {
		sa = "default"
	}
	return scope{namespace: t.Namespace, serviceAccount: sa, pullSecrets: strings.Join(secrets, ",")}
}

// owned copies the strings before a cache keeps them: they may point into a whole admission
// request, which must not stay alive for a few bytes of key.
func (s scope) owned() scope {
	return scope{strings.Clone(s.namespace), strings.Clone(s.serviceAccount), strings.Clone(s.pullSecrets)}
}

// principal is who a pull of ref with kc acts as: anonymous when the keychain has nothing for
// that registry (so public images are shared by every pod), else the pod's credential scope.
func principal(kc authn.Keychain, ref name.Reference, s scope) scope {
	if a, err := kc.Resolve(ref.Context()); err == nil && a == authn.Anonymous {
		return anonymous
	}
	return s
}

// entry is a cached verdict and who may see it. A verdict is not secret, but whether a private
// image exists and what it contains is: a pod whose principal is not on the entry proves it
// could pull the digest (Access) before it is served.
type entry struct {
	v      libc.Verdict
	public bool           // someone pulled it anonymously
	scopes map[scope]bool // credential scopes that pulled it (copy on write)
}

func (e entry) allows(p scope) bool { return e.public || e.scopes[p] }

func (e entry) with(p scope) entry {
	if p == anonymous {
		e.public = true
		return e
	}
	e.scopes = maps.Clone(e.scopes)
	if e.scopes == nil {
		e.scopes = map[scope]bool{}
	}
	e.scopes[p.owned()] = true
	return e
}

func (e entry) hit() libc.Verdict {
	v := e.v
	v.Source = libc.SourceCache
	return v
}

// keychain returns the scope's credentials, cached for KeychainTTL. If they cannot be read
// (RBAC, API down) the pod is inspected anonymously: public images still work and nothing
// private is reachable.
func (c *Cache) keychain(ctx context.Context, t libc.Target, s scope, log logr.Logger) authn.Keychain {
	if kc, ok := c.keychains.get(s); ok && c.o.Clock.Now().Before(kc.expires) {
		return kc.val
	}
	r := <-c.keychainsIn.start(s, func() (authn.Keychain, error) {
		var kc authn.Keychain = anonymousKeychain{}
		if c.o.Keychain != nil {
			k, err := c.o.Keychain(ctx, t.Namespace, t.ServiceAccount, t.PullSecrets)
			if err != nil {
				metrics.RegistryErrors.WithLabelValues("credentials").Inc()
				log.Info("pull credentials unavailable; inspecting anonymously", "error", err.Error())
			} else {
				kc = k
			}
		}
		c.keychains.add(s.owned(), expiring[authn.Keychain]{val: kc, expires: c.o.Clock.Now().Add(c.o.KeychainTTL)})
		return kc, nil
	})
	if kc, _ := result[authn.Keychain](r); kc != nil {
		return kc
	}
	return anonymousKeychain{}
}

// keychainBytes estimates what a keychain keeps alive: the pull-secret bytes it was parsed
// from when it says (registry.PodKeychains), else a guess for a keychain that holds little.
func keychainBytes(kc authn.Keychain) int64 {
	if s, ok := kc.(interface{ Bytes() int64 }); ok {
		return s.Bytes()
	}
	return 4 << 10
}

func (c *Cache) headManifest(ctx context.Context, ref name.Digest, kc authn.Keychain) error {
	opts := append(slices.Clone(c.o.RemoteOptions), remote.WithContext(ctx), remote.WithAuthFromKeychain(kc))
	_, err := remote.Head(ref, opts...)
	return err
}

type anonymousKeychain struct{}

func (anonymousKeychain) Resolve(authn.Resource) (authn.Authenticator, error) {
	return authn.Anonymous, nil
}
