package natsconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

var (
	// ErrUnreachable means no server answered within the connect timeout:
	// nothing listens, the host is unknown, or the handshake timed out.
	ErrUnreachable = errors.New("natsconn: server unreachable")
	// ErrAuth means the server rejected the credentials, or required
	// credentials that were not given.
	ErrAuth = errors.New("natsconn: authentication failed")
	// ErrTLS means the TLS handshake failed: an untrusted or mismatched
	// server certificate, a missing or rejected client certificate, or TLS
	// required by one side only.
	ErrTLS = errors.New("natsconn: tls failed")
	// ErrInvalidOptions means the options cannot work, such as a missing
	// creds file or a certificate without its key.
	ErrInvalidOptions = errors.New("natsconn: invalid options")
)

// Reconnect backoff: the delay doubles from reconnectMin up to reconnectMax
// per full pass over the server pool, plus up to 20% jitter. A quarter of
// a second at most: every client of a restarted broker is back within
// about that of it. With a second at most, a client whose broker was down
// for 0.8 s tried again only 1.5 s after the loss, and a broker restart
// cost a run 0.25-1.2 s more than the broker was down under the chaos
// harness; with 5 s, the workers of a run sat idle up to 4 s longer than
// its coordinator. Four connection attempts a second per client cost a
// broker that is down, or starting, nothing.
const (
	reconnectMin = 100 * time.Millisecond
	reconnectMax = 250 * time.Millisecond
)

// Connect dials the server(s) in o and returns a connection that reconnects
// forever once established. The first connection is bounded by
// o.ConnectTimeout (default DefaultConnectTimeout) and by ctx. A failure is
// one line naming the redacted URL and wrapping ErrUnreachable, ErrAuth,
// ErrTLS or ErrInvalidOptions.
func Connect(ctx context.Context, o Options) (*nats.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	timeout := o.ConnectTimeout
	if timeout <= 0 {
		timeout = DefaultConnectTimeout
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = max(time.Until(dl), time.Millisecond)
	}
	opts, err := o.natsOptions(timeout)
	if err != nil {
		return nil, o.fail(ErrInvalidOptions, err)
	}

	type result struct {
		nc  *nats.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		nc, err := nats.Connect(o.url(), opts...)
		done <- result{nc, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, o.fail(classify(r.err), r.err)
		}
		return r.nc, nil
	case <-ctx.Done():
		go func() {
			if r := <-done; r.nc != nil {
				r.nc.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// natsOptions translates o into nats.go options.
func (o Options) natsOptions(timeout time.Duration) ([]nats.Option, error) {
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	redacted := o.Redacted()
	secrets := o.secrets()
	opts := []nats.Option{
		nats.Timeout(timeout),
		nats.MaxReconnects(-1),
		nats.CustomReconnectDelay(reconnectDelay),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if nc.IsClosed() {
				return // an orderly Close, not a lost server
			}
			attrs := []any{"url", redacted}
			if err != nil {
				attrs = append(attrs, "err", scrub(err.Error(), secrets))
			}
			log.Warn("nats disconnected, reconnecting", attrs...)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			attrs := []any{"url", redacted, "err", scrub(err.Error(), secrets)}
			if sub != nil {
				attrs = append(attrs, "subject", sub.Subject)
			}
			log.Warn("nats async error", attrs...)
		}),
	}
	if o.Name != "" {
		opts = append(opts, nats.Name(o.Name))
	}
	if o.Password != "" && o.User == "" {
		return nil, errors.New("a password needs a user (NATS_USER)")
	}
	if o.User != "" {
		opts = append(opts, nats.UserInfo(o.User, o.Password))
	}
	if o.Token != "" {
		opts = append(opts, nats.Token(o.Token))
	}
	if o.CredsFile != "" {
		if err := readable(o.CredsFile, "creds file"); err != nil {
			return nil, err
		}
		opts = append(opts, nats.UserCredentials(o.CredsFile))
	}
	if o.NKeyFile != "" {
		if err := readable(o.NKeyFile, "nkey seed file"); err != nil {
			return nil, err
		}
		opt, err := nats.NkeyOptionFromSeed(o.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("nkey seed file %s: %v", o.NKeyFile, err)
		}
		opts = append(opts, opt)
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return nil, errors.New("a TLS client certificate needs both a cert (NATS_CERT) and a key (NATS_KEY)")
	}
	if o.TLSCert != "" {
		if err := readable(o.TLSCert, "TLS certificate"); err != nil {
			return nil, err
		}
		if err := readable(o.TLSKey, "TLS key"); err != nil {
			return nil, err
		}
		opts = append(opts, nats.ClientCert(o.TLSCert, o.TLSKey))
	}
	if o.TLSCA != "" {
		if err := readable(o.TLSCA, "TLS CA file"); err != nil {
			return nil, err
		}
		opts = append(opts, nats.RootCAs(o.TLSCA))
	}
	return append(opts, o.Extra...), nil
}

func readable(path, what string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%s: %v", what, err)
	}
	return f.Close()
}

// reconnectDelay is the backoff between passes over the server pool.
func reconnectDelay(attempts int) time.Duration {
	d := reconnectMax
	if attempts < 10 {
		d = min(reconnectMin<<attempts, reconnectMax)
	}
	return d + rand.N(d/5+1)
}

// classify maps a nats.Connect error to a sentinel.
func classify(err error) error {
	switch {
	case errors.Is(err, nats.ErrAuthorization), errors.Is(err, nats.ErrAuthExpired),
		errors.Is(err, nats.ErrAuthRevoked), errors.Is(err, nats.ErrAccountAuthExpired),
		errors.Is(err, nats.ErrNkeysNotSupported):
		return ErrAuth
	case errors.Is(err, nats.ErrSecureConnRequired), errors.Is(err, nats.ErrSecureConnWanted),
		errors.Is(err, nats.ErrClientCertOrRootCAsRequired), errors.Is(err, nats.ErrTLS):
		return ErrTLS
	}
	var (
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		verify    *tls.CertificateVerificationError
		alert     tls.AlertError
		recordHdr tls.RecordHeaderError
	)
	if errors.As(err, &unknownCA) || errors.As(err, &hostname) || errors.As(err, &invalid) ||
		errors.As(err, &verify) || errors.As(err, &alert) || errors.As(err, &recordHdr) {
		return ErrTLS
	}
	// TLS alerts from the peer ("remote error: tls: certificate required")
	// have no exported type.
	if msg := err.Error(); strings.Contains(msg, "tls: ") || strings.Contains(msg, "x509: ") {
		return ErrTLS
	}
	return ErrUnreachable
}

// connectError is one line: the sentinel, the redacted URL, the cause with
// secrets scrubbed, and what to check.
type connectError struct {
	kind  error
	msg   string
	cause error
}

func (e *connectError) Error() string   { return e.msg }
func (e *connectError) Unwrap() []error { return []error{e.kind, e.cause} }

func (o Options) fail(kind, cause error) error {
	hint := ""
	switch kind {
	case ErrUnreachable:
		hint = "; is the server running and NATS_URL (--nats) right?"
	case ErrAuth:
		hint = "; check NATS_USER/NATS_PASSWORD, NATS_TOKEN, NATS_CREDS or NATS_NKEY"
	case ErrTLS:
		hint = "; check NATS_CA, NATS_CERT and NATS_KEY and the URL scheme"
	}
	msg := fmt.Sprintf("%v at %s (%s): %v%s", kind, o.Redacted(), o.auth(), cause, hint)
	return &connectError{kind: kind, msg: scrub(msg, o.secrets()), cause: cause}
}
