package report

import (
	"bytes"
	"encoding/xml"
	"strings"
	"testing"
	"time"
)

func statefulSample() *Report {
	r := New("203.0.113.10", "203.0.113.10:7500", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	r.Stateful = map[string]*StatefulTimer{
		"udp500": {TimerFound: true, SurvivedS: 9.8, DiedS: 10.3, Flows: 20, Detail: "UDP 500 timer between 9.8 and 10.3 s."},
		"esp":    {SurvivedS: 30, Flows: 1, Detail: "ESP no timer up to 30 s."},
		"ah":     {Flows: 3, Error: "AH blocked | both ways", Detail: "AH blocked | both ways"},
	}
	r.Advice = []string{"Keep IKE traffic flowing: dpd_delay = 4s."}
	r.DurationMs = 28644
	return r
}

func TestStatefulRender(t *testing.T) {
	r := statefulSample()
	var b bytes.Buffer
	if err := Render(&b, r, FormatText); err != nil {
		t.Fatal(err)
	}
	text := b.String()
	for _, w := range []string{"PROTOCOL", "udp500", "9.8-10.3 s", "none up to 30 s", "not measured", "advice:", "dpd_delay"} {
		if !strings.Contains(text, w) {
			t.Errorf("text lacks %q:\n%s", w, text)
		}
	}
	// Rows in the fixed protocol order.
	if i, j, k := strings.Index(text, "udp500"), strings.Index(text, "esp "), strings.Index(text, "ah "); !(i < j && j < k) {
		t.Errorf("rows not in udp500, esp, ah order:\n%s", text)
	}
	b.Reset()
	if err := Render(&b, r, FormatMarkdown); err != nil {
		t.Fatal(err)
	}
	if md := b.String(); !strings.Contains(md, "| `udp500` | 9.8-10.3 s |") || !strings.Contains(md, `AH blocked \| both ways`) {
		t.Errorf("markdown:\n%s", md)
	}
	b.Reset()
	if err := Render(&b, r, FormatJUnit); err != nil {
		t.Fatal(err)
	}
	var s JUnitSuites
	if err := xml.Unmarshal(b.Bytes(), &s); err != nil {
		t.Fatalf("junit: %v\n%s", err, b.String())
	}
	if s.Tests != 3 || s.Failures != 1 || s.Errors != 1 {
		t.Errorf("junit counts: tests %d failures %d errors %d, want 3/1/1", s.Tests, s.Failures, s.Errors)
	}
	if !r.StatefulFailed() {
		t.Error("a found timer must fail the run")
	}
	r.Stateful = map[string]*StatefulTimer{"esp": {SurvivedS: 30, Flows: 1}}
	if r.StatefulFailed() {
		t.Error("no timer found: must not fail")
	}
}

func TestStatefulJSONRoundTrip(t *testing.T) {
	r := statefulSample()
	var b bytes.Buffer
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), `"udp500": {`) || !strings.Contains(b.String(), `"died_s": 10.3`) {
		t.Errorf("json:\n%s", b.String())
	}
	got, err := ReadJSON(&b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Stateful["udp500"].DiedS != 10.3 || len(got.Advice) != 1 {
		t.Errorf("round trip: %+v", got.Stateful["udp500"])
	}
}

// pmtu --json writes an "advice" object beside the report's fields: ReadJSON still reads it.
func TestReadJSONAdviceObject(t *testing.T) {
	in := `{"tool":"ipsecpath","target":"203.0.113.10","results":[],"advice":{"suite":"aes-gcm-16","mss":1360}}`
	r, err := ReadJSON(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Advice) != 0 {
		t.Errorf("advice lines %q from an object", r.Advice)
	}
}
