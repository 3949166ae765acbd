package mutate

import "github.com/dns-tuner/dns-tuner/internal/libc"

// Honours reports whether a resolver reads an option. known is false where dns-tuner cannot
// tell (static non-Go binaries, unknown libc): such containers are never reported as ignoring.
// version is the libc version when known ("2.36"); an option newer than it is not honoured.
// What each libc reads is in libc.Table.
func Honours(l libc.Libc, option, version string) (honours, known bool) {
	return libc.Honours(l, option, version)
}

// advice says what to do instead when a libc ignores an option.
func advice(l libc.Libc, option string) string { return libc.Advice(l, option) }

// set makes a membership map (override.go checks container names with it).
func set(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}
