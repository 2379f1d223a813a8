// Package faultproxy is an HTTP reverse proxy for tests that stands in
// front of a real server and, while told to, answers every request (or
// every request of one method) itself with an error instead: an S3 store
// that is restarting, overloaded, failing or denying deletes, as its
// clients see it.
package faultproxy

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
)

// Proxy forwards to its target until Fail, and again after Pass.
type Proxy struct {
	srv     *httptest.Server
	mu      sync.Mutex
	status  int    // 0: forwarding
	code    string // the S3 error code of the answer, "" for no body
	method  string // the only method answered so, "" for every one
	refused atomic.Int64
}

// New starts a proxy to target (an http:// URL).
func New(target string) (*Proxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("faultproxy: %w", err)
	}
	p := &Proxy{}
	fwd := httputil.NewSingleHostReverseProxy(u)
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		status, code, method := p.status, p.code, p.method
		p.mu.Unlock()
		if status == 0 || (method != "" && r.Method != method) {
			fwd.ServeHTTP(w, r)
			return
		}
		p.refused.Add(1)
		if code == "" {
			w.WriteHeader(status)
			return
		}
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(status)
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>the server is not taking requests</Message><Resource>%s</Resource></Error>`, code, r.URL.Path)
	}))
	return p, nil
}

// URL is the proxy's address.
func (p *Proxy) URL() string { return p.srv.URL }

// Fail makes the proxy answer every request with status and, unless code is
// empty, an S3 error document with that code.
func (p *Proxy) Fail(status int, code string) { p.FailMethod("", status, code) }

// FailMethod makes the proxy answer the requests of method (every method
// if empty) as Fail does and forward the others: a store whose policy
// denies deletes, say.
func (p *Proxy) FailMethod(method string, status int, code string) {
	p.mu.Lock()
	p.status, p.code, p.method = status, code, method
	p.mu.Unlock()
}

// Pass makes the proxy forward again.
func (p *Proxy) Pass() { p.Fail(0, "") }

// Refused is the number of requests answered with an error so far.
func (p *Proxy) Refused() int64 { return p.refused.Load() }

// Close stops the proxy.
func (p *Proxy) Close() { p.srv.Close() }
