// Package apierr is the one error type the services return to clients. An *Error knows its gRPC
// code (it implements GRPCStatus, which grpc-go consults when a handler returns it), names the
// request field at fault where there is one, and carries a message meant for the caller.
//
// Handlers return *Error for every mistake a client can make. Anything else reaching the server
// boundary is a fault of ours: the server interceptor logs it and returns Internal with a generic
// message, so a client never sees Unknown and never sees an internal detail.
package apierr

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Error is a client-facing error with a gRPC code.
type Error struct {
	Code  codes.Code
	Field string // the request field at fault, in proto (snake_case) spelling; may be empty
	Msg   string
}

func (e *Error) Error() string {
	if e.Field != "" {
		return e.Field + ": " + e.Msg
	}
	return e.Msg
}

// GRPCStatus makes *Error a gRPC status. InvalidArgument errors that name a field also carry a
// google.rpc.BadRequest detail, so generated SDKs can show the field without parsing the message.
func (e *Error) GRPCStatus() *status.Status {
	st := status.New(e.Code, e.Error())
	if e.Code == codes.InvalidArgument && e.Field != "" {
		if withDetail, err := st.WithDetails(&errdetails.BadRequest{
			FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: e.Field, Description: e.Msg}},
		}); err == nil {
			return withDetail
		}
	}
	return st
}

// InvalidArgument reports a malformed or out-of-range request field.
func InvalidArgument(field, format string, args ...any) error {
	return &Error{Code: codes.InvalidArgument, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// NotFound reports a resource that does not exist for the caller's account. The message names the
// kind and id the caller asked for and nothing else, so ids of other accounts do not leak.
func NotFound(kind, id string) error {
	return &Error{Code: codes.NotFound, Msg: fmt.Sprintf("%s %q not found", kind, id)}
}

// FailedPrecondition reports a request that is well formed but not allowed in the current state.
func FailedPrecondition(format string, args ...any) error {
	return &Error{Code: codes.FailedPrecondition, Msg: fmt.Sprintf(format, args...)}
}

// AlreadyExists reports a conflict with an existing resource.
func AlreadyExists(field, format string, args ...any) error {
	return &Error{Code: codes.AlreadyExists, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Unauthenticated reports a missing, unknown or revoked credential.
func Unauthenticated(format string, args ...any) error {
	return &Error{Code: codes.Unauthenticated, Msg: fmt.Sprintf(format, args...)}
}

// PermissionDenied reports a valid credential whose role may not make the call.
func PermissionDenied(format string, args ...any) error {
	return &Error{Code: codes.PermissionDenied, Msg: fmt.Sprintf(format, args...)}
}

// ResourceExhausted reports a caller over its rate limit.
func ResourceExhausted(format string, args ...any) error {
	return &Error{Code: codes.ResourceExhausted, Msg: fmt.Sprintf(format, args...)}
}

// Unavailable reports a dependency that is down for now; the caller may retry.
func Unavailable(format string, args ...any) error {
	return &Error{Code: codes.Unavailable, Msg: fmt.Sprintf(format, args...)}
}

// IsClientError reports whether err is (or wraps) an *Error, that is, something safe and meant to
// be shown to the caller.
func IsClientError(err error) bool {
	var e *Error
	return errors.As(err, &e)
}

// CheckText refuses free text a person typed that would corrupt a log line, a terminal or a CA's
// records: a control character (NUL, newline, escape, DEL and the C1 range; \t too), or bytes that
// are not UTF-8. It returns an InvalidArgument naming field and the character's position.
func CheckText(field, v string) error { return checkControls(field, v, "") }

// CheckNote is CheckText for text of several lines (a support note): line breaks and tabs are
// allowed, other control characters are not.
func CheckNote(field, v string) error { return checkControls(field, v, "\n\r\t") }

func checkControls(field, v, allowed string) error {
	if !utf8.ValidString(v) {
		return InvalidArgument(field, "is not valid UTF-8")
	}
	pos := 0
	for _, r := range v {
		pos++
		if unicode.IsControl(r) && !strings.ContainsRune(allowed, r) {
			if allowed != "" {
				return InvalidArgument(field, "must not contain control characters other than line breaks and tabs (character %d is U+%04X)", pos, r)
			}
			return InvalidArgument(field, "must not contain control characters (character %d is U+%04X)", pos, r)
		}
	}
	return nil
}

// Quote quotes client input for an error message: at most 64 bytes of it (Truncate), so a
// megabyte of bad input is not echoed back whole (nor logged).
func Quote(s string) string {
	const n = 64
	if len(s) <= n {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("%q…", Truncate(s, n, ""))
}

// Truncate cuts s to at most n bytes, on a rune boundary, and appends mark when it cut.
func Truncate(s string, n int, mark string) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}
