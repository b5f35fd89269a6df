package testlab

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestCleanTunnel: the IKEv2 certificate tunnel is up, lan-a reaches lan-b through it, and r1
// sees only UDP 4500 (ESP in UDP), never the inner ICMP. Without the SA, nothing leaks.
func TestCleanTunnel(t *testing.T) {
	t.Parallel()
	t0 := time.Now()
	l := ForTest(t, Spec{Profile: "clean"})
	t.Logf("lab up with tunnel in %v", time.Since(t0))
	if !l.TunnelUp() {
		t.Fatalf("tunnel not up: %v", l.TunnelErr())
	}
	ctx := testCtx(t, 40*time.Second)
	for _, gw := range []string{NodeIni, NodeRsp} {
		out, err := l.Swanctl(ctx, gw, "--list-sas")
		if err != nil {
			t.Fatal(err)
		}
		s := string(out)
		if !strings.Contains(s, ConnIKEv2+": #") || !strings.Contains(s, "ESTABLISHED, IKEv2") ||
			!strings.Contains(s, ChildIKEv2+": #") || !strings.Contains(s, "INSTALLED, TUNNEL-in-UDP") {
			t.Fatalf("%s --list-sas:\n%s", gw, s)
		}
	}
	all := startCapture(t, l, NodeR1, "west0", "")
	inner := startCapture(t, l, NodeR1, "west0", "icmp")
	mustPing(t, l, NodeLanA, l.Addr(NodeLanB).String(), "-c", "3")
	mustPing(t, l, NodeLanB, l.Addr(NodeLanA).String())
	pk := all.stop()
	n4500 := 0
	for _, p := range pk {
		if strings.Contains(p, ".4500 > ") && strings.Contains(p, "UDP-encap: ESP") {
			n4500++
		} else if !strings.Contains(p, ".4500") && !strings.Contains(p, ".500") {
			t.Errorf("r1 saw a packet that is not IKE/ESP in UDP: %s", p)
		}
	}
	if n4500 < 10 {
		t.Errorf("r1 saw %d ESP-in-UDP 4500 packets for 5 pings (want ≥ 10)", n4500)
	}
	if n := inner.count(); n != 0 {
		t.Errorf("r1 saw %d cleartext ICMP packets", n)
	}
	// Tunnel down: lan-a → lan-b must not leak in clear (blackhole routes in ini and rsp).
	if out, err := l.Swanctl(ctx, NodeIni, "--terminate", "--ike", ConnIKEv2, "--timeout", "10"); err != nil {
		t.Fatalf("terminate: %v %s", err, out)
	}
	leak := startCapture(t, l, NodeR1, "west0", "net 192.0.2.0/24")
	mustNotPing(t, l, NodeLanA, l.Addr(NodeLanB).String())
	if n := leak.count(); n != 0 {
		t.Errorf("LAN traffic leaked in clear with the tunnel down: %d packets at r1", n)
	}
	// InitiateTunnel brings it back.
	if err := l.InitiateTunnel(ctx); err != nil {
		t.Fatal(err)
	}
	mustPing(t, l, NodeLanA, l.Addr(NodeLanB).String())
}

// TestIKEv1MainMode: the IKEv1 PSK connection establishes in Main Mode next to the IKEv2 one.
func TestIKEv1MainMode(t *testing.T) {
	t.Parallel()
	l := ForTest(t, Spec{Profile: "clean"})
	ctx := testCtx(t, 40*time.Second)
	cap500 := startCapture(t, l, NodeR1, "west0", "udp port 500")
	out, err := l.Swanctl(ctx, NodeIni, "--initiate", "--ike", ConnIKEv1, "--child", ChildIKEv1, "--timeout", "15")
	if err != nil {
		t.Fatalf("IKEv1 initiate: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "Main Mode") {
		t.Errorf("not Main Mode:\n%s", out)
	}
	pk := cap500.stop()
	ident := 0
	for _, p := range pk {
		if strings.Contains(p, "phase 1 I ident") || strings.Contains(p, "phase 1 R ident") {
			ident++
		}
	}
	if ident < 2 {
		t.Errorf("r1 saw %d ISAKMP Main Mode (ident) packets on UDP 500, want ≥ 2:\n%s", ident, strings.Join(pk, "\n"))
	}
	sas, _ := l.Swanctl(ctx, NodeRsp, "--list-sas")
	if !strings.Contains(string(sas), "ESTABLISHED, IKEv1") || !strings.Contains(string(sas), ChildIKEv1+": #") {
		t.Fatalf("rsp --list-sas:\n%s", sas)
	}
	if !strings.Contains(string(sas), "ESTABLISHED, IKEv2") {
		t.Errorf("the IKEv2 SA should still be up next to IKEv1:\n%s", sas)
	}
	mustPing(t, l, NodeIni, "192.0.2.129", "-I", "192.0.2.1")
	mustPing(t, l, NodeLanA, l.Addr(NodeLanB).String())
}

// TestFragDropIKEFragmentation: behind a fragment-dropping r2 the ≈3.3 kB IKE_AUTH is lost
// unless strongSwan's IKE fragmentation is on.
func TestFragDropIKEFragmentation(t *testing.T) {
	t.Parallel()
	for _, frag := range []bool{false, true} {
		t.Run(map[bool]string{false: "fragmentation=no", true: "fragmentation=yes"}[frag], func(t *testing.T) {
			t.Parallel()
			l := ForTest(t, Spec{Profile: "frag-drop", IKEFragmentation: &frag})
			if l.TunnelUp() != frag {
				t.Fatalf("IKE fragmentation %v: tunnel up = %v (err %v), want %v", frag, l.TunnelUp(), l.TunnelErr(), frag)
			}
			log, err := os.ReadFile(l.CharonLog(NodeIni))
			if err != nil {
				t.Fatal(err)
			}
			if frag {
				m := regexp.MustCompile(`splitting IKE message \((\d+) bytes\) into (\d+) fragments`).FindStringSubmatch(string(log))
				if m == nil {
					t.Fatalf("ini did not use IKE fragmentation")
				}
				if size, _ := strconv.Atoi(m[1]); size < 3000 {
					t.Errorf("IKE_AUTH is %d bytes, want ≥ 3000 (large like Kerberos-authenticated IKE)", size)
				}
				t.Logf("ini: IKE_AUTH of %s bytes split into %s IKE fragments", m[1], m[2])
				mustPing(t, l, NodeLanA, l.Addr(NodeLanB).String())
				return
			}
			if !strings.Contains(string(log), "retransmit") {
				t.Errorf("ini log shows no IKE_AUTH retransmits")
			}
			if c := nftCounter(t, l, NodeR2); c == 0 {
				t.Errorf("r2 dropped no fragments")
			}
		})
	}
}

// TestCloseRemovesEverything: Close stops every recorded process and deletes the namespaces
// and the state; a second Close is a no-op.
func TestCloseRemovesEverything(t *testing.T) {
	RequireRoot(t)
	t.Parallel()
	l := ForTest(t, Spec{})
	bg, err := l.Start(context.Background(), NodeR1, "sleep", "300")
	if err != nil {
		t.Fatal(err)
	}
	// sh is recorded; its child sleep is not, but it lives inside the lab's lan-b namespace.
	stray, err := l.Start(context.Background(), NodeLanB, "sh", "-c", "sleep 300 & wait")
	if err != nil {
		t.Fatal(err)
	}
	procs, err := readProcs(l.Dir())
	if err != nil || len(procs) != 4 {
		t.Fatalf("want 4 recorded processes (2 charons, sleep, sh), got %d %v", len(procs), err)
	}
	inodes := map[uint64]bool{}
	for _, n := range Nodes {
		inodes[nsInode(l.Namespace(n))] = true
	}
	// `ip netns exec` needs a moment to enter the namespace and exec the command.
	for deadline := time.Now().Add(5 * time.Second); len(pidsInNetns(inodes)) < 5; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("want 5 processes inside the lab (2 charons, sleep, sh, its sleep), got %v", pidsInNetns(inodes))
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if left := pidsInNetns(inodes); len(left) > 0 {
		t.Errorf("processes left inside the lab's namespaces: %v", left)
	}
	_ = bg.Wait()
	_ = stray.Wait()
	assertGone(t, l.Name(), procs)
}

func assertGone(t *testing.T, name string, procs []procRecord) {
	t.Helper()
	for _, p := range procs {
		if st, ok := procStart(p.pid); ok && st == p.start {
			t.Errorf("process %d (%s) still running", p.pid, p.label)
		}
	}
	for _, n := range Nodes {
		if nsInode(nsName(name, n)) != 0 {
			t.Errorf("namespace %s still exists", nsName(name, n))
		}
	}
	if _, err := os.Stat(stateDir(name)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state dir %s still exists (%v)", stateDir(name), err)
	}
}

// TestDownFromStateAlone: a lab whose builder forgot it (no Close) is removed by Down(name).
func TestDownFromStateAlone(t *testing.T) {
	RequireRoot(t)
	RequireTools(t, "swanctl", CharonPath)
	t.Parallel()
	name := "tdown-" + itoa(os.Getpid())
	_ = Down(context.Background(), name)
	l, err := Up(testCtx(t, 45*time.Second), Spec{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	procs, _ := readProcs(l.Dir())
	l = nil // abandoned, as after a SIGKILL of the builder
	st, err := List()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range st {
		if s.Name == name {
			found = s.Ready && s.Namespaces == 6 && s.Procs == 2 && s.TunnelUp
			if !found {
				t.Errorf("List: %+v", s)
			}
		}
	}
	if !found {
		t.Errorf("List does not show %s", name)
	}
	if err := Down(testCtx(t, 30*time.Second), name); err != nil {
		t.Fatal(err)
	}
	assertGone(t, name, procs)
	if err := Down(testCtx(t, 30*time.Second), name); !errors.Is(err, ErrNoLab) {
		t.Errorf("Down of a missing lab: %v, want ErrNoLab", err)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestTwoLabs: two labs with gateways at once do not interfere: each tunnel carries its own
// traffic, and closing one leaves the other working.
func TestTwoLabs(t *testing.T) {
	RequireRoot(t)
	t.Parallel()
	labs := make([]*Lab, 2)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []string
	for i := range labs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := Up(testCtx(t, 45*time.Second), Spec{Name: "ttwo-" + itoa(os.Getpid()) + "-" + itoa(i)})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err.Error())
				return
			}
			labs[i] = l
			t.Cleanup(func() { _ = l.Close() })
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	for _, l := range labs {
		if !l.TunnelUp() {
			t.Fatalf("%s: tunnel down: %v", l.Name(), l.TunnelErr())
		}
		mustPing(t, l, NodeLanA, l.Addr(NodeLanB).String())
	}
	if labs[0].Namespace(NodeIni) == labs[1].Namespace(NodeIni) {
		t.Fatal("same namespace names")
	}
	if err := labs[0].Close(); err != nil {
		t.Fatal(err)
	}
	mustPing(t, labs[1], NodeLanA, labs[1].Addr(NodeLanB).String())
	ok, _ := labs[1].ChildInstalled(testCtx(t, 10*time.Second), NodeRsp, ChildIKEv2)
	if !ok {
		t.Error("second lab lost its CHILD_SA when the first closed")
	}
}

// TestBadInput: unknown profile, bad name and a clashing name fail cleanly, leaving nothing.
func TestBadInput(t *testing.T) {
	RequireRoot(t)
	t.Parallel()
	ctx := testCtx(t, 30*time.Second)
	name := "tbad-" + itoa(os.Getpid())
	if _, err := Up(ctx, Spec{Name: name, Profile: "no-such-profile"}); !errors.Is(err, ErrUnknownProfile) {
		t.Errorf("unknown profile: %v", err)
	}
	if _, err := os.Stat(stateDir(name)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state left behind after a bad profile")
	}
	for _, bad := range []string{"UPPER", "-x", "a/b", "x y", strings.Repeat("a", 25)} {
		if _, err := Up(ctx, Spec{Name: bad, NoGateways: true}); !errors.Is(err, ErrBadName) {
			t.Errorf("name %q: %v", bad, err)
		}
	}
	l := ForTest(t, Spec{Name: name, NoGateways: true})
	if _, err := Up(ctx, Spec{Name: name, NoGateways: true}); !errors.Is(err, ErrLabExists) {
		t.Errorf("clashing name: %v", err)
	}
	mustPing(t, l, NodeIni, l.Addr(NodeRsp).String()) // the first lab is untouched
	if _, err := os.Stat(stateDir(name)); err != nil {
		t.Errorf("the clash removed the running lab's state: %v", err)
	}
}

// TestSweepStaleTestLabs: a ForTest lab whose test process died is removed by the next ForTest.
func TestSweepStaleTestLabs(t *testing.T) {
	RequireRoot(t)
	t.Parallel()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	name := "t" + itoa(dead.Process.Pid) + "-" + itoa(os.Getpid())
	l, err := Up(testCtx(t, 30*time.Second), Spec{Name: name, NoGateways: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	l.st.BuilderPid, l.st.BuilderStart = dead.Process.Pid, 1
	if err := writeState(l.Dir(), l.st); err != nil {
		t.Fatal(err)
	}
	sweepStaleTestLabs()
	assertGone(t, name, nil)
}
