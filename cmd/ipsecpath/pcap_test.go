package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ipsecpath/ipsecpath/report"
	"github.com/ipsecpath/ipsecpath/report/htmltest"
	"github.com/ipsecpath/ipsecpath/testlab"
)

// checkPcapEvidence checks the --pcap file of a check run with an agent against the run's
// report (rep):
//   - tshark finds no malformed packet and no expert error in it, and every record's
//     original length is its IP packet's length (the capture cut nothing Wireshark would
//     take for the packet itself);
//   - every record carries a probe note, and every probe and direction of the run has its
//     sends in the file; every one that passed has its sightings at the far end, tied to
//     the sends by the note (same probe, direction, attempt);
//   - `pcap explain` on the file alone agrees with the verdicts: pass ⇒ reached the far end
//     whole, dropped / frag-dropped ⇒ never reached it, partial ⇒ in part.
func checkPcapEvidence(t *testing.T, pcap string, rep *report.Report) {
	t.Helper()
	defer func() {
		if !t.Failed() {
			return
		}
		// Keep the file that failed for a look with Wireshark.
		if b, err := os.ReadFile(pcap); err == nil {
			if dir, err := htmltest.ArtefactDir(); err == nil {
				keep := filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "-")+".pcapng")
				if os.WriteFile(keep, b, 0o644) == nil {
					t.Logf("the pcapng that failed is kept: %s", keep)
				}
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	bad, err := exec.CommandContext(ctx, "tshark", "-r", pcap, "-Y", "_ws.malformed || _ws.expert.severity == error").Output()
	if err != nil {
		t.Fatalf("tshark -Y malformed: %v", err)
	}
	if n := strings.Count(string(bad), "\n"); n != 0 {
		t.Errorf("tshark marks %d records malformed or in error:\n%s", n, bad)
	}
	lens, err := exec.CommandContext(ctx, "tshark", "-r", pcap, "-T", "fields", "-E", "occurrence=f", "-e", "frame.len", "-e", "frame.cap_len", "-e", "ip.len", "-e", "frame.comment").Output()
	if err != nil {
		t.Fatalf("tshark -T fields: %v", err)
	}
	cut := 0
	var short []string // records cut although they fit in the snap length
	for _, line := range strings.Split(strings.TrimSpace(string(lens)), "\n") {
		f := strings.Split(line, "\t")
		if len(f) != 4 || f[0] != f[2] {
			t.Errorf("record frame.len/cap_len/ip.len %q: the original length is not the IP length", line)
			continue
		}
		if f[0] != f[1] {
			cut++
			if wire, _ := strconv.Atoi(f[0]); wire <= report.DefaultSnapLen {
				short = append(short, line)
			}
		}
	}
	t.Logf("%s: %d records, %d cut by the capture (original length kept)", pcap, strings.Count(string(lens), "\n"), cut)
	if len(short) != 0 {
		t.Errorf("records cut short although they fit in the default --snaplen (%d): %q", report.DefaultSnapLen, short)
	}

	fh, err := os.Open(pcap)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	pf, err := report.ReadPcap(fh)
	if err != nil {
		t.Fatal(err)
	}
	if len(pf.Comments) == 0 || !strings.Contains(pf.Comments[0], "clock:") {
		t.Errorf("section header comments %q: want the clock offset first", pf.Comments)
	}
	// The clocks line says how far off the agent's shifted timestamps can be; within that,
	// no fragment arrives before its attempt was sent (both ends' stamps tell the truth).
	var errMs float64
	if i := strings.Index(pf.Comments[0], "± "); i < 0 {
		t.Errorf("clock comment %q has no error bound", pf.Comments[0])
	} else if _, err := fmt.Sscanf(pf.Comments[0][i+len("± "):], "%f ms", &errMs); err != nil {
		t.Errorf("clock comment %q: %v", pf.Comments[0], err)
	}
	firstSent := map[string]time.Time{}
	for i, r := range pf.Records {
		n, ok := report.ParsePcapNote(r.Comment)
		if !ok {
			t.Errorf("record %d has no probe note: %q", i+1, r.Comment)
			continue
		}
		key := fmt.Sprintf("%s %s %d", n.Probe, n.Direction, n.Attempt)
		if n.Role == "sent" {
			if at, ok := firstSent[key]; !ok || r.At.Before(at) {
				firstSent[key] = r.At
			}
		}
	}
	slack := time.Duration(errMs*float64(time.Millisecond)) + time.Microsecond
	for i, r := range pf.Records {
		n, _ := report.ParsePcapNote(r.Comment)
		if n.Role != "arrived" {
			continue
		}
		key := fmt.Sprintf("%s %s %d", n.Probe, n.Direction, n.Attempt)
		if sent, ok := firstSent[key]; ok && r.At.Before(sent.Add(-slack)) {
			t.Errorf("record %d (%s) arrived %v before it was sent (clock error ± %.3f ms)", i+1, r.Comment, sent.Sub(r.At), errMs)
		}
	}
	probes, _ := pf.Probes()
	byKey := map[string]*report.PcapProbe{}
	for i := range probes {
		byKey[probes[i].Probe+" "+string(probes[i].Direction)] = &probes[i]
	}
	code, explain, errs := runCLI(t, "pcap", "explain", pcap)
	if code != exitOK {
		t.Fatalf("pcap explain: exit %d, %s", code, errs)
	}
	for _, r := range rep.Results {
		if r.Probe == "pmtu" || r.Verdict == report.Skipped || r.Verdict == report.Error {
			continue
		}
		key := r.Probe + " " + string(r.Direction)
		p := byKey[key]
		if p == nil {
			t.Errorf("%s: no record of it in the pcap", key)
			continue
		}
		to := "agent"
		if r.Direction == report.Reverse {
			to = "initiator"
		}
		var want, line string
		switch r.Verdict {
		case report.Pass:
			want, line = "whole", key+": reached the "+to+" whole"
		case report.Dropped, report.FragDropped:
			want, line = "none", key+": never reached the "+to
		case report.Partial:
			want, line = "part", key+": reached the "+to+" in part"
		default: // blocked: an ICMP error or a reset; whether anything arrived varies
			continue
		}
		if got := p.Outcome(); got != want {
			t.Errorf("%s: verdict %s but the pcap shows %q", key, r.Verdict, got)
		}
		if !strings.Contains(explain, line) {
			t.Errorf("pcap explain lacks %q", line)
		}
		sent, tied := 0, 0
		for _, a := range p.Attempts {
			sent += len(a.Sent)
			if len(a.Sent) > 0 && len(a.Arrived) > 0 {
				tied++
			}
		}
		if sent == 0 {
			t.Errorf("%s: no send of it in the pcap", key)
		}
		if r.Verdict == report.Pass && tied == 0 {
			t.Errorf("%s passed but no attempt has both its sends and the far end's sightings in the pcap", key)
		}
	}
	if testing.Verbose() {
		t.Logf("pcap explain %s:\n%s", pcap, explain)
	}
}

// checkHTMLInChromium opens the --out HTML report of a lab run in headless Chromium: no
// console error, no network request, one row per result, and every failed row drawn
// failing (a red line that stops short of the far end, or a refusal); the screenshot and
// the print to PDF are kept under .artefacts/ (the path is logged).
func checkHTMLInChromium(t *testing.T, page, profile string, rep *report.Report) {
	t.Helper()
	testlab.RequireTools(t, htmltest.Chromium)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	p, err := htmltest.Open(ctx, page, `[...document.querySelectorAll('tr.row')].map(tr => tr.dataset.verdict + ' ' + (tr.querySelector('td.path line.ok, td.path line.dead, td.path line.lost, td.path .notrun') || {getAttribute: () => 'none'}).getAttribute('class'))`)
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	if len(p.ConsoleErrors) > 0 {
		t.Errorf("console errors: %q", p.ConsoleErrors)
	}
	if len(p.Requests) > 0 {
		t.Errorf("network requests: %q", p.Requests)
	}
	dir, err := htmltest.ArtefactDir()
	if err != nil {
		t.Fatal(err)
	}
	png := filepath.Join(dir, "check-"+profile+".png")
	if err := os.WriteFile(png, p.Screenshot, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "check-"+profile+".pdf"), p.PDF, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the %s report: %s", profile, png)
	var rows []string
	if err := json.Unmarshal(p.Eval[0], &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(rep.Results) {
		t.Fatalf("%d rows for %d results", len(rows), len(rep.Results))
	}
	for _, row := range rows {
		v, mark, _ := strings.Cut(row, " ")
		failed := report.Verdict(v).Failed() && v != string(report.Error)
		if failed && mark != "dead" && mark != "lost" || v == string(report.Pass) && mark != "ok" {
			t.Errorf("a %s row is drawn %q", v, mark)
		}
	}
}

// TestPcapExplainBadInput: a missing file, a file that is not pcapng, a cut one and wrong
// arguments each give exit 2 and one line naming what is wrong.
func TestPcapExplainBadInput(t *testing.T) {
	dir := t.TempDir()
	notPcap := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notPcap, []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(dir, "cut.pcapng")
	p, err := report.CreatePcap(cut)
	if err != nil {
		t.Fatal(err)
	}
	pkt := make([]byte, 60)
	pkt[0], pkt[3] = 0x45, 60
	if err := p.WritePacketAt(report.DefaultCapturePoint, time.Now(), pkt, "x"); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(cut)
	if err := os.WriteFile(cut, b[:len(b)-10], 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"pcap"}, "want 'explain FILE'"},
		{[]string{"pcap", "show", cut}, "want 'explain FILE'"},
		{[]string{"pcap", "explain", filepath.Join(dir, "missing")}, "no such file"},
		{[]string{"pcap", "explain", notPcap}, "notes.txt: pcapng: not a pcapng file"},
		{[]string{"pcap", "explain", cut}, "cut.pcapng: pcapng: block of"},
	} {
		code, out, errs := runCLI(t, c.args...)
		if code != exitUsage || out != "" || strings.Count(errs, "\n") != 1 || !strings.Contains(errs, c.want) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 2 and one line with %q", c.args, code, out, errs, c.want)
		}
	}
	code, out, _ := runCLI(t, "help")
	if code != exitOK || !strings.Contains(out, "pcap") || !strings.Contains(out, "schema") {
		t.Errorf("help does not list pcap and schema:\n%s", out)
	}
}
