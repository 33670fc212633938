package apierr

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestCodesAndMessages(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		err      error
		wantCode codes.Code
		wantMsg  string
	}{
		{"invalid argument", InvalidArgument("domain_count", "must be at least %d", 1), codes.InvalidArgument, "domain_count: must be at least 1"},
		{"invalid argument without field", InvalidArgument("", "bad"), codes.InvalidArgument, "bad"},
		{"not found", NotFound("order", "ord_1"), codes.NotFound, `order "ord_1" not found`},
		{"failed precondition", FailedPrecondition("order %s is PAID", "ord_1"), codes.FailedPrecondition, "order ord_1 is PAID"},
		{"already exists", AlreadyExists("request_id", "used"), codes.AlreadyExists, "request_id: used"},
		{"unauthenticated", Unauthenticated("no key"), codes.Unauthenticated, "no key"},
		{"permission denied", PermissionDenied("no"), codes.PermissionDenied, "no"},
		{"resource exhausted", ResourceExhausted("slow down"), codes.ResourceExhausted, "slow down"},
		{"unavailable", Unavailable("later"), codes.Unavailable, "later"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := status.Convert(tc.err)
			if st.Code() != tc.wantCode || st.Message() != tc.wantMsg {
				t.Errorf("status = %v %q, want %v %q", st.Code(), st.Message(), tc.wantCode, tc.wantMsg)
			}
			if !IsClientError(tc.err) || !IsClientError(fmt.Errorf("wrapped: %w", tc.err)) {
				t.Errorf("IsClientError(%v) = false", tc.err)
			}
		})
	}
}

// A field-naming InvalidArgument carries a BadRequest detail, so SDKs get the field without
// parsing the message; other errors carry none.
func TestBadRequestDetail(t *testing.T) {
	t.Parallel()
	st := status.Convert(InvalidArgument("page_size", "too big"))
	var found bool
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			v := br.GetFieldViolations()
			found = len(v) == 1 && v[0].GetField() == "page_size" && v[0].GetDescription() == "too big"
		}
	}
	if !found {
		t.Errorf("details = %v, want one BadRequest violation for page_size", st.Details())
	}
	for _, err := range []error{InvalidArgument("", "bad"), NotFound("order", "x"), AlreadyExists("request_id", "used")} {
		if d := status.Convert(err).Details(); len(d) != 0 {
			t.Errorf("%v has details %v, want none", err, d)
		}
	}
}

func TestIsClientErrorFalseForOthers(t *testing.T) {
	t.Parallel()
	for _, err := range []error{nil, errors.New("sql: no rows"), context.Canceled, status.Error(codes.NotFound, "x")} {
		if IsClientError(err) {
			t.Errorf("IsClientError(%v) = true, want false", err)
		}
	}
}

func TestCheckText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in         string
		text, note bool // accepted as one-line text, as a note
	}{
		{"Ops Team", true, true},
		{"Zoë Müller-Łukasz 東京", true, true},
		{"line one\nline two\tend", false, true},
		{"NUL\x00", false, false},
		{"escape \x1b[31m", false, false},
		{"DEL \x7f", false, false},
		{"C1 \u0085", false, false},
		{"not UTF-8 \xff", false, false},
	} {
		if err := CheckText("f", tc.in); (err == nil) != tc.text {
			t.Errorf("CheckText(%q) = %v, want accepted %v", tc.in, err, tc.text)
		}
		if err := CheckNote("f", tc.in); (err == nil) != tc.note {
			t.Errorf("CheckNote(%q) = %v, want accepted %v", tc.in, err, tc.note)
		}
	}
}

func TestQuote(t *testing.T) {
	t.Parallel()
	if got := Quote("dv-single"); got != `"dv-single"` {
		t.Errorf("Quote of a short value = %s", got)
	}
	long := Quote(strings.Repeat("é", 1000))
	if len(long) > 80 || !strings.HasSuffix(long, "…") {
		t.Errorf("Quote of 2000 bytes = %d bytes %q, want a short prefix marked …", len(long), long)
	}
}

func TestTruncate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"0123456789abc", 10, "0123456789…"},
		{"ééééé", 3, "é…"}, // never cuts a rune in half
	} {
		if got := Truncate(tc.in, tc.n, "…"); got != tc.want {
			t.Errorf("Truncate(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}
