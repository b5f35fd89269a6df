package testlab

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Tests that need neither root nor a lab.

func TestProfileNamesFixed(t *testing.T) {
	want := []string{"clean", "frag-drop", "nonfirst-frag-drop", "esp-drop", "ah-reject", "udp500-drop",
		"udp4500-drop", "tcp445-reset", "tcp1792-drop", "tcp1792-reset", "mtu1400", "mtu1300-blackhole", "reverse-frag-drop", "stateful-udp",
		"reverse-esp-reject", "reverse-tcp1792-reset", "reverse-mtu-blackhole", "echo-filter", "underlay-dead",
		"nat", "nat-frag-drop"}
	if got := ProfileNames(); !reflect.DeepEqual(got, want) {
		t.Fatalf("profile names changed:\n got %v\nwant %v", got, want)
	}
	for _, p := range Profiles() {
		if p.Summary == "" || strings.Contains(p.Summary, "\n") {
			t.Errorf("%s: summary must be one line", p.Name)
		}
		for n, r := range p.Rules {
			if n != NodeR1 && n != NodeR2 {
				t.Errorf("%s: rules on %s, only routers carry faults", p.Name, n)
			}
			if strings.Contains(r, "frag-off") && !strings.Contains(r, "prerouting priority -450") {
				t.Errorf("%s: fragment rule must run before conntrack defrag (-400):\n%s", p.Name, r)
			}
		}
	}
	if _, ok := ProfileByName("nope"); ok {
		t.Error("unknown profile found")
	}
}

func TestValidName(t *testing.T) {
	for _, ok := range []string{"default", "dev", "t123-4", "a", strings.Repeat("z", 24)} {
		if err := validName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-a", "A", "a_b", "a/b", "a b", "../x", strings.Repeat("z", 25)} {
		if err := validName(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestProcStart(t *testing.T) {
	st, alive := procStart(os.Getpid())
	if !alive || st == 0 {
		t.Fatalf("own process: start %d alive %v", st, alive)
	}
	if _, alive := procStart(1 << 30); alive {
		t.Error("impossible pid alive")
	}
	dir := t.TempDir()
	if err := recordProc(dir, procRecord{pid: os.Getpid(), start: st, label: "self"}); err != nil {
		t.Fatal(err)
	}
	got, err := readProcs(dir)
	if err != nil || len(got) != 1 || got[0].pid != os.Getpid() || got[0].start != st || got[0].label != "self" {
		t.Fatalf("readProcs: %+v %v", got, err)
	}
}

func TestSwanctlConf(t *testing.T) {
	on, off := swanctlConf(NodeIni, true), swanctlConf(NodeRsp, false)
	for _, want := range []string{"fragmentation = yes", "local_ts = 192.0.2.0/26", "remote_ts = 192.0.2.128/26",
		"proposals = " + IKEProposals, "id = " + GatewayID(NodeIni), "version = 1", "local_ts = 192.0.2.1/32"} {
		if !strings.Contains(on, want) {
			t.Errorf("ini conf lacks %q", want)
		}
	}
	for _, want := range []string{"fragmentation = no", "local_ts = 192.0.2.128/26", "remote_ts = 192.0.2.0/26", "local_addrs = 203.0.113.10"} {
		if !strings.Contains(off, want) {
			t.Errorf("rsp conf lacks %q", want)
		}
	}
	sc := strongswanConf("/x/run")
	if i, j := strings.Index(sc, "kernel-libipsec"), strings.Index(sc, "kernel-netlink"); i < 0 || j < i || !strings.Contains(sc, " kdf ") {
		t.Errorf("plugin order: kernel-libipsec before kernel-netlink, kdf loaded:\n%s", sc)
	}
}

// TestPKISize: the gateway certificates are big enough that IKE_AUTH needs fragmenting.
func TestPKISize(t *testing.T) {
	if testing.Short() {
		t.Skip("RSA-4096 key generation takes seconds")
	}
	// Three labs asking at once for a missing cache: one generates, all get the same files.
	dir := filepath.Join(t.TempDir(), "certs")
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Add(1)
		go func() { defer wg.Done(); _, errs[i] = ensurePKIAt(dir) }()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if !pkiValid(dir) {
		t.Fatal("fresh PKI not valid")
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), ".certs-*")); len(left) != 0 {
		t.Errorf("temporary directories left: %v", left)
	}
	ca := mustCert(t, filepath.Join(dir, "ca.crt"))
	for _, gw := range []string{NodeIni, NodeRsp} {
		c := mustCert(t, filepath.Join(dir, gw+".crt"))
		if len(c.Raw) < 2300 {
			t.Errorf("%s certificate is %d bytes, want ≥ 2300 (IKE_AUTH ≈ 3.3 kB)", gw, len(c.Raw))
		}
		if err := c.CheckSignatureFrom(ca); err != nil {
			t.Errorf("%s not signed by the CA: %v", gw, err)
		}
		if c.Subject.CommonName != GatewayID(gw) || len(c.DNSNames) != 13 || !c.IPAddresses[0].Equal(primary[gw].AsSlice()) {
			t.Errorf("%s: CN %q, %d DNS names, IPs %v", gw, c.Subject.CommonName, len(c.DNSNames), c.IPAddresses)
		}
		t.Logf("%s certificate DER %d bytes", gw, len(c.Raw))
	}
}

func mustCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestWaitListening: a unix socket's file exists from bind(2) on, before anything listens;
// waiting for charon's vici socket must wait for the listener, not the file.
func TestWaitListening(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vici")
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("bound socket has no file: %v", err)
	}
	exited := make(chan struct{})
	ctx := context.Background()
	if err := waitListening(ctx, path, 100*time.Millisecond, exited); err == nil {
		t.Fatal("a bound socket nobody listens on counted as ready")
	}
	if err := syscall.Listen(fd, 1); err != nil {
		t.Fatal(err)
	}
	if err := waitListening(ctx, path, 5*time.Second, exited); err != nil {
		t.Fatalf("listening socket: %v", err)
	}
	close(exited)
	if err := waitListening(ctx, filepath.Join(t.TempDir(), "none"), 5*time.Second, exited); err == nil || !strings.Contains(err.Error(), "exited") {
		t.Errorf("exited process: %v", err)
	}
}
