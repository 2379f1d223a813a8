// Package freeport picks loopback TCP ports for servers that restart on the
// same port: test brokers, the chaos harness's NATS and S3 servers.
//
// Listening on port 0 gives a port from the kernel's ephemeral range, the
// range outgoing connections take their local ports from. While a server
// restarting on such a port is down, any outgoing connection on the
// machine may be given that port as its own end, and the restart then fails
// to bind it ("address already in use") for as long as that connection
// lives. Stable draws ports from outside the ephemeral range instead.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// Floor is the lowest port Stable draws below the ephemeral range: above
// the well-known ports and those registered services most often use.
const Floor = 20000

// minSpan is the fewest ports a range Stable draws from may hold.
const minSpan = 1024

// Stable returns a loopback port outside the ephemeral range that nothing
// listens on right now. The draw is random, so concurrent callers seldom
// collide, and each candidate is checked by listening on it.
func Stable() (int, error) {
	lo, hi, err := Range()
	if err != nil {
		return 0, err
	}
	for range 64 {
		port := lo + rand.IntN(hi-lo)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			l.Close()
			return port, nil
		}
	}
	return 0, fmt.Errorf("freeport: no free port in [%d,%d)", lo, hi)
}

// Addr is Stable as a "127.0.0.1:port" address.
func Addr() (string, error) {
	port, err := Stable()
	return fmt.Sprintf("127.0.0.1:%d", port), err
}

// Range is the ports [lo, hi) Stable draws from on this machine: below the
// kernel's ephemeral range (Linux's ip_local_port_range; 32768-60999, its
// default, where that cannot be read), or above it when it starts too low.
func Range() (lo, hi int, err error) {
	text := "32768 60999"
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		text = string(b)
	}
	return outside(text)
}

// outside is Range for an ip_local_port_range text, "first last".
func outside(text string) (lo, hi int, err error) {
	f := strings.Fields(text)
	if len(f) != 2 {
		return 0, 0, fmt.Errorf("freeport: ephemeral range %q", text)
	}
	first, err1 := strconv.Atoi(f[0])
	last, err2 := strconv.Atoi(f[1])
	switch {
	case err1 != nil || err2 != nil || first > last:
		return 0, 0, fmt.Errorf("freeport: ephemeral range %q", text)
	case first-Floor >= minSpan:
		return Floor, first, nil
	case 65536-(last+1) >= minSpan:
		return last + 1, 65536, nil
	}
	return 0, 0, fmt.Errorf("freeport: ephemeral range %q leaves no %d ports outside it", text, minSpan)
}
