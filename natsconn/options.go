package natsconn

import (
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// DefaultConnectTimeout bounds how long [Connect] waits for the first
// connection when neither [Options.ConnectTimeout] nor the context says less.
const DefaultConnectTimeout = 5 * time.Second

// Environment variables read by [FromEnv].
const (
	EnvURL      = "NATS_URL"
	EnvUser     = "NATS_USER"
	EnvPassword = "NATS_PASSWORD"
	EnvToken    = "NATS_TOKEN"
	EnvCreds    = "NATS_CREDS"
	EnvNKey     = "NATS_NKEY"
	EnvCert     = "NATS_CERT"
	EnvKey      = "NATS_KEY"
	EnvCA       = "NATS_CA"
)

// redactedMark replaces every secret in printed URLs and errors.
const redactedMark = "***"

// Options says where a NATS server is and how to authenticate to it. The zero
// value connects to nats://127.0.0.1:4222 without authentication.
type Options struct {
	// URL is one server URL or a comma-separated list (nats://, tls://, ws://).
	// It may carry credentials: nats://user:pass@host or nats://token@host.
	URL string
	// User and Password authenticate with a user name and password.
	User, Password string
	// Token authenticates with a bearer token.
	Token string
	// CredsFile is a .creds file holding a user JWT and its nkey seed
	// (decentralized auth, as written by `nsc generate creds`).
	CredsFile string
	// NKeyFile is a file holding a user nkey seed ("SU..."), for servers
	// that list the user's public nkey.
	NKeyFile string
	// TLSCert and TLSKey are the client certificate and key files (both or
	// neither); TLSCA is a PEM file of CAs to trust for the server's
	// certificate. Setting any of them turns TLS on.
	TLSCert, TLSKey, TLSCA string
	// Name is the connection name the server shows in its monitoring.
	Name string

	// ConnectTimeout bounds the first connection; 0 means
	// DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// Log receives one line per disconnect, reconnect and asynchronous
	// error; nil means slog.Default().
	Log *slog.Logger
	// Extra options are applied after the ones natsconn derives, for
	// callers that need handlers or limits of their own.
	Extra []nats.Option
}

// FromEnv reads the standard NATS_* environment variables: NATS_URL,
// NATS_USER, NATS_PASSWORD, NATS_TOKEN, NATS_CREDS, NATS_NKEY, NATS_CERT,
// NATS_KEY and NATS_CA.
func FromEnv() Options {
	return Options{
		URL:       os.Getenv(EnvURL),
		User:      os.Getenv(EnvUser),
		Password:  os.Getenv(EnvPassword),
		Token:     os.Getenv(EnvToken),
		CredsFile: os.Getenv(EnvCreds),
		NKeyFile:  os.Getenv(EnvNKey),
		TLSCert:   os.Getenv(EnvCert),
		TLSKey:    os.Getenv(EnvKey),
		TLSCA:     os.Getenv(EnvCA),
	}
}

// Merge returns o with every non-empty field of flagValues in its place, so
// flags override the environment. Extra options are appended.
func (o Options) Merge(flagValues Options) Options {
	pick := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	pick(&o.URL, flagValues.URL)
	pick(&o.User, flagValues.User)
	pick(&o.Password, flagValues.Password)
	pick(&o.Token, flagValues.Token)
	pick(&o.CredsFile, flagValues.CredsFile)
	pick(&o.NKeyFile, flagValues.NKeyFile)
	pick(&o.TLSCert, flagValues.TLSCert)
	pick(&o.TLSKey, flagValues.TLSKey)
	pick(&o.TLSCA, flagValues.TLSCA)
	pick(&o.Name, flagValues.Name)
	if flagValues.ConnectTimeout != 0 {
		o.ConnectTimeout = flagValues.ConnectTimeout
	}
	if flagValues.Log != nil {
		o.Log = flagValues.Log
	}
	if len(flagValues.Extra) > 0 {
		o.Extra = append(append([]nats.Option(nil), o.Extra...), flagValues.Extra...)
	}
	return o
}

// url returns the URL to dial, defaulting to nats.DefaultURL.
func (o Options) url() string {
	if strings.TrimSpace(o.URL) == "" {
		return nats.DefaultURL
	}
	return o.URL
}

// Redacted returns the server URL(s) with any password or token replaced by
// "***", safe to log. An empty URL is shown as the default it dials.
func (o Options) Redacted() string {
	parts := strings.Split(o.url(), ",")
	for i, p := range parts {
		parts[i] = redactURL(strings.TrimSpace(p))
	}
	return scrub(strings.Join(parts, ","), o.secrets())
}

// redactURL hides the password, or a bare user-info token, of one URL.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil && u.Host != "" {
		if u.User == nil {
			return s
		}
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), redactedMark)
		} else {
			u.User = url.User(redactedMark) // nats://TOKEN@host
		}
		// url.URL escapes "*" in user info; keep the mark readable.
		return strings.Replace(u.String(), url.QueryEscape(redactedMark), redactedMark, 1)
	}
	// Unparseable: drop everything between the scheme and the last '@'.
	rest, scheme := s, ""
	if i := strings.Index(s, "://"); i >= 0 {
		scheme, rest = s[:i+3], s[i+3:]
	}
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		rest = redactedMark + rest[i:]
	}
	return scheme + rest
}

// secrets lists the values that must never be printed.
func (o Options) secrets() []string {
	var s []string
	for _, v := range []string{o.Password, o.Token} {
		if v != "" {
			s = append(s, v)
		}
	}
	for _, p := range strings.Split(o.URL, ",") {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			if pw, ok := u.User.Password(); ok && pw != "" {
				s = append(s, pw)
			} else if name := u.User.Username(); !ok && name != "" {
				s = append(s, name)
			}
		}
	}
	return s
}

// scrub replaces every occurrence of a secret in msg.
func scrub(msg string, secrets []string) string {
	for _, s := range secrets {
		msg = strings.ReplaceAll(msg, s, redactedMark)
	}
	return msg
}

// auth describes the authentication method without its secret.
func (o Options) auth() string {
	var m []string
	if o.User != "" {
		m = append(m, fmt.Sprintf("user %q", o.User))
	}
	if o.Token != "" {
		m = append(m, "token")
	}
	if o.CredsFile != "" {
		m = append(m, "creds "+o.CredsFile)
	}
	if o.NKeyFile != "" {
		m = append(m, "nkey "+o.NKeyFile)
	}
	if strings.Contains(o.URL, "@") {
		m = append(m, "credentials in URL")
	}
	if len(m) == 0 {
		return "no auth"
	}
	return strings.Join(m, ", ")
}

// tlsOn reports whether TLS is requested by file options or a tls:// URL.
func (o Options) tlsOn() bool {
	return o.TLSCA != "" || o.TLSCert != "" || o.TLSKey != "" || strings.Contains(o.URL, "tls://")
}

// String is the redacted URL and the authentication method, for logs.
func (o Options) String() string {
	s := o.Redacted() + " (" + o.auth()
	if o.tlsOn() {
		s += ", tls"
	}
	return s + ")"
}

// LogValue makes slog print Options without secrets.
func (o Options) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("url", o.Redacted()),
		slog.String("auth", o.auth()),
		slog.Bool("tls", o.tlsOn()),
	)
}

// GoString keeps %#v from printing secrets.
func (o Options) GoString() string { return "natsconn.Options{" + o.String() + "}" }
