//go:build !linux

package udpbuf

func setReceiveBuffer(uintptr, int) int { return 0 }

func socketDrops(uintptr) (uint64, bool) { return 0, false }
