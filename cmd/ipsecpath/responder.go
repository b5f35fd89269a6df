package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ipsecpath/ipsecpath/probe"
	"github.com/ipsecpath/ipsecpath/report"
)

func init() {
	register(&command{
		name:     "responder",
		synopsis: "--listen ADDR:PORT --key-file F [--pace N]",
		summary:  "the far-end agent: reports what arrived from 'check', sends reverse probes",
		long: `Run it on (or right next to) the far end of the path, as root or with CAP_NET_RAW. It
waits for 'ipsecpath check --agent HOST:PORT --key-file F' on a TCP control port (default
7500; the path must let that through). For each authenticated session it captures every
packet and IP fragment that comes from the initiator's address, before reassembly, and
reports them; on request it sends the reverse forms of the probes toward that initiator,
with the real protocols' source ports (UDP 500 and 4500, even when charon owns them), so
reverse verdicts show what a rekey started from this side meets. Its capture sees packets
before this host's own firewall does, so at each session it also reads this host's nftables
ruleset ('nft list ruleset') and tells the initiator which input rules drop the probes: such
a probe passes (the path delivered it) and its row says that a daemon here never gets it.
Listing the ruleset needs CAP_NET_ADMIN (root has it; the example systemd unit does not
grant it): without it nothing is said about this host's firewall.

Security: every control message carries an HMAC-SHA256 over a pre-shared key (the same
key file on both ends: at least 16 bytes, mode 600) bound to one connection of this run
of the agent, so a message captured on the wire is served by no other connection, no
other agent with the key and not after a restart; the clocks of both ends must agree
within 30 s (use NTP). Wrong keys, replays and junk get no answer and cost bounded memory
(the agent stays under about 64 MiB however many packets arrive). An agent with no room
says so: the initiator reports "busy" (at most 8 sessions per initiator address, 32 in
all), not a wrong key. The agent sends only to the address of the authenticated
connection, never to an address named in a request.

While it runs it holds raw sockets for IP protocols 50 (ESP) and 51 (AH), so this host's
kernel stops answering ESP and AH probes with "protocol unreachable".

Key rotation: --key-file may be repeated (up to 4 keys); a session may authenticate with
any of them and keeps its key until it ends. SIGHUP re-reads every key file for new sessions
without dropping open ones (a file that fails to load keeps the keys in use, and says so);
only the first file must exist, the others may be absent, which is how a rotation goes:
  1. run with --key-file agent.key --key-file agent.key.next (the second absent for now)
  2. put the new key in agent.key.next (mode 600) and send SIGHUP: both keys work
  3. move every initiator to the new key
  4. mv agent.key.next agent.key and send SIGHUP: only the new key works
examples/ipsecpath-responder.service runs it under systemd, hardened ('systemctl reload'
sends the SIGHUP).

It logs one line per session on stderr: the initiator, the requests served, the packets
observed (and lost to full buffers), the reverse packets sent and why the session ended.
It runs until SIGINT or SIGTERM. Exit status 2: bad flag, bad key file, no privilege, or
the port cannot be opened (one line says which).`,
		examples: []string{
			"head -c 32 /dev/urandom > agent.key && chmod 600 agent.key   # copy it to both ends",
			"ipsecpath responder --key-file agent.key",
			"ipsecpath responder --listen 203.0.113.10:7500 --key-file agent.key --pace 50",
			"ipsecpath check 203.0.113.10 --agent 203.0.113.10:7500 --key-file agent.key   # on the other end",
		},
		run: runResponder,
	})
}

func runResponder(ctx context.Context, e *env, args []string) int {
	c := commands["responder"]
	flags := newFlags(c)
	listen := flags.String("listen", ":"+strconv.Itoa(probe.ControlPort), "control address ADDR:PORT (ADDR alone: port 7500; empty ADDR: every address)")
	keyFiles := flags.StringArray("key-file", nil, "pre-shared key file: a regular file owned by you or root, mode 600, at least 16 bytes (required; repeat it during a key rotation: the first must exist, the others may be absent)")
	pace := flags.Int("pace", probe.DefaultPace, "reverse probes: at most this many packets per second")
	if done, code := parse(e, c, flags, args); done {
		return code
	}
	if flags.NArg() != 0 {
		return usageError(e, c, fmt.Errorf("unexpected argument %q (the agent takes only flags)", flags.Arg(0)))
	}
	if len(*keyFiles) == 0 || (*keyFiles)[0] == "" {
		return usageError(e, c, errors.New("--key-file is required (create one: head -c 32 /dev/urandom > agent.key && chmod 600 agent.key)"))
	}
	if len(*keyFiles) > probe.MaxAgentKeys {
		return usageError(e, c, fmt.Errorf("--key-file given %d times: at most %d keys at once", len(*keyFiles), probe.MaxAgentKeys))
	}
	if *pace < 1 || *pace > probe.MaxRate {
		return usageError(e, c, fmt.Errorf("--pace %d: want 1-%d packets per second", *pace, probe.MaxRate))
	}
	addr, err := listenAddr(*listen)
	if err != nil {
		return usageError(e, c, err)
	}
	// SIGHUP reloads the key files; registered before anything else so that an early HUP
	// does not kill the agent.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	keys, _, err := loadKeys(*keyFiles)
	if err != nil {
		return usageError(e, c, err)
	}

	if os.Getenv("GOMEMLIMIT") == "" {
		// The agent's memory is bounded by design (probe.MaxAgentSeen and friends); the
		// soft limit makes the collector keep it there instead of letting the heap double.
		debug.SetMemoryLimit(probe.AgentMemoryLimit)
	}
	lg := &lineLog{w: e.stderr}
	r, err := probe.NewResponder(probe.ResponderConfig{Key: keys[0], Keys: keys[1:], Version: report.Version, Pace: *pace, Logf: lg.Printf, LocalDrops: probe.AgentLocalDrops})
	if errors.Is(err, os.ErrPermission) {
		return usageError(e, c, errors.New("needs root or CAP_NET_RAW (raw sockets to capture probes and send reverse ones)"))
	}
	if err != nil {
		return usageError(e, c, err)
	}
	defer r.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return usageError(e, c, fmt.Errorf("control port: %w", err))
	}
	lg.Printf("listening on %s (version %s, reverse pace %d packets/s, %d key(s))", ln.Addr(), report.Version, *pace, len(keys))
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
			}
			keys, missing, err := loadKeys(*keyFiles)
			if err == nil {
				err = r.SetKeys(keys...)
			}
			if err != nil {
				lg.Printf("SIGHUP: key reload failed, the keys in use stay: %v", err)
				continue
			}
			lg.Printf("SIGHUP: reloaded %d key(s) for new sessions (absent: %s); open sessions keep theirs", len(keys), orNone(missing))
		}
	}()
	if err := r.Serve(ctx, ln); err != nil {
		return usageError(e, c, err)
	}
	lg.Printf("stopped")
	return exitOK
}

// loadKeys reads the key files: the first must load; the others may be absent (a rotation's
// empty slot: they are listed in missing), but any other problem (mode, size) is an error.
func loadKeys(paths []string) (keys [][]byte, missing []string, err error) {
	for i, p := range paths {
		k, err := probe.LoadKey(p)
		if i > 0 && errors.Is(err, os.ErrNotExist) {
			missing = append(missing, p)
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		keys = append(keys, k)
	}
	return keys, missing, nil
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// listenAddr completes --listen: "ADDR" gets port 7500, ":PORT" means every address.
func listenAddr(s string) (string, error) {
	if s == "" {
		return "", errors.New("--listen is empty (want ADDR:PORT, e.g. :7500)")
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		host, port = s, strconv.Itoa(probe.ControlPort)
		if _, _, err2 := net.SplitHostPort(net.JoinHostPort(host, port)); err2 != nil {
			return "", fmt.Errorf("--listen %q: want ADDR:PORT", s)
		}
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return "", fmt.Errorf("--listen %q: port must be 1-65535", s)
	}
	if host != "" && net.ParseIP(host) == nil {
		return "", fmt.Errorf("--listen %q: ADDR must be an IP address of this host", s)
	}
	return net.JoinHostPort(host, port), nil
}

// lineLog writes timestamped lines, whole, from several goroutines.
type lineLog struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string // the command's name ("" : responder)
}

func (l *lineLog) Printf(format string, args ...any) {
	name := l.prefix
	if name == "" {
		name = "responder"
	}
	line := fmt.Sprintf("%s %s: %s\n", time.Now().UTC().Format(time.RFC3339), name, fmt.Sprintf(format, args...))
	l.mu.Lock()
	io.WriteString(l.w, line)
	l.mu.Unlock()
}
