package report

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

// pcapSample writes a small two-ended file: a forward probe sent whole and seen cut
// short by the agent's capture, and a reverse probe that never arrived.
func pcapSample(t testing.TB) []byte {
	var buf bytes.Buffer
	p, err := NewPcap(&buf, "initiator", "agent")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.SetSectionComment("clock: test"); err != nil {
		t.Fatal(err)
	}
	pkt := make([]byte, 1276)
	pkt[0], pkt[2], pkt[3] = 0x45, 1276>>8, 1276&0xff
	at := time.Unix(1_800_000_000, 5)
	sent := PcapNote{Probe: "esp-frag", Direction: Forward, Attempt: 1, Role: "sent", Frag: "0+1256 mf"}
	seen := PcapNote{Probe: "esp-frag", Direction: Forward, Attempt: 1, Role: "arrived", Frag: "0+1256 mf"}
	rev := PcapNote{Probe: "esp", Direction: Reverse, Attempt: 1, Role: "sent", Frag: "0+108"}
	for _, w := range []struct {
		point string
		data  []byte
		note  PcapNote
	}{{"initiator", pkt, sent}, {"agent", pkt[:84], seen}, {"agent", pkt[:128], rev}} {
		if err := p.WriteRecord(w.point, at, w.data, IPWireLength(w.data), w.note.String()); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestReadPcapExplain(t *testing.T) {
	f, err := ReadPcap(bytes.NewReader(pcapSample(t)))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Interfaces) != 2 || f.Interfaces[1].Name != "agent" || f.Interfaces[0].SnapLen != DefaultSnapLen || f.Interfaces[0].LinkType != ngLinkTypeRaw {
		t.Errorf("interfaces %+v", f.Interfaces)
	}
	if len(f.Records) != 3 || f.Records[1].WireLen != 1276 || len(f.Records[1].Data) != 84 || !f.Records[0].At.Equal(time.Unix(1_800_000_000, 5)) {
		t.Fatalf("records: %d; second wire %d captured %d", len(f.Records), f.Records[1].WireLen, len(f.Records[1].Data))
	}
	if len(f.Comments) != 1 || f.Comments[0] != "clock: test" {
		t.Errorf("comments %q", f.Comments)
	}
	probes, untied := f.Probes()
	if len(probes) != 2 || untied != 0 || probes[0].Probe != "esp" || probes[0].Outcome() != "none" || probes[1].Outcome() != "whole" {
		t.Errorf("probes %+v untied %d", probes, untied)
	}
	var out strings.Builder
	if _, err := f.Explain(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"esp reverse: never reached the initiator", "esp-frag forward: reached the agent whole", "reached the agent: 0+1256 mf (1 of 1)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("explain lacks %q:\n%s", want, out.String())
		}
	}
}

func TestReadPcapRejects(t *testing.T) {
	good := pcapSample(t)
	for name, b := range map[string][]byte{
		"empty":      nil,
		"not pcapng": []byte("GET / HTTP/1.1\r\n\r\n"),
		"cut":        good[:len(good)-3],
		"bad length": append(append([]byte(nil), good[:4]...), append([]byte{0xff, 0xff, 0xff, 0x7f}, good[8:]...)...),
	} {
		if _, err := ReadPcap(bytes.NewReader(b)); err == nil {
			t.Errorf("%s: read without error", name)
		} else if !errors.Is(err, ErrNotPcapng) && !errors.Is(err, ErrPcapMalformed) {
			t.Errorf("%s: %v is neither sentinel", name, err)
		}
	}
}

// FuzzReadPcap: any bytes: no panic, no record beyond its block, and what reads explains.
func FuzzReadPcap(f *testing.F) {
	good := pcapSample(f)
	f.Add(good)
	f.Add(good[:40])
	f.Fuzz(func(t *testing.T, b []byte) {
		pf, err := ReadPcap(bytes.NewReader(b))
		if err != nil {
			return
		}
		for _, r := range pf.Records {
			if len(r.Data) > r.WireLen || r.Interface >= len(pf.Interfaces) {
				t.Fatalf("record %+v", r)
			}
		}
		if _, err := pf.Explain(&strings.Builder{}); err != nil {
			t.Fatal(err)
		}
	})
}

// Without any record at an agent (a one-ended run) explain does not claim that a probe
// never reached the agent: it says what the target's answers show, and that silence is
// only silence.
func TestExplainOneEnded(t *testing.T) {
	var buf bytes.Buffer
	p, err := NewPcap(&buf, "initiator", "agent")
	if err != nil {
		t.Fatal(err)
	}
	pkt := make([]byte, 128)
	pkt[0], pkt[3] = 0x45, 128
	for _, n := range []PcapNote{
		{Probe: "ike", Direction: Forward, Attempt: 1, Role: "sent", Frag: "0+108"},
		{Probe: "ike", Direction: Forward, Attempt: 1, Role: "answer", Frag: "0+108", Extra: "ike from 203.0.113.10"},
		{Probe: "esp", Direction: Forward, Attempt: 1, Role: "sent", Frag: "0+108"},
	} {
		if err := p.WriteRecord("initiator", time.Unix(1, 0), pkt, 128, n.String()); err != nil {
			t.Fatal(err)
		}
	}
	p.Close()
	f, err := ReadPcap(&buf)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if _, err := f.Explain(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ike forward: answered by the target", "esp forward: no answer (no agent to say whether it arrived)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("explain lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "reached the agent") {
		t.Errorf("a one-ended run's explain speaks of the agent:\n%s", out.String())
	}
}
