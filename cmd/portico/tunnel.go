package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// tunnelCmd talks to the running node's tunnel through the REST API.
func tunnelCmd() *cobra.Command {
	c := &cobra.Command{Use: "tunnel", Short: "Inside/DMZ tunnel: enrollment tokens, certificate rotation and state"}
	var cl client
	var insecure bool
	var caFile string
	token := &cobra.Command{
		Use:   "token",
		Short: "Issue a one-time enrollment token on the tunnel server (DMZ node)",
		Long: "Issue a one-time enrollment token on the tunnel server. Put it in the inside node's\n" +
			"tunnel.enrollment_token; the client presents it once and both ends pin each other's certificate.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cl.setup(insecure, caFile); err != nil {
				return err
			}
			var out struct {
				Token     string    `json:"token"`
				ExpiresAt time.Time `json:"expires_at"`
			}
			if err := cl.send(cmd.Context(), "POST", "/api/v1/tunnel/tokens", strings.NewReader("{}"), &out); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), out.Token)
			fmt.Fprintf(cmd.ErrOrStderr(), "valid once, until %s\n", out.ExpiresAt.UTC().Format(time.RFC3339))
			return nil
		},
	}
	addClientFlags(token, &cl, &insecure, &caFile)

	var scl client
	var sInsecure bool
	var sCA string
	status := &cobra.Command{
		Use:   "status",
		Short: "Show the tunnel's state, RTT and per-service counters",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := scl.setup(sInsecure, sCA); err != nil {
				return err
			}
			var st map[string]any
			if err := scl.get(cmd.Context(), "/api/v1/tunnel", &st); err != nil {
				return err
			}
			out, _ := json.MarshalIndent(st, "", "  ")
			fmt.Fprintln(cmd.OutOrStdout(), string(out))
			return nil
		},
	}
	addClientFlags(status, &scl, &sInsecure, &sCA)

	var rcl client
	var rInsecure bool
	var rCA string
	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Roll this node's tunnel certificate to a new key pair",
		Long: "Roll this node's tunnel certificate to a new key pair without downtime. The peer must be\n" +
			"connected: it pins the new certificate over the tunnel, then retires the old one.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := rcl.setup(rInsecure, rCA); err != nil {
				return err
			}
			var out struct {
				Fingerprint string `json:"fingerprint"`
			}
			if err := rcl.send(cmd.Context(), "POST", "/api/v1/tunnel/rotate", strings.NewReader("{}"), &out); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), out.Fingerprint)
			return nil
		},
	}
	addClientFlags(rotate, &rcl, &rInsecure, &rCA)

	var ecl client
	var eInsecure bool
	var eCA string
	enroll := &cobra.Command{
		Use:   "enroll ENROLLMENT-TOKEN",
		Short: "Enroll the inside node with a one-time token from the tunnel server",
		Long: "Present a one-time enrollment token (from \"portico tunnel token\" on the DMZ node) to the tunnel\n" +
			"server. The inside node keeps its identity; this is how it enrolls again after the server's\n" +
			"certificate changed while it was away (status problem \"server certificate changed: re-enroll\").",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := ecl.setup(eInsecure, eCA); err != nil {
				return err
			}
			body, _ := json.Marshal(map[string]string{"token": args[0]})
			var out struct {
				State string `json:"state"`
			}
			if err := ecl.send(cmd.Context(), "POST", "/api/v1/tunnel/enroll", strings.NewReader(string(body)), &out); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "enrolled; tunnel", out.State)
			return nil
		},
	}
	addClientFlags(enroll, &ecl, &eInsecure, &eCA)
	c.AddCommand(token, status, rotate, enroll)
	return c
}
