package checker

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"

	"github.com/anycast-watchdog/anycast-watchdog/config"
)

// maxHTTPBody bounds how much of a response body is read and searched.
const maxHTTPBody = 64 << 10

// httpChecker GETs a URL and judges the status and, optionally, the body.
type httpChecker struct {
	url          string
	status       int
	bodyContains string
	client       *http.Client
}

func newHTTP(_ *Builder, c config.Check) (Checker, error) {
	return httpChecker{
		url:          c.URL,
		status:       c.Status,
		bodyContains: c.BodyContains,
		client: &http.Client{
			// No proxy from the environment, no pooled connection that could
			// hide a listener that stopped accepting, no client timeout: the
			// context deadline is the only one.
			Transport: &http.Transport{
				Proxy:             nil,
				DialContext:       (&net.Dialer{}).DialContext,
				DisableKeepAlives: true,
			},
			// A redirect is reported as what it is instead of being followed
			// to somewhere the operator did not configure.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}, nil
}

func (h httpChecker) Check(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "anycast-watchdog")
	resp, err := h.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != h.status {
		if loc := resp.Header.Get("Location"); loc != "" {
			return mismatch("status", "status %d, want %d (redirect to %s not followed)", resp.StatusCode, h.status, loc)
		}
		return mismatch("status", "status %d, want %d", resp.StatusCode, h.status)
	}
	if h.bodyContains == "" {
		return nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxHTTPBody))
	if err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	if !bytes.Contains(body, []byte(h.bodyContains)) {
		return mismatch("body", "body does not contain %q (searched the first %d bytes)", h.bodyContains, len(body))
	}
	return nil
}
