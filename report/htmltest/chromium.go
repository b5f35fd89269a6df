// Package htmltest opens an HTML report in Debian's headless Chromium through the DevTools
// protocol (over a pipe, no port) and reports what a reader's browser would do with it:
// console errors, uncaught exceptions, every network request, a screenshot and a print to
// PDF. Tests only: the ipsecpath binary does not link it.
package htmltest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

// Chromium is where Debian's chromium package puts the browser.
const Chromium = "/usr/bin/chromium"

// Page is what the browser did with one page.
type Page struct {
	ConsoleErrors []string // console.error calls, uncaught exceptions, error log entries
	Requests      []string // every URL the page asked for, the page itself excepted
	Screenshot    []byte   // PNG of the whole page at 1280 px wide
	PrintShot     []byte   // PNG of the whole page with the print style sheet applied
	PDF           []byte   // the page printed (print CSS applied)
	// Eval holds the results of the expressions passed to Open, in order (JSON values).
	Eval []json.RawMessage
}

// Open loads the HTML file path in a fresh headless Chromium (its own profile under a
// temporary directory, removed afterwards; no network features), waits for it to load,
// evaluates exprs in it, takes a full-page screenshot and prints it to PDF.
func Open(ctx context.Context, path string, exprs ...string) (*Page, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	prof, err := os.MkdirTemp("", "ipsecpath-chromium-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(prof)
	// The browser reads commands from fd 3 and writes answers to fd 4.
	cmdR, cmdW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, Chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-default-apps", "--disable-extensions", "--user-data-dir="+prof, "--remote-debugging-pipe", "about:blank")
	cmd.ExtraFiles = []*os.File{cmdR, outW}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", Chromium, err)
	}
	cmdR.Close()
	outW.Close()
	c := &cdp{w: cmdW, pending: map[int]chan cdpMsg{}, events: make(chan cdpMsg, 4096)}
	go c.readLoop(outR)
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c.call(cctx, "", "Browser.close", nil, nil)
		cancel()
		cmdW.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		outR.Close()
	}()
	p, err := c.load(ctx, "file://"+abs, exprs)
	if err != nil {
		return nil, fmt.Errorf("%w (chromium stderr: %s)", err, lastLines(stderr.String(), 5))
	}
	return p, nil
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, " | ")
}

type cdpMsg struct {
	ID        int             `json:"id,omitempty"`
	Method    string          `json:"method,omitempty"`
	Params    json.RawMessage `json:"params,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *struct{ Message string }
	SessionID string `json:"sessionId,omitempty"`
}

type cdp struct {
	w       *os.File
	mu      sync.Mutex
	next    int
	pending map[int]chan cdpMsg
	events  chan cdpMsg
}

func (c *cdp) readLoop(r *os.File) {
	br := bufio.NewReaderSize(r, 1<<20)
	for {
		b, err := br.ReadBytes(0)
		if err != nil {
			close(c.events)
			return
		}
		var m cdpMsg
		if json.Unmarshal(b[:len(b)-1], &m) != nil {
			continue
		}
		if m.ID != 0 {
			c.mu.Lock()
			ch := c.pending[m.ID]
			delete(c.pending, m.ID)
			c.mu.Unlock()
			if ch != nil {
				ch <- m
			}
			continue
		}
		select {
		case c.events <- m:
		default: // a flood of events: the test only needs the first thousands
		}
	}
}

func (c *cdp) call(ctx context.Context, session, method string, params, out any) error {
	c.mu.Lock()
	c.next++
	id := c.next
	ch := make(chan cdpMsg, 1)
	c.pending[id] = ch
	c.mu.Unlock()
	req := map[string]any{"id": id, "method": method}
	if params != nil {
		req["params"] = params
	}
	if session != "" {
		req["sessionId"] = session
	}
	b, _ := json.Marshal(req)
	if _, err := c.w.Write(append(b, 0)); err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	select {
	case m := <-ch:
		if m.Error != nil {
			return fmt.Errorf("%s: %s", method, m.Error.Message)
		}
		if out != nil {
			return json.Unmarshal(m.Result, out)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", method, ctx.Err())
	}
}

func (c *cdp) load(ctx context.Context, url string, exprs []string) (*Page, error) {
	var tgt struct{ TargetID string }
	if err := c.call(ctx, "", "Target.createTarget", map[string]any{"url": "about:blank"}, &tgt); err != nil {
		return nil, err
	}
	var att struct{ SessionID string }
	if err := c.call(ctx, "", "Target.attachToTarget", map[string]any{"targetId": tgt.TargetID, "flatten": true}, &att); err != nil {
		return nil, err
	}
	s := att.SessionID
	for _, m := range []string{"Runtime.enable", "Log.enable", "Network.enable", "Page.enable"} {
		if err := c.call(ctx, s, m, nil, nil); err != nil {
			return nil, err
		}
	}
	if err := c.call(ctx, s, "Emulation.setDeviceMetricsOverride", map[string]any{"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false}, nil); err != nil {
		return nil, err
	}
	if err := c.call(ctx, s, "Page.navigate", map[string]any{"url": url}, nil); err != nil {
		return nil, err
	}
	p := &Page{}
	loaded := false
	// Read events until the page has loaded and then until 300 ms pass quietly (late
	// requests and errors from anything the page might start after load).
	quiet := time.NewTimer(10 * time.Second)
	defer quiet.Stop()
	for done := false; !done; {
		select {
		case m, ok := <-c.events:
			if !ok {
				return nil, errors.New("chromium closed the DevTools pipe")
			}
			if m.SessionID != s {
				continue
			}
			p.event(m, url)
			if m.Method == "Page.loadEventFired" {
				loaded = true
			}
			if loaded {
				quiet.Reset(300 * time.Millisecond)
			}
		case <-quiet.C:
			if !loaded {
				return nil, errors.New("the page did not load in 10 s")
			}
			done = true
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	for _, e := range exprs {
		var res struct {
			Result struct {
				Value json.RawMessage `json:"value"`
			} `json:"result"`
			ExceptionDetails *struct{ Text string } `json:"exceptionDetails"`
		}
		if err := c.call(ctx, s, "Runtime.evaluate", map[string]any{"expression": e, "returnByValue": true}, &res); err != nil {
			return nil, err
		}
		if res.ExceptionDetails != nil {
			return nil, fmt.Errorf("evaluate %q: %s", e, res.ExceptionDetails.Text)
		}
		p.Eval = append(p.Eval, res.Result.Value)
	}
	var shot struct{ Data string }
	if err := c.call(ctx, s, "Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": true}, &shot); err != nil {
		return nil, err
	}
	var err error
	if p.Screenshot, err = base64.StdEncoding.DecodeString(shot.Data); err != nil {
		return nil, err
	}
	if err := c.call(ctx, s, "Emulation.setEmulatedMedia", map[string]any{"media": "print"}, nil); err != nil {
		return nil, err
	}
	var pshot struct{ Data string }
	if err := c.call(ctx, s, "Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": true}, &pshot); err != nil {
		return nil, err
	}
	if p.PrintShot, err = base64.StdEncoding.DecodeString(pshot.Data); err != nil {
		return nil, err
	}
	if err := c.call(ctx, s, "Emulation.setEmulatedMedia", map[string]any{"media": ""}, nil); err != nil {
		return nil, err
	}
	var pdf struct{ Data string }
	if err := c.call(ctx, s, "Page.printToPDF", map[string]any{"printBackground": true}, &pdf); err != nil {
		return nil, err
	}
	if p.PDF, err = base64.StdEncoding.DecodeString(pdf.Data); err != nil {
		return nil, err
	}
	// Anything printing set off (beforeprint handlers) lands here too.
	for drained := false; !drained; {
		select {
		case m, ok := <-c.events:
			if !ok {
				drained = true
				break
			}
			if m.SessionID == s {
				p.event(m, url)
			}
		default:
			drained = true
		}
	}
	return p, nil
}

func (p *Page) event(m cdpMsg, self string) {
	switch m.Method {
	case "Runtime.consoleAPICalled":
		var e struct {
			Type string
			Args []struct {
				Value       any
				Description string
			}
		}
		json.Unmarshal(m.Params, &e)
		if e.Type == "error" || e.Type == "assert" {
			var parts []string
			for _, a := range e.Args {
				parts = append(parts, fmt.Sprint(a.Value, a.Description))
			}
			p.ConsoleErrors = append(p.ConsoleErrors, "console."+e.Type+": "+strings.Join(parts, " "))
		}
	case "Runtime.exceptionThrown":
		p.ConsoleErrors = append(p.ConsoleErrors, "exception: "+string(m.Params))
	case "Log.entryAdded":
		var e struct {
			Entry struct{ Level, Text, URL string }
		}
		json.Unmarshal(m.Params, &e)
		if e.Entry.Level == "error" {
			p.ConsoleErrors = append(p.ConsoleErrors, "log: "+e.Entry.Text+" "+e.Entry.URL)
		}
	case "Network.requestWillBeSent":
		var e struct{ Request struct{ URL string } }
		json.Unmarshal(m.Params, &e)
		if e.Request.URL != self {
			p.Requests = append(p.Requests, e.Request.URL)
		}
	}
}

// ArtefactDir returns the directory test artefacts (screenshots, PDFs) are kept in: the
// repository's gitignored .artefacts/ (or $IPSECPATH_ARTEFACTS), created if needed.
func ArtefactDir() (string, error) {
	dir := os.Getenv("IPSECPATH_ARTEFACTS")
	if dir == "" {
		_, file, _, ok := runtime.Caller(0)
		if !ok {
			return "", errors.New("htmltest: cannot locate the repository")
		}
		dir = filepath.Join(filepath.Dir(file), "..", "..", ".artefacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	return filepath.Abs(dir)
}
