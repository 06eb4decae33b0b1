package checker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/anycast-watchdog/anycast-watchdog/config"
)

// dnsChecker asks one question and judges the response code and, optionally,
// the answer records. Each round asks with a fresh query ID.
type dnsChecker struct {
	server         string
	transport      string
	query          string
	qtype          uint16
	rcode          int
	answerContains string
	// idle keeps, over UDP, the socket of the last exchange that got a
	// response, for the next round: a socket per probe was the larger part
	// of a DNS check's CPU (dial and close: 60 % of it, profiled in
	// bench/checks). A round that ends any other way closes its socket, so
	// a late or refused answer never reaches the next round. nil over TCP.
	idle chan *dns.Conn
}

func newDNS(_ *Builder, c config.Check) (Checker, error) {
	qtype, ok := dns.StringToType[c.QType]
	if !ok {
		return nil, fmt.Errorf("unknown qtype %q", c.QType)
	}
	rcode, ok := dns.StringToRcode[c.Rcode]
	if !ok {
		return nil, fmt.Errorf("unknown rcode %q", c.Rcode)
	}
	d := dnsChecker{server: c.Server, transport: c.Transport, query: c.Query, qtype: qtype,
		rcode: rcode, answerContains: c.AnswerContains}
	if c.Transport == "udp" {
		d.idle = make(chan *dns.Conn, 1)
	}
	return d, nil
}

// keep offers conn to the next round; false when there is no room (UDP
// only; one kept at most).
func (d dnsChecker) keep(conn *dns.Conn) bool {
	select {
	case d.idle <- conn:
		return true
	default:
		return false
	}
}

// Close closes the socket kept for the next round, if any; the service
// loop calls it when it ends.
func (d dnsChecker) Close() error {
	select {
	case conn := <-d.idle:
		return conn.Close()
	default:
		return nil
	}
}

func (d dnsChecker) Check(ctx context.Context) error {
	var conn *dns.Conn
	select {
	case conn = <-d.idle:
	default:
		// The client's own dial timeout would cut a connect short at 2 s.
		client := &dns.Client{Net: d.transport, Timeout: time.Hour}
		var err error
		if conn, err = client.DialContext(ctx, d.server); err != nil {
			return err
		}
	}
	// The context is the only timeout: at its end the socket is closed
	// under the write or the read. No socket deadlines are set, so a round
	// costs no timer of the runtime's poller.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	r, err := d.exchange(conn)
	if !stop() || err != nil || !d.keep(conn) {
		conn.Close()
	}
	if err != nil {
		// Past the deadline the socket was closed under the read: no response.
		switch cerr := ctx.Err(); {
		case errors.Is(cerr, context.DeadlineExceeded):
			return fmt.Errorf("no response before the deadline: %w", cerr)
		case cerr != nil:
			return cerr
		}
		return err
	}
	if r.Rcode != d.rcode {
		return mismatch("rcode", "rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[d.rcode])
	}
	if d.answerContains == "" {
		return nil
	}
	var seen []string
	for _, rr := range r.Answer {
		data := strings.TrimPrefix(rr.String(), rr.Header().String())
		if strings.Contains(data, d.answerContains) {
			return nil
		}
		seen = append(seen, dns.TypeToString[rr.Header().Rrtype]+" "+data)
	}
	truncated := ""
	if r.Truncated {
		truncated = " (response truncated; consider transport: tcp)"
	}
	return mismatch("answer", "no answer record contains %q; answers: [%s]%s",
		d.answerContains, strings.Join(seen, ", "), truncated)
}

// exchange asks the question with a fresh random ID on conn and returns the
// response with that ID. Over UDP, responses with another ID are skipped:
// they answer an earlier round's question on a kept socket, or are forged.
func (d dnsChecker) exchange(conn *dns.Conn) (*dns.Msg, error) {
	q := new(dns.Msg)
	q.SetQuestion(d.query, d.qtype) // a fresh random ID
	q.RecursionDesired = true
	if err := conn.WriteMsg(q); err != nil {
		return nil, err
	}
	for {
		r, err := conn.ReadMsg()
		switch {
		case err != nil:
			return nil, err
		case r.Id == q.Id:
			return r, nil
		case d.transport != "udp":
			return nil, dns.ErrId
		}
	}
}
