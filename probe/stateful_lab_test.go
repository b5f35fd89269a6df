package probe_test

import (
	"context"
	"testing"
	"time"

	"github.com/ipsecpath/ipsecpath/probe"
	"github.com/ipsecpath/ipsecpath/report"
	"github.com/ipsecpath/ipsecpath/testlab"
)

// statefulFromIni runs the sweep inside ini toward the agent on rsp.
func statefulFromIni(t *testing.T, l *testlab.Lab, agent string, protos []probe.StatefulProto, maxIdle time.Duration) (*report.Report, time.Duration) {
	t.Helper()
	var rep *report.Report
	t0 := time.Now()
	err := l.Do("ini", func() error {
		var err error
		var last time.Time
		rep, err = probe.Stateful(context.Background(), probe.StatefulConfig{Target: l.Addr("rsp"), Agent: agent, Key: labKey,
			Protocols: protos, MaxIdle: maxIdle, Progress: func(p probe.StatefulProgress) {
				if time.Since(last) >= 5*time.Second {
					last = time.Now()
					t.Logf("[%5.1fs] %s", p.Elapsed.Seconds(), p.Status)
				}
			}})
		return err
	})
	if err != nil {
		t.Fatalf("stateful: %v", err)
	}
	took := time.Since(t0)
	for _, k := range report.StatefulProtocols {
		if v, ok := rep.Stateful[k]; ok {
			t.Logf("%s: %s, %d flows: %s", k, v.Cell(), v.Flows, v.Detail)
		}
	}
	t.Logf("sweep took %s", took.Round(time.Millisecond))
	return rep, took
}

// TestStatefulLab measures the idle timers of the stateful-udp lab (r1 forgets UDP flows
// ini opened after testlab.StatefulUDPTimeout of silence, and has no rule for ESP/AH) and
// of the clean lab (no state anywhere).
func TestStatefulLab(t *testing.T) {
	testlab.RequireRoot(t)
	timer := testlab.StatefulUDPTimeout.Seconds()
	t.Run("stateful-udp", func(t *testing.T) {
		t.Parallel()
		l := testlab.ForTest(t, testlab.Spec{Profile: "stateful-udp", NoGateways: true})
		agent := startAgent(t, l)
		rep, _ := statefulFromIni(t, l, agent, []probe.StatefulProto{probe.StatefulUDP500, probe.StatefulUDP4500, probe.StatefulESP}, 30*time.Second)
		for _, k := range []string{"udp500", "udp4500"} {
			v := rep.Stateful[k]
			if v == nil || !v.TimerFound || v.SurvivedS < timer-2 || v.SurvivedS > timer || v.DiedS < timer || v.DiedS > timer+2 {
				t.Errorf("%s: %+v, want a timer found between %g and %g s", k, v, timer-2, timer+2)
			}
		}
		if v := rep.Stateful["esp"]; v == nil || v.TimerFound || v.Error != "" || v.SurvivedS < 30 {
			t.Errorf("esp: %+v, want no timer up to 30 s (r1 has no rule for ESP)", v)
		}
		if !rep.StatefulFailed() || len(rep.Advice) == 0 {
			t.Errorf("a timer was found: want a failed result with advice, got advice %q", rep.Advice)
		}
	})
	t.Run("clean", func(t *testing.T) {
		t.Parallel()
		l := testlab.ForTest(t, testlab.Spec{Profile: "clean", NoGateways: true})
		agent := startAgent(t, l)
		rep, _ := statefulFromIni(t, l, agent, probe.StatefulProtos, 12*time.Second)
		for _, k := range report.StatefulProtocols {
			if v := rep.Stateful[k]; v == nil || v.TimerFound || v.Error != "" || v.SurvivedS < 12 {
				t.Errorf("%s: %+v, want no timer up to 12 s", k, v)
			}
		}
		if rep.StatefulFailed() || len(rep.Advice) != 0 {
			t.Errorf("clean path: failed %v, advice %q", rep.StatefulFailed(), rep.Advice)
		}
	})
	// A fault the profiles do not define, made with plain nftables on r1: ESP and AH from the
	// rsp side pass only as replies to state ini created, kept by conntrack's generic
	// protocol tracker (address pair only) for 6 s of silence.
	t.Run("esp-ah-generic-conntrack", func(t *testing.T) {
		t.Parallel()
		l := testlab.ForTest(t, testlab.Spec{Profile: "clean", NoGateways: true})
		rules := "table ip scratch {\n\tchain scratch_fwd {\n\t\ttype filter hook forward priority 0; policy accept;\n" +
			"\t\tiifname \"east0\" ip protocol { 50, 51 } ct state established accept\n" +
			"\t\tiifname \"east0\" ip protocol { 50, 51 } drop\n\t}\n}\n"
		l.NftIn(t, "r1", rules)
		l.ExecIn(t, "r1", "sh", "-c", "echo 6 > /proc/sys/net/netfilter/nf_conntrack_generic_timeout")
		agent := startAgent(t, l)
		rep, _ := statefulFromIni(t, l, agent, []probe.StatefulProto{probe.StatefulESP, probe.StatefulAH}, 10*time.Second)
		for _, k := range []string{"esp", "ah"} {
			v := rep.Stateful[k]
			if v == nil || !v.TimerFound || v.SurvivedS < 3.9 || v.SurvivedS > 6 || v.DiedS < 6 || v.DiedS > 8.1 {
				t.Errorf("%s: %+v, want a timer found around 6 s (survived 4-6, died 6-8)", k, v)
			}
		}
	})
	t.Run("udp500-drop", func(t *testing.T) {
		t.Parallel()
		l := testlab.ForTest(t, testlab.Spec{Profile: "udp500-drop", NoGateways: true})
		agent := startAgent(t, l)
		rep, _ := statefulFromIni(t, l, agent, []probe.StatefulProto{probe.StatefulUDP500, probe.StatefulUDP4500}, 3*time.Second)
		if v := rep.Stateful["udp500"]; v == nil || v.Error == "" || v.TimerFound {
			t.Errorf("udp500 dropped both ways: %+v, want not measured", v)
		}
		if v := rep.Stateful["udp4500"]; v == nil || v.Error != "" || v.TimerFound {
			t.Errorf("udp4500: %+v, want no timer", v)
		}
	})
}
