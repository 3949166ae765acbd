package mutate

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxWarning is the longest warning dns-tuner returns, in bytes: admission/v1 asks for 120
// characters or fewer and the API server may truncate longer ones. Details that do not fit
// go to annotations and `dns-tuner explain`.
const MaxWarning = 120

// ClipWarning shortens a warning to MaxWarning bytes, marking the cut with "...".
func ClipWarning(s string) string { return clip(s, MaxWarning) }

// clip shortens s to at most n bytes on a UTF-8 boundary, ending in "..." when cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	if n <= 3 {
		return s[:0]
	}
	cut := n - 3
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// quoted is a user-supplied value quoted for a warning, clipped so it cannot crowd out the
// rest of the message.
func quoted(s string) string { return strconv.Quote(clip(s, 24)) }

// nameList renders quoted names in at most room bytes: `"a", "b" and 3 more`, or ""
// when not even one name fits.
func nameList(names []string, room int) string {
	var b strings.Builder
	for i, n := range names {
		q := strconv.Quote(n)
		more := ""
		if rest := len(names) - i - 1; rest > 0 {
			more = fmt.Sprintf(" and %d more", rest)
		}
		sep := ""
		if i > 0 {
			sep = ", "
		}
		// Keep room for " and N more" unless this is the last name.
		if b.Len()+len(sep)+len(q)+len(more) > room {
			if i == 0 {
				return ""
			}
			return b.String() + fmt.Sprintf(" and %d more", len(names)-i)
		}
		b.WriteString(sep + q)
	}
	return b.String()
}

// withHint is w followed by hint when that fits in MaxWarning bytes, else w alone.
func withHint(w, hint string) string {
	if len(w)+len(hint) <= MaxWarning {
		return w + hint
	}
	return ClipWarning(w)
}

func countContainers(n int) string {
	if n == 1 {
		return "1 container"
	}
	return fmt.Sprintf("%d containers", n)
}
