package connlimit

import (
	"encoding/binary"
	"syscall"
)

// countDescriptors counts the entries of /proc/self/fd (less the
// directory's own descriptor) and reads the soft RLIMIT_NOFILE.
func countDescriptors(buf []byte) (open, limit int, err error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, 0, err
	}
	fd, err := syscall.Open("/proc/self/fd", syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err == syscall.ENOENT {
		return 0, 0, errUnsupported
	}
	if err != nil {
		return 0, 0, err
	}
	defer syscall.Close(fd)
	n := 0
	for {
		m, err := syscall.Getdents(fd, buf)
		if err != nil {
			return 0, 0, err
		}
		if m <= 0 {
			break
		}
		// struct linux_dirent64: ino u64, off s64, reclen u16, type u8, name.
		for off := 0; off+19 < m; {
			reclen := int(binary.NativeEndian.Uint16(buf[off+16:]))
			if reclen == 0 {
				break
			}
			if name := buf[off+19]; name != '.' {
				n++
			}
			off += reclen
		}
	}
	return n - 1, int(min(rl.Cur, 1<<30)), nil
}
