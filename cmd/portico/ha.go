package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/portico-edge/portico/internal/api"
)

// haCmd talks to the running node's VRRP speaker through the REST API.
func haCmd() *cobra.Command {
	c := &cobra.Command{Use: "ha", Short: "HA pair: VIP groups, their state on this node, hand-back"}
	var scl client
	var sInsecure bool
	var sCA string
	status := &cobra.Command{
		Use:   "status",
		Short: "Show this node's VIP groups: state, VIPs held, transitions, peers last heard",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := scl.setup(sInsecure, sCA); err != nil {
				return err
			}
			var st api.Cluster
			if err := scl.get(cmd.Context(), "/api/v1/cluster", &st); err != nil {
				return err
			}
			printCluster(cmd.OutOrStdout(), st)
			return nil
		},
	}
	addClientFlags(status, &scl, &sInsecure, &sCA)

	var hcl client
	var hInsecure bool
	var hCA string
	handback := &cobra.Command{
		Use:   "handback",
		Short: "Hand the VIP groups this node took over but does not own back to their owner",
		Long: "Hand back, after a failover without preemption: each VIP group this node is master of\n" +
			"but does not own (another node has a higher priority in it) is given up with a\n" +
			"priority-0 advertisement and its VIPs released, so the owner takes it at once.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := hcl.setup(hInsecure, hCA); err != nil {
				return err
			}
			var out struct {
				Yielded []int `json:"yielded"`
			}
			if err := hcl.send(cmd.Context(), "POST", "/api/v1/cluster/handback", strings.NewReader("{}"), &out); err != nil {
				return err
			}
			if len(out.Yielded) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "no group to hand back: this node is master only of its own groups")
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "handed back VIP groups %v\n", out.Yielded)
			return nil
		},
	}
	addClientFlags(handback, &hcl, &hInsecure, &hCA)
	c.AddCommand(status, handback)
	return c
}

// printCluster writes the cluster status as a table.
func printCluster(w io.Writer, st api.Cluster) {
	if !st.HA {
		fmt.Fprintf(w, "node %s: ha is not enabled\n", st.Node)
		return
	}
	run := "running"
	if !st.Running {
		run = "not running"
		if st.Error != "" {
			run += ": " + st.Error
		}
	}
	fmt.Fprintf(w, "node %s, interface %s, speaker %s, advertisements dropped %d\n", st.Node, st.Interface, run, st.Dropped)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tSTATE\tPRIORITY\tOWNER\tVIPS\tHELD\tTRANSITIONS\tLAST\tPEERS")
	for _, g := range st.Groups {
		last := "-"
		if g.LastTransition != nil {
			last = g.LastTransition.UTC().Format(time.RFC3339)
		}
		var peers []string
		for _, p := range g.Peers {
			peers = append(peers, fmt.Sprintf("%s (prio %d, %s ago)", p.Address, p.Priority, time.Since(p.LastHeard).Round(time.Millisecond)))
		}
		held := strings.Join(g.VIPsHeld, ",")
		if held == "" {
			held = "-"
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%v\t%s\t%s\t%d\t%s\t%s\n", g.VRID, g.State, g.Priority, g.Owner, strings.Join(g.VIPs, ","), held, g.Transitions, last, strings.Join(peers, "; "))
	}
	tw.Flush()
}
