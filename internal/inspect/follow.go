package inspect

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
)

// Following the process that resolves names: init wrappers (tini, gosu, env…) and `sh -c`
// scripts start the application rather than being it, so the verdict is the program they
// run. Everything here works on argv alone: no file is read to follow a wrapper.

// hop is one wrapper or shell followed: what runs next and how it was reached.
type hop struct {
	argv []string
	path string // PATH for what runs next ("" unchanged)
	dir  string // working directory for what runs next ("" unchanged)
	note string // for the evidence: "/tini", "sh -c" (never a script or env's assignments)
}

// wrapper is the argument syntax of a program that runs another one.
type wrapper struct {
	shortArg string   // short options taking a value (-e 143, -e143)
	longArg  []string // long options taking a value (--reuid 1000, --reuid=1000)
	users    int      // positional arguments before the program (gosu USER prog)
	noProg   string   // short options after which no program runs (catatonit -P)
	digits   bool     // -NUM is an option (nice -10)
}

var wrappers = map[string]wrapper{
	"tini":      {shortArg: "ep"},
	"dumb-init": {shortArg: "r", longArg: []string{"rewrite"}},
	"catatonit": {noProg: "P"},
	"gosu":      {users: 1},
	"su-exec":   {users: 1},
	"setpriv": {longArg: []string{"reuid", "regid", "ruid", "rgid", "euid", "egid", "groups", "inh-caps",
		"ambient-caps", "bounding-set", "securebits", "pdeathsig", "selinux-label", "apparmor-profile",
		"landlock-access", "landlock-rule", "seccomp-filter"}},
	"chpst": {shortArg: "uUbe/nlLmdopfcC"},
	"nice":  {shortArg: "n", longArg: []string{"adjustment"}, digits: true},
	"exec":  {shortArg: "a"},
	"s6":    {}, // s6-overlay's /init runs CMD as its main program
}

// maxScript bounds the -c scripts read (a pod spec is user input); maxNote the program
// names quoted in the evidence.
const (
	maxScript = 64 << 10
	maxNote   = 128
)

// noteOf is argv0 as the evidence shows it, cut to maxNote bytes.
func noteOf(argv0 string) string {
	if len(argv0) > maxNote {
		return argv0[:maxNote] + "…"
	}
	return argv0
}

var shells = map[string]bool{"sh": true, "ash": true, "bash": true, "dash": true, "zsh": true, "ksh": true, "mksh": true}

// wrapperName maps a program name to its entry in wrappers ("tini-static-amd64" → "tini").
func wrapperName(prog string) string {
	if prog == "/init" {
		return "s6"
	}
	b := path.Base(prog)
	for _, w := range []string{"tini", "dumb-init"} { // release assets carry suffixes
		if b == w || strings.HasPrefix(b, w+"-") || strings.HasPrefix(b, w+"_") {
			return w
		}
	}
	if _, ok := wrappers[b]; ok && b != "s6" {
		return b
	}
	if b == "env" || shells[b] || b == "busybox" {
		return b
	}
	return ""
}

// follow returns what argv runs when argv[0] (by name) is a wrapper or a shell. ok is false
// when it is neither. err says why a wrapper or shell's argv cannot be followed; its own
// file then decides. workdir and pathVar are the environment argv runs in.
func follow(argv []string, workdir, pathVar string) (h hop, ok bool, err error) {
	if len(argv) == 0 {
		return hop{}, false, nil
	}
	name := wrapperName(argv[0])
	switch {
	case name == "":
		return hop{}, false, nil
	case name == "busybox":
		// busybox runs the applet named by argv[1]; it is followed only when that applet is.
		if len(argv) < 2 || wrapperName(argv[1]) == "" || wrapperName(argv[1]) == "busybox" {
			return hop{}, false, nil
		}
		h, ok, err := follow(argv[1:], workdir, pathVar)
		h.note = "busybox " + h.note
		return h, ok, err
	case shells[name]:
		return followShell(argv, workdir, pathVar)
	case name == "env":
		return followEnv(argv, false)
	}
	w := wrappers[name]
	i := 1
	for ; i < len(argv); i++ {
		a := argv[i]
		if a == "--" {
			i++
			break
		}
		if len(a) < 2 || a[0] != '-' {
			break
		}
		if long, ok := strings.CutPrefix(a, "--"); ok {
			n, _, hasVal := strings.Cut(long, "=")
			if !hasVal && slices.Contains(w.longArg, n) {
				i++
			}
			continue
		}
		if _, err := strconv.Atoi(a[1:]); err == nil && w.digits {
			continue
		}
		for j := 1; j < len(a); j++ {
			if strings.IndexByte(w.noProg, a[j]) >= 0 {
				return hop{}, true, fmt.Errorf("%s %s runs no program", path.Base(argv[0]), a)
			}
			if strings.IndexByte(w.shortArg, a[j]) >= 0 {
				if j == len(a)-1 {
					i++
				}
				break
			}
		}
	}
	i += w.users
	if i >= len(argv) {
		return hop{}, true, fmt.Errorf("%s is given no program", path.Base(argv[0]))
	}
	return hop{argv: argv[i:], note: noteOf(argv[0])}, true, nil
}

// followEnv follows `env [-i] [-u NAME] [-C DIR] [-S STRING] [NAME=VALUE]… PROG`. split is
// set once -S was applied: a second one is not (each would copy argv again).
func followEnv(argv []string, split bool) (hop, bool, error) {
	var h hop
	i := 1
	for ; i < len(argv); i++ {
		a := argv[i]
		switch {
		case a == "--":
			i++
		case a == "-u" || a == "-C" || a == "--unset" || a == "--chdir":
			i++
			if (a == "-C" || a == "--chdir") && i < len(argv) {
				h.dir = argv[i]
			}
			continue
		case strings.HasPrefix(a, "--chdir="):
			h.dir = strings.TrimPrefix(a, "--chdir=")
			continue
		case a == "-S" || a == "--split-string" || strings.HasPrefix(a, "-S") || strings.HasPrefix(a, "--split-string="):
			// -S splits its value into words (shebang lines: #!/usr/bin/env -S node --flag).
			v := strings.TrimPrefix(strings.TrimPrefix(a, "--split-string="), "-S")
			if a == "-S" || a == "--split-string" {
				if i++; i < len(argv) {
					v = argv[i]
				}
			}
			if split {
				return hop{}, true, fmt.Errorf("env -S given twice")
			}
			rest := append(strings.Fields(v), argv[min(i+1, len(argv)):]...)
			return followEnv(append([]string{argv[0]}, rest...), true)
		case strings.HasPrefix(a, "-") && len(a) > 1:
			continue
		}
		break
	}
	for ; i < len(argv) && strings.Contains(argv[i], "=") && !strings.HasPrefix(argv[i], "="); i++ {
		if v, ok := strings.CutPrefix(argv[i], "PATH="); ok {
			h.path = v
		}
	}
	if i >= len(argv) {
		return hop{}, true, fmt.Errorf("env is given no program")
	}
	h.argv, h.note = argv[i:], noteOf(argv[0]) // not the assignments: they may hold secrets
	return h, true, nil
}

// followShell follows `sh [options] -c SCRIPT [$0 [$1…]]` to the command SCRIPT leaves
// running: its first `exec`, else its last command. A shell running a script file or
// reading stdin is not followed (ok false): its own file decides.
func followShell(argv []string, workdir, pathVar string) (hop, bool, error) {
	i, hasC := 1, false
	for ; i < len(argv); i++ {
		a := argv[i]
		if a == "--" || a == "-" {
			i++
			break
		}
		if len(a) < 2 || (a[0] != '-' && a[0] != '+') {
			break
		}
		if strings.HasPrefix(a, "--") {
			if a == "--rcfile" || a == "--init-file" {
				i++
			}
			continue
		}
		if strings.ContainsRune(a[1:], 'c') && a[0] == '-' {
			hasC = true
		}
		if strings.ContainsRune(a[1:], 'o') || strings.ContainsRune(a[1:], 'O') {
			i++ // -o pipefail
		}
	}
	if !hasC {
		return hop{}, false, nil
	}
	if i >= len(argv) {
		return hop{}, true, fmt.Errorf("%s -c is given no script", path.Base(argv[0]))
	}
	if len(argv[i]) > maxScript {
		return hop{}, true, fmt.Errorf("%s -c: script longer than %d bytes", path.Base(argv[0]), maxScript)
	}
	// The note never quotes the script: it may hold secrets, and it goes into annotations.
	note := noteOf(argv[0]) + " -c"
	h, err := runScript(argv[i], argv[i+1:], workdir, pathVar)
	if err != nil {
		return hop{}, true, fmt.Errorf("%s: %w", note, err)
	}
	h.note = note
	return h, true, nil
}

// runScript finds the command a simple script leaves running. params are $0, $1….
func runScript(script string, params []string, workdir, pathVar string) (hop, error) {
	cmds, err := lex(script, params, pathVar)
	if err != nil {
		return hop{}, err
	}
	dir, pathNow := workdir, pathVar
	var last []word
	lastPath := ""
	for _, words := range cmds {
		// Leading NAME=VALUE words: for this command, or for the shell when nothing follows.
		assignPath := ""
		k := firstCommandWord(words)
		for _, w := range words[:k] {
			if v, ok := strings.CutPrefix(w.s, "PATH="); ok {
				assignPath = v
			}
		}
		words = words[k:]
		if len(words) == 0 {
			if assignPath != "" {
				pathNow = assignPath
			}
			continue
		}
		if words[0].dyn {
			return hop{}, fmt.Errorf("runs %s, known only at run time", noteOf(words[0].raw))
		}
		switch words[0].s {
		case "cd":
			if len(words) != 2 || words[1].dyn {
				return hop{}, fmt.Errorf("changes to a directory known only at run time")
			}
			dir = path.Join(dir, words[1].s)
			if path.IsAbs(words[1].s) {
				dir = path.Clean(words[1].s)
			}
			continue
		case "export":
			for _, w := range words[1:] {
				if v, ok := strings.CutPrefix(w.s, "PATH="); ok && !w.dyn {
					pathNow = v
				}
			}
			continue
		case "exec":
			rest := execArgs(words[1:])
			if len(rest) == 0 { // exec >log: redirects the shell itself
				continue
			}
			if rest[0].dyn {
				return hop{}, fmt.Errorf("runs %s, known only at run time", noteOf(rest[0].raw))
			}
			return scriptHop(rest, dir, workdir, pathNow, assignPath, pathVar), nil
		}
		last, lastPath = words, assignPath
	}
	if last == nil {
		return hop{}, fmt.Errorf("runs no command")
	}
	if builtins[last[0].s] {
		return hop{}, fmt.Errorf("ends with the builtin %s", last[0].s)
	}
	return scriptHop(last, dir, workdir, pathNow, lastPath, pathVar), nil
}

func scriptHop(words []word, dir, workdir, pathNow, assignPath, pathVar string) hop {
	var h hop
	h.argv = make([]string, len(words))
	for k, w := range words {
		h.argv[k] = w.s
	}
	if assignPath != "" {
		pathNow = assignPath
	}
	if pathNow != pathVar {
		h.path = pathNow
	}
	if dir != workdir {
		h.dir = dir
	}
	return h
}

// execArgs skips exec's own options (-a NAME, -c, -l).
func execArgs(words []word) []word {
	for len(words) > 0 && strings.HasPrefix(words[0].s, "-") && !words[0].dyn {
		if words[0].s == "--" {
			return words[1:]
		}
		if strings.Contains(words[0].s, "a") && len(words) > 1 {
			words = words[1:]
		}
		words = words[1:]
	}
	return words
}

// builtins that, as a script's last command, leave the shell itself running.
var builtins = map[string]bool{"wait": true, "true": true, "false": true, ":": true, "echo": true,
	"printf": true, "read": true, "set": true, "trap": true, "exit": true, "return": true, "eval": true,
	"source": true, ".": true, "unset": true, "shift": true, "umask": true, "ulimit": true, "test": true, "[": true}

// reserved words start compound commands this reader does not follow.
var reserved = map[string]bool{"if": true, "then": true, "else": true, "elif": true, "fi": true, "for": true,
	"while": true, "until": true, "do": true, "done": true, "case": true, "esac": true, "function": true,
	"{": true, "}": true, "!": true, "[[": true, "select": true, "coproc": true}

// word is one shell word after quote removal.
type word struct {
	s   string // value, expansions substituted where known
	raw string // as written, for messages
	dyn bool   // contains an expansion only known at run time
	// assign: a NAME=value word before the command (written unquoted)
	assign bool
}

// lex splits a script into simple commands, separated by ; && or newlines. Anything else —
// pipes, ||, background &, subshells, command substitution, here-documents, compound
// commands — is an error: the script is not followed.
func lex(src string, params []string, pathVar string) ([][]word, error) {
	var cmds [][]word
	var cur []word
	var w word
	var raw, val strings.Builder // the word as written, and its value
	inWord, skipNext := false, false
	endWord := func() {
		if !inWord {
			return
		}
		w.raw, w.s = raw.String(), val.String()
		if skipNext {
			skipNext = false
		} else {
			if len(cur) == 0 || cur[len(cur)-1].assign {
				if n, _, ok := strings.Cut(w.raw, "="); ok && isName(n) {
					w.assign = true
				}
			}
			cur = append(cur, w)
		}
		w, inWord = word{}, false
		raw.Reset()
		val.Reset()
	}
	endCmd := func() error {
		endWord()
		if skipNext {
			return fmt.Errorf("redirection without a target")
		}
		if len(cur) > 0 {
			if k := firstCommandWord(cur); k < len(cur) && reserved[cur[k].s] && !cur[k].dyn {
				return fmt.Errorf("uses the compound command %q", cur[k].s)
			}
			cmds = append(cmds, cur)
		}
		cur = nil
		return nil
	}
	// expand substitutes what is known before the container starts: $0…$9 from the
	// shell's arguments and $PATH. Anything else makes the word known only at run time.
	expand := func(name string) {
		switch {
		case name == "":
			val.WriteString("$") // a lone $ is literal
		case len(name) == 1 && name[0] >= '0' && name[0] <= '9':
			if n := int(name[0] - '0'); n < len(params) {
				val.WriteString(params[n])
			}
		case name == "PATH":
			val.WriteString(pathVar)
		default:
			w.dyn = true
		}
	}
	// dollar reads the parameter after the $ at src[i], quoted or not, and expands it; it
	// returns the index of the parameter's last byte.
	dollar := func(i int) (int, error) {
		n, adv, err := paramName(src[i+1:])
		if err != nil {
			return i, err
		}
		raw.WriteString(src[i+1 : i+1+adv])
		expand(n)
		return i + adv, nil
	}
	// allParams handles "$@" (or $@) written as a whole word: the parameters, one word each.
	allParams := func(i int) (int, bool) {
		if inWord {
			return 0, false
		}
		n := 0
		switch {
		case strings.HasPrefix(src[i:], `"$@"`):
			n = 4
		case strings.HasPrefix(src[i:], `$@`):
			n = 2
		default:
			return 0, false
		}
		if i+n < len(src) && strings.IndexByte(" \t\n;&|<>", src[i+n]) < 0 {
			return 0, false
		}
		for _, p := range params[min(1, len(params)):] {
			cur = append(cur, word{s: p, raw: p})
		}
		return n - 1, true
	}
	quoted := false // inside "…"
	for i := 0; i < len(src); i++ {
		c := src[i]
		if quoted {
			raw.WriteByte(c)
			switch c {
			case '"':
				quoted = false
			case '\\':
				if i+1 < len(src) && strings.IndexByte("$`\"\\\n", src[i+1]) >= 0 {
					i++
					raw.WriteByte(src[i])
					if src[i] != '\n' {
						val.WriteByte(src[i])
					}
				} else {
					val.WriteString("\\")
				}
			case '`':
				return nil, fmt.Errorf("uses command substitution")
			case '$':
				var err error
				if i, err = dollar(i); err != nil {
					return nil, err
				}
			default:
				val.WriteByte(c)
			}
			continue
		}
		switch c {
		case ' ', '\t':
			endWord()
		case '\n', ';':
			if c == ';' && i+1 < len(src) && src[i+1] == ';' {
				return nil, fmt.Errorf("uses case")
			}
			if err := endCmd(); err != nil {
				return nil, err
			}
		case '&':
			if i+1 < len(src) && src[i+1] == '&' {
				i++
				if err := endCmd(); err != nil {
					return nil, err
				}
				continue
			}
			return nil, fmt.Errorf("runs a command in the background")
		case '|':
			if i+1 < len(src) && src[i+1] == '|' {
				return nil, fmt.Errorf("uses ||")
			}
			return nil, fmt.Errorf("uses a pipe")
		case '(', ')':
			return nil, fmt.Errorf("uses a subshell")
		case '`':
			return nil, fmt.Errorf("uses command substitution")
		case '<', '>':
			// A redirection: [n]> word, >> word, >& n, < word. Drop it and its target.
			if inWord && isDigits(raw.String()) {
				w, inWord = word{}, false
				raw.Reset()
				val.Reset()
			}
			endWord()
			if c == '<' && i+1 < len(src) && src[i+1] == '<' {
				return nil, fmt.Errorf("uses a here-document")
			}
			for i+1 < len(src) && strings.IndexByte("<>&|", src[i+1]) >= 0 {
				i++
			}
			skipNext = true
		case '#':
			if !inWord {
				for i < len(src) && src[i] != '\n' {
					i++
				}
				i--
				continue
			}
			fallthrough
		default:
			if adv, ok := allParams(i); ok {
				i += adv
				continue
			}
			inWord = true
			raw.WriteByte(c)
			switch c {
			case '\'':
				j := strings.IndexByte(src[i+1:], '\'')
				if j < 0 {
					return nil, fmt.Errorf("has an unterminated quote")
				}
				val.WriteString(src[i+1 : i+1+j])
				raw.WriteString(src[i+1 : i+2+j])
				i += j + 1
			case '"':
				quoted = true
			case '\\':
				if i+1 < len(src) {
					i++
					raw.WriteByte(src[i])
					if src[i] != '\n' {
						val.WriteByte(src[i])
					}
				}
			case '$':
				var err error
				if i, err = dollar(i); err != nil {
					return nil, err
				}
			default:
				val.WriteByte(c)
			}
		}
	}
	if quoted {
		return nil, fmt.Errorf("has an unterminated quote")
	}
	if err := endCmd(); err != nil {
		return nil, err
	}
	return cmds, nil
}

// firstCommandWord skips leading assignments.
func firstCommandWord(ws []word) int {
	k := 0
	for k < len(ws) && ws[k].assign {
		k++
	}
	return k
}

// paramName reads the parameter after a '$': NAME, {NAME}, a digit or a special character.
// adv is how many bytes it took.
func paramName(s string) (name string, adv int, err error) {
	if s == "" {
		return "", 0, nil
	}
	switch c := s[0]; {
	case c == '(':
		return "", 0, fmt.Errorf("uses command substitution")
	case c == '{':
		j := strings.IndexByte(s, '}')
		if j < 0 {
			return "", 0, fmt.Errorf("has an unterminated ${")
		}
		n := s[1:j]
		if !isName(n) && (len(n) != 1 || strings.IndexByte("@*#?$!-0123456789", n[0]) < 0) {
			n = "{" + n + "}" // ${X:-y} and friends: not followed
		}
		return n, j + 1, nil
	case c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z':
		j := 1
		for j < len(s) && (s[j] == '_' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= '0' && s[j] <= '9') {
			j++
		}
		return s[:j], j, nil
	case strings.IndexByte("@*#?$!-0123456789", c) >= 0:
		return s[:1], 1, nil
	}
	return "", 0, nil // a lone $ is literal
}

func isName(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for _, c := range []byte(s) {
		if c != '_' && (c < 'A' || c > 'Z') && (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
