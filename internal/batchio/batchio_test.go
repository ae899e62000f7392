package batchio

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"testing"
)

func listen(t testing.TB, network, addr string) *Conn {
	t.Helper()
	u, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
	if err != nil {
		t.Skipf("listen %s: %v", addr, err)
	}
	if err := SetBuffers(u, 1<<20, 1<<20); err != nil {
		t.Fatal(err)
	}
	c, err := NewConn(u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct{ name, network, addr string }{
		{"ipv4", "udp4", "127.0.0.1:0"},
		{"ipv6", "udp6", "[::1]:0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := listen(t, tc.network, tc.addr), listen(t, tc.network, tc.addr)
			baddr := b.UDPConn().LocalAddr().(*net.UDPAddr).AddrPort()
			aaddr := a.UDPConn().LocalAddr().(*net.UDPAddr).AddrPort()
			out, in := NewBatch(8), NewBatch(8)
			for i := 0; i < 5; i++ {
				m := &out.Msgs[i]
				m.N = copy(m.Buf, fmt.Sprintf("packet %d", i))
				m.Addr = baddr
			}
			n, err := a.WriteBatch(out, 5)
			if err != nil || n != 5 {
				t.Fatalf("WriteBatch = %d, %v", n, err)
			}
			got := 0
			for got < 5 {
				n, err := b.ReadBatch(in, 0)
				if err != nil {
					t.Fatal(err)
				}
				for i := 0; i < n; i++ {
					want := fmt.Sprintf("packet %d", got)
					if !bytes.Equal(in.Msgs[i].Data(), []byte(want)) {
						t.Errorf("slot %d = %q, want %q", i, in.Msgs[i].Data(), want)
					}
					if in.Msgs[i].Addr != aaddr {
						t.Errorf("source %v, want %v", in.Msgs[i].Addr, aaddr)
					}
					got++
				}
			}
		})
	}
}

func TestZeroAllocs(t *testing.T) {
	a, b := listen(t, "udp4", "127.0.0.1:0"), listen(t, "udp4", "127.0.0.1:0")
	baddr := b.UDPConn().LocalAddr().(*net.UDPAddr).AddrPort()
	out, in := NewBatch(4), NewBatch(4)
	for i := range out.Msgs {
		out.Msgs[i].N, out.Msgs[i].Addr = 172, baddr
	}
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := a.WriteBatch(out, 4); err != nil {
			t.Fatal(err)
		}
		for got := 0; got < 4; {
			n, err := b.ReadBatch(in, 0)
			if err != nil {
				t.Fatal(err)
			}
			got += n
		}
	})
	if allocs != 0 {
		t.Fatalf("allocs per batch = %v, want 0", allocs)
	}
}

func BenchmarkBatch(b *testing.B) {
	for _, size := range []int{1, 8, 32} {
		b.Run(fmt.Sprint(size), func(b *testing.B) {
			x, y := listen(b, "udp4", "127.0.0.1:0"), listen(b, "udp4", "127.0.0.1:0")
			yaddr := y.UDPConn().LocalAddr().(*net.UDPAddr).AddrPort()
			out, in := NewBatch(size), NewBatch(size)
			for i := range out.Msgs {
				out.Msgs[i].N, out.Msgs[i].Addr = 172, yaddr
			}
			b.ReportAllocs()
			b.SetBytes(int64(172 * size))
			for b.Loop() {
				x.WriteBatch(out, size)
				for got := 0; got < size; {
					n, err := y.ReadBatch(in, 0)
					if err != nil {
						b.Fatal(err)
					}
					got += n
				}
			}
		})
	}
}
