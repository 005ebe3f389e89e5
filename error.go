package sessiongate

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
)

// Machine codes carried by Error. The handshake codes are sent to clients in
// the data of a Socket.IO CONNECT_ERROR ({"code": "<CODE>"}). Whether a
// client retries one is written in the refusal table (codes.json, see
// RefusalCodes): RATE_LIMITED and INTERNAL are temporary and retried with
// backoff; the others are final, since only a new cookie or origin can
// change the answer.
const (
	ECodeOriginNotAllowed = "ORIGIN_NOT_ALLOWED"
	ECodeNoCookie         = "NO_COOKIE"
	ECodeBadSignature     = "BAD_SIGNATURE"
	ECodeSessionNotFound  = "SESSION_NOT_FOUND"
	ECodeSessionExpired   = "SESSION_EXPIRED"
	ECodeNotAuthenticated = "NOT_AUTHENTICATED"
	// ECodeTooManyConnections: the user already has
	// MAX_CONNECTIONS_PER_USER sockets on this node. Final: the client
	// does not retry (closing a tab is what frees a slot).
	ECodeTooManyConnections = "TOO_MANY_CONNECTIONS"
	ECodeRateLimited        = "RATE_LIMITED"
	ECodeInternal           = "INTERNAL"

	// Codes used outside the handshake.
	ECodeNotFound = "NOT_FOUND" // a user or row that does not exist
	ECodeConflict = "CONFLICT"  // e.g. a user email that is taken
	ECodeInvalid  = "INVALID"   // malformed input (session JSON, settings)

	// Codes of a subscribe or unsubscribe acknowledgement (contract §12);
	// RATE_LIMITED is one too. UNAVAILABLE and RATE_LIMITED are temporary:
	// the client may ask again later.
	ECodeForbidden   = "FORBIDDEN"    // the room is not open to this socket
	ECodeInvalidRoom = "INVALID_ROOM" // the payload or the room name is malformed
	ECodeUnavailable = "UNAVAILABLE"  // the application could not be asked

	// Codes of a client event's acknowledgement (contract §13), beside
	// UNAVAILABLE (temporary).
	ECodeUnknownEvent = "UNKNOWN_EVENT" // no handler, no EVENTS_URL, or a name outside CLIENT_EVENTS
	ECodeInvalidEvent = "INVALID_EVENT" // the arguments cannot be forwarded (binary)
	ECodeRejected     = "REJECTED"      // the application answered 4xx
)

// Error is an error with a machine-readable code and a message safe to show to
// a user. Internal details belong in the wrapped error, which is logged but
// never sent to a client.
type Error struct {
	Code    string
	Message string
	Err     error // optional cause, for logs and errors.Is/As
}

// Errorf returns an *Error with the given code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an *Error with the given code and message whose cause is err.
func Wrap(code, message string, err error) *Error {
	return &Error{Code: code, Message: message, Err: err}
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// ErrorCode returns the code of the first *Error in err's chain, ECodeInternal
// for any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ECodeInternal
}

// ErrorMessage returns the user-safe message of the first *Error in err's
// chain, and "internal error" for any other non-nil error.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// codesJSON is the refusal table: the handshake codes, the CONNECT_ERROR
// message each is sent with, and whether a client retries it. The
// TypeScript client is generated from the same file (client/src/codes.ts),
// so that both sides agree on which refusals are final.
//
//go:embed codes.json
var codesJSON []byte

// RefusalCode is one row of the refusal table.
type RefusalCode struct {
	Code    string `json:"code"`    // an ECode constant
	Message string `json:"message"` // the CONNECT_ERROR message sent with it
	Retry   bool   `json:"retry"`   // whether a client retries (with backoff) or stops
}

var refusalCodes = parseRefusalCodes(codesJSON)

func parseRefusalCodes(data []byte) []RefusalCode {
	var codes []RefusalCode
	if err := json.Unmarshal(data, &codes); err != nil {
		panic(fmt.Sprintf("sessiongate: codes.json: %v", err))
	}
	return codes
}

// RefusalCodes returns the refusal table in its order: every code a
// handshake can be refused with. The slice is a copy.
func RefusalCodes() []RefusalCode {
	return append([]RefusalCode(nil), refusalCodes...)
}

// LookupRefusal returns the table's row of a handshake code, and false for
// a code the table does not hold.
func LookupRefusal(code string) (RefusalCode, bool) {
	for _, c := range refusalCodes {
		if c.Code == code {
			return c, true
		}
	}
	return RefusalCode{}, false
}
