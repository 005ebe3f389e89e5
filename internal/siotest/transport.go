package siotest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/coder/websocket"
)

// enginePacket is one Engine.IO packet: text with its type digit first, or
// a binary message.
type enginePacket struct {
	binary bool
	data   []byte
}

// transport carries Engine.IO packets. write may be called concurrently
// with itself and with read; close ends a read in progress.
type transport interface {
	read(ctx context.Context) ([]enginePacket, error)
	write(ctx context.Context, pkt []byte) error
	close()
}

// defaultMaxPayload bounds what a transport reads when the open packet
// names no limit: Engine.IO's default.
const defaultMaxPayload = 1e6

// openPacket is the Engine.IO handshake's payload.
type openPacket struct {
	SID        string `json:"sid"`
	MaxPayload int64  `json:"maxPayload"`
}

// decodeOpen decodes the open packet (with its type digit).
func decodeOpen(b []byte) (openPacket, error) {
	var o openPacket
	if len(b) == 0 || b[0] != '0' {
		return o, fmt.Errorf("siotest: first packet %q, want open", b)
	}
	if err := json.Unmarshal(b[1:], &o); err != nil || o.SID == "" {
		return o, fmt.Errorf("siotest: open packet %q: no sid", b)
	}
	if o.MaxPayload <= 0 {
		o.MaxPayload = defaultMaxPayload
	}
	return o, nil
}

// engineURL returns the Engine.IO URL of the server at base.
func engineURL(base, transport string) (*url.URL, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("siotest: server URL: %w", err)
	}
	u.Path = "/socket.io/"
	u.RawQuery = url.Values{"EIO": {"4"}, "transport": {transport}}.Encode()
	return u, nil
}

// handshakeError reads the refusal resp answers (the websocket library
// keeps only the first kilobyte of its body; that is enough).
func handshakeError(resp *http.Response) error {
	e := &HandshakeError{StatusCode: resp.StatusCode, Code: -1}
	if resp.Body != nil {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		var msg struct {
			Code    *int   `json:"code"`
			Message string `json:"message"`
		}
		if json.Unmarshal(body, &msg) == nil && msg.Code != nil {
			e.Code, e.Message = *msg.Code, msg.Message
		} else {
			e.Message = strings.TrimSpace(string(body))
		}
	}
	return e
}

// wsTransport is Engine.IO over one websocket: a message per packet.
type wsTransport struct{ conn *websocket.Conn }

func dialWebsocket(ctx context.Context, base string, header http.Header) (*wsTransport, error) {
	u, err := engineURL(base, Websocket)
	if err != nil {
		return nil, err
	}
	conn, resp, err := websocket.Dial(ctx, u.String(), &websocket.DialOptions{HTTPHeader: header.Clone()})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return nil, handshakeError(resp)
		}
		return nil, fmt.Errorf("siotest: dial websocket: %w", err)
	}
	_, b, err := conn.Read(ctx)
	if err != nil {
		conn.CloseNow()
		return nil, fmt.Errorf("siotest: read open packet: %w", err)
	}
	open, err := decodeOpen(b)
	if err != nil {
		conn.CloseNow()
		return nil, err
	}
	conn.SetReadLimit(open.MaxPayload)
	return &wsTransport{conn: conn}, nil
}

func (t *wsTransport) read(ctx context.Context) ([]enginePacket, error) {
	typ, b, err := t.conn.Read(ctx)
	if err != nil {
		return nil, err
	}
	return []enginePacket{{binary: typ == websocket.MessageBinary, data: b}}, nil
}

func (t *wsTransport) write(ctx context.Context, pkt []byte) error {
	return t.conn.Write(ctx, websocket.MessageText, pkt)
}

func (t *wsTransport) close() { t.conn.Close(websocket.StatusNormalClosure, "") }

// recordSeparator joins the packets of a polling payload.
const recordSeparator = 0x1e

// pollingTransport is Engine.IO over HTTP long-polling: a GET waits for
// packets, a POST sends them. Posts are one at a time, as the protocol
// requires (a server ends a session that overlaps two).
type pollingTransport struct {
	url        string // with the session id
	header     http.Header
	http       *http.Client
	maxPayload int64

	postMu sync.Mutex
	cancel context.CancelFunc // ends the requests in flight
	ctx    context.Context
	first  []enginePacket // what came with the open packet, read first
}

func dialPolling(ctx context.Context, base string, header http.Header) (*pollingTransport, error) {
	u, err := engineURL(base, Polling)
	if err != nil {
		return nil, err
	}
	t := &pollingTransport{header: header.Clone(), http: &http.Client{Transport: &http.Transport{}}, maxPayload: defaultMaxPayload}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	pkts, err := t.get(ctx, u.String())
	if err != nil {
		t.close()
		return nil, fmt.Errorf("siotest: polling handshake: %w", err)
	}
	open, err := decodeOpen(pkts[0].data)
	if err != nil {
		t.close()
		return nil, err
	}
	q := u.Query()
	q.Set("sid", open.SID)
	u.RawQuery = q.Encode()
	t.url, t.maxPayload, t.first = u.String(), open.MaxPayload, pkts[1:]
	return t, nil
}

// do sends req with the client's headers, ended by ctx or by close.
func (t *pollingTransport) do(ctx context.Context, method, url string, body []byte) (*http.Response, error) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(t.ctx, cancel)
	defer stop()
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		cancel()
		return nil, err
	}
	for k, v := range t.header {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	}
	resp, err := t.http.Do(req)
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = cancelOnClose{resp.Body, cancel}
	return resp, nil
}

// cancelOnClose releases a request's context with its body.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b cancelOnClose) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// get polls url once and decodes the payload.
func (t *pollingTransport) get(ctx context.Context, url string) ([]enginePacket, error) {
	resp, err := t.do(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, handshakeError(resp)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, t.maxPayload+1))
	if err != nil {
		return nil, fmt.Errorf("read poll: %w", err)
	}
	if int64(len(body)) > t.maxPayload {
		return nil, errors.New("poll payload larger than maxPayload")
	}
	return decodePayload(body)
}

func (t *pollingTransport) read(ctx context.Context) ([]enginePacket, error) {
	if first := t.first; first != nil {
		t.first = nil
		if len(first) > 0 {
			return first, nil
		}
	}
	pkts, err := t.get(ctx, t.url)
	if err != nil {
		return nil, fmt.Errorf("siotest: poll: %w", err)
	}
	return pkts, nil
}

func (t *pollingTransport) write(ctx context.Context, pkt []byte) error {
	t.postMu.Lock()
	defer t.postMu.Unlock()
	resp, err := t.do(ctx, http.MethodPost, t.url, pkt)
	if err != nil {
		return fmt.Errorf("siotest: post: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("siotest: post: %w", handshakeError(resp))
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

// close sends the Engine.IO close packet, as a closing client does, then
// ends the requests in flight.
func (t *pollingTransport) close() {
	if t.url != "" && t.ctx.Err() == nil {
		ctx, cancel := context.WithTimeout(t.ctx, writeTimeout)
		_ = t.write(ctx, []byte{'1'}) // best effort: the server may have gone
		cancel()
	}
	t.cancel()
	t.http.CloseIdleConnections()
}

// decodePayload splits a polling payload into its packets; binary ones are
// "b" and standard base64.
func decodePayload(body []byte) ([]enginePacket, error) {
	var pkts []enginePacket
	for rec := range bytes.SplitSeq(body, []byte{recordSeparator}) {
		if len(rec) > 0 && rec[0] == 'b' {
			data, err := base64.StdEncoding.AppendDecode(nil, rec[1:])
			if err != nil {
				return nil, fmt.Errorf("poll payload: base64: %w", err)
			}
			pkts = append(pkts, enginePacket{binary: true, data: data})
			continue
		}
		pkts = append(pkts, enginePacket{data: rec})
	}
	return pkts, nil
}
