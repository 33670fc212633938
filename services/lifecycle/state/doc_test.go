package state

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestDocumentedTransitions keeps docs/lifecycle.md's table and the code's table the same, in
// both directions, so the document cannot rot.
func TestDocumentedTransitions(t *testing.T) {
	raw, err := os.ReadFile("../../../docs/lifecycle.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	begin, end := strings.Index(doc, "<!-- transitions:begin -->"), strings.Index(doc, "<!-- transitions:end -->")
	if begin < 0 || end < begin {
		t.Fatal("docs/lifecycle.md has no transitions table markers")
	}
	row := regexp.MustCompile(`^\| (\S+(?: \S+)?) \| (\S+) \| (\S+) \|`)
	documented := map[[2]State][]Actor{}
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
		documented[k] = append(documented[k], Actor(m[3]))
	}
	code := Transitions()
	for k, actors := range code {
		got := documented[k]
		slices.Sort(got)
		slices.Sort(actors)
		if !slices.Equal(got, actors) {
			t.Errorf("%s → %s: docs say %v, code says %v", k[0], k[1], got, actors)
		}
	}
	for k := range documented {
		if _, ok := code[k]; !ok {
			t.Errorf("%s → %s is documented but not in the code's table", k[0], k[1])
		}
	}
}
