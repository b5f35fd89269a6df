package main

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipsecpath/ipsecpath/probe"
	"github.com/ipsecpath/ipsecpath/report"
	"github.com/ipsecpath/ipsecpath/testlab"
)

func TestIKEUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"ike"},
		{"ike", "203.0.113.10", "203.0.113.11"},
		{"ike", "224.0.0.1"},
		{"ike", "255.255.255.255"},
		{"ike", "0.0.0.0"},
		{"ike", "2001:db8::1"},
		{"ike", "203.0.113.10", "--version", "3"},
		{"ike", "203.0.113.10", "--port", "501"},
		{"ike", "203.0.113.10", "--size", "20"},
		{"ike", "203.0.113.10", "--size", "70000"},
		{"ike", "203.0.113.10", "--auth", "telepathy"},
		{"ike", "203.0.113.10", "--proposals", "rot13-sha1-modp2048"},
		{"ike", "203.0.113.10", "--proposals", "aes128-sha256-modp2048", "--stateless"},
		// Nothing to offer: IKEv1 has no AEAD; refused before anything is sent.
		{"ike", "127.0.0.1", "--version", "1", "--proposals", "aes256gcm16-prfsha256-ecp256"},
		{"ike", "203.0.113.10", "--timeout", "1ns"},
		{"ike", "203.0.113.10", "--bogus"},
		{"ike", "203.0.113.10", "--format", "yaml"},
		{"ike", "203.0.113.10", "--json", "--format", "markdown"},
		{"ike", "203.0.113.10", "--out", "/nonexistent-dir/x.json"},
	} {
		code, out, errOut := runCLI(t, args...)
		if code != exitUsage || out != "" || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.HasPrefix(errOut, "ipsecpath ike: ") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 and one line", args, code, out, errOut)
		}
	}
}

func TestIKEHelp(t *testing.T) {
	code, out, _ := runCLI(t, "ike", "--help")
	for _, want := range []string{"Usage: ipsecpath ike TARGET", "How to read it", "NO_PROPOSAL_CHOSEN", "--proposals", "--size", "Examples:", "Exit status"} {
		if !strings.Contains(out, want) {
			t.Errorf("help lacks %q", want)
		}
	}
	if code != exitOK {
		t.Errorf("exit %d", code)
	}
}

// TestIKENothingListens: on loopback (no IKE daemon, no root needed) every exchange gets the
// target's own ICMP port unreachable: exit 1, JSON in the report contract plus "ike".
func TestIKENothingListens(t *testing.T) {
	if c, err := net.ListenPacket("udp4", "127.0.0.1:500"); err == nil {
		c.Close()
	} else {
		t.Skip("something listens on 127.0.0.1:500")
	}
	code, out, errOut := runCLI(t, "ike", "127.0.0.1", "--json", "--timeout", "1s")
	if code != exitFail {
		t.Fatalf("exit %d, stderr %s", code, errOut)
	}
	var got struct {
		report.Report
		IKE probe.IKESurvey `json:"ike"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if got.Tool != "ipsecpath" || len(got.Results) != 4 || len(got.IKE.Exchanges) != 4 || got.IKE.Size != nil {
		t.Fatalf("%s", out)
	}
	for _, x := range got.IKE.Exchanges {
		if x.Outcome != probe.IKEUnreachable || x.ICMP == nil || x.ICMP.From != "127.0.0.1" {
			t.Errorf("%+v", x)
		}
	}
	if _, err := report.ReadJSON(strings.NewReader(out)); err != nil {
		t.Errorf("diff cannot read it: %v", err)
	}
}

// TestIKEExitCode: the exit status follows the report's summary too: a survey whose every
// exchange was accepted but whose size search failed (frag-dropped) exits 1, as README says.
func TestIKEExitCode(t *testing.T) {
	x := probe.IKEResult{Version: 2, Port: probe.PortIKE, Outcome: probe.IKEAccepted, Size: 742}
	s := &probe.IKESurvey{Target: "203.0.113.10", Exchanges: []probe.IKEResult{x}}
	if r := s.Report(time.Now()); ikeExitCode(s, r, false) != exitOK || r.Summary.Fail != 0 {
		t.Fatalf("all accepted: exit %d, summary %+v", ikeExitCode(s, r, false), r.Summary)
	}
	s.Size = &probe.IKESizeResult{Version: 2, Port: probe.PortIKE, LargestAnswered: 1500, SmallestUnanswered: 1501, PathMTU: 1500, MaxSize: 5000}
	r := s.Report(time.Now())
	if r.Summary.Fail != 1 {
		t.Fatalf("frag-dropped size search: summary %+v", r.Summary)
	}
	if code := ikeExitCode(s, r, false); code != exitFail {
		t.Errorf("summary.fail = 1: exit %d, want %d", code, exitFail)
	}
}

// TestIKESkippedProposal: a proposal not offered in IKEv1 (AEAD) reads as such in every
// format, never as a silent "IKEv0 on UDP 0", and does not fail the run.
func TestIKESkippedProposal(t *testing.T) {
	const gcm = "aes256gcm16-prfsha256-ecp256"
	ok := probe.IKEResult{Version: 2, Port: probe.PortIKE, Outcome: probe.IKEAccepted, WantedGroup: "ECP_256", Size: 300, Attempts: 1}
	s := &probe.IKESurvey{Target: "203.0.113.10", Proposals: []probe.IKEProposalResult{
		{Proposal: gcm, Version: 2, Port: probe.PortIKE, Result: ok, Outcome: ok.Outcome, Accepted: true},
		{Proposal: gcm, Version: 1, Port: probe.PortIKE, Skipped: "IKEv1 has no AEAD encryption (AES-GCM); offered in IKEv2 only"}}}
	r := s.Report(time.Now())
	if code := ikeExitCode(s, r, false); code != exitOK {
		t.Errorf("exit %d, want %d (summary %+v)", code, exitOK, r.Summary)
	}
	for _, format := range []string{report.FormatText, report.FormatJSON, report.FormatMarkdown, report.FormatJUnit} {
		var b strings.Builder
		if err := writeIKE(&b, format, r, s, time.Second); err != nil {
			t.Fatal(err)
		}
		out := b.String()
		if strings.Contains(out, "IKEv0") || strings.Contains(out, "UDP 0") || strings.Contains(out, "dropped") || !strings.Contains(out, "IKEv1 has no AEAD encryption (AES-GCM)") {
			t.Errorf("%s:\n%s", format, out)
		}
	}
	// In JSON the proposal not offered carries no zero-valued exchange.
	var b0 strings.Builder
	if err := writeIKE(&b0, report.FormatJSON, r, s, time.Second); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		IKE struct {
			Proposals []map[string]any `json:"proposals"`
		} `json:"ike"`
	}
	if err := json.Unmarshal([]byte(b0.String()), &doc); err != nil || len(doc.IKE.Proposals) != 2 {
		t.Fatalf("JSON: %v, %d proposals", err, len(doc.IKE.Proposals))
	}
	if _, has := doc.IKE.Proposals[1]["result"]; has || doc.IKE.Proposals[1]["skipped"] == nil {
		t.Errorf("skipped proposal in JSON: %v", doc.IKE.Proposals[1])
	}
	if _, has := doc.IKE.Proposals[0]["result"]; !has {
		t.Errorf("offered proposal in JSON lacks its result: %v", doc.IKE.Proposals[0])
	}
	// A result that holds nothing (a bug) is not known, not a silence on the path.
	empty := &probe.IKESurvey{Target: "203.0.113.10", Exchanges: []probe.IKEResult{{}},
		Proposals: []probe.IKEProposalResult{{Proposal: gcm, Version: 2, Port: probe.PortIKE}}}
	var b strings.Builder
	printIKE(&b, empty, time.Second)
	if out := b.String(); strings.Contains(out, "IKEv0") || strings.Contains(out, "NO ANSWER") || strings.Count(out, "NOT KNOWN: no result was recorded") != 2 {
		t.Errorf("empty results:\n%s", out)
	}
}

// TestIKELab runs the command against the lab's strongSwan: clean answers (exit 0), the
// text names the chosen proposals, vendor IDs and fragmentation support; udp500-drop
// exits 1 and says NO ANSWER on 500 only.
func TestIKELab(t *testing.T) {
	for _, tc := range []struct {
		profile string
		args    []string
		code    int
		want    []string
	}{
		{"clean", []string{"--max-size", "2500"}, exitOK, []string{"IKEv2 on UDP 500   answered", "IKEv1 on UDP 4500  answered",
			"aes128-sha256-prfsha256-modp2048", "aes256-sha256-modp2048", "IKE fragmentation, NAT-T", "RFC 3947 NAT-T",
			"largest answered  2500 bytes", "4 of 4 exchanges answered"}},
		// Every exchange answered, but the size search finds fragments dropped: summary.fail
		// is 1, and the exit status says so.
		{"frag-drop", []string{"--max-size", "3000"}, exitFail, []string{"4 of 4 exchanges answered", "the path drops IP fragments",
			"not answered      1501 bytes and above"}},
		// AEAD has no IKEv1 form: not offered in IKEv1, said so, and no failure; the lab's
		// IKE proposals are AES-CBC only, so IKEv2 refuses it and the other one is accepted.
		{"clean", []string{"--proposals", "aes256gcm16-prfsha256-ecp256,aes128-sha256-modp2048", "--version", "both"}, exitOK,
			[]string{"not offered: IKEv1 has no AEAD encryption (AES-GCM); offered in IKEv2 only", "NOT ACCEPTED (NO_PROPOSAL_CHOSEN)",
				"aes128-sha256-modp2048            accepted"}},
		{"udp500-drop", []string{"--search=false"}, exitFail, []string{"IKEv2 on UDP 500   NO ANSWER after 3 sends", "IKEv1 on UDP 500   NO ANSWER",
			"IKEv2 on UDP 4500  answered", "IKEv1 on UDP 4500  answered", "2 of 4 exchanges answered"}},
	} {
		t.Run(tc.profile, func(t *testing.T) {
			t.Parallel()
			l := testlab.ForTest(t, testlab.Spec{Profile: tc.profile})
			var code int
			var out, errOut string
			if err := l.Do("ini", func() error {
				code, out, errOut = runCLI(t, append([]string{"ike", l.Addr("rsp").String()}, tc.args...)...)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr %s", code, tc.code, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q", w)
				}
			}
			if strings.Contains(out, "IKEv0") || strings.Contains(out, "UDP 0") {
				t.Error("output names an exchange that never ran")
			}
			if t.Failed() {
				t.Logf("output:\n%s", out)
			}
		})
	}
}

// TestIKELabFormats: a stateless survey as JUnit on stdout and as JSON in --out, which diff
// reads, and as one HTML page. It has a lab of its own: after TestIKELab's full survey (size
// search included) the same gateway holds our half-open IKEv2 SAs for 30 s and may ask for
// COOKIEs, which these runs must not inherit.
func TestIKELabFormats(t *testing.T) {
	t.Parallel()
	l := testlab.ForTest(t, testlab.Spec{Profile: "clean"})
	var code int
	var out, errOut string
	file := filepath.Join(t.TempDir(), "ike.json")
	if err := l.Do("ini", func() error {
		code, out, errOut = runCLI(t, "ike", l.Addr("rsp").String(), "--search=false", "--stateless", "--format", "junit", "--out", file)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if code != exitOK || !strings.Contains(out, "<testsuites") || !strings.Contains(out, "ike") {
		t.Errorf("--format junit: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatalf("--out: %v", err)
	}
	defer f.Close()
	r, err := report.ReadJSON(f)
	if err != nil || len(r.Results) != 4 || r.Summary.Pass != 4 {
		t.Errorf("--out %s: %v, %+v", file, err, r)
	}
	// And as one HTML page: a row per exchange, and the survey's own listing.
	if err := l.Do("ini", func() error {
		code, out, errOut = runCLI(t, "ike", l.Addr("rsp").String(), "--search=false", "--stateless", "--format", "html")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if code != exitOK || !strings.HasPrefix(out, "<!DOCTYPE html>") || strings.Count(out, `<tr class="row pass"`) != 4 || !strings.Contains(out, "<h2>What the gateway answered</h2>") {
		t.Errorf("--format html: exit %d, stderr %q\n%.2000s", code, errOut, out)
	}
}
