package objstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/jettrain/jettrain/internal/pace"
)

// Store is a connection to one bucket. It is safe for concurrent use; the
// run layout it reads and writes is described in the package documentation.
type Store struct {
	cfg    Config
	client *minio.Client
	core   minio.Core
}

// metaSHA256 is the user metadata key holding the hex sha256 of an object's
// bytes, written on every put and checked by reads that ask for it.
const metaSHA256 = "Jettrain-Sha256"

// Open connects, checks the credentials and the bucket, and creates the
// bucket if it is missing and the credentials allow it. It sends one list
// request (and a create-bucket request if needed); an unreachable endpoint
// fails within about Timeout × (MaxRetries+1).
//
// Writes are not probed: a read-only bucket is reported (ErrReadOnly) by
// the first write, normally PutConfig at run start.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	u, _ := cfg.endpointURL()
	cfg.Endpoint = u.Scheme + "://" + u.Host
	secure := u.Scheme == "https"
	tr, err := minio.DefaultTransport(secure)
	if err != nil {
		return nil, fmt.Errorf("objstore: http transport: %w", err)
	}
	tr.DialContext = (&net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = cfg.Timeout
	tr.ResponseHeaderTimeout = 6 * cfg.Timeout // a large PUT is acknowledged only after its body
	s, err := newStore(cfg, tr)
	if err != nil {
		return nil, err
	}
	if err := s.checkBucket(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// newStore is a Store for cfg (its defaults applied, its endpoint
// normalized) whose client sends its requests through rt, unchecked.
func newStore(cfg Config, rt http.RoundTripper) (*Store, error) {
	u, _ := cfg.endpointURL()
	// No TrailingHeaders: a put signs its sha256 as the payload hash
	// (putSum), which minio-go refuses to combine with a trailing checksum.
	client, err := minio.New(u.Host, &minio.Options{
		Creds:        credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:       u.Scheme == "https",
		Region:       cfg.Region,
		Transport:    rt,
		BucketLookup: minio.BucketLookupPath,
		MaxRetries:   cfg.MaxRetries,
	})
	if err != nil {
		return nil, &Error{Op: "open", Endpoint: cfg.Endpoint, Bucket: cfg.Bucket, Kind: ErrInvalid, Err: err}
	}
	return &Store{cfg: cfg, client: client, core: minio.Core{Client: client}}, nil
}

func (s *Store) checkBucket(ctx context.Context) error {
	err := s.probe(ctx)
	if err == nil {
		return nil
	}
	if classify(opRead, err) != ErrNoBucket {
		return s.fail("open", opRead, "", err)
	}
	err = s.client.MakeBucket(ctx, s.cfg.Bucket, minio.MakeBucketOptions{Region: s.cfg.Region})
	if err != nil {
		switch minio.ToErrorResponse(err).Code {
		case "BucketAlreadyOwnedByYou", "BucketAlreadyExists":
			return nil
		}
		return s.fail("create bucket", opCreateBucket, "", err)
	}
	return nil
}

// probe lists at most one key: a GET whose error body carries the S3 code
// (a HEAD would not tell a bad signature from a denied bucket).
func (s *Store) probe(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for obj := range s.client.ListObjects(ctx, s.cfg.Bucket, minio.ListObjectsOptions{Prefix: runsPrefix, MaxKeys: 1}) {
		return obj.Err
	}
	return nil
}

// Endpoint returns the endpoint URL as configured ("http://host:port").
func (s *Store) Endpoint() string { return s.cfg.Endpoint }

// Bucket returns the bucket name.
func (s *Store) Bucket() string { return s.cfg.Bucket }

// Keep returns how many checkpoints per run Commit retains.
func (s *Store) Keep() int { return s.cfg.Keep }

// amzChecksumCRC32C is the header that names an object's CRC32C
// checksum, base64 of its four big-endian bytes; minio-go sends user
// metadata under x-amz-checksum- as the header itself.
const amzChecksumCRC32C = "X-Amz-Checksum-Crc32c"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc32c(b []byte) string {
	return base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, crc32.Checksum(b, castagnoli)))
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// put writes data under key with its sha256 in user metadata. The request
// signs that sha256 as its payload hash, so the server refuses bytes damaged
// in transit (ErrCorrupt). ifAbsent makes it a conditional create.
func (s *Store) put(ctx context.Context, key string, data []byte, contentType string, ifAbsent bool) error {
	return s.putSum(ctx, key, data, sha256Hex(data), contentType, ifAbsent)
}

// putSum is put with the sha256 of data already at hand (hex).
func (s *Store) putSum(ctx context.Context, key string, data []byte, sum, contentType string, ifAbsent bool) error {
	opts := minio.PutObjectOptions{
		ContentType: contentType,
		UserMetadata: map[string]string{
			metaSHA256: sum,
			// The object's checksum, which S3 servers compute and keep:
			// a CRC32C, named here, rather than the CRC64NVME they take
			// by default, which cost the embedded server 1.9 ms of a
			// 2.4 MB checkpoint (CRC32C runs in hardware on both sides).
			amzChecksumCRC32C: crc32c(data),
		},
		// The request signs sum as its payload hash (X-Amz-Content-Sha256),
		// which the server checks against the body. Without this,
		// minio-go over plain HTTP signs every 64 KiB chunk instead, and
		// the client and the server hash the bytes once more each.
		DisableContentSha256: true,
	}
	if ifAbsent {
		opts.SetMatchETagExcept("*")
	}
	// No Content-MD5 either: the signed sha256 guards the bytes already,
	// and an MD5 costs each side about 3 ms per 2.4 MB checkpoint.
	//
	// The put is tried here, MaxRetries+1 times, each with a reader of its
	// own: minio-go retries a seekable body by seeking it back, while
	// net/http may still be sending it from the attempt before (a data
	// race, and a body sent from the wrong place), so it is given one it
	// cannot seek, and tries it once.
	for try := 0; ; try++ {
		_, err := s.core.PutObject(ctx, s.cfg.Bucket, key, unseekable{bytes.NewReader(data)}, int64(len(data)), "", sum, opts)
		if err == nil {
			return nil
		}
		ferr := s.fail("put", opWrite, key, err)
		if try == s.cfg.MaxRetries || !errors.Is(ferr, ErrUnavailable) && !errors.Is(ferr, ErrUnreachable) ||
			!pace.Wait(ctx, putRetryWait<<min(try, 3)) {
			return ferr
		}
	}
}

// putRetryWait is the wait before a put's second try, doubled for each
// later one (three times at most), as minio-go's retries wait.
const putRetryWait = 200 * time.Millisecond

// unseekable hides a reader's Seek from minio-go (see putSum).
type unseekable struct{ r io.Reader }

func (u unseekable) Read(p []byte) (int, error) { return u.r.Read(p) }

// object is what get returns: the bytes and the sha256 recorded at put time
// (empty if the object was written by someone else).
type object struct {
	data   []byte
	sha256 string
}

// get reads a whole object. A missing object gives ErrNotFound. A body cut
// short on the way (the connection ended before its Content-Length) gives
// ErrUnreachable: the object may be whole, and a fallback to an older
// checkpoint on a network failure would throw away work. A stored object
// that is short or damaged is caught by its sha256 (getVerified).
func (s *Store) get(ctx context.Context, key string) (object, error) {
	rc, info, hdr, err := s.core.GetObject(ctx, s.cfg.Bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return object{}, s.fail("get", opRead, key, err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	if info.Size > 0 {
		buf.Grow(int(info.Size))
	}
	_, err = io.Copy(&buf, rc)
	if err == nil && info.Size >= 0 && int64(buf.Len()) != info.Size {
		err = io.ErrUnexpectedEOF
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return object{}, s.errorAs("get", key, ErrUnreachable, fmt.Errorf("the download ended after %d of %d bytes: %w", buf.Len(), info.Size, err))
	}
	if err != nil {
		return object{}, s.fail("get", opRead, key, err)
	}
	return object{data: buf.Bytes(), sha256: strings.ToLower(hdr.Get("X-Amz-Meta-" + metaSHA256))}, nil
}

// getVerified reads key and checks its bytes against want (hex sha256), or
// against the sha256 recorded at put time when want is empty. It returns
// the bytes and their sha256.
func (s *Store) getVerified(ctx context.Context, key, want string) ([]byte, string, error) {
	obj, err := s.get(ctx, key)
	if err != nil {
		return nil, "", err
	}
	if want == "" {
		want = obj.sha256
	}
	if want == "" {
		return nil, "", s.corrupt(key, errors.New("no sha256 recorded for the object"))
	}
	if got := sha256Hex(obj.data); got != want {
		return nil, "", s.corrupt(key, fmt.Errorf("sha256 %s…, want %s… (%d bytes)", got[:12], short(want), len(obj.data)))
	}
	return obj.data, want, nil
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

func (s *Store) corrupt(key string, err error) error { return s.errorAs("get", key, ErrCorrupt, err) }

// list returns the keys under prefix, sorted. With delimiter "/" it returns
// the immediate "subdirectories" (ending in "/") and objects.
func (s *Store) list(ctx context.Context, prefix string, recursive bool) ([]string, error) {
	var keys []string
	for obj := range s.client.ListObjects(ctx, s.cfg.Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: recursive}) {
		if obj.Err != nil {
			return nil, s.fail("list", opRead, prefix, obj.Err)
		}
		keys = append(keys, obj.Key)
	}
	sort.Strings(keys)
	return keys, nil
}

func (s *Store) remove(ctx context.Context, key string) error {
	if err := s.client.RemoveObject(ctx, s.cfg.Bucket, key, minio.RemoveObjectOptions{}); err != nil {
		return s.fail("delete", opWrite, key, err)
	}
	return nil
}

// Runs returns the names of the runs in the bucket, sorted.
func (s *Store) Runs(ctx context.Context) ([]string, error) {
	keys, err := s.list(ctx, runsPrefix, false)
	if err != nil {
		return nil, err
	}
	var runs []string
	for _, k := range keys {
		name, ok := strings.CutSuffix(strings.TrimPrefix(k, runsPrefix), "/")
		if ok && ValidRun(name) == nil {
			runs = append(runs, name)
		}
	}
	return runs, nil
}
