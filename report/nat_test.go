package report

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestNATInReport(t *testing.T) {
	r := New("203.0.113.10", "203.0.113.10:7500", time.Unix(0, 0))
	var b strings.Builder
	if err := r.WriteText(&b, TextOptions{}); err != nil {
		t.Fatal(err)
	}
	j, _ := json.Marshal(r)
	if strings.Contains(b.String(), "NAT") || strings.Contains(string(j), `"nat"`) {
		t.Errorf("not measured: the report must say nothing about a NAT:\n%s\n%s", b.String(), j)
	}
	r.NAT = &NAT{Via: "agent", Sent: "198.51.100.10:500", Seen: "198.51.100.10:500", Detail: "no NAT between us."}
	j, _ = json.Marshal(r)
	if !strings.Contains(string(j), `"nat":{"detected":false,"sent":"198.51.100.10:500","seen":"198.51.100.10:500","via":"agent"`) {
		t.Errorf("measured, none: %s", j)
	}
	r.NAT = &NAT{Detected: true, Via: "agent", Sent: "198.51.100.10:500", Seen: "192.0.2.65:500", Kind: "address", Public: "192.0.2.65",
		Detail: "a NAT between us (public address 192.0.2.65).", Advice: "keep NAT-T keepalives short."}
	b.Reset()
	if err := r.WriteText(&b, TextOptions{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "\nNAT: a NAT between us (public address 192.0.2.65).\nNAT advice: keep NAT-T keepalives short.\n") {
		t.Errorf("text:\n%s", b.String())
	}
	b.Reset()
	if err := Render(&b, r, FormatMarkdown); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "- NAT: a NAT between us (public address 192.0.2.65).") {
		t.Errorf("markdown:\n%s", b.String())
	}
	j, _ = json.Marshal(r)
	var back Report
	if err := json.Unmarshal(j, &back); err != nil || back.NAT == nil || *back.NAT != *r.NAT {
		t.Errorf("round trip: %v %+v", err, back.NAT)
	}
}

func TestNATInHTML(t *testing.T) {
	r := New("203.0.113.10", "203.0.113.10:7500", time.Unix(0, 0))
	r.NAT = &NAT{Detected: true, Via: "agent", Public: "192.0.2.65", Detail: "a NAT between us (public address 192.0.2.65).", Advice: "keep keepalives short."}
	var b strings.Builder
	if err := Render(&b, r, FormatHTML); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "a NAT between us (public address 192.0.2.65).") || !strings.Contains(b.String(), "keep keepalives short.") {
		t.Errorf("the HTML page does not name the NAT")
	}
}
