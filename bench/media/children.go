package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/portico-edge/portico/internal/batchio"
	"github.com/portico-edge/portico/internal/media"
	"github.com/portico-edge/portico/internal/media/ng"
)

// runPortico is the relay child: media.Relay plus the ng listener.
//
// With veth set (-netns) it runs in the relay's namespace with an
// "external" interface toward the generator's A side and an "internal" one
// toward its B side; the ng offerer's leg is external.
func runPortico(ngPort, workers int, cpuprofile, fastPath string, veth bool) error {
	fp, err := media.ParseFastPath(fastPath)
	if err != nil {
		return err
	}
	if cpuprofile != "" {
		f, err := os.Create(cpuprofile)
		if err != nil {
			return err
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	lo := netip.MustParseAddr("127.0.0.1")
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ifaces := map[string]media.InterfaceConfig{"external": {Addr: lo, PortMin: 20000, PortMax: 29999}}
	legs := [2]string{}
	if veth {
		ifaces = map[string]media.InterfaceConfig{
			"external": {Addr: vethRelayA, PortMin: 20000, PortMax: 29999},
			"internal": {Addr: vethRelayB, PortMin: 30000, PortMax: 39999},
		}
		legs = [2]string{"external", "internal"}
	}
	r, err := media.New(media.Config{
		Interfaces: ifaces,
		Latching:   media.LatchNAT,
		Workers:    workers,
		FastPath:   fp,
	}, media.Deps{Logger: log})
	if err != nil {
		return err
	}
	srv, err := ng.New(ng.Config{Listen: fmt.Sprintf("127.0.0.1:%d", ngPort), Interfaces: legs}, ng.Deps{Relay: r, Logger: log})
	if err != nil {
		return err
	}
	errc := make(chan error, 2)
	go func() { errc <- r.Run(ctx) }()
	go func() { errc <- srv.Run(ctx) }()
	err = <-errc
	stop()
	<-errc
	return err
}

// runBare is the reference loop: one thread, epoll over 2n sockets,
// recvmmsg from one socket and sendmmsg on its partner to a fixed address.
// No latching, no statistics, no session logic.
func runBare(n int, toA, toB string) error {
	runtime.LockOSThread()
	a, err := netip.ParseAddrPort(toA)
	if err != nil {
		return err
	}
	b, err := netip.ParseAddrPort(toB)
	if err != nil {
		return err
	}
	ep, err := unix.EpollCreate1(0)
	if err != nil {
		return err
	}
	type sock struct {
		fd      int
		partner int
		dst     netip.AddrPort
	}
	socks := make([]sock, 0, 2*n)
	var ports []int
	var keep []*net.UDPConn // the sockets must outlive the loop: their dup'd fds are used raw
	defer func() {
		for _, c := range keep {
			c.Close()
		}
	}()
	for i := 0; i < 2*n; i++ {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return err
		}
		batchio.SetBuffers(c, 4<<20, 4<<20)
		keep = append(keep, c)
		f, _ := c.File() // a blocking dup; we use it non-blocking below
		fd := int(f.Fd())
		unix.SetNonblock(fd, true)
		ports = append(ports, c.LocalAddr().(*net.UDPAddr).Port)
		socks = append(socks, sock{fd: fd})
	}
	for i := 0; i < n; i++ {
		sa, sb := &socks[2*i], &socks[2*i+1]
		sa.partner, sa.dst = 2*i+1, b // A→B leaves through b_i
		sb.partner, sb.dst = 2*i, a
	}
	for i := range socks {
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(i)}
		if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, socks[i].fd, &ev); err != nil {
			return err
		}
	}
	for _, p := range ports {
		fmt.Println(p)
	}
	fmt.Println("ready")
	batch := batchio.NewBatch(32)
	events := make([]unix.EpollEvent, 256)
	for {
		k, err := unix.EpollWait(ep, events, -1)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			return err
		}
		for e := 0; e < k; e++ {
			s := &socks[events[e].Fd]
			for {
				m, err := batch.RecvFD(s.fd, 0)
				if err != nil || m == 0 {
					break
				}
				for j := 0; j < m; j++ {
					batch.Msgs[j].Addr = s.dst
				}
				batch.SendFD(socks[s.partner].fd, 0, m)
				if m < batch.Len() {
					break
				}
			}
		}
	}
}
