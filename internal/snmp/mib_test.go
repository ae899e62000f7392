package snmp

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/portico-edge/portico/internal/testpeer"
)

// mibDir is the repository's mibs directory.
func mibDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "mibs")
}

// Stand-ins for the IETF base modules PORTICO-MIB imports. Debian's main
// archive ships none of them (net-snmp's copies are stripped from its
// packages, snmp-mibs-downloader is non-free), so where net-snmp cannot
// find SNMPv2-SMI the test writes these: they declare only the names
// PORTICO-MIB imports, with the values the RFCs give them (RFC 2578 §2,
// RFC 2579 §2). Where the real modules are installed, the test uses them.
var standIns = map[string]string{
	"SNMPv2-SMI": `SNMPv2-SMI DEFINITIONS ::= BEGIN
org         OBJECT IDENTIFIER ::= { iso 3 }
dod         OBJECT IDENTIFIER ::= { org 6 }
internet    OBJECT IDENTIFIER ::= { dod 1 }
private     OBJECT IDENTIFIER ::= { internet 4 }
enterprises OBJECT IDENTIFIER ::= { private 1 }
END
`,
	"SNMPv2-TC": `SNMPv2-TC DEFINITIONS ::= BEGIN
DisplayString ::= TEXTUAL-CONVENTION
    DISPLAY-HINT "255a"
    STATUS       current
    DESCRIPTION  "Stand-in."
    SYNTAX       OCTET STRING (SIZE (0..255))
TruthValue ::= TEXTUAL-CONVENTION
    STATUS       current
    DESCRIPTION  "Stand-in."
    SYNTAX       INTEGER { true(1), false(2) }
END
`,
	"SNMPv2-CONF": "SNMPv2-CONF DEFINITIONS ::= BEGIN\nEND\n",
}

// mibArgs are the net-snmp options that load PORTICO-MIB from the
// repository: -m +PORTICO-MIB -M +mibs, with the stand-ins when needed.
func mibArgs(t *testing.T) []string {
	t.Helper()
	dirs := mibDir()
	path := testpeer.Require(t, "snmptranslate")[0]
	probe := exec.Command(path, "-m", "SNMPv2-SMI", "-IR", "-On", "enterprises")
	probe.Env = append(os.Environ(), "HOME="+t.TempDir(), "MIBS=")
	if out, err := probe.Output(); err != nil || strings.TrimSpace(string(out)) != ".1.3.6.1.4.1" {
		base := t.TempDir()
		for name, text := range standIns {
			if err := os.WriteFile(filepath.Join(base, name+".txt"), []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		dirs += ":" + base
	}
	return []string{"-m", "+PORTICO-MIB", "-M", "+" + dirs}
}

func snmptranslate(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	path := testpeer.Require(t, "snmptranslate")[0]
	cmd := exec.Command(path, append(mibArgs(t), args...)...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "MIBS=")
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// TestMIBLoads: net-snmp loads mibs/PORTICO-MIB.txt without complaint and
// resolves its objects and notifications to the numbers the agent uses.
func TestMIBLoads(t *testing.T) {
	for name, want := range map[string]oid{
		"porticoNodeName":            oidNode.child(1),
		"porticoTurnAllocations":     oidNode.child(9),
		"porticoServiceStatus":       oidServiceEntry.child(3),
		"porticoProtocolCalls":       oidProtoEntry.child(5),
		"porticoRelayPacketsLost":    oidRelay.child(4),
		"porticoCertDaysToExpiry":    oidCertEntry.child(3),
		"porticoEventMessage":        oidEvent.child(2),
		"porticoServiceDown":         oidNotifications.child(uint32(ServiceDown)),
		"porticoLoginLockout":        oidNotifications.child(uint32(LoginLockout)),
		"porticoCertificateExpiring": oidNotifications.child(uint32(CertificateExpiring)),
	} {
		out, stderr, err := snmptranslate(t, "-On", "PORTICO-MIB::"+name)
		if err != nil || strings.TrimSpace(out) != want.String() {
			t.Errorf("%s = %q, want %s (%v)\n%s", name, out, want, err, stderr)
		}
		if strings.Contains(stderr, "PORTICO-MIB") {
			t.Errorf("net-snmp complains about PORTICO-MIB:\n%s", stderr)
		}
	}
}

// TestWalkNamedByMIB: every object the agent serves under the enterprise
// is named by PORTICO-MIB in snmpwalk's output: the MIB file and the agent
// agree.
func TestWalkNamedByMIB(t *testing.T) {
	a := newTestAgent(t, testSection(), &staticProvider{testSnapshot()})
	addr := startAgent(t, a)
	path := testpeer.Require(t, "snmpwalk")[0]
	cmd := exec.Command(path, append(mibArgs(t), "-r", "0", "-t", "1", "-v2c", "-c", "s3cret-ro", addr, ".1.3.6.1.4.1.99999")...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "MIBS=")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("snmpwalk: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 20 {
		t.Fatalf("walk returned %d lines:\n%s", len(lines), out)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "PORTICO-MIB::portico") {
			t.Errorf("not named by the MIB: %s", l)
		}
	}
	for _, want := range []string{`PORTICO-MIB::porticoServiceStatus.2 = INTEGER: down(2)`, `PORTICO-MIB::porticoNodeReady.0 = INTEGER: true(1)`,
		`PORTICO-MIB::porticoProtocolName.2 = STRING: h323`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("walk lacks %q:\n%s", want, out)
		}
	}
}
