package h323

import (
	"encoding/binary"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// stampReader reads a TCP connection with recvmsg and keeps the time the
// kernel received the data of its last read (SO_TIMESTAMPING, software
// receive stamps): the moment a message reached the endpoint's socket,
// before the endpoint's own process got a CPU to read it. For TCP the
// stamp is that of the last segment the read returned.
type stampReader struct {
	rc   syscall.RawConn
	oob  [256]byte
	last time.Time // kernel receive time of the last read's data; zero when the read carried none
}

// enableRxStamps asks the kernel to stamp c's received data in software.
// A listening socket's setting is inherited by the connections it accepts.
func enableRxStamps(c syscall.Conn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPING,
			unix.SOF_TIMESTAMPING_RX_SOFTWARE|unix.SOF_TIMESTAMPING_SOFTWARE)
	})
	if err != nil {
		return err
	}
	return serr
}

func newStampReader(c net.Conn) (*stampReader, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil, syscall.EINVAL
	}
	if err := enableRxStamps(sc); err != nil {
		return nil, err
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	return &stampReader{rc: rc}, nil
}

// Read honours the connection's deadline (RawConn.Read waits in Go's
// poller as net.Conn.Read does).
func (s *stampReader) Read(p []byte) (int, error) {
	var n, oobn int
	var rerr error
	err := s.rc.Read(func(fd uintptr) bool {
		n, oobn, _, _, rerr = unix.Recvmsg(int(fd), p, s.oob[:], 0)
		return rerr != unix.EAGAIN
	})
	if err != nil {
		return 0, err
	}
	if rerr != nil {
		return 0, rerr
	}
	if n == 0 && len(p) > 0 {
		return 0, io.EOF
	}
	s.last = rxStamp(s.oob[:oobn])
	return n, nil
}

// rxStamp is the software receive time in the control messages b
// (struct scm_timestamping: three timespecs, the first the software one),
// or zero.
func rxStamp(b []byte) time.Time {
	msgs, err := unix.ParseSocketControlMessage(b)
	if err != nil {
		return time.Time{}
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPING && len(m.Data) >= 16 {
			sec := int64(binary.NativeEndian.Uint64(m.Data))
			nsec := int64(binary.NativeEndian.Uint64(m.Data[8:]))
			if sec != 0 || nsec != 0 {
				return time.Unix(sec, nsec)
			}
		}
	}
	return time.Time{}
}

// TestStampReader checks that a read on loopback TCP carries the kernel's
// receive time, taken after the write began and before the read returned,
// and that the bytes come through unchanged.
func TestStampReader(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sr, err := newStampReader(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range []string{"setup", "connect"} {
		before := time.Now()
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 64)
		n, err := io.ReadFull(sr, buf[:len(msg)])
		after := time.Now()
		if err != nil || string(buf[:n]) != msg {
			t.Fatalf("read %q, %v; want %q", buf[:n], err, msg)
		}
		if sr.last.IsZero() || sr.last.Before(before.Round(0)) || sr.last.After(after.Round(0)) {
			t.Fatalf("receive stamp %v, want within [%v, %v]", sr.last, before, after)
		}
	}
	c.Close()
	if n, err := sr.Read(make([]byte, 8)); n != 0 || err != io.EOF {
		t.Fatalf("after close: %d, %v; want 0, EOF", n, err)
	}
}
