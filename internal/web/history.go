package web

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/portico-edge/portico/internal/store"
)

// historyMax is how many rows one history view or export reads from the
// API (the API's own cap): the protocol, call type and disposition filters
// and the paging apply to these.
const historyMax = 10000

// pageSize is the rows per history page.
const pageSize = 50

// localTime is the format of a datetime-local input (taken as UTC).
const localTime = "2006-01-02T15:04"

type historyFilter struct {
	Since, Until string // as the form sends them
	Party        string
	Protocol     string
	Disposition  string // calls: disposition; registrations: kind
	CallType     string
	Page         int
	Error        string
}

func readFilter(r *http.Request) historyFilter {
	q := r.URL.Query()
	f := historyFilter{Since: q.Get("since"), Until: q.Get("until"), Party: strings.TrimSpace(q.Get("party")),
		Protocol: q.Get("protocol"), Disposition: strings.TrimSpace(q.Get("disposition")), CallType: q.Get("type")}
	f.Page, _ = strconv.Atoi(q.Get("page"))
	f.Page = max(f.Page, 1)
	return f
}

// apiQuery is the API query of f: time range and search text.
func (f *historyFilter) apiQuery() string {
	v := url.Values{"limit": {strconv.Itoa(historyMax)}}
	for _, p := range []struct{ name, val string }{{"since", f.Since}, {"until", f.Until}} {
		if p.val == "" {
			continue
		}
		t, err := time.Parse(localTime, p.val)
		if err != nil {
			if t, err = time.Parse(time.RFC3339, p.val); err != nil {
				f.Error = p.name + " must be a date and time such as 2026-01-31T14:00"
				continue
			}
		}
		v.Set(p.name, t.UTC().Format(time.RFC3339))
	}
	switch {
	case f.Party != "":
		v.Set("q", f.Party)
	case f.Disposition != "":
		v.Set("q", f.Disposition)
	}
	return v.Encode()
}

// links are the query strings of the pages and exports of f.
func (f historyFilter) link(page int, export string) string {
	v := url.Values{}
	for k, s := range map[string]string{"since": f.Since, "until": f.Until, "party": f.Party, "protocol": f.Protocol, "disposition": f.Disposition, "type": f.CallType, "export": export} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if page > 1 {
		v.Set("page", strconv.Itoa(page))
	}
	return "?" + v.Encode()
}

func contains(s, sub string) bool {
	return sub == "" || strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}

type historyView struct {
	Filter     historyFilter
	Calls      []store.CallRecord
	Regs       []store.RegistrationEvent
	Total      int
	From, To   int
	Prev, Next string
	CSV, JSON  string
}

func (s *Server) historyRoutes() {
	s.mux.Handle("GET /history/calls", s.page(history(s, callHistory)))
	s.mux.Handle("GET /history/registrations", s.page(history(s, registrationHistory)))
}

// paginate slices rows for page f.Page and fills the view's paging links.
func paginate[T any](rows []T, f historyFilter, v *historyView) []T {
	v.Total = len(rows)
	lo := min((f.Page-1)*pageSize, len(rows))
	hi := min(lo+pageSize, len(rows))
	v.From, v.To = lo+1, hi
	if f.Page > 1 {
		v.Prev = f.link(f.Page-1, "")
	}
	if hi < len(rows) {
		v.Next = f.link(f.Page+1, "")
	}
	v.CSV, v.JSON = f.link(0, "csv"), f.link(0, "json")
	return rows[lo:hi]
}

// historyKind is one of the history views: its API list, its filter
// beyond time and text, its CSV columns and its page.
type historyKind[T any] struct {
	name, api, page, title string
	keep                   func(T, historyFilter) bool
	head                   []string
	row                    func(T) []string
	set                    func(*historyView, []T)
}

var callHistory = historyKind[store.CallRecord]{
	name: "calls", api: "/api/v1/history/calls", page: "history_calls", title: "Call history",
	keep: func(c store.CallRecord, f historyFilter) bool {
		return (f.Protocol == "" || c.Protocol == f.Protocol) && (f.CallType == "" || c.CallType == f.CallType) && contains(c.Disposition, f.Disposition)
	},
	head: []string{"id", "protocol", "call_type", "from", "to", "source_addr", "started_at", "answered_at", "ended_at", "duration_ms", "ended_by", "status", "disposition", "codecs"},
	row: func(c store.CallRecord) []string {
		return []string{c.ID, c.Protocol, c.CallType, c.From, c.To, c.SourceAddr, rfc(c.StartedAt), rfc(c.AnsweredAt), rfc(c.EndedAt), strconv.FormatInt(c.DurationMs, 10), c.EndedBy, strconv.Itoa(c.Status), c.Disposition, c.Codecs}
	},
	set: func(v *historyView, rows []store.CallRecord) { v.Calls = rows },
}

var registrationHistory = historyKind[store.RegistrationEvent]{
	name: "registrations", api: "/api/v1/history/registrations", page: "history_registrations", title: "Registration history",
	keep: func(e store.RegistrationEvent, f historyFilter) bool {
		return (f.Protocol == "" || e.Protocol == f.Protocol) && contains(e.Kind, f.Disposition)
	},
	head: []string{"time", "protocol", "aor", "contact", "source", "transport", "kind", "expires", "reason", "count"},
	row: func(e store.RegistrationEvent) []string {
		return []string{rfc(e.Time), e.Protocol, e.AOR, e.Contact, e.Source, e.Transport, e.Kind, strconv.Itoa(e.Expires), e.Reason, strconv.FormatInt(max(e.Count, 1), 10)}
	},
	set: func(v *historyView, rows []store.RegistrationEvent) { v.Regs = rows },
}

// history serves one history view: a page, or an export of every row the
// filter matches.
func history[T any](s *Server, k historyKind[T]) pageHandler {
	return func(w http.ResponseWriter, r *http.Request, u user) {
		f := readFilter(r)
		q := f.apiQuery()
		var all []T
		var fl *flash
		if f.Error != "" {
			fl = &flash{Text: f.Error}
		} else if err := s.getJSON(r, k.api+"?"+q, &all); err != nil {
			fl = &flash{Text: err.Error()}
		}
		rows := make([]T, 0, len(all))
		for _, x := range all {
			if k.keep(x, f) {
				rows = append(rows, x)
			}
		}
		switch r.URL.Query().Get("export") {
		case "csv":
			exportCSV(w, k.name, k.head, len(rows), func(i int) []string { return k.row(rows[i]) })
			return
		case "json":
			exportJSON(w, k.name, rows)
			return
		}
		v := historyView{Filter: f}
		k.set(&v, paginate(rows, f, &v))
		s.render(w, http.StatusOK, k.page, view{Title: k.title, Nav: "history", User: u, Flash: fl, Data: v})
	}
}

func rfc(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// csvSafe keeps a spreadsheet from running a cell as a formula.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

func exportCSV(w http.ResponseWriter, name string, head []string, n int, row func(int) []string) {
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="portico-%s.csv"`, name))
	cw := csv.NewWriter(w)
	cw.Write(head)
	for i := 0; i < n; i++ {
		rec := row(i)
		for j := range rec {
			rec[j] = csvSafe(rec[j])
		}
		cw.Write(rec)
	}
	cw.Flush()
}

func exportJSON(w http.ResponseWriter, name string, rows any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="portico-%s.json"`, name))
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(rows)
}
