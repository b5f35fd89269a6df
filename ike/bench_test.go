package ike

import "testing"

func BenchmarkDecodeSAInit(b *testing.B) {
	msg, _ := BuildSAInit(nil, SAInitParams{Rand: newDetRand()})
	benchDecode(b, msg)
}

func BenchmarkDecodeMainMode3000(b *testing.B) {
	msg, _ := BuildMainMode(nil, MainModeParams{Size: 3000})
	benchDecode(b, msg)
}

// benchDecode times decoding msg into one Message, reused.
func benchDecode(b *testing.B, msg []byte) {
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	var m Message
	for b.Loop() {
		if err := m.DecodeFromBytes(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseSAv2(b *testing.B) {
	msg, _ := BuildSAInit(nil, SAInitParams{Rand: newDetRand()})
	var m Message
	_ = m.DecodeFromBytes(msg)
	body := m.Payloads[0].Body
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseSAv2(body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBuildSAInit includes the X25519 key generation of a real initiator.
func BenchmarkBuildSAInit(b *testing.B) {
	benchBuild(b, func(buf []byte) ([]byte, error) { return BuildSAInit(buf, SAInitParams{}) })
}

func BenchmarkBuildMainMode(b *testing.B) {
	benchBuild(b, func(buf []byte) ([]byte, error) { return BuildMainMode(buf, MainModeParams{}) })
}

// benchBuild times build appending one message to a reused 2048-byte buffer.
func benchBuild(b *testing.B, build func(buf []byte) ([]byte, error)) {
	buf := make([]byte, 0, 2048)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := build(buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
}
