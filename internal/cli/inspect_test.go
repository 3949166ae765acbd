package cli_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/dns-tuner/dns-tuner/internal/cli"
	"github.com/dns-tuner/dns-tuner/internal/inspect/imagetest"
	"github.com/dns-tuner/dns-tuner/internal/libc"
	"github.com/dns-tuner/dns-tuner/internal/registry/registrytest"
)

type fixture struct {
	host, authHost string
	glibc, musl    string // image references
	glibcDigest    v1.Hash
	index          string
	goArmDigest    v1.Hash
	private        string
}

func setup(t *testing.T) fixture {
	t.Helper()
	b := imagetest.NewBuilder(t)
	f := fixture{host: imagetest.Registry(t), authHost: imagetest.AuthRegistry(t, imagetest.User, imagetest.Password)}
	glibcImg := b.Image(imagetest.GlibcDynamic)
	f.glibc = imagetest.Push(t, f.host, "app/glibc:1", glibcImg).String()
	f.glibcDigest, _ = glibcImg.Digest()
	f.musl = imagetest.Push(t, f.host, "app/musl:1", b.Image(imagetest.MuslDynamic)).String()
	arm := b.Image(imagetest.GoStaticArm64)
	f.goArmDigest, _ = arm.Digest()
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: b.Image(imagetest.MuslDynamic), Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}})
	f.index = imagetest.PushIndex(t, f.host, "app/multi:1", idx).String()
	f.private = imagetest.Push(t, f.authHost, "private/app:1", glibcImg,
		imagetestAuth()).String()
	// Credentials come from the docker config, as `docker login` leaves them.
	dir := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte(imagetest.User + ":" + imagetest.Password))
	cfg := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, f.authHost, auth)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", dir)
	return f
}

func run(args ...string) (string, string, error) {
	var stdout, stderr bytes.Buffer
	err := cli.Execute(context.Background(), &cli.Inspect{}, args, &stdout, &stderr)
	return stdout.String(), stderr.String(), err
}

func TestInspect(t *testing.T) {
	f := setup(t)
	insecure := []string{"--insecure-registry", f.host, "--insecure-registry", f.authHost}

	t.Run("json", func(t *testing.T) {
		out, stderr, err := run(append([]string{f.glibc, f.musl, f.private, "--json"}, insecure...)...)
		if err != nil {
			t.Fatalf("%v\n%s", err, stderr)
		}
		var rs []cli.InspectResult
		if err := json.Unmarshal([]byte(out), &rs); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		want := []struct {
			image  string
			libc   libc.Libc
			digest v1.Hash
		}{{f.glibc, libc.GLibc, f.glibcDigest}, {f.musl, libc.Musl, v1.Hash{}}, {f.private, libc.GLibc, f.glibcDigest}}
		if len(rs) != len(want) {
			t.Fatalf("%d results, want %d", len(rs), len(want))
		}
		for i, w := range want {
			r := rs[i]
			if r.Image != w.image || r.Libc != w.libc || r.Error != "" {
				t.Errorf("%s: %s error %q, want %s", r.Image, r.Libc, r.Error, w.libc)
			}
			if !strings.Contains(r.Evidence, "PT_INTERP") || !strings.Contains(r.Evidence, "layer") {
				t.Errorf("%s: evidence %q does not name the file and layer", r.Image, r.Evidence)
			}
			if w.digest != (v1.Hash{}) && r.Digest != w.digest.String() {
				t.Errorf("%s: digest %s, want %s", r.Image, r.Digest, w.digest)
			}
			if r.Bytes <= 0 || r.Duration <= 0 || r.Took == "" {
				t.Errorf("%s: bytes %d, duration %s: want both measured", r.Image, r.Bytes, r.Duration)
			}
		}
		if strings.Contains(out+stderr, imagetest.Password) {
			t.Error("output contains the registry password")
		}
	})

	t.Run("table", func(t *testing.T) {
		out, stderr, err := run(append(insecure, f.glibc, f.musl)...)
		if err != nil {
			t.Fatalf("%v\n%s", err, stderr)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 3 {
			t.Fatalf("want a header and 2 rows:\n%s", out)
		}
		for _, col := range []string{"IMAGE", "LIBC", "VERSION", "SOURCE", "DIGEST", "FETCHED", "TOOK", "EVIDENCE"} {
			if !strings.Contains(lines[0], col) {
				t.Errorf("header lacks %s: %q", col, lines[0])
			}
		}
		// Columns line up: LIBC starts at the same offset on every line.
		col := strings.Index(lines[0], "LIBC")
		for i, want := range []libc.Libc{libc.GLibc, libc.Musl} {
			row := lines[i+1]
			if !strings.HasPrefix(row[col:], string(want)+" ") {
				t.Errorf("row %d: LIBC column is not %s: %q", i, want, row)
			}
			if !strings.Contains(row, "sha256:") || !strings.Contains(row, "PT_INTERP") {
				t.Errorf("row %d lacks digest or evidence: %q", i, row)
			}
		}
		if !strings.Contains(lines[1], f.glibcDigest.String()) {
			t.Errorf("glibc row does not show digest %s: %q", f.glibcDigest, lines[1])
		}
	})

	t.Run("platform", func(t *testing.T) {
		for _, tc := range []struct {
			platform string
			want     libc.Libc
		}{{"linux/amd64", libc.Musl}, {"linux/arm64", libc.Go}} {
			out, stderr, err := run(append(insecure, "--json", "--platform", tc.platform, f.index)...)
			if err != nil {
				t.Fatalf("%v\n%s", err, stderr)
			}
			var rs []cli.InspectResult
			if err := json.Unmarshal([]byte(out), &rs); err != nil {
				t.Fatal(err)
			}
			if len(rs) != 1 || rs[0].Libc != tc.want {
				t.Errorf("--platform %s: %+v, want %s", tc.platform, rs, tc.want)
			}
			if tc.want == libc.Go && rs[0].Digest != f.goArmDigest.String() {
				t.Errorf("--platform %s: digest %s, want the arm64 image %s", tc.platform, rs[0].Digest, f.goArmDigest)
			}
		}
	})

	t.Run("loopback refused without --insecure-registry", func(t *testing.T) {
		out, _, err := run("--json", f.glibc)
		if err == nil {
			t.Fatal("want an error")
		}
		var rs []cli.InspectResult
		if err := json.Unmarshal([]byte(out), &rs); err != nil {
			t.Fatal(err)
		}
		if len(rs) != 1 || rs[0].Libc != libc.Unknown || !strings.Contains(rs[0].Error, "refused") {
			t.Errorf("got %+v, want unknown with a refusal", rs)
		}
	})

	t.Run("private image without credentials", func(t *testing.T) {
		t.Setenv("DOCKER_CONFIG", t.TempDir())
		out, _, err := run(append(insecure, f.private)...)
		if err == nil || !strings.Contains(out, "auth") {
			t.Errorf("err %v, output:\n%s", err, out)
		}
	})

	t.Run("bad flags", func(t *testing.T) {
		for _, args := range [][]string{{}, {"--platform", "linux", f.glibc}, {"--nope", f.glibc}} {
			if _, _, err := run(args...); err == nil {
				t.Errorf("%q: want an error", args)
			}
		}
	})
}

func TestNeverDialsLoopbackWithoutInsecure(t *testing.T) {
	ln := registrytest.Listen(t)
	_, _, err := run("localhost:"+ln.Port+"/app:1", ln.Addr+"/app:1")
	if err == nil {
		t.Fatal("want an error")
	}
	if n := ln.Conns(); n != 0 {
		t.Errorf("listener accepted %d connections", n)
	}
}

func imagetestAuth() remote.Option {
	return remote.WithAuth(&authn.Basic{Username: imagetest.User, Password: imagetest.Password})
}
