package ha

import "errors"

// Why an advertisement is dropped.
var (
	ErrShort    = errors.New("vrrp: message too short")
	ErrVersion  = errors.New("vrrp: not version 3")
	ErrType     = errors.New("vrrp: not an advertisement")
	ErrChecksum = errors.New("vrrp: bad checksum")
	ErrField    = errors.New("vrrp: bad field")
)

// ErrDropped is why Router.Receive dropped an advertisement.
var ErrDropped = errors.New("vrrp: advertisement dropped")
