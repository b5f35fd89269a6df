package report_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/ipsecpath/ipsecpath/report"
	"github.com/ipsecpath/ipsecpath/report/schematest"
)

// fullReport is a check report with every field of every type it holds set, the way the
// encoder writes them (enumerated values from the contract).
func fullReport() *report.Report {
	yes := true
	started := time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)
	r := report.New("203.0.113.10", "203.0.113.10:7500", started)
	frag := report.Fragment{Offset: 1480, Length: 520, More: true, TTL: 63, DF: true}
	r.Add(report.Result{Probe: "tls:443", Direction: report.Forward, Verdict: report.Blocked, Detail: "x",
		Hop: &report.Hop{TTL: 3, Addr: "198.51.100.1", Estimated: true,
			Bracket: &report.Bracket{LastReached: &report.HopRef{TTL: 2, Addr: "198.51.100.1"}, FirstMissed: &report.HopRef{TTL: 3, Addr: "192.0.2.66"}}},
		Evidence: report.Evidence{Size: 1500, Attempts: 2, FragmentsSent: []report.Fragment{frag}, FragmentsSeen: []report.Fragment{frag},
			ICMP:  &report.ICMP{Type: 3, Code: 4, From: "198.51.100.1", MTU: 1400, Text: "fragmentation needed"},
			RTTms: 1.5, Answer: "rst", AnsweredBy: "203.0.113.10", AgentSaw: &yes, Inferred: "x", Compared: "ike", Extra: "x",
			SourcePort: 40000, DestPort: 443, FragmentSize: 1400, ProbeID: 7, ResponderAddr: "203.0.113.10",
			TLS: &report.TLS{Step: "verify", Alert: "unknown_ca", VerifyError: "expired", Subject: "CN=a", Issuer: "CN=b",
				NotBefore: "2026-01-01T00:00:00Z", NotAfter: "2026-02-01T00:00:00Z", Version: "TLS 1.3",
				Cipher: "TLS_AES_128_GCM_SHA256", SNI: "vpn.example", ClientHelloSize: 517, Proxy: "192.0.2.8:3128",
				ProxyStatus: "HTTP/1.1 200 OK", ResetTTL: 61}}})
	pm := &report.PathMTU{MTU: 1400, Blackhole: true, Hop: &report.Hop{TTL: 2, Addr: "198.51.100.1"}, Probes: 9,
		Signalled: true, SignalledBy: "198.51.100.1", Local: true, Unfinished: "the run's end"}
	r.PMTU = &report.PMTU{Forward: pm, Reverse: pm}
	r.NAT = &report.NAT{Detected: true, Sent: "198.51.100.10:500", Seen: "192.0.2.65:1024", Kind: "address+port",
		Public: "192.0.2.65", Side: "ours", Via: "agent", Detail: "x", Advice: "x"}
	r.Ladder = &report.Ladder{Target: "vpn.example", Resolved: "203.0.113.10",
		Rungs: []report.Rung{{Rung: "gateway", Addr: "198.51.100.1", Verdict: report.RungUnreachable, Detail: "x",
			AnsweredBy: "icmp-host-unreachable", RTTms: 0.3, Tried: []string{"echo", "tcp:1792", "udp:33434"}, From: "198.51.100.2"}},
		Preflight: &report.Preflight{
			Sockets: []report.LocalSocket{{Proto: "udp", Addr: "0.0.0.0:500", Port: 500, PID: 42, Process: "charon",
				Cmdline: "/usr/lib/ipsec/charon", Inode: 1234}},
			Firewall: []report.FirewallRule{{Table: "inet fw", Chain: "out", Hook: "output", Rule: "udp dport 500 drop",
				Action: "drop", Probes: []string{"ike"}, Certain: true}},
			FirewallChecked: true, FirewallNote: "x", Notes: []string{"x"}},
		Stop: "x"}
	r.Finish(started.Add(time.Second))
	return r
}

// allSet fails t for every field of v (walked through pointers, structs and the first
// element of slices) that is zero, except those named in skip ("Type.Field"): a field added
// to a result type must be added to the full values above, and so to the schema. Each
// struct type is checked where it first occurs (seen).
func allSet(t *testing.T, v reflect.Value, path string, skip map[string]bool, seen map[reflect.Type]bool) {
	t.Helper()
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			allSet(t, v.Elem(), path, skip, seen)
		}
	case reflect.Slice:
		if v.Len() > 0 {
			allSet(t, v.Index(0), path+"[0]", skip, seen)
		}
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) || seen[v.Type()] {
			return
		}
		seen[v.Type()] = true
		for i := 0; i < v.NumField(); i++ {
			f := v.Type().Field(i)
			name := v.Type().Name() + "." + f.Name
			if !f.IsExported() || skip[name] {
				continue
			}
			if v.Field(i).IsZero() {
				t.Errorf("%s.%s (%s) is not set in the full value: set it, and document it in report/schema", path, f.Name, name)
				continue
			}
			allSet(t, v.Field(i), path+"."+f.Name, skip, seen)
		}
	}
}

// TestSchemaFullValues: a check report and a survey with every field set validate against
// their schemas. With allSet, a field added to a result type without its schema fails here.
func TestSchemaFullValues(t *testing.T) {
	r := fullReport()
	// A stopped ladder sends no probe; its results are checked with the ladder not stopped.
	counts := map[string]bool{"Summary.Pass": true, "Summary.Skipped": true} // always written
	// stateful's own fields are checked on a stateful result below (stateful.json).
	statefulOnly := map[string]bool{"Report.Stateful": true, "Report.Advice": true, "Report.Interrupted": true, "Report.Trace": true}
	allSet(t, reflect.ValueOf(r), "report", merged(counts, statefulOnly), map[reflect.Type]bool{})
	r.Ladder.Stop = ""
	schematest.ValidateValue(t, "check", r)
	lad := report.New("vpn.example", "", r.Started)
	lad.Ladder = fullReport().Ladder
	schematest.ValidateValue(t, "ladder", lad)
	schematest.ValidateValue(t, "check", lad)

	s := &report.Survey{Tool: report.Tool, Version: report.Version, Kind: "survey", Started: r.Started, DurationMs: 5,
		Parallel: 2, Pace: 400, TargetPace: 200, OutDir: "/tmp/out",
		Targets: []report.SurveyTarget{
			{Label: "hq", Target: "203.0.113.10", Agent: "203.0.113.10:7500", Netns: "ns1", Status: report.TargetFail,
				File: "hq.json", Report: r},
			{Target: "192.0.2.3", Status: report.TargetError, Error: "no route to 192.0.2.3"},
		}}
	s.Summarize()
	allSet(t, reflect.ValueOf(s), "survey", map[string]bool{"SurveyTarget.Error": true, "SurveySummary.Pass": true,
		"SurveySummary.Silent": true, "Report.Ladder": true, "Report.PMTU": true, "Summary.Pass": true, "Summary.Skipped": true,
		"Report.Stateful": true, "Report.Advice": true, "Report.Interrupted": true, "Report.Trace": true},
		map[reflect.Type]bool{})
	schematest.ValidateValue(t, "survey", s)
	schematest.ValidateValue(t, "ipsecpath", s)
}

// TestSchemaRejectsNew: the schemas of the ladder, TLS evidence, path MTU and survey are
// not vacuous: each change below breaks a valid result.
func TestSchemaRejectsNew(t *testing.T) {
	r := fullReport()
	r.Ladder.Stop = ""
	good, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(m map[string]any){
		"rung verdict":   func(m map[string]any) { rung(m)["verdict"] = "maybe" },
		"rung name":      func(m map[string]any) { rung(m)["rung"] = "switch" },
		"rung no detail": func(m map[string]any) { delete(rung(m), "detail") },
		"rung extra":     func(m map[string]any) { rung(m)["guess"] = 1 },
		"ladder extra":   func(m map[string]any) { m["ladder"].(map[string]any)["guess"] = 1 },
		"no rungs":       func(m map[string]any) { delete(m["ladder"].(map[string]any), "rungs") },
		"stop with results": func(m map[string]any) {
			m["ladder"].(map[string]any)["stop"] = "The default gateway does not answer."
		},
		"socket proto":  func(m map[string]any) { preflight(m)["sockets"].([]any)[0].(map[string]any)["proto"] = "tcp" },
		"firewall hook": func(m map[string]any) { preflight(m)["firewall"].([]any)[0].(map[string]any)["hook"] = "forward" },
		"no checked":    func(m map[string]any) { delete(preflight(m), "firewall_checked") },
		"tls step":      func(m map[string]any) { tls(m)["step"] = "later" },
		"tls verify":    func(m map[string]any) { tls(m)["verify_error"] = "bad" },
		"tls no step":   func(m map[string]any) { delete(tls(m), "step") },
		"tls extra":     func(m map[string]any) { tls(m)["guess"] = 1 },
		"tls dates":     func(m map[string]any) { tls(m)["not_after"] = "next year" },
		"pmtu local":    func(m map[string]any) { m["pmtu"].(map[string]any)["forward"].(map[string]any)["local_limit"] = "yes" },
		"pmtu extra":    func(m map[string]any) { m["pmtu"].(map[string]any)["reverse"].(map[string]any)["guess"] = 1 },
	} {
		b := mutated(t, good, mutate)
		if err := schematest.Check("check", b); err == nil {
			t.Errorf("%s: a broken check result validates: %s", name, b)
		}
	}
	if err := schematest.Check("ladder", good); err == nil {
		t.Error("a ladder result with probe results validates")
	}

	s := &report.Survey{Tool: report.Tool, Version: report.Version, Kind: "survey", Started: r.Started,
		Parallel: 1, Pace: 400, TargetPace: 400, Targets: []report.SurveyTarget{{Target: "203.0.113.10", Status: report.TargetPass, Report: r}}}
	s.Summarize()
	sgood, _ := json.Marshal(s)
	schematest.Validate(t, "survey", sgood)
	for name, mutate := range map[string]func(m map[string]any){
		"kind":            func(m map[string]any) { m["kind"] = "check" },
		"status":          func(m map[string]any) { target(m)["status"] = "fine" },
		"error no reason": func(m map[string]any) { target(m)["status"] = "error" },
		"pass with error": func(m map[string]any) { target(m)["error"] = "x" },
		"pass no report":  func(m map[string]any) { delete(target(m), "report") },
		"bad report":      func(m map[string]any) { target(m)["report"].(map[string]any)["guess"] = 1 },
		"summary":         func(m map[string]any) { delete(m["summary"].(map[string]any), "silent") },
		"no targets":      func(m map[string]any) { delete(m, "targets") },
		"extra":           func(m map[string]any) { m["guess"] = 1 },
	} {
		b := mutated(t, sgood, mutate)
		if err := schematest.Check("survey", b); err == nil {
			t.Errorf("%s: a broken survey validates: %.300s", name, b)
		}
	}
}

func rung(m map[string]any) map[string]any {
	return m["ladder"].(map[string]any)["rungs"].([]any)[0].(map[string]any)
}
func preflight(m map[string]any) map[string]any {
	return m["ladder"].(map[string]any)["preflight"].(map[string]any)
}
func tls(m map[string]any) map[string]any {
	return res(m)["evidence"].(map[string]any)["tls"].(map[string]any)
}
func target(m map[string]any) map[string]any { return m["targets"].([]any)[0].(map[string]any) }

// merged returns the union of the skip sets.
func merged(sets ...map[string]bool) map[string]bool {
	out := map[string]bool{}
	for _, s := range sets {
		for k := range s {
			out[k] = true
		}
	}
	return out
}

// TestSchemaStatefulFull: a stateful result with every field set validates against
// stateful.json (and the bundle); its fields are refused in a check result, and a timer
// found without died_s is refused.
func TestSchemaStatefulFull(t *testing.T) {
	started := time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)
	r := report.New("203.0.113.10", "203.0.113.10:7500", started)
	r.Stateful = map[string]*report.StatefulTimer{
		"udp500": {TimerFound: true, SurvivedS: 9.8, DiedS: 10.3, Flows: 20, Detail: "x", Error: "x"},
		"esp":    {SurvivedS: 30, Flows: 3},
	}
	r.Advice = report.AdviceLines{"x"}
	r.Interrupted = true
	r.Finish(started.Add(time.Second))
	allSet(t, reflect.ValueOf(*r.Stateful["udp500"]), "stateful.udp500", nil, map[reflect.Type]bool{})
	schematest.ValidateValue(t, "stateful", r)
	schematest.ValidateValue(t, "ipsecpath", r)
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if schematest.Check("check", b) == nil {
		t.Error("a check result carrying stateful fields validates against check.json")
	}
	r.Stateful["udp500"].DiedS = 0
	b, _ = json.Marshal(r)
	if schematest.Check("stateful", b) == nil {
		t.Error("timer_found without died_s validates")
	}
}

// TestSchemaTraceFull: a trace result with every field set validates against trace.json;
// a check result carrying a trace does not validate against check.json.
func TestSchemaTraceFull(t *testing.T) {
	started := time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)
	r := report.New("203.0.113.10", "203.0.113.10:7500", started)
	yes := true
	path := &report.TracePath{
		Hops:    []report.TraceHop{{TTL: 1, Addr: "198.51.100.1", Reached: true, RTTms: 0.4, FarEnd: true, ICMP: "x"}},
		Bracket: report.Bracket{LastReached: &report.HopRef{TTL: 1, Addr: "198.51.100.1"}, FirstMissed: &report.HopRef{TTL: 2, Addr: "192.0.2.66"}},
		FarEnd:  true, FarEndTTL: 3, Refused: "x", RefusedBy: &report.HopRef{TTL: 2, Addr: "192.0.2.66"},
		Fragments: []report.FragmentFate{{Offset: 1480, Length: 520, LastReached: &report.HopRef{TTL: 1, Addr: "198.51.100.1"}, FarEnd: &yes}},
		Reference: "icmp", Unconfirmed: true, Detail: "x", Probes: 10,
	}
	r.Trace = &report.Trace{Probe: "esp-frag", Forward: path, Reverse: path}
	r.Add(report.Result{Probe: "esp-frag", Direction: report.Forward, Verdict: report.FragDropped, Detail: "x", Hop: path.Hop()})
	r.Finish(started.Add(time.Second))
	allSet(t, reflect.ValueOf(*r.Trace), "trace", nil, map[reflect.Type]bool{})
	schematest.ValidateValue(t, "trace", r)
	schematest.ValidateValue(t, "ipsecpath", r)
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if schematest.Check("check", b) == nil {
		t.Error("a check result carrying a trace validates against check.json")
	}
}
