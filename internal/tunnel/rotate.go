package tunnel

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
)

// Certificate rotation runs over the authenticated tunnel connection, on a
// control stream (flow kind 3). The end that rotates makes a new key pair
// and certificate, then asks its peer, one request per stream, to
//
//	pin <new fingerprint>   pin the new certificate beside the one this
//	                        connection was authenticated with
//	retire                  forget the certificate this connection was
//	                        authenticated with
//
// and the peer answers "ok" or "refused <reason>". Between the two it
// stores and starts using the new identity. The live connection continues
// (it was authenticated at its handshake), so rotation causes no downtime;
// every later handshake presents the new certificate, and one with the old
// certificate is refused. A pin records which certificate it replaces, so
// that a rotation cut short after the pin (the rotating end stopped before
// its retire) still retires the old certificate when the new one first
// connects.

const (
	controlService = "control"
	controlPin     = "pin"
	controlRetire  = "retire"
	// controlPriority announces a client's priority to the server.
	controlPriority = "priority"
	// controlServices announces the services a client delivers, each
	// with its priority: "services sip=200 web=100".
	controlServices = "services"
	maxControlLine  = 4096
)

// ErrRotate reports a certificate rotation that did not complete.
var ErrRotate = errors.New("tunnel: certificate rotation failed")

// ParseControl decodes one control request line (without its newline)
// into its verb and argument.
func ParseControl(line string) (verb, arg string, err error) {
	if len(line) > maxControlLine {
		return "", "", fmt.Errorf("%w: control request of %d bytes", ErrHeader, len(line))
	}
	verb, arg, _ = strings.Cut(line, " ")
	switch verb {
	case controlRetire:
		if arg != "" {
			return "", "", fmt.Errorf("%w: retire takes no argument", ErrHeader)
		}
		return verb, "", nil
	case controlPin:
		if b, err := hex.DecodeString(arg); err != nil || len(b) != 32 {
			return "", "", fmt.Errorf("%w: pin needs a SHA-256 fingerprint", ErrHeader)
		}
		return verb, strings.ToLower(arg), nil
	case controlPriority:
		if !validPriority(arg) {
			return "", "", fmt.Errorf("%w: priority needs 1-255", ErrHeader)
		}
		return verb, arg, nil
	case controlServices:
		seen := map[string]bool{}
		for _, f := range strings.Fields(arg) {
			name, n, ok := strings.Cut(f, "=")
			if !ok || validServiceName(name) != nil || !validPriority(n) || seen[name] {
				return "", "", fmt.Errorf("%w: services needs distinct name=priority (1-255) pairs", ErrHeader)
			}
			seen[name] = true
		}
		return verb, strings.Join(strings.Fields(arg), " "), nil
	}
	return "", "", fmt.Errorf("%w: control request %.16q", ErrHeader, verb)
}

// validPriority accepts "1" to "255" written plainly.
func validPriority(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 1 && n <= 255 && strconv.Itoa(n) == s
}

// control sends one request on a new control stream of conn and waits for
// the peer's answer.
func control(ctx context.Context, conn *quic.Conn, req string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrRotate, err)
	}
	defer st.CancelRead(0)
	_ = st.SetDeadline(time.Now().Add(5 * time.Second))
	b := Header{Kind: KindControl, Flow: uint32(st.StreamID()), Service: controlService}.Append(nil)
	if _, err := st.Write(append(append(b, req...), '\n')); err != nil {
		return fmt.Errorf("%w: %w", ErrRotate, err)
	}
	_ = st.Close()
	line, err := bufio.NewReader(&limitedReader{r: st, n: maxControlLine}).ReadString('\n')
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrRotate, req, err)
	}
	if line = strings.TrimSpace(line); line != "ok" {
		return fmt.Errorf("%w: %s: %s", ErrRotate, req, line)
	}
	return nil
}

// serveControl answers one control request from the peer of conn with
// apply's verdict.
func serveControl(conn *quic.Conn, st *quic.Stream, apply func(conn *quic.Conn, verb, arg string) error) error {
	defer st.CancelRead(0)
	_ = st.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(&limitedReader{r: st, n: maxControlLine + 1}).ReadString('\n')
	if err == nil {
		var verb, arg string
		if verb, arg, err = ParseControl(strings.TrimSuffix(line, "\n")); err == nil {
			err = apply(conn, verb, arg)
		}
	}
	answer := "ok\n"
	if err != nil {
		answer = "refused " + strings.TrimPrefix(err.Error(), "tunnel: ") + "\n"
	}
	_, _ = st.Write([]byte(answer))
	_ = st.Close()
	return err
}

// peerFingerprint is the fingerprint conn's peer authenticated with.
func peerFingerprint(conn *quic.Conn) string {
	return Fingerprint(conn.ConnectionState().TLS.PeerCertificates[0].Raw)
}

// applyPins changes st's pins for one control request from the peer
// authenticated with peerFP; it reports whether st changed.
func applyPins(st *State, verb, peerFP, newFP string) (bool, error) {
	if !slices.Contains(st.Peers, peerFP) {
		return false, ErrUnknownPeer
	}
	switch verb {
	case controlPin:
		if newFP == peerFP {
			return false, fmt.Errorf("%w: the new certificate is the current one", ErrRotate)
		}
		if !slices.Contains(st.Peers, newFP) {
			st.Peers = append(st.Peers, newFP)
		}
		if st.Replaces == nil {
			st.Replaces = map[string]string{}
		}
		st.Replaces[newFP] = peerFP
		return true, nil
	case controlRetire:
		st.Peers = slices.DeleteFunc(st.Peers, func(p string) bool { return p == peerFP })
		for n, o := range st.Replaces {
			if o == peerFP {
				delete(st.Replaces, n)
			}
		}
		return true, nil
	}
	return false, fmt.Errorf("%w: control request %q", ErrHeader, verb)
}

// connectedWith retires, once a peer authenticates with fp, the
// certificate fp was pinned to replace; it reports whether st changed.
func connectedWith(st *State, fp string) bool {
	old, ok := st.Replaces[fp]
	if !ok {
		return false
	}
	st.Peers = slices.DeleteFunc(st.Peers, func(p string) bool { return p == old })
	delete(st.Replaces, fp)
	return true
}

// changePins applies a pin or retire request from the peer of conn (the
// peer's role names it in the log) to *st and saves it; mu guards st.
func changePins(mu *sync.Mutex, st *State, store StateStore, log *slog.Logger, peer string, conn *quic.Conn, verb, newFP string) error {
	peerFP := peerFingerprint(conn)
	mu.Lock()
	defer mu.Unlock()
	next := cloneState(*st)
	if _, err := applyPins(&next, verb, peerFP, newFP); err != nil {
		return err
	}
	if err := store.Save(next); err != nil {
		return err
	}
	*st = next
	if verb == controlPin {
		log.Info("tunnel "+peer+" certificate pinned", "fingerprint", newFP, "replaces", peerFP)
	} else {
		log.Info("tunnel "+peer+" certificate retired", "fingerprint", peerFP)
	}
	return nil
}

// retireReplaced retires, when the peer of conn authenticated with a
// certificate a rotation pinned, the one it replaces; mu guards st.
func retireReplaced(mu *sync.Mutex, st *State, store StateStore, log *slog.Logger, conn *quic.Conn) {
	fp := peerFingerprint(conn)
	mu.Lock()
	defer mu.Unlock()
	next := cloneState(*st)
	if !connectedWith(&next, fp) {
		return
	}
	if err := store.Save(next); err != nil {
		log.Warn("tunnel state not saved", "err", err)
		return
	}
	*st = next
}

// rotate runs one rotation on conns (the peers connected now): pin a new
// certificate at each peer, store and use it (install), then retire the
// old one at each peer. It returns the new certificate's fingerprint.
func rotate(ctx context.Context, conns []*quic.Conn, install func(certPEM, keyPEM []byte, cert tls.Certificate) error) (string, error) {
	var fresh State
	cert, fp, err := identity(&fresh)
	if err != nil {
		return "", err
	}
	for _, conn := range conns {
		if err := control(ctx, conn, controlPin+" "+fp); err != nil {
			return "", err
		}
	}
	if err := install(fresh.CertPEM, fresh.KeyPEM, cert); err != nil {
		return "", err
	}
	// The new certificate is in use; a retire that fails leaves the old
	// one pinned at that peer until the new one first connects.
	var errs []error
	for _, conn := range conns {
		errs = append(errs, control(ctx, conn, controlRetire))
	}
	return fp, errors.Join(errs...)
}
