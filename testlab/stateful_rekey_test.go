package testlab

import (
	"os"
	"strings"
	"testing"
	"time"
)

// The lab proof of issue 12: a stateful device that forgot an idle IKE flow kills a
// CHILD_SA rekey started by the far side (rsp), while the same rekey after a shorter
// silence, or with DPD below the device's timer, succeeds.
//
// charon here retransmits 3 times (1 s, 1.5 s, 2.25 s, then 3.4 s before giving up: about
// 8.2 s, strongswanConf), so a rekey that dies is known within rekeyVerdictTimeout.

// rekeyVerdictTimeout bounds waiting for charon on rsp to finish or give up a rekey.
const rekeyVerdictTimeout = 15 * time.Second

// rekeyFromRsp asks rsp's charon to rekey CHILD_SA net and reads its log until the rekey
// completed (the CREATE_CHILD_SA response came) or charon gave up retransmitting. It
// returns whether it completed and the log lines it rests on.
func rekeyFromRsp(t *testing.T, l *Lab) (bool, string) {
	t.Helper()
	log := l.CharonLog(NodeRsp)
	before, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := l.Swanctl(testCtx(t, SwanctlTimeout), NodeRsp, "--rekey", "--child", ChildIKEv2); err != nil {
		t.Fatalf("swanctl --rekey on rsp: %v: %s", err, out)
	}
	deadline := time.Now().Add(rekeyVerdictTimeout)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(log)
		if err != nil {
			t.Fatal(err)
		}
		var evidence []string
		done, ok := false, false
		for _, line := range strings.Split(string(b[min(len(before), len(b)):]), "\n") {
			switch {
			case strings.Contains(line, "generating CREATE_CHILD_SA request"), strings.Contains(line, "retransmit "):
				evidence = append(evidence, line)
			case strings.Contains(line, "parsed CREATE_CHILD_SA response"):
				evidence = append(evidence, line)
				done, ok = true, true
			case strings.Contains(line, "giving up after"):
				evidence = append(evidence, line)
				done = true
			}
		}
		if done {
			return ok, strings.Join(evidence, "\n")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("rsp's charon neither completed nor gave up the rekey within %s", rekeyVerdictTimeout)
	return false, ""
}

// refreshFromIni makes the IKE flow fresh: a CHILD_SA rekey started by ini, the side the
// stateful device lets open flows.
func refreshFromIni(t *testing.T, l *Lab) {
	t.Helper()
	if out, err := l.Swanctl(testCtx(t, SwanctlTimeout), NodeIni, "--rekey", "--child", ChildIKEv2); err != nil {
		t.Fatalf("swanctl --rekey on ini: %v: %s", err, out)
	}
	time.Sleep(500 * time.Millisecond) // the exchange is done in milliseconds
}

// rspHasIKESA reports whether rsp's swanctl --list-sas shows an ESTABLISHED IKE SA.
func rspHasIKESA(t *testing.T, l *Lab) (bool, string) {
	t.Helper()
	out, err := l.Swanctl(testCtx(t, SwanctlTimeout), NodeRsp, "--list-sas")
	if err != nil {
		t.Fatalf("swanctl --list-sas on rsp: %v", err)
	}
	return strings.Contains(string(out), "ESTABLISHED"), string(out)
}

func TestStatefulRekey(t *testing.T) {
	RequireRoot(t)
	long := StatefulUDPTimeout + 2*time.Second
	t.Run("stateful-udp", func(t *testing.T) {
		t.Parallel()
		l := ForTest(t, Spec{Profile: "stateful-udp"})
		if !l.TunnelUp() {
			t.Fatalf("tunnel did not come up: %v", l.TunnelErr())
		}
		// Short silence: the flow ini opened is still in r1's table.
		refreshFromIni(t, l)
		time.Sleep(2 * time.Second)
		if ok, ev := rekeyFromRsp(t, l); !ok {
			t.Fatalf("rekey from rsp after 2 s of silence died on stateful-udp (r1 forgets after %s):\n%s", StatefulUDPTimeout, ev)
		}
		// Silence longer than r1's timer: the rekey is retransmitted and dies.
		refreshFromIni(t, l)
		time.Sleep(long)
		ok, ev := rekeyFromRsp(t, l)
		if ok {
			t.Fatalf("rekey from rsp survived %s of silence on stateful-udp (r1 forgets after %s):\n%s", long, StatefulUDPTimeout, ev)
		}
		if !strings.Contains(ev, "retransmit 3") {
			t.Errorf("the dying rekey was not retransmitted 3 times:\n%s", ev)
		}
		if up, out := rspHasIKESA(t, l); up {
			t.Errorf("rsp still lists an ESTABLISHED IKE SA after giving up the rekey:\n%s", out)
		}
		t.Logf("rekey after %s of silence:\n%s", long, ev)

		// DPD from ini every 3 s, below r1's timer: the same silence no longer kills it.
		conf := l.swanctlDir(NodeIni) + "/swanctl.conf"
		b, err := os.ReadFile(conf)
		if err != nil {
			t.Fatal(err)
		}
		withDPD := strings.Replace(string(b), "\t\tversion = 2\n", "\t\tversion = 2\n\t\tdpd_delay = 3s\n", 1)
		if withDPD == string(b) {
			t.Fatal("could not add dpd_delay to ini's swanctl.conf")
		}
		if err := os.WriteFile(conf, []byte(withDPD), 0o600); err != nil {
			t.Fatal(err)
		}
		ctx := testCtx(t, 30*time.Second)
		if out, err := l.Swanctl(ctx, NodeIni, "--load-conns"); err != nil {
			t.Fatalf("swanctl --load-conns on ini: %v: %s", err, out)
		}
		// ini still holds the IKE SA rsp gave up (its DELETE goes unanswered: swanctl
		// reports a failure, and --force closes it anyway); then bring the tunnel up again.
		l.Swanctl(ctx, NodeIni, "--terminate", "--ike", ConnIKEv2, "--force", "--timeout", "2")
		if out, err := l.Swanctl(ctx, NodeIni, "--list-sas"); err != nil || strings.Contains(string(out), "ESTABLISHED") {
			t.Fatalf("ini still holds the old IKE SA after --terminate --force (%v):\n%s", err, out)
		}
		if err := l.InitiateTunnel(ctx); err != nil {
			t.Fatal(err)
		}
		dpdFrom := len(mustRead(t, l.CharonLog(NodeRsp)))
		time.Sleep(long)
		ok, ev = rekeyFromRsp(t, l)
		if !ok {
			t.Fatalf("rekey from rsp died after %s although ini sends DPD every 3 s:\n%s", long, ev)
		}
		if n := strings.Count(string(mustRead(t, l.CharonLog(NodeRsp))[dpdFrom:]), "parsed INFORMATIONAL request"); n < 2 {
			t.Errorf("rsp saw %d INFORMATIONAL requests (DPD) from ini during %s, want at least 2", n, long)
		}
	})
	t.Run("clean", func(t *testing.T) {
		t.Parallel()
		l := ForTest(t, Spec{Profile: "clean"})
		if !l.TunnelUp() {
			t.Fatalf("tunnel did not come up: %v", l.TunnelErr())
		}
		refreshFromIni(t, l)
		time.Sleep(long)
		if ok, ev := rekeyFromRsp(t, l); !ok {
			t.Fatalf("rekey from rsp died after %s of silence on the clean lab:\n%s", long, ev)
		}
		if up, out := rspHasIKESA(t, l); !up {
			t.Errorf("rsp lists no ESTABLISHED IKE SA after a good rekey:\n%s", out)
		}
	})
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
