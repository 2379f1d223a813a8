package objstore

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/url"
	"sync/atomic"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Bytes damaged between the client and the server, after the request was
// signed, are refused by the server, which checks them against the signed
// payload hash: the write fails with ErrCorrupt and the object keeps the
// bytes it had.
func TestDamagedInTransitIsRefused(t *testing.T) {
	servers(t, func(t *testing.T, endpoint string) {
		s := openTest(t, endpoint)
		ctx := testCtx(t)
		key := "runs/" + testRun + "/transit"
		good := bytes.Repeat([]byte("checkpoint bytes "), 4096)
		if err := s.put(ctx, key, good, "application/octet-stream", false); err != nil {
			t.Fatal(err)
		}
		var flipped atomic.Int64
		damaged := withTransport(t, s, flipFirstBodyByte{base: http.DefaultTransport, flipped: &flipped})
		next := bytes.Repeat([]byte("newer bytes "), 4096)
		err := damaged.put(ctx, key, next, "application/octet-stream", false)
		if flipped.Load() == 0 {
			t.Fatal("the transport damaged no request body")
		}
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("put of bytes damaged in transit: %v, want ErrCorrupt", err)
		}
		obj, err := s.get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(obj.data, good) {
			t.Fatalf("the object holds %d bytes starting %q, want the %d written before", len(obj.data), obj.data[:min(len(obj.data), 20)], len(good))
		}
	})
}

// withTransport is s on a client that sends its requests through rt.
func withTransport(t *testing.T, s *Store, rt http.RoundTripper) *Store {
	t.Helper()
	u, err := url.Parse(s.cfg.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	client, err := minio.New(u.Host, &minio.Options{
		Creds:        credentials.NewStaticV4(s.cfg.AccessKey, s.cfg.SecretKey, ""),
		Region:       s.cfg.Region,
		Secure:       u.Scheme == "https",
		Transport:    rt,
		BucketLookup: minio.BucketLookupPath,
		MaxRetries:   1,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &Store{cfg: s.cfg, client: client, core: minio.Core{Client: client}}
}

// flipFirstBodyByte inverts the first byte of every PUT body on its way to
// the server: the request's headers, signature included, are untouched.
type flipFirstBodyByte struct {
	base    http.RoundTripper
	flipped *atomic.Int64
}

func (f flipFirstBodyByte) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodPut || req.Body == nil || req.ContentLength == 0 {
		return f.base.RoundTrip(req)
	}
	r := req.Clone(req.Context())
	r.Body = &flipReader{rc: req.Body}
	f.flipped.Add(1)
	return f.base.RoundTrip(r)
}

type flipReader struct {
	rc   io.ReadCloser
	done bool
}

func (r *flipReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	if n > 0 && !r.done {
		p[0] ^= 0xff
		r.done = true
	}
	return n, err
}

func (r *flipReader) Close() error { return r.rc.Close() }
