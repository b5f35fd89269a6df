package probe

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

// goldenFrame is a hello request with fixed nonce and time, and its wire form under
// testKey (MAC computed by an independent reference: python3 hmac.new(key, msg, sha256)).
func goldenFrame() (frame, string) {
	f := frame{Type: msgHello, Time: time.Unix(1700000000, 123456789)}
	for i := range f.Nonce {
		f.Nonce[i] = byte(i + 1)
	}
	f.Body = []byte(`{}`)
	return f, "0000004e" + "02010000" +
		"0102030405060708090a0b0c0d0e0f10" +
		"17979cfe3d85cd15" +
		"00000000000000000000000000000000" +
		"7b7d" +
		"d10c6352a426fe9b88f6682f86595cb2f0e6bf0129adcd3f44e448a6897a2b94"
}

func TestFrameGolden(t *testing.T) {
	f, want := goldenFrame()
	got, err := appendFrame([]byte("foo"), testKey, &f)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(got, []byte("foo")) {
		t.Fatalf("appendFrame did not append: % x", got[:3])
	}
	if h := hexString(got[3:]); h != want {
		t.Fatalf("wire form\n got %s\nwant %s", h, want)
	}
	var back frame
	if err := decodeFrame(got[3:], testKey, &back); err != nil {
		t.Fatalf("decode: %v", err)
	}
	if back.Type != f.Type || back.Nonce != f.Nonce || !back.Time.Equal(f.Time) || back.InReplyTo != f.InReplyTo || string(back.Body) != string(f.Body) {
		t.Fatalf("round trip: got %+v want %+v", back, f)
	}
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	var s strings.Builder
	for _, c := range b {
		s.WriteByte(digits[c>>4])
		s.WriteByte(digits[c&15])
	}
	return s.String()
}

func TestFrameDecodeErrors(t *testing.T) {
	f, _ := goldenFrame()
	good, err := appendFrame(nil, testKey, &f)
	if err != nil {
		t.Fatal(err)
	}
	mut := func(fn func(b []byte) []byte) []byte { return fn(append([]byte(nil), good...)) }
	reMAC := func(b []byte) []byte { // sign the patched frame again: only the patched field is wrong
		signed := b[:len(b)-frameMACSize]
		m := hmac.New(sha256.New, testKey)
		m.Write(signed)
		return m.Sum(signed)
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrFrameSize},
		{"length only", good[:4], ErrFrameSize},
		{"truncated", good[:len(good)-1], ErrFrameSize},
		{"trailing byte", append(append([]byte(nil), good...), 0), ErrFrameSize},
		{"length too small", mut(func(b []byte) []byte { binary.BigEndian.PutUint32(b, 10); return b[:14] }), ErrFrameSize},
		{"length huge", mut(func(b []byte) []byte { binary.BigEndian.PutUint32(b, 0xffffffff); return b }), ErrFrameSize},
		{"flipped body bit", mut(func(b []byte) []byte { b[48] ^= 1; return b }), ErrFrameMAC},
		{"flipped MAC bit", mut(func(b []byte) []byte { b[len(b)-1] ^= 0x80; return b }), ErrFrameMAC},
		{"flipped type", mut(func(b []byte) []byte { b[5] = byte(msgStop); return b }), ErrFrameMAC},
		{"other key", mut(func(b []byte) []byte {
			out, _ := appendFrame(nil, []byte("another key, 16+ bytes long"), &f)
			return out
		}), ErrFrameMAC},
		{"version 1, signed", mut(func(b []byte) []byte { b[4] = 1; return reMAC(b) }), ErrFrameVersion},
		{"reserved set, signed", mut(func(b []byte) []byte { b[6] = 1; return reMAC(b) }), ErrFrameVersion},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var g frame
			err := decodeFrame(tc.b, testKey, &g)
			if !errors.Is(err, tc.want) {
				t.Fatalf("decodeFrame: %v, want %v", err, tc.want)
			}
		})
	}
}

func TestReadFrameRefusesOversizeUnread(t *testing.T) {
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], MaxFrameSize) // one more than the largest L
	r := &countingReader{r: io.MultiReader(bytes.NewReader(hdr[:]), bytes.NewReader(make([]byte, MaxFrameSize)))}
	_, err := readFrame(r, nil)
	if !errors.Is(err, ErrFrameSize) {
		t.Fatalf("readFrame: %v, want ErrFrameSize", err)
	}
	if r.n != 4 {
		t.Fatalf("read %d bytes of an oversize frame, want only the 4-byte length", r.n)
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// TestGreetingAndConnKey: the greeting's wire form, its parse (and refusals), and the
// connection key against an independent reference (python3: hmac.new(key,
// b"ipsecpath control 2" + instance + challenge, sha256)).
func TestGreetingAndConnKey(t *testing.T) {
	var g greeting
	g.Version, g.Status = ControlVersion, greetBusyPeer
	for i := range g.Instance {
		g.Instance[i], g.Challenge[i] = byte(i+1), byte(i+0x11)
	}
	wire := appendGreeting([]byte("foo"), &g)[3:]
	want := "00000024" + "02000200" + "0102030405060708090a0b0c0d0e0f10" + "1112131415161718191a1b1c1d1e1f20"
	if h := hexString(wire); h != want {
		t.Fatalf("greeting\n got %s\nwant %s", h, want)
	}
	var back greeting
	if err := readGreeting(bytes.NewReader(wire), &back); err != nil || back != g {
		t.Fatalf("readGreeting: %+v, %v; want %+v", back, err, g)
	}
	if k := hexString(connKey(testKey, g.Instance, g.Challenge)); k != "97ac59d14fa0f6013178dfc8d62191ece1e09359daf903a893a86ddd391399c2" {
		t.Fatalf("connection key %s", k)
	}
	old := append([]byte(nil), wire...)
	old[4] = 1
	if err := readGreeting(bytes.NewReader(old), &back); !errors.Is(err, ErrAgentProtocol) || !strings.Contains(err.Error(), "speaks control protocol 1, this ipsecpath speaks 2") {
		t.Fatalf("greeting of protocol 1: %v", err)
	}
	// A v1 reply frame where a greeting belongs (the first thing read is a frame).
	f, _ := goldenFrame()
	fw, _ := appendFrame(nil, testKey, &f)
	fw[4] = ControlVersion
	if err := readGreeting(bytes.NewReader(fw), &back); !errors.Is(err, ErrAgentProtocol) {
		t.Fatalf("frame instead of a greeting: %v", err)
	}
	if err := readGreeting(bytes.NewReader(wire[:20]), &back); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("cut greeting: %v", err)
	}
}

// FuzzReadGreeting: any bytes, never a panic; an accepted greeting re-encodes to itself.
func FuzzReadGreeting(f *testing.F) {
	var g greeting
	g.Version = ControlVersion
	f.Add(appendGreeting(nil, &g))
	f.Add([]byte{0, 0, 0, 36, 1, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		var g greeting
		if readGreeting(bytes.NewReader(data), &g) != nil {
			return
		}
		if out := appendGreeting(nil, &g); !bytes.Equal(out, data[:greetingLen]) {
			t.Fatalf("accepted greeting does not re-encode:\n in % x\nout % x", data[:greetingLen], out)
		}
	})
}

func TestLoadKey(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, data []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := bytes.Repeat([]byte{0xa5}, 32)
	for _, tc := range []struct {
		name    string
		path    string
		want    []byte
		wantErr string
	}{
		{"good", write("good", good, 0o600), good, ""},
		{"owner read-only", write("ro", good, 0o400), good, ""},
		{"echo newline stripped", write("echo", []byte("correct horse battery staple\n"), 0o600), []byte("correct horse battery staple"), ""},
		{"world-readable", write("world", good, 0o644), nil, "group or others may access it"},
		{"group-readable", write("group", good, 0o640), nil, "group or others may access it"},
		{"world-writable", write("ww", good, 0o602), nil, "group or others may access it"},
		{"short", write("short", []byte("fifteen bytes!!"), 0o600), nil, "need at least 16"},
		{"short after newline", write("shortnl", []byte("fifteen bytes!!\n"), 0o600), nil, "need at least 16"},
		{"empty", write("empty", nil, 0o600), nil, "need at least 16"},
		{"too large", write("large", make([]byte, 5000), 0o600), nil, "larger than 4096"},
		{"missing", filepath.Join(dir, "nope"), nil, "no such file"},
		{"directory", dir, nil, "not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := LoadKey(tc.path)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("LoadKey: %v, want error containing %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Fatalf("error is not one line: %q", err)
				}
				return
			}
			if err != nil || !bytes.Equal(k, tc.want) {
				t.Fatalf("LoadKey = %q, %v; want %q", k, err, tc.want)
			}
		})
	}
}

// FuzzDecodeFrame feeds arbitrary bytes to the frame reader and decoder: they must never
// panic, never read past a refused length, and accept only frames whose MAC is right, in
// which case re-encoding gives the same bytes.
func FuzzDecodeFrame(f *testing.F) {
	g, _ := goldenFrame()
	good, _ := appendFrame(nil, testKey, &g)
	f.Add(good)
	rep := frame{Type: msgReport | msgReplyBit, Nonce: g.Nonce, InReplyTo: g.Nonce, Time: g.Time,
		Body: []byte(`{"seen":[],"next":0,"more":false,"lost":0,"observing":true}`)}
	b, _ := appendFrame(nil, testKey, &rep)
	f.Add(b)
	f.Add(good[:10])
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0, 0, 76})
	f.Fuzz(func(t *testing.T, data []byte) {
		cr := &countingReader{r: bytes.NewReader(data)}
		fb, err := readFrame(cr, nil)
		if err != nil {
			if len(data) >= 4 {
				l := binary.BigEndian.Uint32(data)
				if (l < frameMinLen || l > frameMaxLen) && cr.n > 4 {
					t.Fatalf("read %d bytes of a frame with refused length %d", cr.n, l)
				}
			}
			return
		}
		var fr frame
		if err := decodeFrame(fb, testKey, &fr); err != nil {
			return
		}
		// Accepted: it must be a faithful frame under testKey.
		out, err := appendFrame(nil, testKey, &fr)
		if err != nil {
			t.Fatalf("re-encode accepted frame: %v", err)
		}
		if !bytes.Equal(out, fb) {
			t.Fatalf("accepted frame does not re-encode to itself:\n in % x\nout % x", fb, out)
		}
		var body struct{}
		_ = decodeBody(fr.Body, &body) // must not panic
	})
}
