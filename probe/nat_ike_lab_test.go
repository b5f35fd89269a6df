package probe

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ipsecpath/ipsecpath/report"
	"github.com/ipsecpath/ipsecpath/report/schematest"
	"github.com/ipsecpath/ipsecpath/testlab"
)

// TestIKENATDetection: a one-ended IKEv2 exchange with the lab's strongSwan reports the NAT
// in front of us from the gateway's NAT detection hashes (nat), and none on our side where
// there is none (clean). The lab's charons run kernel-libipsec and fake their own source
// hash, so the gateway's side reads translated in both: the report says it may be faked.
// One accepted exchange per lab: strongSwan's half-open limit (see above).
func TestIKENATDetection(t *testing.T) {
	testlab.RequireRoot(t)
	for _, c := range []struct {
		profile string
		ours    bool
		side    string
	}{
		{"nat", true, "both"},
		{"clean", false, "gateway's"},
	} {
		t.Run(c.profile, func(t *testing.T) {
			t.Parallel()
			l := testlab.ForTest(t, testlab.Spec{Profile: c.profile})
			var s *IKESurvey
			inNode(t, l, testlab.NodeIni, func() error {
				var err error
				s, err = SurveyIKE(context.Background(), l.Addr(testlab.NodeRsp), IKESurveyOptions{Versions: []int{2}, Ports: []int{PortIKE}})
				return err
			})
			if len(s.Exchanges) != 1 || s.Exchanges[0].NATDetected == nil || s.Exchanges[0].NATGateway == nil {
				t.Fatalf("exchanges %+v: want one IKEv2 answer with both NAT detection checks", s.Exchanges)
			}
			x := s.Exchanges[0]
			if *x.NATDetected != c.ours || !*x.NATGateway || !strings.HasPrefix(x.LocalAddr, "198.51.100.10:") {
				t.Errorf("ours %v (want %v), gateway's %v (want true: faked by libipsec), local %s", *x.NATDetected, c.ours, *x.NATGateway, x.LocalAddr)
			}
			n := s.NAT()
			if n == nil || !n.Detected || n.Side != c.side || n.Via != "ike-natd" || n.Sent != x.LocalAddr {
				t.Fatalf("nat = %+v, want detected on side %q", n, c.side)
			}
			if c.ours && !strings.Contains(n.Detail, "a NAT between us, on our side") {
				t.Errorf("detail: %s", n.Detail)
			}
			if !strings.Contains(n.Detail, "or fakes that hash") {
				t.Errorf("the gateway's side must allow for a faked hash: %s", n.Detail)
			}
			r := s.Report(time.Now())
			if r.NAT == nil || r.NAT.Detail != n.Detail {
				t.Errorf("report nat %+v", r.NAT)
			}
			// As 'ipsecpath ike --json' prints it.
			schematest.ValidateValue(t, "ike", struct {
				*report.Report
				IKE *IKESurvey `json:"ike"`
			}{r, s})
		})
	}
}

// TestIKEv1NATDetection: IKEv1 tells NAT detection only in Main Mode 4; ProbeIKEv1NATD asks
// for it with a message 3 and checks the lab's strongSwan's NAT-D payloads: our side
// translated behind nat, not on clean (the gateway's own hash is faked by libipsec in both).
func TestIKEv1NATDetection(t *testing.T) {
	testlab.RequireRoot(t)
	for _, c := range []struct {
		profile string
		ours    bool
	}{{"nat", true}, {"clean", false}} {
		t.Run(c.profile, func(t *testing.T) {
			t.Parallel()
			l := testlab.ForTest(t, testlab.Spec{Profile: c.profile})
			for _, port := range []int{PortIKE, PortNATT} {
				var v *IKEv1NATD
				inNode(t, l, testlab.NodeIni, func() error {
					var err error
					v, err = ProbeIKEv1NATD(context.Background(), l.Addr(testlab.NodeRsp), port, 0)
					return err
				})
				if v.Ours == nil || v.Gateway == nil {
					t.Fatalf("port %d: %+v: want both NAT-D checks", port, v)
				}
				if *v.Ours != c.ours || !*v.Gateway || !strings.Contains(v.Hash, "Hash=SHA2-256") {
					t.Errorf("port %d: ours %v (want %v), gateway %v (want true: faked), hash %q", port, *v.Ours, c.ours, *v.Gateway, v.Hash)
				}
				s := &IKESurvey{Target: l.Addr(testlab.NodeRsp).String(), NATDv1: v}
				schematest.ValidateValue(t, "ike", struct {
					*report.Report
					IKE *IKESurvey `json:"ike"`
				}{s.Report(time.Now()), s})
				if n := s.NAT(); n == nil || n.Detected != true || (c.ours && n.Side != "both") || (!c.ours && n.Side != "gateway's") {
					t.Errorf("port %d: nat %+v", port, n)
				}
			}
		})
	}
}
