// Package capture reads the shared H.323 reference captures (pcap files
// dissected by tshark) and writes pcap files, for the codec's tests and the
// H.323 test stand-ins. It imports no codec package, so the codec's own
// tests can use it.
package capture

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/portico-edge/portico/internal/testpeer"
)

// RefDir returns the shared reference directory: $PORTICO_REF_DIR when set
// (a git worktree elsewhere than beside ../shared), else ../shared/ref
// beside the repository root, or "" when it is absent.
func RefDir() string {
	if ref := os.Getenv("PORTICO_REF_DIR"); ref != "" {
		if _, err := os.Stat(ref); err == nil {
			return ref
		}
		return ""
	}
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			ref := filepath.Join(dir, "..", "shared", "ref")
			if _, err := os.Stat(ref); err == nil {
				return ref
			}
			return ""
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// Captures lists the reference capture files, or skips the test when the
// reference directory is absent.
func Captures(t testing.TB) []string {
	t.Helper()
	ref := RefDir()
	if ref == "" {
		t.Skip("../shared/ref beside the repository is absent: no reference captures")
	}
	var out []string
	for _, p := range []string{"wireshark-rtp_example.raw.gz", "ndpi-h323.pcap", "ooh323c/t1.pcapng", "ooh323c/t2.pcapng", "ooh323c/t3.pcapng", "ooh323c/g1.pcapng"} {
		out = append(out, filepath.Join(ref, "captures", p))
	}
	return out
}

// Frame is one captured frame's transport payload.
type Frame struct {
	File             string
	Num              int
	SrcPort, DstPort int
	UDP              bool
	Payload          []byte
	Stream           int // tcp.stream or -1
	Malformed        bool
}

// Frames returns the non-empty UDP/TCP payloads of the frames of file
// matching the tshark display filter.
func Frames(t testing.TB, file, filter string) []Frame {
	t.Helper()
	testpeer.Require(t, "tshark")
	cmd := exec.Command("tshark", "-r", file, "-Y", filter, "-T", "fields", "-E", "separator=|",
		"-e", "frame.number", "-e", "udp.srcport", "-e", "udp.dstport", "-e", "tcp.srcport", "-e", "tcp.dstport",
		"-e", "tcp.stream", "-e", "udp.payload", "-e", "tcp.payload", "-e", "_ws.malformed")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark %s: %v", file, err)
	}
	var frames []Frame
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<22)
	for sc.Scan() {
		f := strings.Split(sc.Text(), "|")
		if len(f) < 9 {
			continue
		}
		fr := Frame{File: filepath.Base(file), Stream: -1, Malformed: f[8] != ""}
		fr.Num, _ = strconv.Atoi(f[0])
		if f[6] != "" {
			fr.UDP = true
			fr.SrcPort, _ = strconv.Atoi(f[1])
			fr.DstPort, _ = strconv.Atoi(f[2])
			fr.Payload, _ = hex.DecodeString(f[6])
		} else {
			fr.SrcPort, _ = strconv.Atoi(f[3])
			fr.DstPort, _ = strconv.Atoi(f[4])
			fr.Stream, _ = strconv.Atoi(f[5])
			fr.Payload, _ = hex.DecodeString(f[7])
		}
		if len(fr.Payload) > 0 {
			frames = append(frames, fr)
		}
	}
	return frames
}
