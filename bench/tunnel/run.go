package main

import (
	"errors"
	"fmt"
	"log"
	"os/exec"
	"strconv"
	"time"
)

func run(o options) error {
	load0 := loadAvg()
	e, echoBase, err := newEcho(o.calls)
	if err != nil {
		return err
	}
	defer e.close()
	srvBase, err := freeRange(o.calls)
	if err != nil {
		return err
	}
	q, nc := strconv.Itoa(o.queue), strconv.Itoa(o.conns)
	args := []string{"-role", "server", "-ports", rangeOf(srvBase, o.calls), "-queue", q, "-conns", nc}
	if o.profile != "" {
		args = append(args, "-cpuprofile", o.profile)
	}
	srv, out, err := child(args...)
	if err != nil {
		return err
	}
	defer stopChild(srv)
	var lines []string
	for len(lines) < 2 && out.Scan() {
		lines = append(lines, out.Text())
	}
	if len(lines) < 2 {
		return errors.New("tunnel server child printed no address and token")
	}
	cargs := []string{"-role", "client", "-server", lines[0], "-token", lines[1], "-ports", rangeOf(echoBase, o.calls), "-queue", q, "-conns", nc}
	if o.profile != "" {
		cargs = append(cargs, "-cpuprofile", o.profile+".client")
	}
	var cli *exec.Cmd
	cli, _, err = child(cargs...)
	if err != nil {
		return err
	}
	defer stopChild(cli)

	direct, err := newFlows(echoBase, o.calls)
	if err != nil {
		return err
	}
	defer direct.close()
	tun, err := newFlows(srvBase, o.calls)
	if err != nil {
		return err
	}
	defer tun.close()
	// Wait until every flow answers through the tunnel.
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := tun.measure(float64(o.calls)*5, 32, 400*time.Millisecond, 0, 0)
		if st.loss == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("tunnel not carrying every flow after 30 s (loss %.1f %%)", 100*st.loss)
		}
	}
	sp, cp := srv.Process.Pid, cli.Process.Pid
	total := float64(o.calls) * o.rate
	log.Printf("direct: %d calls × %.0f packets/s of %d B", o.calls, o.rate, o.size)
	d := direct.measure(total, o.size, o.step, 0, 0)
	log.Printf("tunnel: %d calls × %.0f packets/s of %d B", o.calls, o.rate, o.size)
	t := tun.measure(total, o.size, o.step, sp, cp)
	t.ok = t.loss < 0.001 && t.p99-d.p99 < 5

	fmt.Printf("\nload average at start %s\n\n", load0)
	fmt.Printf("| path | packets/s each way | loss | round trip p50 / p99 | added p50 / p99 | µs CPU per packet: server / client / generator+echo |\n|---|---|---|---|---|---|\n")
	row := func(name string, s step, base step) {
		pk := float64(s.sent + s.recv) // datagrams carried, both directions
		added := "—"
		if name != "direct" {
			added = fmt.Sprintf("%.2f / %.2f ms", s.p50-base.p50, s.p99-base.p99)
		}
		fmt.Printf("| %s | %.0f | %.3f %% (%d of %d) | %.2f / %.2f ms | %s | %s / %s / %.1f |\n", name, s.achieved, 100*s.loss,
			s.sent-min(s.sent, s.recv), s.sent, s.p50, s.p99, added, us(s.cpuS, pk), us(s.cpuC, pk), 1e6*s.cpuGen/pk)
	}
	log.Printf("kernel UDP buffer drops: direct %d receive %d send, tunnel %d receive %d send", d.rcvbuf, d.sndbuf, t.rcvbuf, t.sndbuf)
	row("direct", d, d)
	row("tunnel", t, d)
	fmt.Printf("\ntarget at %d calls (loss < 0.1 %%, added p99 < 5 ms): %s\n", o.calls, map[bool]string{true: "met", false: "missed"}[t.ok])

	if o.bigSize > 0 {
		fmt.Printf("\n| search, %d B | best packets/s each way | Mbit/s each way | loss | p99 | µs CPU per packet: server / client |\n|---|---|---|---|---|---|\n", o.bigSize)
		for _, p := range []struct {
			name   string
			f      *flows
			sp, cp int
		}{{"direct (generator ceiling)", direct, 0, 0}, {"tunnel", tun, sp, cp}} {
			log.Printf("throughput search, %s, %d B", p.name, o.bigSize)
			best, all := p.f.search(o.bigStart, o.maxRate, o.bigSize, o.step, p.sp, p.cp)
			for _, s := range all {
				log.Printf("  %.0f/s: achieved %.0f, loss %.3f %%, p99 %.2f ms ok=%v", s.rate, s.achieved, 100*s.loss, s.p99, s.ok)
			}
			pk := float64(best.sent + best.recv)
			fmt.Printf("| %s | %.0f | %.0f | %.3f %% | %.2f ms | %s / %s |\n", p.name, best.achieved, best.achieved*float64(o.bigSize)*8/1e6,
				100*best.loss, best.p99, us(best.cpuS, pk), us(best.cpuC, pk))
		}
	}
	if o.setups > 0 {
		log.Printf("setup rate: %d new flows", o.setups)
		dr, df := setupRate(echoBase, o.calls, o.setups)
		tr, tf := setupRate(srvBase, o.calls, o.setups)
		fmt.Printf("\nnew flows answered per second (32 at a time, %d each): direct %.0f (%d unanswered), tunnel %.0f (%d unanswered)\n", o.setups, dr, df, tr, tf)
	}
	fmt.Printf("\nload average at end %s\n", loadAvg())
	return nil
}

func us(cpu, packets float64) string {
	if cpu == 0 || packets == 0 {
		return "—"
	}
	return strconv.FormatFloat(1e6*cpu/packets, 'f', 1, 64)
}
