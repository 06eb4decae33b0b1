package checker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/anycast-watchdog/anycast-watchdog/config"
)

// tlsChecker passes when a TCP connection to address completes a TLS
// handshake whose certificate chain verifies for serverName, and no
// certificate of the verified chain expires within minValidity.
// Outcomes, each a *Mismatch with its reason:
//   - "handshake": the handshake failed for another reason (no TLS there,
//     a protocol or version mismatch); connect failures keep their own
//     reasons (refused, timeout, unreachable);
//   - "name": the certificate does not carry serverName;
//   - "chain": it does not verify against the roots (unknown authority,
//     expired, not yet valid);
//   - "expiry": it verifies but a certificate of the chain expires within
//     minValidity: "expires in 9d 4h (min_validity 14d): CN=…".
type tlsChecker struct {
	address     string
	minValidity time.Duration
	config      *tls.Config
	// expiry is the earliest NotAfter of the last verified chain (Unix
	// nanoseconds; 0: none verified yet), for the expiry metric.
	expiry atomic.Int64
}

func newTLS(_ *Builder, c config.Check) (Checker, error) {
	cfg, err := tlsClientConfig(c)
	if err != nil {
		return nil, err
	}
	return &tlsChecker{address: c.Address, minValidity: c.MinValidity, config: cfg}, nil
}

// tlsClientConfig is the client side of a tls check or of a dns check
// over tls: server_name, and ca_file's roots (else the system's).
func tlsClientConfig(c config.Check) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: c.ServerName, MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read ca_file: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s holds no PEM certificate", c.CAFile)
		}
	}
	return cfg, nil
}

func (t *tlsChecker) Check(ctx context.Context) error {
	d := net.Dialer{KeepAlive: -1}
	raw, err := d.DialContext(ctx, "tcp", t.address)
	if err != nil {
		return err
	}
	conn := tls.Client(raw, t.config)
	defer conn.Close()
	if err := conn.HandshakeContext(ctx); err != nil {
		return handshakeError(ctx, err)
	}
	chains := conn.ConnectionState().VerifiedChains
	if len(chains) == 0 {
		return mismatch("chain", "no verified chain")
	}
	earliest := chains[0][0]
	for _, c := range chains[0] {
		if c.NotAfter.Before(earliest.NotAfter) {
			earliest = c
		}
	}
	t.expiry.Store(earliest.NotAfter.UnixNano())
	if left := time.Until(earliest.NotAfter); left < t.minValidity {
		return mismatch("expiry", "expires in %s (min_validity %s): %s", days(left), days(t.minValidity), earliest.Subject)
	}
	return nil
}

// CertExpiry is when the first certificate of the last verified chain
// expires; zero before one verified.
func (t *tlsChecker) CertExpiry() time.Time {
	if n := t.expiry.Load(); n != 0 {
		return time.Unix(0, n)
	}
	return time.Time{}
}

// certificateError names a certificate's failure in err (name, chain),
// or returns err as it is.
func certificateError(err error) error {
	var name x509.HostnameError
	var authority x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &name):
		return mismatch("name", "name: %v", name)
	case errors.As(err, &authority):
		return mismatch("chain", "chain: %v", authority)
	case errors.As(err, &invalid):
		return mismatch("chain", "chain: %v", invalid)
	}
	return err
}

// handshakeError names what failed in a handshake.
func handshakeError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return err // a timeout, as its reason says
	}
	if named := certificateError(err); named != err {
		return named
	}
	return mismatch("handshake", "handshake: %v", err)
}

// days renders a duration as people count a certificate's validity:
// "9d 4h", "14d", "3h", "expired 2d ago" for a negative one.
func days(d time.Duration) string {
	if d < 0 {
		return "expired " + days(-d) + " ago"
	}
	dd, h := int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour)
	switch {
	case dd == 0:
		return fmt.Sprintf("%dh", h)
	case h == 0:
		return fmt.Sprintf("%dd", dd)
	}
	return fmt.Sprintf("%dd %dh", dd, h)
}
