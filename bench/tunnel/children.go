package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/portico-edge/portico/internal/tunnel"
)

// runEnd is a tunnel end child. The server offers the UDP service "media"
// on the port range ports; the client delivers it to the same-sized range
// ports. The server prints its UDP address and an enrollment token, the
// client enrolls with the token; both serve until SIGTERM.
func runEnd(role, server, token, ports, cpuprofile string, queue, conns int) error {
	if cpuprofile != "" {
		f, err := os.Create(cpuprofile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	deps := tunnel.Deps{State: &tunnel.MemState{}, Logger: log}
	if role == "server" {
		s, err := tunnel.NewServer(tunnel.Config{Role: tunnel.RoleServer, DatagramQueue: queue, DatagramConnections: conns, Services: []tunnel.Service{
			{Name: "media", Proto: "udp", Listen: ports},
		}}, deps)
		if err != nil {
			return err
		}
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer pc.Close()
		tok, _, err := s.CreateToken()
		if err != nil {
			return err
		}
		fmt.Println(pc.LocalAddr())
		fmt.Println(tok)
		up := watchUp(ctx, s.Stats)
		err = s.Serve(ctx, pc)
		report("server", s.Stats(), up)
		return err
	}
	c, err := tunnel.NewClient(tunnel.Config{Role: tunnel.RoleClient, DatagramQueue: queue, DatagramConnections: conns, Server: server, EnrollmentToken: token,
		Services: []tunnel.Service{{Name: "media", Proto: "udp", Target: ports}}}, deps)
	if err != nil {
		return err
	}
	up := watchUp(ctx, c.Stats)
	err = c.Run(ctx)
	report("client", c.Stats(), up)
	return err
}

// report writes an end's drop and bundle counters to standard error at exit.
// QUIC packet counts come from the last snapshot taken while the
// connection was up (up), as the connection is gone at exit.
func report(role string, st tunnel.Stats, up func() tunnel.Stats) {
	last := up()
	st.PacketsSent, st.PacketsReceived, st.PacketsLost, st.CongestionWindow = last.PacketsSent, last.PacketsReceived, last.PacketsLost, last.CongestionWindow
	// With several datagram connections, their packets are summed and
	// their windows listed.
	var cwnds []string
	for _, l := range last.DatagramConnections {
		if l.Index > 0 && l.Own {
			st.PacketsSent += l.PacketsSent
			st.PacketsLost += l.PacketsLost
		}
		cwnds = append(cwnds, strconv.FormatUint(l.CongestionWindow, 10)+" B rtt "+l.RTT.Round(time.Millisecond).String())
	}
	per := 0.0
	if st.BundlesSent > 0 {
		per = float64(st.BundledDatagrams) / float64(st.BundlesSent)
	}
	fmt.Fprintf(os.Stderr, "%s end: dropped queue full %d, receive queue full %d, too large %d, no peer %d, unknown %d; bad headers %d; sent %d datagrams in %d bundles (%.2f each), received %d bundles; waited %v for QUIC to take them; QUIC packets sent %d, received %d, lost %d; congestion window %d B (per datagram connection: %s)\n",
		role, st.DroppedQueueFull, st.DroppedReceiveQueueFull, st.DroppedTooLarge, st.DroppedNoPeer, st.DroppedUnknown, st.BadHeaders, st.BundledDatagrams, st.BundlesSent, per, st.BundlesReceived, st.SendWait.Round(time.Millisecond), st.PacketsSent, st.PacketsReceived, st.PacketsLost, st.CongestionWindow, strings.Join(cwnds, " / "))
	if d := st.Delays; d != nil {
		fmt.Fprintf(os.Stderr, "%s end delays: queued %v; sending %v; delivering %v\n", role, d.Queued, d.Sending, d.Delivering)
	}
}

// watchUp snapshots stats every 100 ms until ctx ends and returns a
// function giving the last snapshot taken while the connection was up.
func watchUp(ctx context.Context, stats func() tunnel.Stats) func() tunnel.Stats {
	var mu sync.Mutex
	var last tunnel.Stats
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if st := stats(); st.State == "up" {
					mu.Lock()
					last = st
					mu.Unlock()
				}
			}
		}
	}()
	return func() tunnel.Stats { mu.Lock(); defer mu.Unlock(); return last }
}
