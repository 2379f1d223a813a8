package natsconn

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/jettrain/jettrain/internal/natstest"
	"github.com/jettrain/jettrain/internal/syncbuf"
)

// runServer starts an embedded nats-server on a free port.
func runServer(t *testing.T, opts *server.Options) *server.Server {
	t.Helper()
	if opts == nil {
		opts = &server.Options{}
	}
	return natstest.Start(t, *opts)
}

// checkFor polls f until it returns nil or the timeout passes.
func checkFor(t *testing.T, timeout, interval time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", timeout, err)
		}
		time.Sleep(interval)
	}
}

// roundTrip proves a connection works by a request to its own responder.
func roundTrip(t *testing.T, nc *nats.Conn) {
	t.Helper()
	sub, err := nc.Subscribe("ping", func(m *nats.Msg) { _ = m.Respond([]byte("pong")) })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	m, err := nc.Request("ping", nil, 2*time.Second)
	if err != nil || string(m.Data) != "pong" {
		t.Fatalf("request: %v %v", err, m)
	}
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestUserPassword(t *testing.T) {
	const secret = "s3cr3t-pa55"
	s := runServer(t, &server.Options{Username: "ops", Password: secret})
	ctx := context.Background()

	nc, err := Connect(ctx, Options{URL: s.ClientURL(), User: "ops", Password: secret, Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, nc)
	nc.Close()

	// The same credentials inside the URL.
	u := strings.Replace(s.ClientURL(), "nats://", "nats://ops:"+secret+"@", 1)
	nc, err = Connect(ctx, Options{URL: u})
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()

	for name, o := range map[string]Options{
		"wrong password": {URL: s.ClientURL(), User: "ops", Password: "wrong-" + secret},
		"no credentials": {URL: s.ClientURL()},
		"wrong in URL":   {URL: strings.Replace(u, secret, "nope-"+secret, 1)},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Connect(ctx, o)
			if !errors.Is(err, ErrAuth) {
				t.Fatalf("want ErrAuth, got %v", err)
			}
			msg := err.Error()
			if strings.Contains(msg, secret) || strings.Contains(msg, "\n") {
				t.Fatalf("error leaks the secret or spans lines: %q", msg)
			}
			if !strings.HasPrefix(msg, "natsconn: ") || !strings.Contains(msg, "127.0.0.1") {
				t.Fatalf("error does not name the server: %q", msg)
			}
			t.Log(msg)
		})
	}
}

func TestToken(t *testing.T) {
	const token = "tok-7f3a9c1e"
	s := runServer(t, &server.Options{Authorization: token})
	ctx := context.Background()
	nc, err := Connect(ctx, Options{URL: s.ClientURL(), Token: token})
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, nc)
	nc.Close()

	u := strings.Replace(s.ClientURL(), "nats://", "nats://"+token+"@", 1)
	if nc, err = Connect(ctx, Options{URL: u}); err != nil {
		t.Fatal(err)
	}
	nc.Close()

	_, err = Connect(ctx, Options{URL: s.ClientURL(), Token: "bad-" + token})
	if !errors.Is(err, ErrAuth) || strings.Contains(err.Error(), token) {
		t.Fatalf("want ErrAuth without the token, got %v", err)
	}
	_, err = Connect(ctx, Options{URL: strings.Replace(u, token, "bad-"+token, 1)})
	if !errors.Is(err, ErrAuth) || strings.Contains(err.Error(), token) {
		t.Fatalf("want ErrAuth without the token, got %v", err)
	}
}

func TestNKey(t *testing.T) {
	user, _ := nkeys.CreateUser()
	pub, _ := user.PublicKey()
	seed, _ := user.Seed()
	s := runServer(t, &server.Options{Nkeys: []*server.NkeyUser{{Nkey: pub}}})
	ctx := context.Background()

	nc, err := Connect(ctx, Options{URL: s.ClientURL(), NKeyFile: writeFile(t, "user.nk", seed)})
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, nc)
	nc.Close()

	other, _ := nkeys.CreateUser()
	otherSeed, _ := other.Seed()
	_, err = Connect(ctx, Options{URL: s.ClientURL(), NKeyFile: writeFile(t, "other.nk", otherSeed)})
	if !errors.Is(err, ErrAuth) {
		t.Fatalf("unknown nkey: want ErrAuth, got %v", err)
	}
	if strings.Contains(err.Error(), string(otherSeed)) {
		t.Fatal("error leaks the seed")
	}

	_, err = Connect(ctx, Options{URL: s.ClientURL(), NKeyFile: filepath.Join(t.TempDir(), "missing.nk")})
	if !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("missing seed file: want ErrInvalidOptions, got %v", err)
	}
}

// TestCreds runs the server in operator (JWT) mode and connects with a
// .creds file, the decentralized auth of `nsc`.
func TestCreds(t *testing.T) {
	okp, _ := nkeys.CreateOperator()
	opub, _ := okp.PublicKey()
	oc := jwt.NewOperatorClaims(opub)
	oc.Name = "jettrain-test"
	if _, err := oc.Encode(okp); err != nil {
		t.Fatal(err)
	}
	newAccount := func() (nkeys.KeyPair, string, string) {
		akp, _ := nkeys.CreateAccount()
		apub, _ := akp.PublicKey()
		ajwt, err := jwt.NewAccountClaims(apub).Encode(okp)
		if err != nil {
			t.Fatal(err)
		}
		return akp, apub, ajwt
	}
	akp, apub, ajwt := newAccount()
	_, syspub, sysjwt := newAccount()
	resolver := &server.MemAccResolver{}
	for k, v := range map[string]string{apub: ajwt, syspub: sysjwt} {
		if err := resolver.Store(k, v); err != nil {
			t.Fatal(err)
		}
	}
	s := runServer(t, &server.Options{
		TrustedOperators: []*jwt.OperatorClaims{oc},
		AccountResolver:  resolver,
		SystemAccount:    syspub,
	})

	creds := func(issuer nkeys.KeyPair) []byte {
		ukp, _ := nkeys.CreateUser()
		upub, _ := ukp.PublicKey()
		ujwt, err := jwt.NewUserClaims(upub).Encode(issuer)
		if err != nil {
			t.Fatal(err)
		}
		seed, _ := ukp.Seed()
		b, err := jwt.FormatUserConfig(ujwt, seed)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	ctx := context.Background()
	nc, err := Connect(ctx, Options{URL: s.ClientURL(), CredsFile: writeFile(t, "user.creds", creds(akp))})
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, nc)
	nc.Close()

	// A user signed by an account the server does not know.
	stranger, _ := nkeys.CreateAccount()
	_, err = Connect(ctx, Options{URL: s.ClientURL(), CredsFile: writeFile(t, "stranger.creds", creds(stranger))})
	if !errors.Is(err, ErrAuth) {
		t.Fatalf("unknown account: want ErrAuth, got %v", err)
	}
}

// pki is a throwaway CA with a server and a client certificate.
type pki struct{ ca, serverCert, serverKey, clientCert, clientKey string }

func newPKI(t *testing.T) (pki, *tls.Config) {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	key := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	now := time.Now()
	caKey := key()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "jettrain test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, cn string, usage x509.ExtKeyUsage) ([]byte, *ecdsa.PrivateKey) {
		k := key()
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, k
	}
	keyDER := func(k *ecdsa.PrivateKey) []byte {
		b, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	sDER, sKey := issue(2, "nats-server", x509.ExtKeyUsageServerAuth)
	cDER, cKey := issue(3, "worker", x509.ExtKeyUsageClientAuth)
	p := pki{
		ca:         write("ca.pem", "CERTIFICATE", caDER),
		serverCert: write("server.pem", "CERTIFICATE", sDER),
		serverKey:  write("server-key.pem", "EC PRIVATE KEY", keyDER(sKey)),
		clientCert: write("client.pem", "CERTIFICATE", cDER),
		clientKey:  write("client-key.pem", "EC PRIVATE KEY", keyDER(cKey)),
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	pair, err := tls.LoadX509KeyPair(p.serverCert, p.serverKey)
	if err != nil {
		t.Fatal(err)
	}
	return p, &tls.Config{
		Certificates: []tls.Certificate{pair},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	}
}

func TestTLS(t *testing.T) {
	p, cfg := newPKI(t)
	s := runServer(t, &server.Options{TLS: true, TLSVerify: true, TLSConfig: cfg, TLSTimeout: 2, Username: "ops", Password: "tls-secret"})
	ctx := context.Background()
	good := Options{URL: s.ClientURL(), User: "ops", Password: "tls-secret", TLSCA: p.ca, TLSCert: p.clientCert, TLSKey: p.clientKey}
	nc, err := Connect(ctx, good)
	if err != nil {
		t.Fatal(err)
	}
	if !nc.TLSRequired() {
		t.Fatal("connection is not TLS")
	}
	roundTrip(t, nc)
	nc.Close()

	noCA := good
	noCA.TLSCA = ""
	noCert := good
	noCert.TLSCert, noCert.TLSKey = "", ""
	halfCert := good
	halfCert.TLSKey = ""
	for name, c := range map[string]struct {
		o    Options
		want error
	}{
		"untrusted server":   {noCA, ErrTLS},
		"no client cert":     {noCert, ErrTLS},
		"cert without key":   {halfCert, ErrInvalidOptions},
		"plain to TLS-only":  {Options{URL: s.ClientURL(), User: "ops", Password: "tls-secret"}, ErrTLS},
		"wrong secret (tls)": {func() Options { o := good; o.Password = "nope"; return o }(), ErrAuth},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Connect(ctx, c.o)
			if !errors.Is(err, c.want) {
				t.Fatalf("want %v, got %v", c.want, err)
			}
			if strings.Contains(err.Error(), "tls-secret") {
				t.Fatalf("error leaks the password: %v", err)
			}
		})
	}
}

func TestUnreachable(t *testing.T) {
	// A port where nothing listens.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "nats://u:hunter2@" + l.Addr().String()
	l.Close()

	// A listener that accepts but never speaks NATS: the handshake times out.
	mute, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer mute.Close()
	go func() {
		for {
			c, err := mute.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()

	for name, o := range map[string]Options{
		"refused": {URL: refused},
		"silent":  {URL: "nats://" + mute.Addr().String(), Token: "hunter2", ConnectTimeout: 300 * time.Millisecond},
	} {
		t.Run(name, func(t *testing.T) {
			start := time.Now()
			_, err := Connect(context.Background(), o)
			if !errors.Is(err, ErrUnreachable) {
				t.Fatalf("want ErrUnreachable, got %v", err)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("took %v", d)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error leaks the secret: %v", err)
			}
			t.Log(err)
		})
	}

	// The context bounds the connect too.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = Connect(ctx, Options{URL: "nats://" + mute.Addr().String()})
	if err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("context deadline not honored: %v after %v", err, time.Since(start))
	}
}

// TestReconnect restarts the server on the same port: the connection comes
// back by itself and logs the disconnect and the reconnect once each.
func TestReconnect(t *testing.T) {
	s := runServer(t, &server.Options{Username: "ops", Password: "re-secret"})
	port := s.Addr().(*net.TCPAddr).Port
	var logs syncbuf.Buffer
	nc, err := Connect(context.Background(), Options{URL: s.ClientURL(), User: "ops", Password: "re-secret", Log: logs.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	s.Shutdown()
	s.WaitForShutdown()
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if nc.Status() == nats.CONNECTED {
			return errors.New("still connected")
		}
		return nil
	})
	runServer(t, &server.Options{Port: port, Username: "ops", Password: "re-secret"})
	checkFor(t, 15*time.Second, 20*time.Millisecond, func() error {
		if st := nc.Status(); st != nats.CONNECTED {
			return fmt.Errorf("status %v", st)
		}
		return nil
	})
	roundTrip(t, nc)
	checkFor(t, 2*time.Second, 10*time.Millisecond, func() error {
		out := logs.String()
		if strings.Count(out, "nats reconnected") != 1 || strings.Count(out, "nats disconnected") != 1 {
			return fmt.Errorf("want one disconnect and one reconnect line, got:\n%s", out)
		}
		return nil
	})
	if out := logs.String(); strings.Contains(out, "re-secret") {
		t.Fatalf("log leaks the password:\n%s", out)
	}
}

func TestEnvAndMerge(t *testing.T) {
	t.Setenv(EnvURL, "nats://env:4222")
	t.Setenv(EnvUser, "envuser")
	t.Setenv(EnvPassword, "envpass")
	t.Setenv(EnvToken, "")
	t.Setenv(EnvCreds, "/env.creds")
	t.Setenv(EnvNKey, "")
	t.Setenv(EnvCert, "")
	t.Setenv(EnvKey, "")
	t.Setenv(EnvCA, "/env-ca.pem")
	o := FromEnv()
	if o.URL != "nats://env:4222" || o.User != "envuser" || o.Password != "envpass" || o.CredsFile != "/env.creds" || o.TLSCA != "/env-ca.pem" {
		t.Fatalf("FromEnv: %+v", o)
	}
	m := o.Merge(Options{URL: "nats://flag:4222", Password: "flagpass"})
	if m.URL != "nats://flag:4222" || m.User != "envuser" || m.Password != "flagpass" || m.TLSCA != "/env-ca.pem" {
		t.Fatalf("Merge: %+v", m)
	}
}

func TestRedacted(t *testing.T) {
	for _, c := range []struct {
		o      Options
		secret string
		want   string
	}{
		{Options{URL: "nats://ops:pa55w0rd@nats:4222"}, "pa55w0rd", "nats://ops:***@nats:4222"},
		{Options{URL: "tls://tok3n@nats:4222"}, "tok3n", "tls://***@nats:4222"},
		{Options{URL: "nats://a:x1y2@h1:4222, nats://a:x1y2@h2:4222"}, "x1y2", "nats://a:***@h1:4222,nats://a:***@h2:4222"},
		{Options{URL: "nats://nats:4222", Password: "pw-in-field", User: "u"}, "pw-in-field", "nats://nats:4222"},
		{Options{URL: "nats://u:p%zz@bad url", Password: "p%zz"}, "p%zz", "nats://***@bad url"},
		{Options{}, "", nats.DefaultURL},
	} {
		got := c.o.Redacted()
		if got != c.want {
			t.Errorf("Redacted(%q) = %q, want %q", c.o.URL, got, c.want)
		}
		for _, s := range []string{got, c.o.String(), fmt.Sprintf("%v %+v %#v %s", c.o, c.o, c.o, c.o)} {
			if c.secret != "" && strings.Contains(s, c.secret) {
				t.Errorf("%q leaks %q", s, c.secret)
			}
		}
		var buf bytes.Buffer
		slog.New(slog.NewJSONHandler(&buf, nil)).Info("connect", "nats", c.o)
		if c.secret != "" && strings.Contains(buf.String(), c.secret) {
			t.Errorf("slog leaks %q: %s", c.secret, buf.String())
		}
	}
}
