package inspect

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"syscall"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Kind classifies why an inspection failed, for metrics (RegistryErrors' "kind" label), logs
// and callers that treat some kinds differently (e.g. not caching timeouts).
type Kind string

const (
	KindUnreachable Kind = "unreachable"     // connection refused, DNS failure, no route
	KindTimeout     Kind = "timeout"         // the per-image timeout or the caller's deadline
	KindAuth        Kind = "auth"            // 401/403 or no usable credentials
	KindNotFound    Kind = "not_found"       // repository, manifest, blob or platform missing
	KindTooLarge    Kind = "too_large"       // byte caps (compressed, decompressed, entries, config)
	KindBadResponse Kind = "bad_response"    // 5xx, malformed manifests/layers, digest mismatch
	KindRefused     Kind = "refused_address" // an error with Refused() true, e.g. the SSRF guard's
	KindCanceled    Kind = "canceled"        // the caller gave up (not the registry's fault)
)

// Error is the error Inspect and Resolve return. Use KindOf to classify any error.
type Error struct {
	Kind Kind
	Op   string // what was being done: "manifest", "config", "layer 3 sha256:…"
	Err  error
}

func (e *Error) Error() string {
	if e.Op == "" {
		return fmt.Sprintf("%s: %v", e.Kind, e.Err)
	}
	return fmt.Sprintf("%s: %s: %v", e.Kind, e.Op, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// refuser is an error from a caller-supplied transport that refused to contact an address
// (registry.RefusedError). An interface, so the policy side need not import this package.
type refuser interface{ Refused() bool }

// Sentinels for errors.Is; every *Error of that kind matches.
var (
	ErrUnreachable = &Error{Kind: KindUnreachable}
	ErrTimeout     = &Error{Kind: KindTimeout}
	ErrAuth        = &Error{Kind: KindAuth}
	ErrNotFound    = &Error{Kind: KindNotFound}
	ErrTooLarge    = &Error{Kind: KindTooLarge}
	ErrBadResponse = &Error{Kind: KindBadResponse}
)

// Is makes errors.Is(err, ErrTimeout) true for any *Error of kind timeout.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Err == nil && t.Op == "" && t.Kind == e.Kind
}

// KindOf classifies err; "" for nil.
func KindOf(err error) Kind {
	if err == nil {
		return ""
	}
	var ie *Error
	if errors.As(err, &ie) && ie.Kind != "" {
		return ie.Kind
	}
	var r refuser
	if errors.As(err, &r) && r.Refused() {
		return KindRefused
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return KindTimeout
	}
	if errors.Is(err, context.Canceled) {
		return KindCanceled
	}
	var te *transport.Error
	if errors.As(err, &te) {
		switch te.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			return KindAuth
		case http.StatusNotFound:
			return KindNotFound
		}
		for _, d := range te.Errors {
			switch d.Code {
			case transport.UnauthorizedErrorCode, transport.DeniedErrorCode:
				return KindAuth
			case transport.ManifestUnknownErrorCode, transport.BlobUnknownErrorCode, transport.NameUnknownErrorCode:
				return KindNotFound
			}
		}
		return KindBadResponse
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return KindTimeout
	}
	var oe *net.OpError
	var de *net.DNSError
	if errors.As(err, &de) || (errors.As(err, &oe) && oe.Op == "dial") ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH) {
		return KindUnreachable
	}
	return KindBadResponse
}

// wrap returns err as an *Error with its kind decided, keeping an existing *Error's kind.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var ie *Error
	if errors.As(err, &ie) {
		if ie.Op == "" {
			return &Error{Kind: ie.Kind, Op: op, Err: ie.Err}
		}
		return err
	}
	return &Error{Kind: KindOf(err), Op: op, Err: err}
}
