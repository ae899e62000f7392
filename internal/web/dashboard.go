package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/portico-edge/portico/internal/api"
	"github.com/portico-edge/portico/internal/certs"
	"github.com/portico-edge/portico/internal/sipedge"
	"github.com/portico-edge/portico/internal/store"
)

// certInfo is a certificate as the console lists it.
type certInfo struct {
	certs.Info
	DaysLeft int      `json:"days_left"`
	Warn     bool     `json:"warn"`
	Expired  bool     `json:"expired"`
	UsedBy   []string `json:"used_by,omitempty"`
}

// certWarnDays is how close to expiry a certificate is flagged.
const certWarnDays = 30

// dashboardData is the dashboard: rendered at load, then sent on the
// event stream as JSON.
type dashboardData struct {
	Node           string                   `json:"node"`
	Version        string                   `json:"version"`
	Uptime         string                   `json:"uptime"`
	ConfigVersion  int64                    `json:"config_version"`
	PendingRestart []string                 `json:"pending_restart"`
	Ready          bool                     `json:"ready"`
	Checks         []api.Check              `json:"checks"`
	Gauges         gauges                   `json:"gauges"`
	CallServers    []sipedge.CallServerInfo `json:"call_servers"`
	CertWarnings   []certInfo               `json:"cert_warnings"`
	Events         []store.Event            `json:"events"`
	Time           time.Time                `json:"time"`
	Errors         []string                 `json:"errors,omitempty"`
}

func (s *Server) dashboardData(r *http.Request) dashboardData {
	d := dashboardData{Ready: true, Gauges: s.current(), Time: s.deps.Now().UTC(), PendingRestart: []string{}}
	var st struct {
		Version        string      `json:"version"`
		Node           string      `json:"node"`
		Uptime         int64       `json:"uptime_seconds"`
		ConfigVersion  int64       `json:"config_version"`
		PendingRestart []string    `json:"pending_restart"`
		Ready          []api.Check `json:"ready"`
	}
	if err := s.getJSON(r, "/api/v1/status", &st); err != nil {
		d.Errors = append(d.Errors, "status: "+err.Error())
	}
	d.Node, d.Version, d.ConfigVersion, d.Checks = st.Node, st.Version, st.ConfigVersion, st.Ready
	d.Uptime = (time.Duration(st.Uptime) * time.Second).String()
	if st.PendingRestart != nil {
		d.PendingRestart = st.PendingRestart
	}
	for _, c := range d.Checks {
		d.Ready = d.Ready && c.OK
	}
	if res := s.call(r, http.MethodGet, "/api/v1/sip/call-servers", nil, ""); res.code != http.StatusNotFound {
		if err := res.decode(&d.CallServers); err != nil {
			d.Errors = append(d.Errors, "call servers: "+err.Error())
		}
	}
	cs, err := s.certificates(r)
	if err != nil {
		d.Errors = append(d.Errors, "certificates: "+err.Error())
	}
	for _, c := range cs {
		if c.Warn {
			d.CertWarnings = append(d.CertWarnings, c)
		}
	}
	if err := s.getJSON(r, "/api/v1/events?limit=10", &d.Events); err != nil {
		d.Errors = append(d.Errors, "events: "+err.Error())
	}
	return d
}

// certificates lists the node's certificates with their days left.
func (s *Server) certificates(r *http.Request) ([]certInfo, error) {
	var cs []certInfo
	if err := s.getJSON(r, "/api/v1/certificates", &cs); err != nil {
		return nil, err
	}
	now := s.deps.Now()
	for i := range cs {
		left := cs[i].NotAfter.Sub(now)
		cs[i].DaysLeft = int(left.Hours() / 24)
		cs[i].Expired = left <= 0
		cs[i].Warn = left < certWarnDays*24*time.Hour
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].Name < cs[j].Name })
	return cs, nil
}

func (s *Server) dashboard(w http.ResponseWriter, r *http.Request, u user) {
	d := s.dashboardData(r)
	type plotRef struct{ Name, Alt string }
	s.render(w, http.StatusOK, "dashboard", view{Title: "Dashboard", Nav: "dashboard", User: u, Data: struct {
		dashboardData
		Plots  []plotRef
		Sample int
	}{d, []plotRef{
		{"calls.svg", "Active calls over the last hour"},
		{"registrations.svg", "Registrations over the last hour"},
		{"relay.svg", "Media relay Mbit/s over the last hour"},
		{"packets.svg", "Media relay packets per second over the last hour"},
		{"loss.svg", "RTP packets lost per second before the media relay over the last hour"},
		{"turn.svg", "TURN allocations and access-proxy connections over the last hour"},
	}, int(s.cfg.SampleInterval / time.Millisecond)}})
}

// streamMax bounds one event stream; the browser reconnects at once.
const streamMax = 5 * time.Minute

// stream sends fresh data as server-sent events every StreamInterval until
// the client goes, the session ends (event "signedout") or streamMax.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, name string, data func() any) {
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "retry: 1000\n\n")
	t := time.NewTicker(s.cfg.StreamInterval)
	defer t.Stop()
	end := time.NewTimer(streamMax)
	defer end.Stop()
	for {
		if s.call(r, http.MethodGet, "/api/v1/me", nil, "").code == http.StatusUnauthorized {
			fmt.Fprint(w, "event: signedout\ndata: {}\n\n")
			rc.Flush()
			return
		}
		b, err := json.Marshal(data())
		if err != nil {
			return
		}
		fmt.Fprintf(w, "event: %s\ndata: %s\n\n", name, b)
		if rc.Flush() != nil {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-s.stopped:
			return
		case <-end.C:
			return
		case <-t.C:
		}
	}
}

func (s *Server) streamDashboard(w http.ResponseWriter, r *http.Request, u user) {
	s.stream(w, r, "dashboard", func() any { return s.dashboardData(r) })
}
