// Package freeport picks loopback TCP ports for servers that restart on the
// same port: test brokers, the chaos harness's NATS and S3 servers.
//
// Listening on port 0 gives a port from the kernel's ephemeral range, the
// range outgoing connections take their local ports from. While a server
// restarting on such a port is down, any outgoing connection on the
// machine may be given that port as its own end, and the restart then fails
// to bind it ("address already in use") for as long as that connection
// lives. Stable draws ports from below the ephemeral range instead.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// Floor is the lowest port Stable draws: above the well-known ports and
// those registered services most often use.
const Floor = 20000

// Stable returns a loopback port below the ephemeral range that nothing
// listens on right now. The draw is random, so concurrent callers seldom
// collide, and each candidate is checked by listening on it.
func Stable() (int, error) {
	lo := EphemeralLow()
	for range 64 {
		port := Floor + rand.IntN(lo-Floor)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			l.Close()
			return port, nil
		}
	}
	return 0, fmt.Errorf("freeport: no free port in [%d,%d)", Floor, lo)
}

// Addr is Stable as a "127.0.0.1:port" address.
func Addr() (string, error) {
	port, err := Stable()
	return fmt.Sprintf("127.0.0.1:%d", port), err
}

// EphemeralLow is the first port of the kernel's ephemeral range (Linux's
// ip_local_port_range; 32768, its default, where that cannot be read or
// starts too low to leave room below it).
func EphemeralLow() int {
	lo := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > Floor+1024 {
				lo = n
			}
		}
	}
	return lo
}
