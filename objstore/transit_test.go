package objstore

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/minio/minio-go/v7"
)

// Bytes damaged between the client and the server, after the request was
// signed, are refused by the server, which checks them against the signed
// payload hash: the write fails with ErrCorrupt and the object keeps the
// bytes it had.
func TestDamagedInTransitIsRefused(t *testing.T) {
	servers(t, func(t *testing.T, endpoint string) {
		s := openTest(t, endpoint)
		ctx := testCtx(t)
		key, good := putTestObject(t, s, "transit")
		var flipped atomic.Int64
		var signed []string
		damaged := withTransport(t, s, flipFirstBodyByte{base: http.DefaultTransport, flipped: &flipped, signed: &signed})
		next := bytes.Repeat([]byte("newer bytes "), 4096)
		err := damaged.put(ctx, key, next, "application/octet-stream", false)
		if flipped.Load() == 0 {
			t.Fatal("the transport damaged no request body")
		}
		// The refusal must come from the signed sha256 of the payload, not
		// from another check (Content-MD5, a chunk signature).
		if want := sha256Hex(next); !slices.Equal(signed, []string{want}) {
			t.Fatalf("PUTs signed payload hashes %q, want [%s]", signed, want)
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

// withTransport is s on a client configured as Open configures it, that
// sends its requests through rt.
func withTransport(t *testing.T, s *Store, rt http.RoundTripper) *Store {
	t.Helper()
	d, err := newStore(s.cfg, rt)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// flipFirstBodyByte inverts the first byte of every PUT body on its way to
// the server: the request's headers, signature included, are untouched.
// It counts the bodies actually damaged in flipped and records the payload
// hash each PUT was signed with in signed.
type flipFirstBodyByte struct {
	base    http.RoundTripper
	flipped *atomic.Int64
	signed  *[]string // RoundTrip runs on the caller's goroutine
}

func (f flipFirstBodyByte) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodPut || req.Body == nil || req.ContentLength == 0 {
		return f.base.RoundTrip(req)
	}
	*f.signed = append(*f.signed, req.Header.Get("X-Amz-Content-Sha256"))
	r := req.Clone(req.Context())
	r.Body = &flipReader{rc: req.Body, flipped: f.flipped}
	return f.base.RoundTrip(r)
}

type flipReader struct {
	rc      io.ReadCloser
	flipped *atomic.Int64
	done    bool
}

func (r *flipReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	if n > 0 && !r.done {
		p[0] ^= 0xff
		r.done = true
		r.flipped.Add(1)
	}
	return n, err
}

func (r *flipReader) Close() error { return r.rc.Close() }

// A put names its bytes' CRC32C, which the server checks and keeps as the
// object's checksum in place of the CRC64NVME it computes by default (a
// hash in software, where CRC32C runs in hardware).
func TestAPutNamesItsCRC32C(t *testing.T) {
	servers(t, func(t *testing.T, endpoint string) {
		data, info := putAndStat(t, endpoint, "crc32c")
		if want := crc32c(data); info.ChecksumCRC32C != want || info.ChecksumCRC64NVME != "" {
			t.Fatalf("the object's checksums: CRC32C %q, CRC64NVME %q; want CRC32C %q alone", info.ChecksumCRC32C, info.ChecksumCRC64NVME, want)
		}
	})
}

// The embedded server gives an object an ETag from its checksum, not an
// MD5 of its bytes, which no reader here needs and which cost the server
// more than any other hash of a checkpoint.
func TestTheEmbeddedServerComputesNoMD5(t *testing.T) {
	data, info := putAndStat(t, embedded.URL(), "etag")
	if sum := md5.Sum(data); info.ETag == hex.EncodeToString(sum[:]) {
		t.Fatalf("the embedded server's ETag %q is the MD5 of the object's bytes", info.ETag)
	}
}

// putTestObject puts 68 KB of checkpoint-like bytes under name in the test
// run's prefix on s, and returns the key and the bytes.
func putTestObject(t *testing.T, s *Store, name string) (key string, data []byte) {
	t.Helper()
	key = "runs/" + testRun + "/" + name
	data = bytes.Repeat([]byte("checkpoint bytes "), 4096)
	if err := s.put(testCtx(t), key, data, "application/octet-stream", false); err != nil {
		t.Fatal(err)
	}
	return key, data
}

// putAndStat puts a test object (putTestObject) on the server at endpoint,
// and returns its bytes and what the server says of it, checksums
// included.
func putAndStat(t *testing.T, endpoint, name string) ([]byte, minio.ObjectInfo) {
	t.Helper()
	s := openTest(t, endpoint)
	key, data := putTestObject(t, s, name)
	info, err := s.client.StatObject(testCtx(t), s.cfg.Bucket, key, minio.StatObjectOptions{Checksum: true})
	if err != nil {
		t.Fatal(err)
	}
	return data, info
}

// TestADownloadCutShortIsNotACorruptCheckpoint: a connection that ends in
// the middle of the newest checkpoint's body is a network failure. Latest
// returns it as ErrUnreachable, falls back to no older checkpoint and
// leaves history.json as it was; once the connection holds, the newest
// checkpoint loads.
func TestADownloadCutShortIsNotACorruptCheckpoint(t *testing.T) {
	s := openTest(t, embedded.URL())
	ctx := testCtx(t)
	run := "cutshort0run"
	commitSteps(t, ctx, s, run, 10, 20)
	history, err := s.get(ctx, historyKey(run))
	if err != nil {
		t.Fatal(err)
	}
	var cuts atomic.Int64
	cutting := withTransport(t, s, cutBody{base: http.DefaultTransport, key: CheckpointKey(run, 20), after: 100, cuts: &cuts})
	var warned []string
	ck, _, err := cutting.Latest(ctx, run, func(w string) { warned = append(warned, w) })
	if cuts.Load() == 0 {
		t.Fatal("the transport cut no download")
	}
	if ck != nil {
		t.Fatalf("Latest over a cut download loaded the checkpoint of step %d; want none and ErrUnreachable", ck.Step)
	}
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("Latest over a cut download: %v; want ErrUnreachable", err)
	}
	if len(warned) > 0 {
		t.Fatalf("Latest warned %q: it fell back or repaired over a network failure", warned)
	}
	after, err := s.get(ctx, historyKey(run))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(after.data, history.data) {
		t.Fatalf("history.json changed over a network failure:\n%s\nwas\n%s", after.data, history.data)
	}
	ck, _, err = s.Latest(ctx, run, nil)
	if err != nil {
		t.Fatalf("Latest once the connection holds: %v", err)
	}
	if ck.Step != 20 {
		t.Fatalf("Latest once the connection holds loaded step %d, want 20", ck.Step)
	}
}

// cutBody ends the body of every GET of key after its first after bytes,
// as a connection lost mid-download does: the reader sees
// io.ErrUnexpectedEOF. It counts the bodies cut.
type cutBody struct {
	base  http.RoundTripper
	key   string
	after int
	cuts  *atomic.Int64
}

func (c cutBody) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.base.RoundTrip(req)
	if err == nil && req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/"+c.key) && resp.StatusCode == http.StatusOK {
		c.cuts.Add(1)
		resp.Body = &cutReader{rc: resp.Body, left: c.after}
	}
	return resp, err
}

type cutReader struct {
	rc   io.ReadCloser
	left int
}

func (r *cutReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, io.ErrUnexpectedEOF
	}
	n, err := r.rc.Read(p[:min(len(p), r.left)])
	r.left -= n
	return n, err
}

func (r *cutReader) Close() error { return r.rc.Close() }
