package checker

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/binary"
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
	transport      string      // miekg/dns's: udp, tcp, or tcp-tls for DNS over TLS
	tls            *tls.Config // over tls; with a session cache, so a round resumes the last session
	question       []byte      // the query packed once; each round writes a copy with its own ID
	rcode          int
	answerContains string
	// idle keeps, over UDP, the socket of the last exchange that got a
	// response, for the next round, with its buffer: dialling and closing a
	// socket per probe was most of a DNS check's CPU (docs/performance.md).
	// A round that ends any other way closes its
	// socket, so a late or refused answer never reaches the next round. nil
	// over TCP.
	idle chan dnsSocket
}

// dnsSocket is a DNS check's socket with the buffer its rounds write the
// query into and (over UDP) read the response into.
type dnsSocket struct {
	conn *dns.Conn
	buf  []byte
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
	q := new(dns.Msg)
	q.SetQuestion(c.Query, qtype)
	q.RecursionDesired = true
	question, err := q.Pack()
	if err != nil {
		return nil, fmt.Errorf("packing the query for %q: %w", c.Query, err)
	}
	d := dnsChecker{server: c.Server, transport: c.Transport, question: question,
		rcode: rcode, answerContains: c.AnswerContains}
	if c.Transport == "tls" {
		if d.tls, err = tlsClientConfig(c); err != nil {
			return nil, err
		}
		d.tls.ClientSessionCache = tls.NewLRUClientSessionCache(1)
		d.transport = "tcp-tls"
	}
	if c.Transport == "udp" {
		d.idle = make(chan dnsSocket, 1)
	}
	return d, nil
}

// keep offers s to the next round; false when there is no room (one kept
// at most) and always over TCP (idle is nil: a send on it never proceeds).
func (d dnsChecker) keep(s dnsSocket) bool {
	select {
	case d.idle <- s:
		return true
	default:
		return false
	}
}

// Close closes the socket kept for the next round, if any; the service
// loop calls it when it ends.
func (d dnsChecker) Close() error {
	select {
	case s := <-d.idle:
		return s.conn.Close()
	default:
		return nil
	}
}

func (d dnsChecker) Check(ctx context.Context) error {
	var s dnsSocket
	select {
	case s = <-d.idle:
	default:
		// The client's own dial timeout would cut a connect short at 2 s.
		client := &dns.Client{Net: d.transport, TLSConfig: d.tls, Timeout: time.Hour}
		conn, err := client.DialContext(ctx, d.server)
		if err != nil {
			return certificateError(err)
		}
		s = dnsSocket{conn: conn, buf: make([]byte, dns.MinMsgSize)}
	}
	// The context is the only timeout: at its end the socket is closed
	// under the write or the read. No socket deadlines are set, so a round
	// costs no timer of the runtime's poller.
	stop := context.AfterFunc(ctx, func() { s.conn.Close() })
	r, err := d.exchange(s)
	var verdict error
	if err == nil {
		verdict = d.judge(r) // before the next round may reuse the buffer
	}
	if !stop() || err != nil || !d.keep(s) {
		s.conn.Close()
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
	return verdict
}

// judge compares a response with what the check wants.
func (d dnsChecker) judge(r *dns.Msg) error {
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

// exchange asks the question with a fresh random ID on s and returns the
// response with that ID. Over UDP, responses with another ID are skipped:
// they answer an earlier round's question on a kept socket, or are forged.
func (d dnsChecker) exchange(s dnsSocket) (*dns.Msg, error) {
	q := append(s.buf[:0], d.question...)
	rand.Read(q[:2]) // never fails
	id := binary.BigEndian.Uint16(q)
	if _, err := s.conn.Write(q); err != nil {
		return nil, err
	}
	for {
		r, err := d.read(s)
		switch {
		case err != nil:
			return nil, err
		case r.Id == id:
			return r, nil
		case d.transport != "udp":
			return nil, dns.ErrId
		}
	}
}

// read reads one response: over UDP one datagram into s's buffer (a
// response longer than dns.MinMsgSize fails to unpack, as with the
// library's own read); over TCP the library reads as much as the length
// prefix says.
func (d dnsChecker) read(s dnsSocket) (*dns.Msg, error) {
	if d.transport != "udp" {
		return s.conn.ReadMsg()
	}
	n, err := s.conn.Conn.Read(s.buf[:cap(s.buf)]) // one datagram
	if err != nil {
		return nil, err
	}
	r := new(dns.Msg)
	if err := r.Unpack(s.buf[:n]); err != nil {
		return nil, fmt.Errorf("unpacking the response: %w", err)
	}
	return r, nil
}
