// Package pagetoken implements the opaque page tokens and page-size rules shared by every List RPC.
//
// A token is base64url(JSON) of the keyset position after the last item of a page and a digest of
// the request's filters. Keyset pagination keeps every page an index range scan however deep the
// caller pages; the filter digest makes a token from one query unusable with another (the caller
// gets InvalidArgument rather than a silently wrong page). Tokens are opaque to clients: the format
// may change, and nothing in them is secret or authoritative (the account check is still done by
// the query itself).
package pagetoken

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"

	"github.com/certhosting/certhosting/pkg/apierr"
)

// Page sizes: 0 in a request means Default; more than Max is rejected, not silently capped, so
// a client learns its assumption is wrong.
const (
	DefaultSize = 50
	MaxSize     = 500
)

// Size validates a request's page_size and returns the effective size.
func Size(pageSize int32, def int) (int, error) {
	switch {
	case pageSize < 0:
		return 0, apierr.InvalidArgument("page_size", "must not be negative, got %d", pageSize)
	case pageSize > MaxSize:
		return 0, apierr.InvalidArgument("page_size", "must be at most %d, got %d", MaxSize, pageSize)
	case pageSize == 0:
		return def, nil
	}
	return int(pageSize), nil
}

// Position is where the next page starts: the sort key of the last item returned.
type Position struct {
	Key string `json:"k"`
	Seq int64  `json:"s,omitempty"` // second sort column, where the listing has one
}

type token struct {
	V      int      `json:"v"`
	Filter string   `json:"f"`
	Pos    Position `json:"p"`
}

// Filter digests the request's filter values; pass the same values for every page of a listing.
func Filter(values ...string) string {
	h := sha256.New()
	for _, v := range values {
		h.Write([]byte(v))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// Encode makes the token for the page after pos.
func Encode(filter string, pos Position) string {
	b, _ := json.Marshal(token{V: 1, Filter: filter, Pos: pos})
	return base64.RawURLEncoding.EncodeToString(b)
}

// Decode reads a request's page_token. An empty token is the first page (ok false). A token that
// is malformed, or made for other filters, is InvalidArgument naming page_token.
func Decode(s, filter string) (pos Position, ok bool, err error) {
	if s == "" {
		return Position{}, false, nil
	}
	if len(s) > 1024 || strings.ContainsAny(s, "=+/") {
		return Position{}, false, apierr.InvalidArgument("page_token", "malformed")
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return Position{}, false, apierr.InvalidArgument("page_token", "malformed")
	}
	var t token
	if err := json.Unmarshal(b, &t); err != nil || t.V != 1 || t.Pos.Key == "" {
		return Position{}, false, apierr.InvalidArgument("page_token", "malformed")
	}
	if t.Filter != filter {
		return Position{}, false, apierr.InvalidArgument("page_token", "was made for a request with other filters")
	}
	return t.Pos, true, nil
}

// Cut trims rows, read with a limit of size+1 (one more than the page, to learn whether another
// page follows), to the page, and returns the next page's token: the position pos gives for the
// page's last row, or "" when this is the last page.
func Cut[T any](rows []T, size int, filter string, pos func(T) Position) ([]T, string) {
	if len(rows) <= size {
		return rows, ""
	}
	rows = rows[:size]
	return rows, Encode(filter, pos(rows[len(rows)-1]))
}
