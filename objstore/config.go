package objstore

import (
	"fmt"
	"net/url"
	"os"
	"time"

	"github.com/minio/minio-go/v7/pkg/s3utils"
)

// Documented defaults shared by the coordinator, which serves the embedded
// store with them, and the worker, which connects with them unless told
// otherwise (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, flags).
const (
	DefaultAccessKey = "jettrain"
	DefaultSecretKey = "jettrain-secret"
	DefaultBucket    = "jettrain"
	DefaultRegion    = "us-east-1"
	DefaultKeep      = 3
	DefaultEndpoint  = "http://127.0.0.1:9000"
)

// Config says where the store is and how to sign requests.
type Config struct {
	Endpoint  string // "http://127.0.0.1:9000" or "https://..." (scheme required)
	AccessKey string
	SecretKey string
	Bucket    string // default "jettrain"
	Region    string // default "us-east-1"
	Keep      int    // checkpoints kept per run, default 3

	// Timeout bounds connecting and waiting for response headers of one
	// request (default 5s); MaxRetries bounds the client's retries of a
	// failed request (default 2). Together they make an unreachable
	// endpoint fail within seconds.
	Timeout    time.Duration
	MaxRetries int
}

// ConfigFromEnv returns a Config from S3_ENDPOINT, AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY and AWS_REGION, with the documented defaults for
// anything unset. Flags are applied by the caller on top of it.
func ConfigFromEnv() Config {
	c := Config{
		Endpoint:  os.Getenv("S3_ENDPOINT"),
		AccessKey: os.Getenv("AWS_ACCESS_KEY_ID"),
		SecretKey: os.Getenv("AWS_SECRET_ACCESS_KEY"),
		Region:    os.Getenv("AWS_REGION"),
	}
	if c.Endpoint == "" {
		c.Endpoint = DefaultEndpoint
	}
	if c.AccessKey == "" && c.SecretKey == "" {
		c.AccessKey, c.SecretKey = DefaultAccessKey, DefaultSecretKey
	}
	return c.withDefaults()
}

func (c Config) withDefaults() Config {
	if c.Bucket == "" {
		c.Bucket = DefaultBucket
	}
	if c.Region == "" {
		c.Region = DefaultRegion
	}
	if c.Keep == 0 {
		c.Keep = DefaultKeep
	}
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Second
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = 2
	}
	return c
}

// Validate reports the first bad field, wrapping ErrInvalid. Zero Bucket,
// Region, Keep, Timeout and MaxRetries mean the defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
	if _, err := c.endpointURL(); err != nil {
		return err
	}
	if c.AccessKey == "" || c.SecretKey == "" {
		return fmt.Errorf("%w: s3 access key and secret key are required", ErrInvalid)
	}
	if err := s3utils.CheckValidBucketNameStrict(c.Bucket); err != nil {
		return fmt.Errorf("%w: s3 bucket %q: %v", ErrInvalid, c.Bucket, err)
	}
	if c.Keep < 1 {
		return fmt.Errorf("%w: keep %d: at least one checkpoint must be kept", ErrInvalid, c.Keep)
	}
	if c.Timeout < 0 || c.MaxRetries < 0 {
		return fmt.Errorf("%w: negative timeout or retries", ErrInvalid)
	}
	return nil
}

func (c Config) endpointURL() (*url.URL, error) {
	u, err := url.Parse(c.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: s3 endpoint %q: want http://host:port or https://host[:port]", ErrInvalid, c.Endpoint)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return nil, fmt.Errorf("%w: s3 endpoint %q: no path, query or user info allowed", ErrInvalid, c.Endpoint)
	}
	return u, nil
}
