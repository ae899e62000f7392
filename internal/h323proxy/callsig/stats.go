package callsig

import (
	"github.com/portico-edge/portico/internal/media"
	"github.com/portico-edge/portico/internal/store"
)

// streamStats converts the relay's per-stream statistics into history
// rows: In counts what the outside sent, Out what the inside sent.
func streamStats(sts []media.StreamStats) []store.StreamStats {
	out := make([]store.StreamStats, 0, len(sts))
	for _, st := range sts {
		l0, l1 := st.Legs[0], st.Legs[1]
		out = append(out, store.StreamStats{
			Kind: string(st.Kind), PacketsIn: l0.Packets, PacketsOut: l1.Packets,
			BytesIn: l0.Bytes, BytesOut: l1.Bytes, PacketsLost: l0.Lost + l1.Lost,
			JitterMs: max(l0.JitterMs, l1.JitterMs), RTTMs: max(l0.RTTMs, l1.RTTMs),
		})
	}
	return out
}
