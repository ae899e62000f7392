package hasync

import (
	"time"

	"github.com/portico-edge/portico/internal/config/field"
)

// Defaults applied to zero fields.
const (
	DefaultQueue     = 65536
	DefaultMaxFrame  = 1 << 20
	DefaultHeartbeat = time.Second
	// MinSecret is the shortest shared secret accepted, in bytes.
	MinSecret = 32
)

// Config is the ha.sync section: the link that carries live state to the
// peer node. Replication runs when Listen or Peer is set.
type Config struct {
	// Listen is the host:port this node accepts its peer's state on (the
	// node's own address on the link between the nodes, for instance
	// 10.0.0.11:7946). Default: none (nothing is received).
	Listen string `yaml:"listen,omitempty" json:"listen,omitempty"`
	// Peer is the host:port of the peer's Listen this node sends its state
	// to. Default: none (nothing is sent).
	Peer string `yaml:"peer,omitempty" json:"peer,omitempty"`
	// Secret is the shared secret both nodes derive their TLS identity
	// from, at least 32 bytes (for instance `openssl rand -hex 32`).
	// Either Secret or SecretFile is required when replication runs.
	Secret string `yaml:"secret,omitempty" json:"secret,omitempty"`
	// SecretFile names a file holding the secret (surrounding white space
	// is ignored), read when replication starts.
	SecretFile string `yaml:"secret_file,omitempty" json:"secret_file,omitempty"`
	// Queue is how many changes may wait for the link; when it is full
	// further changes are dropped and a full snapshot is sent instead.
	// Default 65536.
	Queue int `yaml:"queue,omitempty" json:"queue,omitempty"`
	// MaxFrame caps one frame (one record) in bytes, on both ends.
	// Default 1 MiB.
	MaxFrame int `yaml:"max_frame,omitempty" json:"max_frame,omitempty"`
	// Heartbeat is how often an idle link is probed; a link silent for
	// three heartbeats is closed and dialled again. Default 1s.
	Heartbeat field.Duration `yaml:"heartbeat,omitempty" json:"heartbeat,omitempty"`
}

// Active reports whether replication runs.
func (c *Config) Active() bool { return c.Listen != "" || c.Peer != "" }

// Validate checks the section; path is where it sits ("ha.sync").
func (c *Config) Validate(path string) error {
	var es field.Errors
	if c.Listen != "" {
		es.HostPort(path+".listen", c.Listen)
	}
	if c.Peer != "" {
		es.HostPort(path+".peer", c.Peer)
	}
	switch {
	case c.Secret != "" && c.SecretFile != "":
		es.Add(path+".secret", "give secret or secret_file, not both")
	case c.Secret != "" && len(c.Secret) < MinSecret:
		es.Add(path+".secret", "%d bytes; at least %d are required", len(c.Secret), MinSecret)
	case c.Active() && c.Secret == "" && c.SecretFile == "":
		es.Add(path+".secret", "required (or secret_file) when listen or peer is set")
	}
	if c.Queue < 0 {
		es.Add(path+".queue", "%d is negative", c.Queue)
	}
	if c.MaxFrame != 0 && (c.MaxFrame < 4096 || c.MaxFrame > 64<<20) {
		es.Add(path+".max_frame", "%d is outside 4096..67108864", c.MaxFrame)
	}
	if c.Heartbeat != 0 {
		es.Positive(path+".heartbeat", c.Heartbeat)
	}
	return es.Err()
}

func (c Config) withDefaults() Config {
	if c.Queue == 0 {
		c.Queue = DefaultQueue
	}
	if c.MaxFrame == 0 {
		c.MaxFrame = DefaultMaxFrame
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = field.Duration(DefaultHeartbeat)
	}
	return c
}
