package verdicts

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/dns-tuner/dns-tuner/internal/libc"
)

// credKeychain holds credentials for every registry.
type credKeychain struct{ user string }

func (k credKeychain) Resolve(authn.Resource) (authn.Authenticator, error) {
	return &authn.Basic{Username: k.user, Password: "x"}, nil
}

// A verdict fetched with one scope's credentials is served to another scope only after that
// scope proves it can pull the digest.
func TestPrivateVerdictsNeedAccess(t *testing.T) {
	f := newFake()
	d := f.add("private.example.com/app:1", libc.GLibc)
	var accessChecks atomic.Int64
	c := newCache(f, nil, Options{
		Keychain: func(_ context.Context, ns, _ string, secrets []string) (authn.Keychain, error) {
			if len(secrets) == 0 {
				return anonymousKeychain{}, nil
			}
			return credKeychain{user: ns}, nil
		},
		Access: func(_ context.Context, ref name.Digest, kc authn.Keychain) error {
			accessChecks.Add(1)
			if k, ok := kc.(credKeychain); ok && k.user != "intruder" {
				return nil
			}
			return errors.New("401 Unauthorized")
		},
	})
	pod := func(ns string, secrets ...string) libc.Target {
		return libc.Target{Namespace: ns, Image: "private.example.com/app@" + d.String(), PullSecrets: secrets}
	}
	for _, s := range []struct {
		name   string
		target libc.Target
		want   libc.Libc
		checks int64
	}{
		{"owner inspects", pod("team-a", "pull"), libc.GLibc, 0},
		{"owner hits", pod("team-a", "pull"), libc.GLibc, 0},
		{"anonymous pod is refused", pod("team-b"), libc.Unknown, 1},
		{"anonymous refusal is cached", pod("team-b"), libc.Unknown, 1},
		{"pod with wrong credentials is refused", pod("intruder", "pull"), libc.Unknown, 2},
		{"another scope with access is served", pod("team-c", "pull"), libc.GLibc, 3},
		{"and remembered", pod("team-c", "pull"), libc.GLibc, 3},
	} {
		v := detect(t, c, s.target)
		if v.Libc != s.want || accessChecks.Load() != s.checks {
			t.Errorf("%s: %s (%s) after %d access checks, want %s after %d", s.name, v.Libc, v.Reason, accessChecks.Load(), s.want, s.checks)
		}
	}
	if n := f.inspects.Load(); n != 1 {
		t.Errorf("%d inspections, want 1", n)
	}
}

// A tag resolved with credentials is not reused for an anonymous pod: that would tell it
// what a private tag points to.
func TestTagsAreCachedPerPrincipal(t *testing.T) {
	f := newFake()
	f.add("private.example.com/app:1", libc.GLibc)
	c := newCache(f, nil, Options{
		Keychain: func(_ context.Context, ns, _ string, secrets []string) (authn.Keychain, error) {
			if len(secrets) == 0 {
				return anonymousKeychain{}, nil
			}
			return credKeychain{user: ns}, nil
		},
		Access: func(context.Context, name.Digest, authn.Keychain) error { return errors.New("denied") },
	})
	detect(t, c, libc.Target{Namespace: "a", Image: "private.example.com/app:1", PullSecrets: []string{"s"}})
	detect(t, c, libc.Target{Namespace: "b", Image: "private.example.com/app:1"})
	if n := f.resolves.Load(); n != 2 {
		t.Errorf("%d resolves, want 2 (one per principal)", n)
	}
}
