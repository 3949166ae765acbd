package inspect

import (
	"slices"
	"strings"
	"testing"
)

// TestFollow: what a wrapper or shell runs, from argv alone, in each wrapper's own syntax.
func TestFollow(t *testing.T) {
	const p = "/usr/bin:/bin"
	for _, c := range []struct {
		argv      []string
		want      []string // nil: not a wrapper or shell
		path, dir string
		err       string // substring of the error: decided by argv[0]'s own file
	}{
		{argv: []string{"/app"}},
		{argv: []string{"/tini", "--", "/usr/local/bin/app", "-x"}, want: []string{"/usr/local/bin/app", "-x"}},
		{argv: []string{"tini-static", "-s", "-e", "143", "-vvv", "--", "app"}, want: []string{"app"}},
		{argv: []string{"/sbin/tini-static-amd64", "-p", "SIGTERM", "app"}, want: []string{"app"}},
		{argv: []string{"/usr/bin/dumb-init", "--rewrite", "15:2", "-c", "--", "app"}, want: []string{"app"}},
		{argv: []string{"dumb-init", "--rewrite=15:2", "app"}, want: []string{"app"}},
		{argv: []string{"catatonit", "-g", "--", "app"}, want: []string{"app"}},
		{argv: []string{"catatonit", "-P"}, err: "runs no program"},
		{argv: []string{"/init", "app", "serve"}, want: []string{"app", "serve"}},
		{argv: []string{"/init"}, err: "no program"},
		{argv: []string{"gosu", "nobody:nogroup", "app"}, want: []string{"app"}},
		{argv: []string{"su-exec", "1000", "/app", "a"}, want: []string{"/app", "a"}},
		{argv: []string{"setpriv", "--reuid=1000", "--regid", "1000", "--init-groups", "--", "app"}, want: []string{"app"}},
		{argv: []string{"chpst", "-u", "app:app", "-o", "1024", "-P", "app"}, want: []string{"app"}},
		{argv: []string{"/usr/bin/env", "-i", "LANG=C", "PATH=/opt/bin", "app"}, want: []string{"app"}, path: "/opt/bin"},
		{argv: []string{"env", "-C", "/srv", "-u", "HOME", "./run"}, want: []string{"./run"}, dir: "/srv"},
		{argv: []string{"/usr/bin/env", "-S node --max-old-space-size=100", "/srv/x.js"}, want: []string{"node", "--max-old-space-size=100", "/srv/x.js"}},
		{argv: []string{"env"}, err: "no program"},
		{argv: []string{"nice", "-n", "10", "app"}, want: []string{"app"}},
		{argv: []string{"nice", "-10", "app"}, want: []string{"app"}},
		{argv: []string{"exec", "-a", "name", "app"}, want: []string{"app"}},
		{argv: []string{"busybox", "env", "app"}, want: []string{"app"}},
		{argv: []string{"busybox", "wget"}},
		// shells
		{argv: []string{"/bin/sh", "/entrypoint.sh"}},
		{argv: []string{"bash"}},
		{argv: []string{"sh", "-c", "exec /opt/app/server --port 80"}, want: []string{"/opt/app/server", "--port", "80"}},
		{argv: []string{"/bin/bash", "-c", "./run.sh && app"}, want: []string{"app"}},
		{argv: []string{"sh", "-ec", "cd /srv; export PATH=/srv/bin:$PATH\nexec gosu app 'my server' >>/var/log/x 2>&1"},
			want: []string{"gosu", "app", "my server"}, dir: "/srv", path: "/srv/bin:" + p},
		{argv: []string{"sh", "-c", `exec "$@"`, "sh", "/app", "a b"}, want: []string{"/app", "a b"}},
		{argv: []string{"sh", "-c", `exec $0 --flag`, "/app"}, want: []string{"/app", "--flag"}},
		{argv: []string{"sh", "-c", `exec "$1" "-v"`, "sh", "/app"}, want: []string{"/app", "-v"}},
		{argv: []string{"sh", "-c", `exec /opt/$1/"bin-$2"`, "sh", "x", "y"}, want: []string{"/opt/x/bin-y"}},
		{argv: []string{"sh", "-c", `exec "$"app`}, want: []string{"$app"}},
		{argv: []string{"sh", "-euo", "pipefail", "-c", `PATH=/x app "$HOME" # comment`}, want: []string{"app", ""}, path: "/x"},
		{argv: []string{"sh", "-c", "echo start; app\n"}, want: []string{"app"}},
		{argv: []string{"sh", "-c", `exec app; other`}, want: []string{"app"}},
		{argv: []string{"busybox", "sh", "-c", "exec app"}, want: []string{"app"}},
		{argv: []string{"sh", "-c", "app | tee log"}, err: "pipe"},
		{argv: []string{"sh", "-c", "app || other"}, err: "||"},
		{argv: []string{"sh", "-c", "app &"}, err: "background"},
		{argv: []string{"sh", "-c", "exec $(which app)"}, err: "command substitution"},
		{argv: []string{"sh", "-c", "exec `which app`"}, err: "command substitution"},
		{argv: []string{"sh", "-c", "for i in 1 2; do app; done"}, err: "compound"},
		{argv: []string{"sh", "-c", "if true; then app; fi"}, err: "compound"},
		{argv: []string{"sh", "-c", "exec $APP"}, err: "known only at run time"},
		{argv: []string{"sh", "-c", "app; wait"}, err: "builtin wait"},
		{argv: []string{"sh", "-c", "exec 'app"}, err: "unterminated"},
		{argv: []string{"sh", "-c", "cat <<EOF\nx\nEOF"}, err: "here-document"},
		{argv: []string{"sh", "-c"}, err: "no script"},
		// A pod spec is user input: bounded work.
		{argv: []string{"sh", "-c", "exec app " + strings.Repeat("x", maxScript)}, err: "longer than"},
		{argv: append([]string{"env"}, slices.Repeat([]string{"-S"}, 100_000)...), err: "twice"},
	} {
		h, ok, err := follow(c.argv, "/", p)
		name := strings.Join(c.argv, " ")
		if len(name) > 80 {
			name = name[:80] + "…"
		}
		switch {
		case c.want == nil && c.err == "":
			if ok {
				t.Errorf("%s: followed to %q, %v; want not a wrapper", name, h.argv, err)
			}
		case c.err != "":
			if !ok || err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: %q, %v, %v; want error %q", name, h.argv, ok, err, c.err)
			}
		default:
			if !ok || err != nil || !slices.Equal(h.argv, c.want) || h.path != c.path || h.dir != c.dir {
				t.Errorf("%s: %q path=%q dir=%q, %v, %v; want %q path=%q dir=%q", name, h.argv, h.path, h.dir, ok, err, c.want, c.path, c.dir)
			}
		}
	}
}
