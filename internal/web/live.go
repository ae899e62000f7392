package web

import (
	"net/http"
	"net/url"

	"github.com/portico-edge/portico/internal/h323proxy"
	"github.com/portico-edge/portico/internal/ladder"
	"github.com/portico-edge/portico/internal/sipedge"
	"github.com/portico-edge/portico/internal/store"
)

// liveData is the live calls and registrations, rendered at load and sent
// on the event stream.
type liveData struct {
	SIP           bool                       `json:"sip"`
	H323          bool                       `json:"h323"`
	Calls         []liveCall                 `json:"calls"`
	Registrations []sipedge.RegistrationInfo `json:"registrations"`
	H323Regs      []h323proxy.Registration   `json:"h323_registrations"`
	Errors        []string                   `json:"errors,omitempty"`
}

// liveCall is a row of GET /api/v1/calls: a SIP call (protocol sip, with
// Hold and its relay streams) or an H.323 call (protocol h323, with its
// legs and relay streams).
type liveCall struct {
	h323proxy.Call
	Hold bool `json:"hold"`
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
	d := liveData{Calls: []liveCall{}, Registrations: []sipedge.RegistrationInfo{}, H323Regs: []h323proxy.Registration{}}
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
	s.mux.Handle("POST /registrations/h323/forget", s.page(s.forgetH323))
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

// forgetH323 drops an H.323 registration by one of its aliases
// (DELETE /api/v1/h323/registrations; admin only).
func (s *Server) forgetH323(w http.ResponseWriter, r *http.Request, u user) {
	alias := r.PostFormValue("alias")
	res := s.call(r, http.MethodDelete, "/api/v1/h323/registrations?"+url.Values{"alias": {alias}}.Encode(), nil, "")
	s.done(w, r, u, "registrations", "/registrations", res, "H.323 registration of "+alias+" forgotten")
}

// callDetail shows one call: live if it is still up, else from history.
// The ladder diagram and its pcap are the API's.
func (s *Server) callDetail(w http.ResponseWriter, r *http.Request, u user) {
	id := r.PathValue("id")
	d := struct {
		ID      string
		Live    *liveCall
		Record  *store.CallRecord
		Ladder  string
		Pcap    string
		Message string
		// Signalling is the call's kept messages, each the target of
		// its arrow in the ladder ("#msg-N").
		Signalling []ladder.Message
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
		var recs []store.CallRecord
		if err := s.getJSON(r, "/api/v1/history/calls?limit=50&q="+url.QueryEscape(id), &recs); err != nil {
			errs = append(errs, err.Error())
		}
		for i := range recs {
			if recs[i].ID == id {
				d.Record = &recs[i]
			}
		}
	}
	var l ladder.Ladder
	if s.getJSON(r, "/api/v1/calls/"+url.PathEscape(id)+"/ladder", &l) == nil {
		d.Signalling = l.Messages
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
