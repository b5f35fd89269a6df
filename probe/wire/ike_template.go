package wire

import (
	"fmt"
	"io"

	"github.com/ipsecpath/ipsecpath/ike"
)

// IKETemplates keeps the last two IKE_SA_INIT messages built (natural size and sized), so
// that one set of buffers can alternate between ike and ike-frag without rebuilding. The
// zero value is empty and ready.
type IKETemplates struct {
	t [2]ikeTemplate
}

// ikeTemplate is an IKE_SA_INIT built for a size (0: natural), its SPI to be patched.
type ikeTemplate struct {
	want int
	msg  []byte
}

// Message returns an IKEv2 IKE_SA_INIT request of want bytes (0: its natural size) from
// the ike package, the same one a gateway answers, with randomness from rand (nil:
// crypto/rand). It is stateless (ike.SAInitParams.Stateless): the gateway answers
// INVALID_KE_PAYLOAD or NO_PROPOSAL_CHOSEN, either of which proves arrival, and keeps no
// half-open IKE SA, so repeated checks never trip a gateway's half-open limit (strongSwan
// ignores a peer holding 5). It is built once per size and reused: every probe then differs
// only in the SPI (KE and Ni repeat, which a gateway does not mind for a first message), so
// building allocates nothing after the first time.
func (t *IKETemplates) Message(want int, rand io.Reader) ([]byte, error) {
	for i := range t.t {
		if m := &t.t[i]; m.msg != nil && m.want == want {
			return m.msg, nil
		}
	}
	if want != 0 && want < ike.HeaderLen {
		return nil, fmt.Errorf("size too small for an IKE message")
	}
	m, err := ike.BuildSAInit(nil, ike.SAInitParams{Size: want, Stateless: true, Rand: rand})
	if err != nil {
		return nil, fmt.Errorf("IKE_SA_INIT of %d bytes: %w", want, err)
	}
	t.t[1] = t.t[0]
	t.t[0] = ikeTemplate{want: want, msg: m}
	return m, nil
}
