package pagetoken

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	f := Filter("acc_1", "PAID")
	tests := []Position{
		{Key: "ord_01JD3Y4M6Q0H3T5R2E8W9XKZ7B"},
		{Key: "bdl_01JD3Y4M6Q0H3T5R2E8W9XKZ7B", Seq: 3},
		{Key: "42"},
	}
	for _, want := range tests {
		tok := Encode(f, want)
		if strings.ContainsAny(tok, "=+/") {
			t.Errorf("Encode(%v) = %q, want URL-safe unpadded base64", want, tok)
		}
		got, ok, err := Decode(tok, f)
		if err != nil || !ok || got != want {
			t.Errorf("Decode(Encode(%v)) = %v, %v, %v; want %v, true, nil", want, got, ok, err, want)
		}
	}
}

func TestDecodeEmptyIsFirstPage(t *testing.T) {
	t.Parallel()
	pos, ok, err := Decode("", Filter("x"))
	if err != nil || ok || pos != (Position{}) {
		t.Errorf(`Decode("") = %v, %v, %v; want zero, false, nil`, pos, ok, err)
	}
}

// Filter separates its values, so ("ab", "c") and ("a", "bc") are different filters.
func TestFilterDistinguishesValues(t *testing.T) {
	t.Parallel()
	if Filter("ab", "c") == Filter("a", "bc") {
		t.Error(`Filter("ab", "c") == Filter("a", "bc")`)
	}
	if Filter("a", "") == Filter("a") {
		t.Error(`Filter("a", "") == Filter("a"): an empty filter value must still count`)
	}
}

func TestDecodeRejects(t *testing.T) {
	t.Parallel()
	f := Filter("acc_1", "")
	b64 := base64.RawURLEncoding.EncodeToString
	tests := []struct {
		name    string
		token   string
		wantMsg string
	}{
		{"other filter", Encode(Filter("acc_1", "PAID"), Position{Key: "k"}), "other filters"},
		{"other account", Encode(Filter("acc_2", ""), Position{Key: "k"}), "other filters"},
		{"not base64", "!!!!", "malformed"},
		{"padded", Encode(f, Position{Key: "k"}) + "=", "malformed"},
		{"standard alphabet", "ab+/", "malformed"},
		{"too long", strings.Repeat("A", 1025), "malformed"},
		{"not json", b64([]byte("hello")), "malformed"},
		{"wrong version", b64([]byte(`{"v":2,"f":"` + f + `","p":{"k":"k"}}`)), "malformed"},
		{"no position", b64([]byte(`{"v":1,"f":"` + f + `","p":{}}`)), "malformed"},
		{"json array", b64([]byte(`[1,2]`)), "malformed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := Decode(tc.token, f)
			if got := status.Code(err); got != codes.InvalidArgument {
				t.Fatalf("Decode(%q) code = %v, want InvalidArgument (err %v)", tc.token, got, err)
			}
			msg := status.Convert(err).Message()
			if !strings.Contains(msg, "page_token") || !strings.Contains(msg, tc.wantMsg) {
				t.Errorf("message %q, want it to name page_token and say %q", msg, tc.wantMsg)
			}
		})
	}
}

func TestSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      int32
		want    int
		wantErr bool
	}{
		{in: -1, wantErr: true},
		{in: 0, want: 7}, // the default passed in
		{in: 1, want: 1},
		{in: MaxSize, want: MaxSize},
		{in: MaxSize + 1, wantErr: true},
	}
	for _, tc := range tests {
		got, err := Size(tc.in, 7)
		if tc.wantErr {
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "page_size") {
				t.Errorf("Size(%d) error = %v, want InvalidArgument naming page_size", tc.in, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Size(%d) = %d, %v; want %d, nil", tc.in, got, err, tc.want)
		}
	}
}

// Cut keeps a page of size rows and makes the token from the last one kept; a read that found no
// more than size rows is the last page.
func TestCut(t *testing.T) {
	key := func(s string) Position { return Position{Key: s} }
	for _, tc := range []struct {
		rows     []string
		size     int
		wantPage []string
		wantNext string // the next page's key; "" for no token
	}{
		{nil, 2, nil, ""},
		{[]string{"a"}, 2, []string{"a"}, ""},
		{[]string{"a", "b"}, 2, []string{"a", "b"}, ""},
		{[]string{"a", "b", "c"}, 2, []string{"a", "b"}, "b"},
	} {
		page, next := Cut(tc.rows, tc.size, "f", key)
		if fmt.Sprint(page) != fmt.Sprint(tc.wantPage) {
			t.Errorf("Cut(%v, %d) page = %v, want %v", tc.rows, tc.size, page, tc.wantPage)
		}
		if tc.wantNext == "" {
			if next != "" {
				t.Errorf("Cut(%v, %d) token = %q, want none", tc.rows, tc.size, next)
			}
			continue
		}
		pos, ok, err := Decode(next, "f")
		if err != nil || !ok || pos.Key != tc.wantNext {
			t.Errorf("Cut(%v, %d) token decodes to %+v, %v, %v; want key %q", tc.rows, tc.size, pos, ok, err, tc.wantNext)
		}
	}
}
