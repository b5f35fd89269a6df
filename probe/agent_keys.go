package probe

import (
	"errors"
	"fmt"
	"sync/atomic"
)

// MaxAgentKeys bounds how many keys an agent accepts at once (a rotation needs two). Every
// key costs an HMAC on the first frame of an unauthenticated connection.
const MaxAgentKeys = 4

// keyring is the set of pre-shared keys an agent accepts for new sessions. A session keeps
// the key its first frame authenticated with until it ends, so replacing the set (SetKeys,
// on SIGHUP) drops no session.
type keyring struct {
	keys atomic.Pointer[[][]byte]
}

func checkKeys(keys [][]byte) ([][]byte, error) {
	if len(keys) == 0 {
		return nil, errors.New("responder: no key")
	}
	if len(keys) > MaxAgentKeys {
		return nil, fmt.Errorf("responder: %d keys, at most %d", len(keys), MaxAgentKeys)
	}
	out := make([][]byte, len(keys))
	for i, k := range keys {
		if len(k) < MinKeySize {
			return nil, fmt.Errorf("responder: key of %d bytes, need at least %d", len(k), MinKeySize)
		}
		out[i] = append([]byte(nil), k...)
	}
	return out, nil
}

// match authenticates the first frame b of a connection with the connection key of each
// key in turn (connKey: bound to this agent instance and the connection's challenge) and
// returns the connection key it authenticated with; an error that is not a MAC mismatch
// (size, version) is the same for every key and is returned at once.
func (kr *keyring) match(b []byte, instance, challenge [nonceSize]byte, f *frame) ([]byte, error) {
	ks := kr.keys.Load()
	if ks == nil {
		return nil, ErrFrameMAC
	}
	for _, k := range *ks {
		ck := connKey(k, instance, challenge)
		err := decodeFrame(b, ck, f)
		if err == nil {
			return ck, nil
		}
		if !errors.Is(err, ErrFrameMAC) {
			return nil, err
		}
	}
	return nil, ErrFrameMAC
}

// SetKeys replaces the keys the agent accepts for new sessions (1 to MaxAgentKeys, each at
// least MinKeySize bytes). Sessions already open keep the key they authenticated with. Safe
// to call while Serve runs: this is how `responder` reloads its key files on SIGHUP.
func (r *Responder) SetKeys(keys ...[]byte) error {
	ks, err := checkKeys(keys)
	if err != nil {
		return err
	}
	r.keyring.keys.Store(&ks)
	return nil
}
