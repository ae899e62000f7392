package certs

import "errors"

// Sentinel errors; callers match them with errors.Is.
var (
	// ErrNoCertificate means the uploaded data held no certificate.
	ErrNoCertificate = errors.New("certs: no certificate found")
	// ErrNoKey means no private key was uploaded or pending for the name.
	ErrNoKey = errors.New("certs: no private key found")
	// ErrKeyMismatch means the private key does not belong to the leaf certificate.
	ErrKeyMismatch = errors.New("certs: private key does not match certificate")
	// ErrWeakSignature means a certificate is signed with less than SHA-256.
	ErrWeakSignature = errors.New("certs: weak signature algorithm")
	// ErrWeakKey means a key is too short (RSA < 2048 bits, EC < P-256) or of an unsupported type.
	ErrWeakKey = errors.New("certs: weak key")
	// ErrBadChain means the chain does not link up (a certificate not signed by the next).
	ErrBadChain = errors.New("certs: invalid certificate chain")
	// ErrExpired means the leaf certificate is outside its validity period.
	ErrExpired = errors.New("certs: certificate not valid now")
	// ErrBadName means a certificate name (label) is empty, too long or has control characters.
	ErrBadName = errors.New("certs: invalid certificate name")
	// ErrNotFound means no certificate has that name.
	ErrNotFound = errors.New("certs: certificate not found")
	// ErrBadPassword means the PKCS#12 password is wrong or the file is damaged.
	ErrBadPassword = errors.New("certs: pkcs12 decode failed (wrong password or damaged file)")
)
