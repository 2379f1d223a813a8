package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/spf13/pflag"

	"github.com/jettrain/jettrain/natsconn"
	"github.com/jettrain/jettrain/objstore"
)

// endpoints are the flags every command shares: where NATS and S3 are, or
// where the embedded servers keep their data.
type endpoints struct {
	dataDir    string
	nats       natsconn.Options
	natsListen string
	s3         string
	s3Listen   string
	bucket     string
	accessKey  string
	secretFile string
}

func (e *endpoints) flags(fs *pflag.FlagSet, withListen bool) {
	fs.StringVar(&e.dataDir, "data-dir", "./jettrain-data", "where the embedded NATS and S3 servers keep their data (worker: its dataset cache)")
	fs.StringVar(&e.nats.URL, "nats", "", "NATS server URL (env NATS_URL); empty = the embedded server")
	fs.StringVar(&e.nats.User, "nats-user", "", "NATS user (env NATS_USER; password from NATS_PASSWORD)")
	fs.StringVar(&e.nats.CredsFile, "nats-creds", "", "NATS credentials file (env NATS_CREDS)")
	fs.StringVar(&e.nats.NKeyFile, "nats-nkey", "", "NATS nkey seed file (env NATS_NKEY)")
	fs.StringVar(&e.nats.TLSCA, "nats-ca", "", "CA certificate for NATS TLS (env NATS_CA)")
	fs.StringVar(&e.nats.TLSCert, "nats-cert", "", "client certificate for NATS TLS (env NATS_CERT)")
	fs.StringVar(&e.nats.TLSKey, "nats-key", "", "client key for NATS TLS (env NATS_KEY)")
	fs.StringVar(&e.s3, "s3", "", "S3 endpoint URL (env S3_ENDPOINT); empty = the embedded server")
	fs.StringVar(&e.bucket, "bucket", "jettrain", "S3 bucket (env S3_BUCKET)")
	fs.StringVar(&e.accessKey, "s3-access-key", "", "S3 access key (env AWS_ACCESS_KEY_ID, default "+objstore.DefaultAccessKey+")")
	fs.StringVar(&e.secretFile, "s3-secret-file", "", "file holding the S3 secret key (env AWS_SECRET_ACCESS_KEY)")
	if withListen {
		fs.StringVar(&e.natsListen, "nats-listen", DefaultNATSListen, "address of the embedded NATS server")
		fs.StringVar(&e.s3Listen, "s3-listen", DefaultS3Listen, "address of the embedded S3 server")
	}
}

func envOr(v, key string) string {
	if v != "" {
		return v
	}
	return os.Getenv(key)
}

// s3Config resolves the S3 flags and environment.
func (e *endpoints) s3Config() (objstore.Config, error) {
	cfg := objstore.Config{
		Endpoint:  envOr(e.s3, "S3_ENDPOINT"),
		AccessKey: envOr(e.accessKey, "AWS_ACCESS_KEY_ID"),
		SecretKey: os.Getenv("AWS_SECRET_ACCESS_KEY"),
		Bucket:    e.bucket,
	}
	if b := os.Getenv("S3_BUCKET"); b != "" && e.bucket == "jettrain" {
		cfg.Bucket = b
	}
	if e.secretFile != "" {
		b, err := os.ReadFile(e.secretFile)
		if err != nil {
			return cfg, fmt.Errorf("--s3-secret-file: %w", err)
		}
		cfg.SecretKey = strings.TrimSpace(string(b))
	}
	if cfg.AccessKey == "" {
		cfg.AccessKey = objstore.DefaultAccessKey
	}
	if cfg.SecretKey == "" {
		cfg.SecretKey = objstore.DefaultSecretKey
	}
	if cfg.Endpoint != "" && !strings.Contains(cfg.Endpoint, "://") {
		cfg.Endpoint = "http://" + cfg.Endpoint
	}
	return cfg, nil
}

// natsOptions resolves the NATS flags and environment.
func (e *endpoints) natsOptions(name string) natsconn.Options {
	o := natsconn.FromEnv().Merge(e.nats)
	o.Name = name
	return o
}

// services is what a command connected to, embedded or not.
type services struct {
	nc      *nats.Conn
	natsURL string
	natsSrv *server.Server
	// natsStore is the embedded NATS server's store directory.
	natsStore string
	// storeFailed receives the embedded NATS server's failure to write its
	// store (storeWatch; nil without an embedded server).
	storeFailed chan *StoreError
	store       *objstore.Store
	s3Srv       *objstore.Server
	opts        natsconn.Options
}

func (s *services) Close() {
	if s.nc != nil {
		s.nc.Close()
	}
	if s.natsSrv != nil {
		s.natsSrv.Shutdown()
		s.natsSrv.WaitForShutdown()
	}
	if s.s3Srv != nil {
		_ = s.s3Srv.Close()
	}
}

// open connects to S3 and, when wantNATS, to NATS, starting embedded servers
// for whichever endpoint is not given (when embed allows it).
func (e *endpoints) open(ctx context.Context, name string, wantNATS, embed bool, s3Listen string) (*services, error) {
	s := &services{}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	dir, err := filepath.Abs(e.dataDir)
	if err != nil {
		return nil, err
	}
	s3cfg, err := e.s3Config()
	if err != nil {
		return nil, err
	}
	if s3cfg.Endpoint == "" {
		if !embed {
			s3cfg.Endpoint = "http://" + DefaultS3Listen
		} else {
			if err := os.MkdirAll(filepath.Join(dir, "s3"), 0o755); err != nil {
				return nil, err
			}
			s.s3Srv, err = objstore.Serve(ctx, filepath.Join(dir, "s3"), s3Listen, s3cfg.AccessKey, s3cfg.SecretKey)
			if err != nil {
				return nil, fmt.Errorf("embedded S3 on %s: %w", s3Listen, err)
			}
			s3cfg.Endpoint = s.s3Srv.URL()
		}
	}
	if s.store, err = objstore.Open(ctx, s3cfg); err != nil {
		return nil, err
	}
	if wantNATS {
		s.opts = e.natsOptions(name)
		if s.opts.URL == "" {
			if !embed {
				s.opts.URL = "nats://" + DefaultNATSListen
			} else {
				// Room for the one failed write, so the server's logging
				// never blocks on it.
				s.storeFailed = make(chan *StoreError, 1)
				s.natsStore = filepath.Join(dir, "nats")
				if s.natsSrv, err = startNATS(s.natsStore, e.natsListen, s.storeFailed); err != nil {
					return nil, err
				}
				s.opts.URL = s.natsSrv.ClientURL()
				// This process's own connections (the coordinator's and its
				// in-process workers') skip the TCP stack.
				s.opts.Extra = append(s.opts.Extra, nats.InProcessServer(s.natsSrv))
			}
		}
		if s.nc, err = natsconn.Connect(ctx, s.opts); err != nil {
			return nil, err
		}
		s.natsURL = s.opts.URL
	}
	ok = true
	return s, nil
}
