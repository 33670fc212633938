package ids

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestNewIsValid(t *testing.T) {
	t.Parallel()
	now := time.Now()
	for _, k := range []Kind{Order, Bundle, Certificate, Account, APIKey, Application, Issuance, SupportCase} {
		id := New(k, now)
		if !strings.HasPrefix(id, string(k)+"_") || !Valid(k, id) {
			t.Errorf("New(%q) = %q, which is not Valid", k, id)
		}
		if err := Check("f", k, id); err != nil {
			t.Errorf("Check(%q) = %v, want nil", id, err)
		}
	}
}

// Ids sort by the time they were made (newest-first listings are ORDER BY id DESC), and ids made
// at the same instant still come out increasing and distinct.
func TestNewSortsByTime(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a, b := New(Order, t0), New(Order, t0.Add(time.Millisecond))
	if a >= b {
		t.Errorf("id made 1ms later does not sort after: %s >= %s", a, b)
	}
	seen := map[string]bool{}
	for range 1000 {
		id := New(Order, t0.Add(time.Hour))
		if seen[id] {
			t.Fatalf("duplicate id %s", id)
		}
		seen[id] = true
	}
}

func TestValid(t *testing.T) {
	t.Parallel()
	good := "01JD3Y4M6Q0H3T5R2E8W9XKZ7B"
	tests := []struct {
		name string
		kind Kind
		in   string
		want bool
	}{
		{"well formed", Order, "ord_" + good, true},
		{"lower case", Order, "ord_" + strings.ToLower(good), true},
		{"other kind", Bundle, "ord_" + good, false},
		{"kind prefix only", Order, "ord" + good, false},
		{"empty", Order, "", false},
		{"prefix alone", Order, "ord_", false},
		{"short", Order, "ord_" + good[:25], false},
		{"long", Order, "ord_" + good + "0", false},
		{"not base32 (U)", Order, "ord_" + good[:25] + "U", false},
		{"timestamp overflow", Order, "ord_8" + good[1:], false},
		{"space", Order, "ord_ " + good[1:], false},
		{"prefix of a longer kind", Kind("ca"), "case_" + good, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Valid(tc.kind, tc.in); got != tc.want {
				t.Errorf("Valid(%q, %q) = %v, want %v", tc.kind, tc.in, got, tc.want)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		wantMsg string // "" for no error
	}{
		{"valid", New(Order, time.Now()), ""},
		{"empty", "", "order_id: is required"},
		{"malformed", "ord_123", `order_id: malformed: want "ord_" followed by 26 base32 characters`},
		{"other kind", New(Bundle, time.Now()), "order_id: malformed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Check("order_id", Order, tc.in)
			if tc.wantMsg == "" {
				if err != nil {
					t.Errorf("Check(%q) = %v, want nil", tc.in, err)
				}
				return
			}
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("Check(%q) = %v, want InvalidArgument containing %q", tc.in, err, tc.wantMsg)
			}
		})
	}
}
