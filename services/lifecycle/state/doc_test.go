package state

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// documented reads the transition table of docs/lifecycle.md: every legal edge and who may take
// it, as the design document states it.
func documented(t *testing.T) map[[2]State][]Actor {
	t.Helper()
	raw, err := os.ReadFile("../../../docs/lifecycle.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	begin, end := strings.Index(doc, "<!-- transitions:begin -->"), strings.Index(doc, "<!-- transitions:end -->")
	if begin < 0 || end < begin {
		t.Fatal("docs/lifecycle.md has no transitions table markers")
	}
	row := regexp.MustCompile(`^\| (\S+) \| (\S+) \| (\S+) \|`)
	out := map[[2]State][]Actor{}
	for _, line := range strings.Split(doc[begin:end], "\n") {
		m := row.FindStringSubmatch(line)
		if m == nil || m[1] == "from" || strings.HasPrefix(m[1], "---") {
			continue
		}
		from := State(m[1])
		if m[1] == "(new)" {
			from = None
		}
		k := [2]State{from, State(m[2])}
		out[k] = append(out[k], Actor(m[3]))
	}
	if len(out) == 0 {
		t.Fatal("docs/lifecycle.md's transitions table is empty")
	}
	return out
}
