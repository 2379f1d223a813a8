package objstore

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strings"

	"github.com/minio/minio-go/v7"
)

// Sentinel errors. Every error returned by a [Store] that has one of these
// causes matches it with errors.Is; errors.As with *[Error] gives the
// endpoint, bucket and key.
var (
	// ErrUnreachable means the endpoint did not answer: refused connection,
	// unknown host, timeout, TLS failure, or a connection lost in the middle
	// of a download. Check the URL and that the server runs.
	ErrUnreachable = errors.New("objstore: endpoint unreachable")
	// ErrCredentials means the server rejected the access key or the
	// signature (wrong secret), or denied reading the bucket.
	ErrCredentials = errors.New("objstore: credentials rejected")
	// ErrNoBucket means the bucket does not exist and could not be created
	// with these credentials.
	ErrNoBucket = errors.New("objstore: bucket missing")
	// ErrReadOnly means a write was denied: the bucket or the endpoint is
	// read-only for these credentials.
	ErrReadOnly = errors.New("objstore: write denied (read-only bucket)")
	// ErrCorrupt means an object exists but its bytes are not what was
	// committed: checksum mismatch, a stored truncation, or an undecodable encoding;
	// or, on a write, that the server refused the body as not matching its
	// signed hash or its length (damaged, or cut short, on the way).
	ErrCorrupt = errors.New("objstore: corrupt object")
	// ErrVersion means a checkpoint is whole (its sha256 matches) but in
	// another format version than this build reads: written by a newer (or
	// much older) jettrain. It is never a reason to fall back to an older
	// checkpoint, which a build of the other version would then overwrite.
	ErrVersion = errors.New("objstore: checkpoint of another format version")
	// ErrNotFound means the object (or the run) does not exist.
	ErrNotFound = errors.New("objstore: not found")
	// ErrConflict means a write-once object already holds different bytes.
	ErrConflict = errors.New("objstore: conflict")
	// ErrUnavailable means the server answered that it cannot take the
	// request now (HTTP 429, 500, 502, 503 or 504: starting, throttling,
	// overloaded, failing), after the client's retries: the request was
	// fine, and may succeed later.
	ErrUnavailable = errors.New("objstore: server unavailable")
	// ErrInvalid means an argument was rejected before anything was sent:
	// a bad Config, run name or Checkpoint field.
	ErrInvalid = errors.New("objstore: invalid argument")
)

// Error is a failed object-store operation. Its message is one line:
//
//	objstore: put http://127.0.0.1:9000/jettrain/runs/ab12/checkpoint.json: write denied (read-only bucket): Access Denied.
type Error struct {
	Op       string // "open", "get", "put", "list", "delete", "create bucket"
	Endpoint string
	Bucket   string
	Key      string // empty for bucket-level operations
	Kind     error  // one of the sentinels, or nil
	Err      error  // the underlying cause, or nil
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("objstore: ")
	b.WriteString(e.Op)
	b.WriteString(" ")
	b.WriteString(strings.TrimSuffix(e.Endpoint, "/"))
	b.WriteString("/")
	b.WriteString(e.Bucket)
	if e.Key != "" {
		b.WriteString("/")
		b.WriteString(e.Key)
	}
	if e.Kind != nil {
		b.WriteString(": ")
		b.WriteString(strings.TrimPrefix(e.Kind.Error(), "objstore: "))
	}
	if e.Err != nil {
		msg := oneLine(e.Err.Error())
		if e.Kind != nil {
			msg = strings.TrimPrefix(msg, e.Kind.Error()+": ")
		}
		b.WriteString(": ")
		b.WriteString(msg)
	}
	if h := hint(e.Kind); h != "" {
		b.WriteString(" (")
		b.WriteString(h)
		b.WriteString(")")
	}
	return b.String()
}

// Unwrap exposes both the sentinel and the cause to errors.Is and errors.As.
func (e *Error) Unwrap() []error {
	var errs []error
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

func hint(kind error) string {
	switch kind {
	case ErrUnreachable:
		return "is the S3 server running at that address?"
	case ErrCredentials:
		return "check the access key and secret (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)"
	case ErrNoBucket:
		return "create the bucket or use credentials allowed to create it"
	case ErrReadOnly:
		return "use credentials with write access to the bucket"
	case ErrUnavailable:
		return "the S3 server is starting, busy or failing; try again"
	case ErrVersion:
		return "run a jettrain build that reads it"
	}
	return ""
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\r", " ")
	return strings.ReplaceAll(s, "\n", " ")
}

// opKind tells classify whether an AccessDenied means read-only (writes) or
// rejected credentials (reads).
type opKind int

const (
	opRead opKind = iota
	opWrite
	opCreateBucket
)

// fail wraps err as an *Error for op on key, choosing the sentinel from the
// S3 error code or the network failure.
func (s *Store) fail(op string, kind opKind, key string, err error) error {
	return s.errorAs(op, key, classify(kind, err), err)
}

// errorAs wraps err as an *Error of kind (a sentinel) for op on key.
func (s *Store) errorAs(op, key string, kind, err error) error {
	return &Error{Op: op, Endpoint: s.cfg.Endpoint, Bucket: s.cfg.Bucket, Key: key, Kind: kind, Err: err}
}

func classify(kind opKind, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) {
		return nil
	}
	resp := minio.ToErrorResponse(err)
	switch resp.Code {
	case "SignatureDoesNotMatch", "InvalidAccessKeyId", "InvalidToken", "ExpiredToken",
		"InvalidSecurity", "AuthorizationHeaderMalformed", "MissingSecurityHeader", "InvalidSignature",
		"XAdminUserNotFound": // versitygw: unknown access key
		return ErrCredentials
	case "AccessDenied", "AllAccessDisabled":
		return denied(kind)
	case "NoSuchBucket":
		return ErrNoBucket
	case "NoSuchKey", "NotFound", "NoSuchObject":
		return ErrNotFound
	case "PreconditionFailed", "ConditionalRequestConflict":
		return ErrConflict
	case "XAmzContentSHA256Mismatch", "BadDigest", "IncompleteBody":
		// The server refused a body that does not match its signed hash
		// or its length: damaged or cut short on the way.
		return ErrCorrupt
	case "":
		// not an S3 answer: look for a transport failure
	default:
		if resp.StatusCode == 403 {
			return denied(kind)
		}
		if unavailable(resp.StatusCode) {
			return ErrUnavailable
		}
		return nil
	}
	if resp.StatusCode == 403 {
		return denied(kind)
	}
	if unavailable(resp.StatusCode) {
		return ErrUnavailable // without an S3 error body (a proxy's answer)
	}
	var ne net.Error
	var ue *url.Error
	var oe *net.OpError
	var de *net.DNSError
	if errors.As(err, &oe) || errors.As(err, &de) || errors.As(err, &ne) || errors.As(err, &ue) ||
		errors.Is(err, context.DeadlineExceeded) {
		return ErrUnreachable
	}
	return nil
}

// unavailable reports whether an HTTP status says the server cannot take
// the request now but may later: 429 (throttling: SlowDown and the like),
// 500, 502, 503, 504. Not 501 (a feature the store lacks), 505 or 507 (a
// full store), which do not pass by themselves.
func unavailable(status int) bool {
	switch status {
	case 429, 500, 502, 503, 504:
		return true
	}
	return false
}

func denied(kind opKind) error {
	switch kind {
	case opWrite:
		return ErrReadOnly
	case opCreateBucket:
		return ErrNoBucket
	}
	return ErrCredentials
}
