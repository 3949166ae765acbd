package verdicts

import (
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/dns-tuner/dns-tuner/internal/inspect"
	"github.com/dns-tuner/dns-tuner/internal/policy"
	"github.com/dns-tuner/dns-tuner/internal/registry"
)

// FromPolicy builds the registry-backed detector an inspection policy describes: the SSRF
// guard from its registry lists, an inspector bounded by its platform, byte cap and
// per-image timeout, and the verdict cache around it. o supplies credentials (Keychain),
// clock, log, cache sizes and BaseContext; FromPolicy sets Inspector, ParseReference,
// RemoteOptions and Timeout. Callers such as `dns-tuner explain` use it too, so that they see
// what admission sees.
func FromPolicy(in policy.Inspection, o Options) (*Cache, error) {
	g, err := registry.New(registry.Config{
		Allowed:  in.AllowedRegistries,
		Denied:   in.DeniedRegistries,
		Insecure: in.InsecureRegistries,
	})
	if err != nil {
		return nil, fmt.Errorf("inspection: %w", err)
	}
	plat := v1.Platform{OS: "linux", Architecture: "amd64"}
	if in.Platform != "" {
		p, err := v1.ParsePlatform(in.Platform)
		if err != nil || p.OS == "" || p.Architecture == "" {
			return nil, fmt.Errorf("inspection.platform %q: want os/arch[/variant]", in.Platform)
		}
		plat = *p
	}
	o.Inspector = inspect.New(inspect.Options{
		Platform:      plat,
		MaxBytes:      in.MaxBytesPerImage,
		Timeout:       in.PerImageTimeout.Duration,
		Transport:     g.Transport(),
		RemoteOptions: g.RetryOptions(),
	})
	o.ParseReference = g.ParseReference
	o.RemoteOptions = g.RemoteOptions()
	o.Timeout = in.PerImageTimeout.Duration
	return New(o), nil
}
