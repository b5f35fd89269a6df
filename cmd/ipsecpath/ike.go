package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/ipsecpath/ipsecpath/ike"
	"github.com/ipsecpath/ipsecpath/probe"
	"github.com/ipsecpath/ipsecpath/report"
)

// ikeJSON is the --json form of `ipsecpath ike`: the report contract (DESIGN.md) with one
// result per exchange, plus an "ike" object holding everything the exchanges learnt
// (probe.IKESurvey: chosen proposals, vendor IDs, fragmentation and NAT-T support, the size
// search). `ipsecpath diff` reads it like any report and ignores "ike".
type ikeJSON struct {
	*report.Report
	IKE *probe.IKESurvey `json:"ike"`
}

func init() {
	c := &command{
		name:     "ike",
		synopsis: "TARGET [--version 1|2|both] [--port 500|4500|both] [--size N] [--proposals LIST] [--auth M] [--timeout D] [--json | --format F] [--out F]",
		summary:  "ask an IKE gateway for IKEv1 Main Mode and IKEv2 IKE_SA_INIT on UDP 500 and 4500, and how big a message gets through",
		long:     ikeHelp,
		examples: []string{
			"ipsecpath ike 203.0.113.10",
			"ipsecpath ike 203.0.113.10 --version 1 --auth kerberos --size 3000",
			"ipsecpath ike 203.0.113.10 --port 4500 --json",
			"ipsecpath ike 203.0.113.10 --proposals aes256-sha256-modp2048,aes128-sha1-modp1024,aes256gcm16-prfsha384-ecp384",
			"ipsecpath ike 203.0.113.10 --search=false --timeout 7s",
			"ipsecpath ike 203.0.113.10 --out before.json --format markdown",
		},
	}
	c.run = func(ctx context.Context, e *env, args []string) int { return runIKE(ctx, e, c, args) }
	register(c)
}

// ikeHelp is the long help of ike (DESIGN.md holds it to its words).
const ikeHelp = `Sends TARGET the first message of IKEv1 Main Mode and of IKEv2 IKE_SA_INIT, on UDP 500 and on
UDP 4500 (with the non-ESP marker), all at once, the way a real initiator does: it
retransmits (3 sends, waiting 0.5 s, 0.75 s, 1.125 s, as ike-scan does), answers a COOKIE, and when the gateway
answers INVALID_KE_PAYLOAD it sends again with a key exchange for the group asked for.
No authentication happens: the question is whether the path carries IKE and the gateway
responds. The requests come from an ephemeral UDP port of this host (--sport to choose one).

How to read it, per exchange:
  answered     the gateway chose a proposal: its choice in strongSwan syntax and in IANA
               names, its vendor IDs by name, and whether it supports IKE fragmentation
               (RFC 7383 / the IKEv1 FRAGMENTATION vendor ID) and NAT traversal.
  refused      it answered with an error notify: NO_PROPOSAL_CHOSEN (none of our
               proposals is configured there), INVALID_KE_PAYLOAD naming a group we did not
               offer, ... The path works; the configurations do not match.
  NO ANSWER    silence after every retransmit: a firewall drops UDP 500/4500 (or the
               fragments of a big request), or no IKE gateway listens there.
  GATEWAY STOPPED ANSWERING US
               silence right after the same gateway answered us: it answered this
               exchange (a COOKIE) and then not the request sent again, or it answered
               another exchange of this run on the same port. That is the gateway's limit
               on half-open SAs (strongSwan ignores a peer that holds 5, for up to 30 s)
               or a rate limit, not the path: ask again 30 s later. A COOKIE alone is
               never a verdict: it is returned, as an initiator does.
  ICMP         an ICMP error came back: from the target itself (port unreachable: nothing
               listens for IKE) or from a router (it blocks IKE: "administratively
               prohibited").
Then the size search: the largest request (bytes on the wire, IP and UDP headers included)
that still got an answer. Requests above the path MTU leave as IP fragments, so a path that
drops fragments shows as "up to 1500 answered, 1501 not" — what Kerberos-authenticated IKE
(large Main Mode messages, no IKE fragmentation) runs into. The search uses requests the
gateway refuses at once (a decoy key-exchange group, or a transform nobody accepts), so it
leaves no half-open SAs behind; strongSwan ignores a peer that has 5 of them.

--size N pads every request with vendor IDs the gateway ignores to N bytes on the wire.
--proposals LIST offers each proposal of a comma-separated list (strongSwan syntax, e.g.
aes256-sha256-modp2048) on its own and says which the gateway accepts; IKEv2 proposals are
tested with a decoy key-exchange group, so an accepted one shows as INVALID_KE_PAYLOAD.
A proposal IKEv1 cannot express (AEAD such as aes256gcm16, AES-CTR, AES-XCBC) is not
offered in IKEv1: it is listed as "not offered" with the reason, and is no failure.
--auth (IKEv1): psk, rsa, kerberos (GSS-API, the value Windows uses: 65001) or a number.
--stateless asks every exchange for such an immediate refusal too: it proves the gateway
receives IKE and answers, without a chosen proposal, and can be repeated without limit.
A plain run leaves one half-open SA per IKEv2 exchange on the gateway until it times out
(30 s on strongSwan). An answered IKEv1 Main Mode is closed at once with an unencrypted
NO_PROPOSAL_CHOSEN notify (the gateway's log shows it), which strongSwan takes as the end
of that half-open SA; gateways that ignore unauthenticated notifies keep it until it
times out.

--json (or --format json) prints the report contract with one result per exchange plus an
"ike" object with everything learnt; --format markdown or junit renders the same results
for a ticket or a CI system; --out FILE also writes the result to FILE (its form follows the
extension: .json, .md, .xml, .txt), e.g. for 'ipsecpath diff'.

Exit status: 0 when every exchange asked for was answered and accepted (--stateless:
answered, a COOKIE included; with --proposals: every proposal offered answered and at least one accepted) and no
result failed (summary.fail is 0: a size search that finds fragments dropped fails), 1
otherwise, 2 on a usage error.`

func runIKE(ctx context.Context, e *env, c *command, args []string) int {
	fs := newFlags(c)
	f := addIKEFlags(fs)
	if done, code := parse(e, c, fs, args); done {
		return code
	}
	o, err := f.options(fs)
	if err != nil {
		return usageError(e, c, err)
	}
	target, err := ikeResolveTarget(ctx, fs.Arg(0))
	if err != nil {
		return usageError(e, c, err)
	}
	if err := ikeCheckSize(o); err != nil {
		return usageError(e, c, err)
	}
	prog := newProgress(e.stderr, f.out.quiet())
	o.Progress = prog.Printf
	started := time.Now()
	s, err := probe.SurveyIKE(ctx, target, o)
	if err != nil {
		return usageError(e, c, err)
	}
	if !o.Stateless && ctx.Err() == nil {
		// IKEv1 tells NAT detection only in Main Mode 4: asked for when IKEv2 did not tell.
		if err := s.CheckIKEv1NATD(ctx, target, o.Timeout); err != nil {
			prog.Printf("IKEv1 NAT detection could not run: %v", err)
		}
	}
	r := s.Report(started)
	r.Finish(time.Now())
	elapsed := time.Since(started)
	write := func(w io.Writer, format string) error { return writeIKE(w, format, r, s, elapsed) }
	if err := write(e.stdout, f.out.format); err != nil {
		return usageError(e, c, fmt.Errorf("write the result: %w", err))
	}
	if err := f.out.writeFile(write); err != nil {
		return usageError(e, c, err)
	}
	return ikeExitCode(s, r, o.Stateless)
}

// ikeFlags are the flags of ike, registered in the order its help lists them.
type ikeFlags struct {
	version, port, proposals, auth *string
	sport, size, maxSize           *int
	search, stateless              *bool
	timeout                        *time.Duration
	out                            *output
}

func addIKEFlags(fs *pflag.FlagSet) *ikeFlags {
	f := &ikeFlags{}
	f.version = fs.String("version", "both", "IKE version: 1 (Main Mode), 2 (IKE_SA_INIT) or both")
	f.port = fs.String("port", "both", "destination port: 500, 4500 (non-ESP marker added) or both")
	f.sport = fs.Int("sport", 0, "source port (0: ephemeral; a fixed port runs the exchanges one at a time)")
	f.size = fs.Int("size", 0, "pad every request to N bytes on the wire (IP+UDP headers included)")
	f.search = fs.Bool("search", true, "search the largest request size that is answered")
	f.maxSize = fs.Int("max-size", probe.IKEDefaultMaxSize, "upper bound of the size search, bytes on the wire")
	f.proposals = fs.String("proposals", "", "comma-separated proposals (strongSwan syntax) to offer one at a time")
	f.stateless = fs.Bool("stateless", false, "ask only for answers that leave no half-open SA on the gateway (reachability, no chosen proposal)")
	f.auth = fs.String("auth", "psk", "IKEv1 authentication method: psk, rsa, kerberos or a number")
	f.timeout = fs.Duration("timeout", probe.IKEExchangeTimeout, "how long one exchange waits for an answer, retransmits included")
	f.out = addOutputFlags(fs)
	fs.MarkHidden("color") // the ike text is not a verdict table
	return f
}

// options reads the parsed flags into the survey's options, checked in this order (the
// first bad one is the usage error).
func (f *ikeFlags) options(fs *pflag.FlagSet) (probe.IKESurveyOptions, error) {
	o := probe.IKESurveyOptions{SourcePort: *f.sport, Size: *f.size, Search: *f.search, MaxSize: *f.maxSize, Timeout: *f.timeout, Stateless: *f.stateless}
	if err := f.out.resolve(); err != nil {
		return o, err
	}
	if fs.NArg() != 1 {
		return o, fmt.Errorf("want one TARGET, got %d arguments (try --help)", fs.NArg())
	}
	var err error
	if o.Versions, err = ikeParseChoice("--version", *f.version, map[string][]int{"1": {1}, "2": {2}, "both": {2, 1}}); err != nil {
		return o, err
	}
	if o.Ports, err = ikeParseChoice("--port", *f.port, map[string][]int{"500": {probe.PortIKE}, "4500": {probe.PortNATT}, "both": {probe.PortIKE, probe.PortNATT}}); err != nil {
		return o, err
	}
	if o.Auth, err = ikeParseAuth(*f.auth); err != nil {
		return o, err
	}
	switch {
	case *f.sport < 0 || *f.sport > 65535:
		return o, fmt.Errorf("--sport %d: want 0-65535", *f.sport)
	case *f.size < 0 || *f.size > 65535:
		return o, fmt.Errorf("--size %d: want 0 (natural size) up to 65535", *f.size)
	case *f.maxSize < 200 || *f.maxSize > 65535:
		return o, fmt.Errorf("--max-size %d: want 200-65535", *f.maxSize)
	case *f.timeout < 10*time.Millisecond || *f.timeout > 5*time.Minute:
		return o, fmt.Errorf("--timeout %s: want 10ms to 5m", *f.timeout)
	}
	switch {
	case *f.proposals == "" && fs.Changed("proposals"):
		return o, fmt.Errorf("--proposals is empty: give proposals (strongSwan syntax, e.g. aes256-sha256-modp2048) or leave --proposals out")
	case *f.proposals != "" && *f.stateless:
		return o, fmt.Errorf("--proposals and --stateless do not go together")
	case *f.proposals != "":
		if o.Proposals, err = ike.ParseProposals(*f.proposals); err != nil {
			return o, fmt.Errorf("--proposals: %w", err)
		}
	}
	return o, nil
}

// ikeCheckSize refuses a --size smaller than the headers of the smallest request asked for.
func ikeCheckSize(o probe.IKESurveyOptions) error {
	if o.Size == 0 {
		return nil
	}
	least := 0
	for _, p := range o.Ports {
		least = max(least, probe.IKEOverhead(p)+ike.HeaderLen)
	}
	if o.Size < least {
		return fmt.Errorf("--size %d: smaller than the headers alone (%d bytes)", o.Size, least)
	}
	return nil
}

// writeIKE prints a survey in one of the --format forms: text is the survey's own
// listing, json the report contract plus the "ike" object (ikeJSON), markdown and junit the
// report renderers over one result per exchange.
func writeIKE(w io.Writer, format string, r *report.Report, s *probe.IKESurvey, elapsed time.Duration) error {
	switch format {
	case report.FormatText:
		printIKE(w, s, elapsed)
		return nil
	case report.FormatJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(ikeJSON{Report: r, IKE: s})
	case report.FormatHTML:
		var b strings.Builder
		printIKE(&b, s, elapsed)
		return r.WriteHTML(w, report.HTMLOptions{Title: "ipsecpath ike " + r.Target,
			Sections: []report.HTMLSection{{Title: "What the gateway answered", Lines: strings.Split(strings.TrimRight(b.String(), "\n"), "\n")}}})
	}
	return report.Render(w, r, format)
}

// ikeExitCode is 0 when the survey succeeded (probe.IKESurvey.Succeeded), else 1.
func ikeExitCode(s *probe.IKESurvey, r *report.Report, stateless bool) int {
	if s.Succeeded(r, stateless) {
		return exitOK
	}
	return exitFail
}

func ikeParseChoice(flag, v string, m map[string][]int) ([]int, error) {
	if r, ok := m[strings.ToLower(strings.TrimSpace(v))]; ok {
		return r, nil
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	return nil, fmt.Errorf("%s %q: want one of %s", flag, v, strings.Join(slices.Sorted(slices.Values(keys)), ", "))
}

func ikeParseAuth(v string) (ike.AuthMethod, error) {
	switch strings.ToLower(v) {
	case "psk", "pre-shared-key":
		return ike.AuthPSK, nil
	case "rsa", "rsa-sig", "cert", "pubkey":
		return ike.AuthRSASig, nil
	case "kerberos", "gss", "gssapi", "gss-api":
		return ike.AuthGSSKerberos, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("--auth %q: want psk, rsa, kerberos or a number 1-65535", v)
	}
	return ike.AuthMethod(n), nil
}

// ikeResolveTarget takes an IPv4 address or a host name (its first IPv4 address), and refuses
// what no probe may go to (probe.CheckTarget: multicast, broadcast, unspecified).
func ikeResolveTarget(ctx context.Context, s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		addrs, lerr := net.DefaultResolver.LookupNetIP(lctx, "ip4", s)
		if lerr != nil || len(addrs) == 0 {
			return netip.Addr{}, fmt.Errorf("target %q: not an IPv4 address, and no IPv4 address for that name", s)
		}
		a = addrs[0]
	}
	a = a.Unmap()
	if err := probe.CheckTargetHere(a); err != nil {
		return netip.Addr{}, err
	}
	return a, nil
}

// ikeNotRecorded is what the text says of a result that holds nothing (probe.IKEResult.Recorded).
const ikeNotRecorded = "no result was recorded (an ipsecpath bug: please report it), so this says nothing about the path"

// printIKE writes the survey for a person.
func printIKE(w io.Writer, s *probe.IKESurvey, took time.Duration) {
	fmt.Fprintf(w, "IKE toward %s\n", s.Target)
	for _, l := range s.NAT().TextLines() {
		fmt.Fprintln(w, l)
	}
	fmt.Fprintln(w)
	for _, x := range s.Exchanges {
		printIKEExchange(w, s.Target, x)
	}
	if len(s.Proposals) > 0 {
		fmt.Fprintf(w, "%-44s %s\n", "Proposal", "Result")
		for _, p := range s.Proposals {
			verdict := "NOT ACCEPTED"
			switch {
			case p.Skipped != "":
				verdict = "not offered: " + p.Skipped
			case !p.Result.Recorded():
				verdict = "NOT KNOWN: " + ikeNotRecorded
			case p.Accepted:
				verdict = "accepted"
				if p.Result.Chosen == "" && p.Result.WantedGroup != "" {
					verdict += " (gateway wants " + p.Result.WantedGroup + ")"
				}
			case p.Result.Outcome == probe.IKEGatewaySilent:
				verdict = "NOT KNOWN: the gateway stopped answering us (half-open limit?)"
			case !p.Result.Answered():
				verdict = "NO ANSWER"
			default:
				verdict += " (" + p.Result.Notify + ")"
			}
			fmt.Fprintf(w, "IKEv%d:%-5d %-33s %s\n", p.Version, p.Port, p.Proposal, verdict)
		}
		fmt.Fprintln(w)
	}
	if z := s.Size; z != nil {
		fmt.Fprintf(w, "Size search (IKEv%d on UDP %d, %d requests", z.Version, z.Port, z.Probes)
		if z.PathMTU > 0 {
			fmt.Fprintf(w, ", path MTU %d", z.PathMTU)
		}
		fmt.Fprintf(w, "):\n  largest answered  %d bytes\n", z.LargestAnswered)
		if z.SmallestUnanswered > 0 {
			fmt.Fprintf(w, "  not answered      %d bytes and above\n", z.SmallestUnanswered)
		}
		fmt.Fprintf(w, "  %s\n\n", z.Detail)
	}
	ok := 0
	for _, x := range s.Exchanges {
		if x.Outcome == probe.IKEAccepted {
			ok++
		}
	}
	if len(s.Exchanges) > 0 {
		fmt.Fprintf(w, "%d of %d exchanges answered and accepted, in %.1f s.\n", ok, len(s.Exchanges), took.Seconds())
	}
}

func printIKEExchange(w io.Writer, target string, x probe.IKEResult) {
	if !x.Recorded() {
		fmt.Fprintf(w, "%s: NOT KNOWN: %s\n\n", x.Name(), ikeNotRecorded)
		return
	}
	name := x.Name()
	switch x.Outcome {
	case probe.IKEAccepted:
		fmt.Fprintf(w, "%-18s answered in %.1f ms (%s, %d bytes)\n", name, x.RTTms, sends(x.Attempts), x.Size)
	case probe.IKERefused:
		fmt.Fprintf(w, "%-18s REFUSED: %s, in %.1f ms (%s, %d bytes)\n", name, x.Notify, x.RTTms, sends(x.Attempts), x.Size)
	case probe.IKEUnreachable:
		from, text := "?", "error"
		if x.ICMP != nil {
			from, text = x.ICMP.From, x.ICMP.Text
		}
		fmt.Fprintf(w, "%-18s ICMP %s from %s\n", name, text, from)
		fmt.Fprintf(w, "  %-11s %s\n", "meaning", probe.IKEICMPMeaning(target, x.ICMP))
	case probe.IKEGatewaySilent:
		fmt.Fprintf(w, "%-18s GATEWAY STOPPED ANSWERING US (half-open limit?) after %s of %d bytes\n", name, sends(x.Attempts), x.Size)
		if x.Arrived() {
			fmt.Fprintf(w, "  %-11s %s\n", "meaning", "it answered this exchange first, so the path carried the request; the gateway's limit ended it")
		} else {
			fmt.Fprintf(w, "  %-11s %s\n", "meaning", "it answered us on this port in this run, so this is the gateway, not the path; ask again in 30 s")
		}
	default:
		fmt.Fprintf(w, "%-18s NO ANSWER after %s of %d bytes\n", name, sends(x.Attempts), x.Size)
	}
	if x.Chosen != "" {
		fmt.Fprintf(w, "  %-11s %s\n  %-11s %s\n", "chose", x.Chosen, "", x.ChosenDetail)
	}
	if x.WantedGroup != "" {
		fmt.Fprintf(w, "  %-11s %s\n", "wants group", x.WantedGroup)
	}
	if x.Answered() {
		var feats []string
		if x.Fragmentation {
			feats = append(feats, "IKE fragmentation")
		}
		if x.NATT {
			feats = append(feats, "NAT-T")
		}
		if x.NATDetected != nil && *x.NATDetected {
			feats = append(feats, "(it sees us behind a NAT)")
		}
		if len(feats) == 0 {
			feats = []string{"neither IKE fragmentation nor NAT-T announced"}
		}
		fmt.Fprintf(w, "  %-11s %s\n", "supports", strings.Join(feats, ", "))
		if len(x.VendorIDs) > 0 {
			fmt.Fprintf(w, "  %-11s %s\n", "vendor IDs", strings.Join(x.VendorIDs, ", "))
		}
	}
	for _, st := range x.Steps {
		fmt.Fprintf(w, "  %-11s %s\n", "note", st)
	}
	fmt.Fprintln(w)
}

func sends(n int) string {
	if n == 1 {
		return "1 send"
	}
	return strconv.Itoa(n) + " sends"
}
