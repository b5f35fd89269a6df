package probe

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

// TestAgentKeyRotation: during a rotation the agent accepts the old and the new key; after
// SetKeys drops the old key, new sessions with it get no answer while a session opened
// with it before goes on answering (a reload drops no session).
func TestAgentKeyRotation(t *testing.T) {
	oldKey, newKey := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	fx := startAgent(t, func(c *ResponderConfig) { c.Key = oldKey })
	ctx := context.Background()
	early := dial(t, fx.addr, oldKey)
	if _, err := early.Hello(ctx); err != nil {
		t.Fatalf("old key before the rotation: %v", err)
	}
	if err := fx.r.SetKeys(oldKey, newKey); err != nil {
		t.Fatal(err)
	}
	for name, k := range map[string][]byte{"old": oldKey, "new": newKey} {
		if _, err := dial(t, fx.addr, k).Hello(ctx); err != nil {
			t.Errorf("%s key during the rotation: %v", name, err)
		}
	}
	if err := fx.r.SetKeys(newKey); err != nil {
		t.Fatal(err)
	}
	if _, err := dial(t, fx.addr, oldKey).Hello(ctx); !errors.Is(err, ErrAgentRejected) {
		t.Errorf("a new session with the dropped key: %v, want ErrAgentRejected", err)
	}
	if _, err := dial(t, fx.addr, newKey).Hello(ctx); err != nil {
		t.Errorf("new key after the rotation: %v", err)
	}
	if _, err := early.Hello(ctx); err != nil {
		t.Errorf("the session opened with the old key was dropped by the reload: %v", err)
	}
	for _, bad := range [][][]byte{nil, {[]byte("short")}, {newKey, newKey, newKey, newKey, newKey}} {
		if err := fx.r.SetKeys(bad...); err == nil {
			t.Errorf("SetKeys accepted %d keys %q", len(bad), bad)
		}
	}
	if _, err := dial(t, fx.addr, newKey).Hello(ctx); err != nil {
		t.Errorf("a refused SetKeys changed the keys: %v", err)
	}
}
