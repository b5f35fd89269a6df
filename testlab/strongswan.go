package testlab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// CharonPath is Debian's strongSwan IKE daemon.
const CharonPath = "/usr/lib/ipsec/charon"

// The lab gateways' configured proposals (swanctl syntax). IKE probes compare what a
// gateway accepted with these.
const (
	// IKEProposals are the IKEv2 proposals of the `cert` connection: AES-CBC 128/256 with
	// SHA-256/SHA-1 (PRF from the integrity algorithm) and MODP-2048, ECP-256 or Curve25519.
	IKEProposals = "aes128-aes256-sha256-sha1-modp2048-ecp256-curve25519"
	// IKEv1Proposals are the IKEv1 Main Mode proposals of the `ikev1` connection (PSK).
	IKEv1Proposals = "aes128-aes256-sha256-sha1-modp2048-modp1024"
	// ESPProposals are the CHILD_SA proposals of both connections (no PFS).
	ESPProposals = "aes128gcm16-aes256gcm16,aes128-sha256"
	// IKEv1PSK is the pre-shared key of the IKEv1 connection (lab only).
	IKEv1PSK = "ipsecpath-lab-ikev1-psk-0123456789abcdef"
)

// Connection and CHILD_SA names in the gateways' swanctl.conf.
const (
	ConnIKEv2  = "cert"  // IKEv2, certificates, CHILD_SA ChildIKEv2 lan-a ↔ lan-b
	ChildIKEv2 = "net"   // 192.0.2.0/26 ↔ 192.0.2.128/26
	ConnIKEv1  = "ikev1" // IKEv1 Main Mode, PSK, never initiated at Up
	ChildIKEv1 = "v1net" // 192.0.2.1/32 ↔ 192.0.2.129/32 (does not collide with "net")
)

// Timeouts of the gateway start.
const (
	CharonReadyTimeout = 15 * time.Second // charon start → vici socket (measured 0.1–0.25 s)
	InitiateTimeout    = 15 * time.Second // swanctl --initiate; charon gives up after ≈8 s (3 retransmits)
	SwanctlTimeout     = 20 * time.Second // any other swanctl call without a deadline
	// CharonAddressSpace caps charon's virtual memory (prlimit --as). With MALLOC_ARENA_MAX=1
	// charon's VmSize is ≈145 MB; a routing loop through ipsec0 hits this cap, not the host.
	CharonAddressSpace = 384 << 20
)

// gwRoot is the directory bound over /run in the gateway's mount namespace: charon's pid
// file, strongswan.conf, vici socket and log live there (charon sees them under /run).
func (l *Lab) gwRoot(gw string) string { return filepath.Join(l.dir, gw, "run") }

func (l *Lab) swanctlDir(gw string) string { return filepath.Join(l.dir, gw, "swanctl") }

// CharonLog is the path of gw's charon log file.
func (l *Lab) CharonLog(gw string) string { return filepath.Join(l.gwRoot(gw), "charon.log") }

// ViciSocket is the path (on the host) of gw's vici socket.
func (l *Lab) ViciSocket(gw string) string { return filepath.Join(l.gwRoot(gw), "charon.vici") }

func isGateway(gw string) error {
	if gw != NodeIni && gw != NodeRsp {
		return fmt.Errorf("testlab: %q is not a gateway (ini or rsp)", gw)
	}
	return nil
}

func strongswanConf(hostRoot string) string {
	return fmt.Sprintf(`# ipsecpath lab gateway. charon runs with this directory bound over /run.
charon {
	# kernel-libipsec BEFORE kernel-netlink (no in-kernel ESP here); kdf is mandatory in 5.9.8
	load = random nonce openssl kdf pem pkcs1 pkcs8 x509 pubkey revocation constraints kernel-libipsec kernel-netlink socket-default vici
	threads = 16            # fewer (8) and vici never answers: workers park in blocking jobs
	retransmit_tries = 3    # lab: a lost exchange fails in about 8 s instead of 2 min
	retransmit_timeout = 1.0
	retransmit_base = 1.5
	install_virtual_ip = no
	filelog {
		main {
			path = /run/charon.log
			time_format = %%T
			time_add_ms = yes
			append = no
			flush_line = yes
			default = 1
			ike = 2
		}
	}
	plugins {
		vici {
			socket = unix:///run/charon.vici
		}
		# charon's own IKE/ESP packets carry mark 0x42 and skip table 220: no loop via ipsec0
		socket-default {
			fwmark = 0x42
		}
		kernel-netlink {
			fwmark = !0x42
		}
	}
}
swanctl {
	socket = unix://%s/charon.vici
}
`, hostRoot)
}

func swanctlConf(gw string, frag bool) string {
	me, peer, other := NodeIni, NodeRsp, NodeRsp
	lts, rts := LanA.String(), LanB.String()
	v1l, v1r := "192.0.2.1/32", "192.0.2.129/32"
	if gw == NodeRsp {
		me, peer, other = NodeRsp, NodeIni, NodeIni
		lts, rts = rts, lts
		v1l, v1r = v1r, v1l
	}
	fr := "yes"
	if !frag {
		fr = "no"
	}
	return fmt.Sprintf(`connections {
	%[1]s {
		version = 2
		local_addrs = %[2]s
		remote_addrs = %[3]s
		proposals = %[4]s
		fragmentation = %[5]s
		send_cert = always
		local {
			auth = pubkey
			certs = %[6]s.crt
			id = %[7]s
		}
		remote {
			auth = pubkey
			id = %[8]s
		}
		children {
			%[9]s {
				local_ts = %[10]s
				remote_ts = %[11]s
				esp_proposals = %[12]s
			}
		}
	}
	%[13]s {
		version = 1
		aggressive = no
		local_addrs = %[2]s
		remote_addrs = %[3]s
		proposals = %[14]s
		fragmentation = %[5]s
		local {
			auth = psk
			id = %[2]s
		}
		remote {
			auth = psk
			id = %[3]s
		}
		children {
			%[15]s {
				local_ts = %[16]s
				remote_ts = %[17]s
				esp_proposals = %[12]s
			}
		}
	}
}
secrets {
	ike-v1 {
		id-ini = %[18]s
		id-rsp = %[19]s
		secret = "%[20]s"
	}
}
`, ConnIKEv2, primary[me], primary[peer], IKEProposals, fr, me, GatewayID(me), GatewayID(other),
		ChildIKEv2, lts, rts, ESPProposals,
		ConnIKEv1, IKEv1Proposals, ChildIKEv1, v1l, v1r,
		primary[NodeIni], primary[NodeRsp], IKEv1PSK)
}

// writeGatewayConfig lays out gw's directories, strongswan.conf, swanctl.conf and PKI files.
func (l *Lab) writeGatewayConfig(gw, pki string) error {
	root := l.gwRoot(gw)
	if err := os.MkdirAll(root, 0o755); err != nil {
		return fmt.Errorf("testlab: %s dir: %w", gw, err)
	}
	for _, d := range []string{"x509", "x509ca", "x509ocsp", "x509aa", "x509ac", "x509crl", "pubkey", "private", "rsa", "ecdsa", "bliss", "pkcs8", "pkcs12"} {
		if err := os.MkdirAll(filepath.Join(l.swanctlDir(gw), d), 0o700); err != nil {
			return fmt.Errorf("testlab: %s swanctl dir: %w", gw, err)
		}
	}
	files := map[string][]byte{
		filepath.Join(root, "strongswan.conf"):          []byte(strongswanConf(root)),
		filepath.Join(l.swanctlDir(gw), "swanctl.conf"): []byte(natRemoteAddrs(swanctlConf(gw, l.st.IKEFragmentation), gw, l.profile.NATPublic)),
	}
	for src, dst := range map[string]string{"ca.crt": "x509ca/ca.crt", gw + ".crt": "x509/" + gw + ".crt", gw + ".key": "private/" + gw + ".key"} {
		b, err := os.ReadFile(filepath.Join(pki, src))
		if err != nil {
			return fmt.Errorf("testlab: read %s: %w", src, err)
		}
		files[filepath.Join(l.swanctlDir(gw), dst)] = b
	}
	for p, b := range files {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			return fmt.Errorf("testlab: write %s: %w", p, err)
		}
	}
	return nil
}

// startGateways starts charon on ini and rsp, loads both configurations and initiates the
// IKEv2 CHILD_SA from ini. Only a failure to run strongSwan is an error; a tunnel that does
// not come up is recorded (TunnelUp/TunnelErr).
func (l *Lab) startGateways(ctx context.Context) error {
	pki, err := ensurePKI()
	if err != nil {
		return err
	}
	gws := []string{NodeIni, NodeRsp}
	charons := map[string]*Proc{}
	for _, gw := range gws {
		if err := l.writeGatewayConfig(gw, pki); err != nil {
			return err
		}
		root := l.gwRoot(gw)
		// charon reads its config after the bind mount: /run/strongswan.conf is root/strongswan.conf.
		env := append(os.Environ(), "STRONGSWAN_CONF=/run/strongswan.conf", "MALLOC_ARENA_MAX=1")
		// ip netns exec gives a new mount namespace; sh binds the gateway's dir over /run
		// there (charon's pid file is fixed at /var/run/charon.pid) and every step execs,
		// so the recorded pid is charon's own. Not tied to ctx: charon outlives Up.
		p, err := l.start(context.Background(), gw, env, "sh", "-c", `mount --bind "$1" /run && exec prlimit --as="$2" "$3"`,
			"sh", root, fmt.Sprint(CharonAddressSpace), CharonPath)
		if err != nil {
			return err
		}
		charons[gw] = p
	}
	for _, gw := range gws {
		if err := waitListening(ctx, l.ViciSocket(gw), CharonReadyTimeout, charons[gw].done); err != nil {
			log, _ := os.ReadFile(l.CharonLog(gw))
			return fmt.Errorf("testlab: charon on %s: vici socket: %w (output: %s; log: %s)", gw, err,
				lastLines(string(charons[gw].Output()), 2), lastLines(string(log), 3))
		}
	}
	for _, gw := range gws {
		if out, err := l.Swanctl(ctx, gw, "--load-all", "--noprompt"); err != nil {
			return fmt.Errorf("testlab: %s: swanctl --load-all: %w: %s", gw, err, lastLines(string(out), 3))
		}
	}
	l.st.TunnelUp, l.st.TunnelErr = false, ""
	if err := l.InitiateTunnel(ctx); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("testlab: initiate tunnel: %w", ctx.Err())
		}
		l.st.TunnelErr = err.Error()
		return nil
	}
	l.st.TunnelUp = true
	return nil
}

// InitiateTunnel asks ini to bring up the IKEv2 CHILD_SA and checks that it is INSTALLED.
func (l *Lab) InitiateTunnel(ctx context.Context) error {
	ictx, cancel := context.WithTimeout(ctx, InitiateTimeout+2*time.Second)
	defer cancel()
	out, err := l.Swanctl(ictx, NodeIni, "--initiate", "--ike", ConnIKEv2, "--child", ChildIKEv2,
		"--timeout", fmt.Sprint(int(InitiateTimeout.Seconds())))
	if err != nil {
		return fmt.Errorf("testlab: IKEv2 tunnel did not come up: %w: %s", err, lastLines(string(out), 2))
	}
	ok, err := l.ChildInstalled(ctx, NodeIni, ChildIKEv2)
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("testlab: IKEv2 initiate returned but CHILD_SA net is not INSTALLED")
	}
	return nil
}

// ChildInstalled reports whether gw lists CHILD_SA child as INSTALLED (swanctl --list-sas).
func (l *Lab) ChildInstalled(ctx context.Context, gw, child string) (bool, error) {
	out, err := l.Swanctl(ctx, gw, "--list-sas")
	if err != nil {
		return false, fmt.Errorf("testlab: %s: swanctl --list-sas: %w", gw, err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == child+":" && strings.Contains(line, "INSTALLED") {
			return true, nil
		}
	}
	return false, nil
}

// Swanctl runs swanctl on the host against gw's charon (its vici socket and swanctl dir).
// Without a deadline in ctx it is bounded by SwanctlTimeout.
func (l *Lab) Swanctl(ctx context.Context, gw string, args ...string) ([]byte, error) {
	if err := isGateway(gw); err != nil {
		return nil, err
	}
	if l.st.NoGateways {
		return nil, fmt.Errorf("testlab: lab %s runs without gateways (NoGateways)", l.name)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, SwanctlTimeout)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, "swanctl", args...)
	cmd.Env = append(os.Environ(), "STRONGSWAN_CONF="+filepath.Join(l.gwRoot(gw), "strongswan.conf"), "SWANCTL_DIR="+l.swanctlDir(gw))
	cmd.WaitDelay = ExecWaitDelay
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("testlab: %s: swanctl %s: %w", gw, strings.Join(args, " "), err)
	}
	return out, nil
}

// waitListening polls until a unix socket at path accepts a connection, d passes, ctx ends or
// exited (the process that should listen there) is closed. The file alone is not enough:
// bind(2) creates it before listen(2), and a swanctl connecting in between gets "connection
// refused" (seen under load as swanctl --load-all exiting 111, ECONNREFUSED).
func waitListening(ctx context.Context, path string, d time.Duration, exited <-chan struct{}) error {
	deadline := time.Now().Add(d)
	var last error
	for {
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		last = err
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on %s after %v: %w", path, d, last)
		}
		select {
		case <-exited:
			return fmt.Errorf("the process exited before it listened on %s: %w", path, last)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// natRemoteAddrs lets rsp accept ini from the NAT's public address too (nat profiles):
// behind r1's masquerade ini's IKE arrives from pub, and a peer config found by address
// would not match.
func natRemoteAddrs(conf, gw, pub string) string {
	if gw != NodeRsp || pub == "" {
		return conf
	}
	return strings.ReplaceAll(conf, "remote_addrs = "+primary[NodeIni].String()+"\n", "remote_addrs = "+primary[NodeIni].String()+", "+pub+"\n")
}
