package objstore

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/versity/versitygw/backend/meta"
	"github.com/versity/versitygw/backend/posix"
	"github.com/versity/versitygw/embedgw"
	"github.com/versity/versitygw/s3api"
)

// childEnv marks a process started by Serve: this package's init runs the
// S3 server in it and exits, before main.
const childEnv = "JETTRAIN_OBJSTORE_S3_SERVER"

// childConfig is sent by Serve on the child's stdin, one JSON line, so the
// secret appears in neither the environment nor the arguments.
type childConfig struct {
	Dir      string
	Host     string
	Port     string
	Access   string
	Secret   string
	Region   string
	ReadOnly bool
}

func init() {
	if os.Getenv(childEnv) == "" {
		return
	}
	os.Exit(serveChild())
}

// serveChild runs in the child: it reads its configuration from stdin,
// reports "listening host:port" or "error ..." on fd 3, and serves until
// stdin reaches EOF (the parent closed it or died) or SIGTERM.
func serveChild() int {
	status := os.NewFile(3, "status")
	report := func(format string, args ...any) { fmt.Fprintf(status, format+"\n", args...) }
	in := bufio.NewReader(os.Stdin)
	line, err := in.ReadBytes('\n')
	var cfg childConfig
	if err == nil {
		err = json.Unmarshal(line, &cfg)
	}
	if err != nil {
		report("error reading the configuration: %v", err)
		return 2
	}
	signal.Ignore(os.Interrupt, syscall.SIGHUP) // the parent decides when to stop
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer cancel()
	go func() {
		io.Copy(io.Discard, in)
		cancel()
	}()
	// versitygw prints a banner line or two on stdout; the parent's stdout
	// belongs to the parent.
	if devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0); err == nil {
		os.Stdout = devnull
	}

	root := filepath.Join(cfg.Dir, "buckets")
	var store meta.MetadataStorer = meta.XattrMeta{}
	// An object's ETag from its checksum rather than an MD5 of its bytes:
	// the MD5 cost the server 2.5 ms of a default run's 2.4 MB checkpoint,
	// and nothing here reads ETags as MD5s (the sha256 in an object's
	// metadata is what guards its bytes).
	popts := posix.PosixOpts{Concurrency: 256, DataIntegrityEtag: true}
	if err := (meta.XattrMeta{}).Test(root); err != nil {
		side := filepath.Join(cfg.Dir, "meta")
		if err := os.MkdirAll(side, 0o755); err != nil {
			report("error %v", err)
			return 1
		}
		sc, err := meta.NewSideCar(side)
		if err != nil {
			report("error metadata directory: %v", err)
			return 1
		}
		store, popts.SideCarDir = sc, side
	}
	be, err := posix.New(root, store, popts)
	if err != nil {
		report("error posix backend on %s: %v", root, err)
		return 1
	}
	defer be.Shutdown()

	port := cfg.Port
	if port == "0" {
		l, err := net.Listen("tcp", net.JoinHostPort(cfg.Host, "0"))
		if err != nil {
			report("error %v", err)
			return 1
		}
		port = strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
		l.Close()
	}
	addr := net.JoinHostPort(cfg.Host, port)
	err = embedgw.RunVersityGW(ctx, be, &embedgw.Config{
		RootUserAccess:    cfg.Access,
		RootUserSecret:    cfg.Secret,
		Region:            cfg.Region,
		Ports:             []string{addr},
		MaxConnections:    1024,
		MaxRequests:       512,
		MultipartMaxParts: 10000,
		Quiet:             true,
		Readonly:          cfg.ReadOnly,
		S3Options:         []s3api.Option{s3api.WithOnListen(func() { report("listening %s", addr) })},
	})
	if err != nil && ctx.Err() == nil {
		report("error %v", err)
		return 1
	}
	return 0
}
