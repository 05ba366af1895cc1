package e2e_test

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/websocket"
)

// chromiumPath is where Debian's chromium package installs the browser.
const chromiumPath = "/usr/bin/chromium"

// browser is a headless Chromium driven through the Chrome DevTools Protocol
// (https://chromedevtools.github.io/devtools-protocol/) over one websocket, with one page
// attached in flat session mode. Only the few commands the tests need are wrapped; events
// are read and dropped (the tests poll the DOM instead).
type browser struct {
	t       testing.TB
	ws      *websocket.Conn
	session string // the page's CDP session id

	mu      sync.Mutex
	nextID  int
	pending map[int]chan cdpMessage
	closed  error
}

type cdpMessage struct {
	ID        int             `json:"id,omitempty"`
	Method    string          `json:"method,omitempty"`
	SessionID string          `json:"sessionId,omitempty"`
	Params    any             `json:"params,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

var devtoolsURL = regexp.MustCompile(`DevTools listening on (ws://\S+)`)

// startBrowser launches headless Chromium with a fresh profile (its own cookies and local
// storage: one browser is one person's session) and opens one blank page, or skips the test
// when Chromium is not installed. flags are added to Chromium's command line.
func startBrowser(t *testing.T, flags ...string) *browser {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("browser test needs Chromium at %s: install the Debian package (apt-get install -y chromium)", chromiumPath)
	}
	profile := t.TempDir()
	args := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--remote-allow-origins=http://127.0.0.1",
		"--user-data-dir=" + profile, "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
	}
	cmd := exec.Command(chromiumPath, append(append(args, flags...), "about:blank")...)
	// Its own process group, so that no renderer or helper outlives the test.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", chromiumPath, err)
	}
	done := make(chan struct{})
	var b *browser
	t.Cleanup(func() {
		if b != nil {
			_ = b.try("", "Browser.close", nil, nil) // it stops its helpers itself
		}
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // the group of the browser started here
			<-done
		}
	})
	found := make(chan string, 1)
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			if m := devtoolsURL.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
		cmd.Wait()
	}()
	var wsURL string
	select {
	case wsURL = <-found:
	case <-done:
		t.Fatal("chromium exited before it printed its DevTools address")
	case <-time.After(30 * time.Second):
		t.Fatal("chromium did not print its DevTools address within 30s")
	}
	cfg, err := websocket.NewConfig(wsURL, "http://127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	ws, err := websocket.DialConfig(cfg)
	if err != nil {
		t.Fatalf("connect to chromium's DevTools: %v", err)
	}
	b = &browser{t: t, ws: ws, pending: map[int]chan cdpMessage{}}
	go b.read()

	var target struct {
		TargetID string `json:"targetId"`
	}
	b.callSession("", "Target.createTarget", map[string]any{"url": "about:blank"}, &target)
	var attached struct {
		SessionID string `json:"sessionId"`
	}
	b.callSession("", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &attached)
	b.session = attached.SessionID
	b.call("Emulation.setDeviceMetricsOverride", map[string]any{
		"width": 1440, "height": 1000, "deviceScaleFactor": 1, "mobile": false,
	}, nil)
	return b
}

func (b *browser) read() {
	for {
		var raw []byte
		if err := websocket.Message.Receive(b.ws, &raw); err != nil {
			b.mu.Lock()
			b.closed = err
			for id, ch := range b.pending {
				close(ch)
				delete(b.pending, id)
			}
			b.mu.Unlock()
			return
		}
		var m cdpMessage
		if json.Unmarshal(raw, &m) != nil || m.ID == 0 {
			continue // an event
		}
		b.mu.Lock()
		ch := b.pending[m.ID]
		delete(b.pending, m.ID)
		b.mu.Unlock()
		if ch != nil {
			ch <- m
		}
	}
}

// call sends a command to the page and decodes its result into out (if not nil).
func (b *browser) call(method string, params any, out any) {
	b.t.Helper()
	b.callSession(b.session, method, params, out)
}

func (b *browser) callSession(session, method string, params any, out any) {
	b.t.Helper()
	if err := b.try(session, method, params, out); err != nil {
		b.t.Fatal(err)
	}
}

func (b *browser) try(session, method string, params any, out any) error {
	b.mu.Lock()
	if b.closed != nil {
		b.mu.Unlock()
		return fmt.Errorf("cdp %s: connection closed: %w", method, b.closed)
	}
	b.nextID++
	id := b.nextID
	ch := make(chan cdpMessage, 1)
	b.pending[id] = ch
	b.mu.Unlock()
	msg, err := json.Marshal(cdpMessage{ID: id, Method: method, SessionID: session, Params: params})
	if err != nil {
		return err
	}
	if err := websocket.Message.Send(b.ws, string(msg)); err != nil {
		return fmt.Errorf("cdp %s: %w", method, err)
	}
	select {
	case m, ok := <-ch:
		switch {
		case !ok:
			return fmt.Errorf("cdp %s: connection closed", method)
		case m.Error != nil:
			return fmt.Errorf("cdp %s: %s (%d)", method, m.Error.Message, m.Error.Code)
		case out != nil:
			return json.Unmarshal(m.Result, out)
		}
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("cdp %s: no answer within 30s", method)
	}
}

// navigate opens url in the page (it does not wait for the single-page app to render).
func (b *browser) navigate(url string) {
	b.t.Helper()
	var res struct {
		ErrorText string `json:"errorText"`
	}
	b.call("Page.navigate", map[string]any{"url": url}, &res)
	if res.ErrorText != "" {
		b.t.Fatalf("navigate to %s: %s", url, res.ErrorText)
	}
}

// eval runs a JavaScript expression in the page and decodes its (JSON) value into out.
func (b *browser) eval(expr string, out any) error {
	var res struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	if err := b.try(b.session, "Runtime.evaluate", map[string]any{
		"expression": expr, "returnByValue": true, "awaitPromise": true,
	}, &res); err != nil {
		return err
	}
	if res.ExceptionDetails != nil {
		return errors.New("javascript: " + res.ExceptionDetails.Text)
	}
	if out == nil || len(res.Result.Value) == 0 {
		return nil
	}
	return json.Unmarshal(res.Result.Value, out)
}

// location returns the page's URL ("" when it cannot be read, e.g. while navigating).
func (b *browser) location() string {
	var s string
	if err := b.eval(`location.href`, &s); err != nil {
		return ""
	}
	return s
}

// text returns the page's visible text ("" while it is loading).
func (b *browser) text() string {
	var s string
	if err := b.eval(`document.body ? document.body.innerText : ""`, &s); err != nil {
		return ""
	}
	return s
}

// waitFor polls the page until cond holds or timeout passes; it returns the last text.
func (b *browser) waitFor(timeout time.Duration, cond func(text string) bool) (string, bool) {
	deadline := time.Now().Add(timeout)
	for {
		txt := b.text()
		if cond(txt) {
			return txt, true
		}
		if time.Now().After(deadline) {
			return txt, false
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// screenshot captures the page as PNG (the full scrollable page when full is set).
func (b *browser) screenshot(full bool) []byte {
	b.t.Helper()
	var res struct {
		Data string `json:"data"`
	}
	b.call("Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": full}, &res)
	png, err := base64.StdEncoding.DecodeString(res.Data)
	if err != nil {
		b.t.Fatal(err)
	}
	return png
}

// containsAll reports whether s holds every one of subs.
func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
