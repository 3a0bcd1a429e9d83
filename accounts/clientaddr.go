package accounts

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ClientAddr returns the address of the client that sent r. It is the TCP peer, unless the
// peer is one of cfg.TrustedProxies: then X-Forwarded-For is read from the right, skipping
// trusted proxies, and the first address that is not one is the client. Everything left of
// that was written by the client and is ignored, so a client rotating X-Forwarded-For
// changes nothing. It returns the zero Addr when r.RemoteAddr is not an address.
func (s *Service) ClientAddr(r *http.Request) netip.Addr {
	peer := parseAddr(r.RemoteAddr)
	if !peer.IsValid() || !s.trusted(peer) {
		return peer
	}
	client := peer
	values := r.Header.Values("X-Forwarded-For")
	for i := len(values) - 1; i >= 0; i-- {
		hops := strings.Split(values[i], ",")
		for j := len(hops) - 1; j >= 0; j-- {
			hop := parseAddr(strings.TrimSpace(hops[j]))
			if !hop.IsValid() {
				// Our own proxies write valid addresses, so garbage means the chain
				// is broken here; the last hop we could read is all we can vouch for.
				return client
			}
			client = hop
			if !s.trusted(hop) {
				return client
			}
		}
	}
	return client
}

func (s *Service) trusted(a netip.Addr) bool {
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseAddr reads "ip", "ip:port" or "[ip]:port", unmapping IPv4-in-IPv6.
func parseAddr(s string) netip.Addr {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap()
	}
	if host, _, err := net.SplitHostPort(s); err == nil {
		if a, err := netip.ParseAddr(host); err == nil {
			return a.Unmap()
		}
	}
	return netip.Addr{}
}
