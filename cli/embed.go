package cli

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/jettrain/jettrain/protocol"
)

// Default listen addresses of the embedded servers, which are also the
// worker's default endpoints.
const (
	DefaultNATSListen = "127.0.0.1:4222"
	DefaultS3Listen   = "127.0.0.1:9000"
)

// startNATS runs an embedded JetStream server storing under dir. Its
// reports that it cannot store go to failed (see storeWatch).
func startNATS(dir, listen string, failed chan<- *StoreError) (*server.Server, error) {
	host, portStr, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("--nats-listen %q: %w", listen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("--nats-listen %q: bad port", listen)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	store := filepath.Join(dir, "nats")
	s, err := server.NewServer(&server.Options{
		ServerName: "jettrain-embedded",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   store,
		MaxPayload: protocol.MaxPayload,
		NoSigs:     true,
		NoLog:      true,
	})
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	s.SetLogger(&storeWatch{dir: store, failed: failed}, false, false)
	go s.Start()
	if !s.ReadyForConnections(15 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("embedded NATS did not start listening on %s (is the port in use? pass --nats-listen or --nats)", listen)
	}
	return s, nil
}

// StoreError is the embedded NATS server failing to store: its files
// cannot be written (a full disk, files it may not write), after which its
// JetStream stores nothing more and tells no client so, their publishes
// timing out; or (Full) it refuses to store more than the room it found
// on its disk when it started.
type StoreError struct {
	Dir  string // the store directory
	Msg  string // the server's report
	Full bool   // the store has no room left, as opposed to a failed write
}

func (e *StoreError) Error() string {
	if e.Full {
		return fmt.Sprintf("the embedded NATS server has no room left in its store under %s (%s)", e.Dir, e.Msg)
	}
	return fmt.Sprintf("the embedded NATS server cannot write its store under %s (%s)", e.Dir, e.Msg)
}

// storeWatch is the embedded NATS server's logger. The server otherwise
// logs nothing, as before it had one; its reports that it cannot store go
// to failed: the first failed write, and the reports of no room (the
// server makes those at most every 10 s) that find room in the channel.
type storeWatch struct {
	dir    string
	failed chan<- *StoreError
	once   sync.Once
}

func (w *storeWatch) report(format string, v []any) {
	msg := fmt.Sprintf(format, v...)
	switch storeFailureOf(msg) {
	case storeWriteFailed:
		w.once.Do(func() { w.failed <- &StoreError{Dir: w.dir, Msg: msg} })
	case storeFull:
		select {
		case w.failed <- &StoreError{Dir: w.dir, Msg: msg, Full: true}:
		default: // one is waiting to be read already
		}
	}
}

type storeFailure int

const (
	storeFine storeFailure = iota
	storeWriteFailed
	storeFull
)

// storeFailureOf tells the server's reports of a store it cannot write,
// or that has no room left, from the rest (nats-server 2.x words them so).
func storeFailureOf(msg string) storeFailure {
	msg = strings.ToLower(msg)
	for _, s := range []string{"critical write error", "no space left on device", "disabling jetstream", "will be disabled"} {
		if strings.Contains(msg, s) {
			return storeWriteFailed
		}
	}
	if strings.Contains(msg, "resource limits exceeded") {
		return storeFull
	}
	return storeFine
}

func (w *storeWatch) Errorf(format string, v ...any) { w.report(format, v) }
func (w *storeWatch) Warnf(format string, v ...any)  { w.report(format, v) }
func (w *storeWatch) Fatalf(format string, v ...any) { w.report(format, v) }
func (w *storeWatch) Noticef(string, ...any)         {}
func (w *storeWatch) Debugf(string, ...any)          {}
func (w *storeWatch) Tracef(string, ...any)          {}

// storeGuard decides when the embedded server's store failures end a run.
// A failed write ends it at once: the server stores nothing more until it
// restarts. No room ends it only when no step has been committed for
// noRoomGrace since the report: the run frees room itself, by trimming the
// grads stream after each checkpoint.
type storeGuard struct {
	full   *StoreError // the first report of no room not yet outlived by a commit
	fullAt time.Time
}

const noRoomGrace = 10 * time.Second

// report takes a failure at now, with the run's last step committed at
// lastCommit, and returns the error that ends the run, if it ends now.
func (g *storeGuard) report(err *StoreError, now, lastCommit time.Time) *StoreError {
	if !err.Full {
		return err
	}
	if g.full == nil {
		g.full, g.fullAt = err, now
	}
	return g.check(now, lastCommit)
}

// check returns the error that ends the run at now, if any, with its last
// step committed at lastCommit.
func (g *storeGuard) check(now, lastCommit time.Time) *StoreError {
	if g.full == nil {
		return nil
	}
	if lastCommit.After(g.fullAt) {
		g.full = nil // a step went through since: there was room after all
		return nil
	}
	if now.Sub(g.fullAt) >= noRoomGrace {
		return g.full
	}
	return nil
}
