package snmp

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// corpusMessage reads one request of the fuzz corpus.
func corpusMessage(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata/fuzz/FuzzHandle", name))
	if err != nil {
		tb.Fatal(err)
	}
	var q string
	if _, err := fmt.Sscanf(strings.TrimPrefix(string(b), "go test fuzz v1\n"), "[]byte(%q)", &q); err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	return []byte(q)
}

// BenchmarkHandle measures answering one request, from the datagram to
// the encoded response: a v2c GetBulk of net-snmp's and a v3 authPriv Get.
func BenchmarkHandle(b *testing.B) {
	for _, name := range []string{"netsnmp-v2c-getbulk", "netsnmp-v3-authpriv-get"} {
		b.Run(strings.TrimPrefix(name, "netsnmp-"), func(b *testing.B) {
			a, err := New(testSection(), Env{Node: "edge-1"}, Deps{Provider: &staticProvider{testSnapshot()}})
			if err != nil {
				b.Fatal(err)
			}
			a.start()
			msg := corpusMessage(b, name)
			src := netip.MustParseAddr("127.0.0.1")
			b.ReportAllocs()
			for b.Loop() {
				if a.handle(msg, src) == nil {
					b.Fatal("not answered")
				}
			}
		})
	}
}
