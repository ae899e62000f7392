package handoff

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

func TestPushAccept(t *testing.T) {
	l := New(nil)
	if l.Addr().String() != "0.0.0.0:0" {
		t.Fatalf("Addr = %v", l.Addr())
	}
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	got := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			t.Error(err)
		}
		got <- c
	}()
	if err := l.Push(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	if c := <-got; c != a {
		t.Fatalf("Accept returned %v, want the pushed connection", c)
	}
}

func TestPushTimesOutWithoutAccept(t *testing.T) {
	l := New(nil)
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := l.Push(ctx, a); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Push with nobody accepting = %v, want deadline exceeded", err)
	}
}

func TestClose(t *testing.T) {
	l := New(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 443})
	accepted := make(chan error, 1)
	go func() { _, err := l.Accept(); accepted <- err }()
	waiting := make(chan error, 1)
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	select {
	case <-l.Closed():
		t.Fatal("Closed before Close")
	default:
	}
	l.Close()
	l.Close() // twice is fine
	<-l.Closed()
	if err := <-accepted; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close = %v", err)
	}
	go func() { waiting <- l.Push(context.Background(), a) }()
	if err := <-waiting; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Push after Close = %v", err)
	}
	if l.Addr().String() != "127.0.0.1:443" {
		t.Fatalf("Addr = %v", l.Addr())
	}
}
