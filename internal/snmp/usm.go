package snmp

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"hash"

	"github.com/gosnmp/gosnmp"
)

// usmUser is a configured USM user with keys localized to the agent's
// engine ID (RFC 3414 §2.6). Keys are never logged.
type usmUser struct {
	name    string
	auth    gosnmp.SnmpV3AuthProtocol
	priv    gosnmp.SnmpV3PrivProtocol
	authKey []byte
	privKey []byte
	// authPass and privPass are kept for notifications, whose gosnmp
	// client localizes them itself.
	authPass, privPass string
}

// authNames maps auth_protocol to gosnmp's protocols.
var authNames = map[string]gosnmp.SnmpV3AuthProtocol{
	"sha1": gosnmp.SHA, "sha224": gosnmp.SHA224, "sha256": gosnmp.SHA256, "sha384": gosnmp.SHA384, "sha512": gosnmp.SHA512,
}

// newUSMUser localizes u's passphrases to engineID with gosnmp's key
// localization (RFC 3414 §A.2, RFC 7860 §9.3, RFC 3826 §1.2).
func newUSMUser(u User, engineID []byte) (usmUser, error) {
	a, ok := authNames[u.authProtocol()]
	if !ok {
		return usmUser{}, errors.New("snmp: unknown auth protocol")
	}
	sp := &gosnmp.UsmSecurityParameters{
		AuthoritativeEngineID: string(engineID), UserName: u.Name,
		AuthenticationProtocol: a, AuthenticationPassphrase: u.AuthKey, PrivacyProtocol: gosnmp.NoPriv,
	}
	if u.privProtocol() == "aes128" {
		sp.PrivacyProtocol, sp.PrivacyPassphrase = gosnmp.AES, u.PrivKey
	}
	if err := sp.InitSecurityKeys(); err != nil {
		return usmUser{}, err
	}
	return usmUser{name: u.Name, auth: a, priv: sp.PrivacyProtocol, authKey: sp.SecretKey, privKey: sp.PrivacyKey,
		authPass: u.AuthKey, privPass: u.PrivKey}, nil
}

// flags is the security level the user requires: auth, and priv when it
// has a privacy key.
func (u *usmUser) flags() byte {
	if u.priv == gosnmp.AES {
		return flagAuth | flagPriv
	}
	return flagAuth
}

// macLen is the length of msgAuthenticationParameters (RFC 3414 §6.3.1,
// RFC 7860 §4.2.2).
func (u *usmUser) macLen() int {
	switch u.auth {
	case gosnmp.SHA:
		return 12
	case gosnmp.SHA224:
		return 16
	case gosnmp.SHA256:
		return 24
	case gosnmp.SHA384:
		return 32
	default:
		return 48
	}
}

func (u *usmUser) hash() func() hash.Hash {
	switch u.auth {
	case gosnmp.SHA:
		return sha1.New
	case gosnmp.SHA224:
		return sha256.New224
	case gosnmp.SHA256:
		return sha256.New
	case gosnmp.SHA384:
		return sha512.New384
	default:
		return sha512.New
	}
}

// verify checks the message's digest: the HMAC of the whole message with
// the authentication parameters zeroed (RFC 3414 §6.3.2).
func (u *usmUser) verify(msg []byte, span [2]int) bool {
	if span[1]-span[0] != u.macLen() || span[0] < 0 || span[1] > len(msg) {
		return false
	}
	got := msg[span[0]:span[1]]
	buf := make([]byte, len(msg))
	copy(buf, msg)
	clear(buf[span[0]:span[1]])
	m := hmac.New(u.hash(), u.authKey)
	m.Write(buf)
	return subtle.ConstantTimeCompare(m.Sum(nil)[:u.macLen()], got) == 1
}

// decrypt undoes AES-128-CFB (RFC 3826 §3.1.4): the IV is the
// authoritative engine's boots and time with the 8-octet salt.
func (u *usmUser) decrypt(p usmParams, ct []byte) ([]byte, error) {
	if len(p.priv) != 8 || len(u.privKey) < 16 {
		return nil, errors.New("snmp: privacy parameters are not 8 octets")
	}
	var iv [16]byte
	binary.BigEndian.PutUint32(iv[:], uint32(p.boots))
	binary.BigEndian.PutUint32(iv[4:], uint32(p.time))
	copy(iv[8:], p.priv)
	block, err := aes.NewCipher(u.privKey[:16])
	if err != nil {
		return nil, err
	}
	out := make([]byte, len(ct))
	//lint:ignore SA1019 RFC 3826 §3.1.1 specifies CFB-128.
	cipher.NewCFBDecrypter(block, iv[:]).XORKeyStream(out, ct)
	return out, nil
}
