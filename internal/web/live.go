package web

import (
	"net/http"
	"net/url"
	"time"
)

type liveCall struct {
	ID       string    `json:"id"`
	Type     string    `json:"type"`
	From     string    `json:"from"`
	To       string    `json:"to"`
	Source   string    `json:"source"`
	State    string    `json:"state"`
	Started  time.Time `json:"started"`
	Answered time.Time `json:"answered"`
	Codecs   string    `json:"codecs"`
	Hold     bool      `json:"hold"`
}

type sipRegistration struct {
	AOR        string    `json:"aor"`
	Contact    string    `json:"contact"`
	Source     string    `json:"source"`
	Transport  string    `json:"transport"`
	UserAgent  string    `json:"user_agent"`
	Registered time.Time `json:"registered"`
	Refreshed  time.Time `json:"refreshed"`
	Expires    time.Time `json:"expires"`
}

type h323Registration struct {
	Aliases    []string  `json:"aliases"`
	Source     string    `json:"source"`
	CallSignal string    `json:"call_signal"`
	H46018     bool      `json:"h460_18"`
	Expires    time.Time `json:"expires"`
}

// liveData is the live calls and registrations, rendered at load and sent
// on the event stream.
type liveData struct {
	SIP           bool               `json:"sip"`
	H323          bool               `json:"h323"`
	Calls         []liveCall         `json:"calls"`
	Registrations []sipRegistration  `json:"registrations"`
	H323Regs      []h323Registration `json:"h323_registrations"`
	Errors        []string           `json:"errors,omitempty"`
}

// optional reads path into v; a 404 means the service is off.
func (s *Server) optional(r *http.Request, path string, v any, errs *[]string) bool {
	res := s.call(r, http.MethodGet, path, nil, "")
	if res.code == http.StatusNotFound {
		return false
	}
	if err := res.decode(v); err != nil {
		*errs = append(*errs, path+": "+err.Error())
	}
	return true
}

func (s *Server) liveData(r *http.Request) liveData {
	d := liveData{Calls: []liveCall{}, Registrations: []sipRegistration{}, H323Regs: []h323Registration{}}
	d.SIP = s.optional(r, "/api/v1/calls", &d.Calls, &d.Errors)
	s.optional(r, "/api/v1/registrations", &d.Registrations, &d.Errors)
	d.H323 = s.optional(r, "/api/v1/h323/registrations", &d.H323Regs, &d.Errors)
	return d
}

func (s *Server) liveRoutes() {
	s.mux.Handle("GET /calls", s.page(func(w http.ResponseWriter, r *http.Request, u user) {
		s.render(w, http.StatusOK, "calls", view{Title: "Live calls", Nav: "calls", User: u, Flash: flashOf(r), Data: s.liveData(r)})
	}))
	s.mux.Handle("GET /registrations", s.page(func(w http.ResponseWriter, r *http.Request, u user) {
		s.render(w, http.StatusOK, "registrations", view{Title: "Registrations", Nav: "registrations", User: u, Flash: flashOf(r), Data: s.liveData(r)})
	}))
	s.mux.Handle("POST /calls/{id}/end", s.page(s.endCall))
	s.mux.Handle("POST /registrations/forget", s.page(s.forget))
	s.mux.Handle("GET /calls/{id}", s.page(s.callDetail))
}

// endCall hangs a live call up (DELETE /api/v1/calls/{id}; admin only).
func (s *Server) endCall(w http.ResponseWriter, r *http.Request, u user) {
	id := r.PathValue("id")
	res := s.call(r, http.MethodDelete, "/api/v1/calls/"+url.PathEscape(id), nil, "")
	s.done(w, r, u, "calls", "/calls", res, "call "+id+" ended")
}

// forget drops a live SIP binding (DELETE /api/v1/registrations; admin only).
func (s *Server) forget(w http.ResponseWriter, r *http.Request, u user) {
	aor, contact := r.PostFormValue("aor"), r.PostFormValue("contact")
	q := url.Values{"aor": {aor}}
	if contact != "" {
		q.Set("contact", contact)
	}
	res := s.call(r, http.MethodDelete, "/api/v1/registrations?"+q.Encode(), nil, "")
	s.done(w, r, u, "registrations", "/registrations", res, "binding of "+aor+" forgotten")
}

type callRecord struct {
	ID          string        `json:"id"`
	Protocol    string        `json:"protocol"`
	CallType    string        `json:"call_type"`
	From        string        `json:"from"`
	To          string        `json:"to"`
	SourceAddr  string        `json:"source_addr"`
	StartedAt   time.Time     `json:"started_at"`
	AnsweredAt  time.Time     `json:"answered_at"`
	EndedAt     time.Time     `json:"ended_at"`
	DurationMs  int64         `json:"duration_ms"`
	EndedBy     string        `json:"ended_by"`
	Status      int           `json:"status"`
	Disposition string        `json:"disposition"`
	Codecs      string        `json:"codecs"`
	Streams     []streamStats `json:"streams"`
	Count       int64         `json:"count,omitempty"`
}

type streamStats struct {
	Kind        string  `json:"kind"`
	PacketsIn   uint64  `json:"packets_in"`
	PacketsOut  uint64  `json:"packets_out"`
	BytesIn     uint64  `json:"bytes_in"`
	BytesOut    uint64  `json:"bytes_out"`
	PacketsLost int64   `json:"packets_lost"`
	JitterMs    float64 `json:"jitter_ms"`
	RTTMs       float64 `json:"rtt_ms"`
}

// callDetail shows one call: live if it is still up, else from history.
// The ladder diagram and its pcap are the API's.
func (s *Server) callDetail(w http.ResponseWriter, r *http.Request, u user) {
	id := r.PathValue("id")
	d := struct {
		ID      string
		Live    *liveCall
		Record  *callRecord
		Ladder  string
		Pcap    string
		Message string
	}{ID: id, Ladder: "/api/v1/calls/" + url.PathEscape(id) + "/ladder.svg", Pcap: "/api/v1/calls/" + url.PathEscape(id) + "/ladder.pcap"}
	var calls []liveCall
	var errs []string
	s.optional(r, "/api/v1/calls", &calls, &errs)
	for i := range calls {
		if calls[i].ID == id {
			d.Live = &calls[i]
		}
	}
	if d.Live == nil {
		var recs []callRecord
		if err := s.getJSON(r, "/api/v1/history/calls?limit=50&q="+url.QueryEscape(id), &recs); err != nil {
			errs = append(errs, err.Error())
		}
		for i := range recs {
			if recs[i].ID == id {
				d.Record = &recs[i]
			}
		}
	}
	code := http.StatusOK
	if d.Live == nil && d.Record == nil {
		code, d.Message = http.StatusNotFound, "no live call and no recorded call has this ID"
	}
	var f *flash
	if len(errs) > 0 {
		f = &flash{Text: errs[0]}
	}
	s.render(w, code, "call", view{Title: "Call " + id, Nav: "calls", User: u, Flash: f, Data: d})
}

func (s *Server) streamLive(w http.ResponseWriter, r *http.Request, u user) {
	s.stream(w, r, "live", func() any { return s.liveData(r) })
}
