package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/portico-edge/portico/internal/api"
	"github.com/portico-edge/portico/internal/store"
	"github.com/portico-edge/portico/internal/turn"
)

// turnCmd manages long-term TURN users in the store (the API does the same
// under /api/v1/turn/users); only MD5(user:realm:password) is kept.
func turnCmd() *cobra.Command {
	c := &cobra.Command{Use: "turn", Short: "Manage STUN/TURN long-term users"}
	u := &cobra.Command{Use: "user", Short: "Long-term TURN users (RFC 8489 §9.2)"}
	c.AddCommand(u)

	var sfAdd storeFlags
	var realm string
	add := &cobra.Command{
		Use:   "add NAME",
		Short: "Create or replace a TURN user (password from PORTICO_PASSWORD or stdin)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pw, err := readPassword(cmd, api.ValidateTURNPassword)
			if err != nil {
				return err
			}
			st, err := sfAdd.open(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			realm := realm
			if realm == "" {
				if realm, err = configuredRealm(cmd.Context(), st); err != nil {
					return err
				}
			}
			now := time.Now().UTC()
			if err := st.PutTURNUser(cmd.Context(), store.TURNUser{Realm: realm, Name: args[0], Key: turn.LongTermKey(args[0], realm, pw), CreatedAt: now}); err != nil {
				return err
			}
			st.AppendAudit(cmd.Context(), store.AuditEntry{Time: now, User: osUser(), Source: "cli", Action: "turn.user.put", Target: args[0], Detail: "realm " + realm})
			fmt.Fprintf(cmd.OutOrStdout(), "TURN user %s (realm %s) stored\n", args[0], realm)
			return nil
		},
	}
	sfAdd.add(add)
	add.Flags().StringVar(&realm, "realm", "", "realm (default: turn.realm of the active configuration)")

	var sfList storeFlags
	list := &cobra.Command{
		Use:   "list",
		Short: "List TURN users",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := sfList.open(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			us, err := st.TURNUsers(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "REALM\tNAME\tCREATED")
			for _, u := range us {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", u.Realm, u.Name, u.CreatedAt.Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	sfList.add(list)

	var sfDel storeFlags
	var delRealm string
	del := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a TURN user",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := sfDel.open(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			delRealm := delRealm
			if delRealm == "" {
				if delRealm, err = configuredRealm(cmd.Context(), st); err != nil {
					return err
				}
			}
			if err := st.DeleteTURNUser(cmd.Context(), delRealm, args[0]); err != nil {
				return err
			}
			st.AppendAudit(cmd.Context(), store.AuditEntry{Time: time.Now().UTC(), User: osUser(), Source: "cli", Action: "turn.user.delete", Target: args[0], Detail: "realm " + delRealm})
			fmt.Fprintf(cmd.OutOrStdout(), "TURN user %s deleted\n", args[0])
			return nil
		},
	}
	sfDel.add(del)
	del.Flags().StringVar(&delRealm, "realm", "", "realm (default: turn.realm of the active configuration)")
	u.AddCommand(add, list, del)
	return c
}

// configuredRealm is turn.realm of the store's active configuration: the
// realm the running TURN service authenticates long-term users in.
func configuredRealm(ctx context.Context, st store.Store) (string, error) {
	return api.RealmOf(st.ActiveConfig(ctx))
}
