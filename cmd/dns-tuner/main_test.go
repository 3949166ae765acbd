package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	manifest := filepath.Join(t.TempDir(), "pod.yaml")
	if err := os.WriteFile(manifest, []byte(`apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, annotations: {dns-tuner.io/libc: musl}}
spec: {containers: [{name: app, image: registry.example/app:1}]}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args       []string
		wantOut    string
		wantErr    string
		wantStderr string // usage goes to stderr
	}{
		{args: nil, wantErr: "no command given"},
		{args: []string{"frobnicate"}, wantErr: `unknown command "frobnicate"`},
		{args: []string{"help"}, wantOut: "dns-tuner serve"},
		{args: []string{"version"}, wantOut: "dev"},
		{args: []string{"serve", "--log-format", "xml"}, wantErr: "--log-format"},
		{args: []string{"explain"}, wantErr: "give either -f FILE or --name POD"},
		{args: []string{"explain", "--no-inspect", "-f", manifest}, wantOut: "options ndots:5 timeout:2 attempts:10"},
		{args: []string{"explain", "--no-inspect", "--json", "-f", manifest}, wantOut: `"libc": "musl"`},
		{args: []string{"inspect"}, wantErr: "image", wantStderr: "Usage: dns-tuner inspect [flags] IMAGE..."},
		{args: []string{"inspect", "-h"}, wantStderr: "-insecure-registry"},
		{args: []string{"serve", "-h"}, wantStderr: "-webhook-read-timeout"},
		{args: []string{"serve", "extra"}, wantErr: "serve takes no arguments"},
		{args: []string{"explain", "-f", manifest, "extra"}, wantErr: "explain takes no arguments"},
		{args: []string{"version", "--bogus"}, wantErr: "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), tt.args, &out, &errOut)
			if !strings.Contains(errOut.String(), tt.wantStderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.wantStderr, errOut.String())
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v; stderr %s", err, errOut.String())
			}
			if !strings.Contains(out.String(), tt.wantOut) {
				t.Errorf("output lacks %q:\n%s", tt.wantOut, out.String())
			}
		})
	}
}

// TestPluginName: installed as kubectl-dns_tuner, dns-tuner is `kubectl dns-tuner` (kubectl's
// plugin convention) and says so in its errors.
func TestPluginName(t *testing.T) {
	for argv0, want := range map[string]string{
		"/usr/local/bin/kubectl-dns_tuner": "kubectl dns-tuner",
		"kubectl-dns_tuner.exe":            "kubectl dns-tuner",
		"./dns-tuner":                      "dns-tuner",
	} {
		if got := name(argv0); got != want {
			t.Errorf("name(%q) = %q, want %q", argv0, got, want)
		}
	}
}
