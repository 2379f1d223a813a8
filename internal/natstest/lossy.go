package natstest

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Lossy is a TCP proxy in front of a real server that can lose what its
// clients send, as a broker that dies after reading a request and before
// answering it does: from Swallow on, the clients' bytes are read and
// dropped; Pass forwards them again on the same connections, and Cut
// closes every connection and forwards again, so the clients reconnect.
// Either way the requests lost meanwhile are never answered.
type Lossy struct {
	ln       net.Listener
	target   string
	swallow  atomic.Bool
	dropped  atomic.Int64
	mu       sync.Mutex
	conns    []net.Conn
	finished sync.WaitGroup
}

// NewLossy starts a proxy to target (host:port), closed when t ends.
func NewLossy(t testing.TB, target string) *Lossy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Lossy{ln: ln, target: target}
	p.finished.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// StartLossy runs a server with o (see Start) behind a Lossy proxy, and
// returns the proxy and a client connected through it that reconnects
// every 10 ms, forever; all end when t ends.
func StartLossy(t testing.TB, o server.Options) (*Lossy, *nats.Conn) {
	t.Helper()
	p := NewLossy(t, Start(t, o).Addr().String())
	nc, err := nats.Connect(p.URL(), nats.ReconnectWait(10*time.Millisecond), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return p, nc
}

// URL is the proxy's address as a NATS URL.
func (p *Lossy) URL() string { return "nats://" + p.ln.Addr().String() }

// Swallow makes the proxy drop every byte its clients send from now on.
func (p *Lossy) Swallow() { p.swallow.Store(true) }

// Dropped is how many bytes the proxy has dropped.
func (p *Lossy) Dropped() int64 { return p.dropped.Load() }

// AwaitDropped waits, up to 10 s, until the proxy has dropped more than
// past bytes (a request went out while it swallows), and fails t if it
// has not.
func (p *Lossy) AwaitDropped(t testing.TB, past int64) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); p.Dropped() <= past; time.Sleep(time.Millisecond) { // polling interval
		if time.Now().After(deadline) {
			t.Fatal("no request went out through the proxy in 10 s")
		}
	}
}

// Pass forwards the clients' bytes again.
func (p *Lossy) Pass() { p.swallow.Store(false) }

// Cut closes every connection through the proxy and forwards again.
func (p *Lossy) Cut() {
	p.mu.Lock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.swallow.Store(false)
}

func (p *Lossy) accept() {
	defer p.finished.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = client.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, client, server)
		p.mu.Unlock()
		go p.forward(server, client, true)
		go p.forward(client, server, false)
	}
}

// forward copies from src to dst; what clients send (fromClient) is
// dropped while the proxy swallows.
func (p *Lossy) forward(dst, src net.Conn, fromClient bool) {
	defer func() { _ = dst.Close(); _ = src.Close() }()
	if !fromClient {
		_, _ = io.Copy(dst, src)
		return
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if p.swallow.Load() {
				p.dropped.Add(int64(n))
			} else if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *Lossy) close() {
	_ = p.ln.Close()
	p.Cut()
	p.finished.Wait()
}
