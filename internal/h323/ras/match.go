package ras

import "github.com/portico-edge/portico/internal/h323/h225"

// names are the usual abbreviations of the RasMessage alternatives.
var names = map[int]string{
	h225.RasMessage_GatekeeperRequest: "GRQ", h225.RasMessage_GatekeeperConfirm: "GCF", h225.RasMessage_GatekeeperReject: "GRJ",
	h225.RasMessage_RegistrationRequest: "RRQ", h225.RasMessage_RegistrationConfirm: "RCF", h225.RasMessage_RegistrationReject: "RRJ",
	h225.RasMessage_UnregistrationRequest: "URQ", h225.RasMessage_UnregistrationConfirm: "UCF", h225.RasMessage_UnregistrationReject: "URJ",
	h225.RasMessage_AdmissionRequest: "ARQ", h225.RasMessage_AdmissionConfirm: "ACF", h225.RasMessage_AdmissionReject: "ARJ",
	h225.RasMessage_BandwidthRequest: "BRQ", h225.RasMessage_BandwidthConfirm: "BCF", h225.RasMessage_BandwidthReject: "BRJ",
	h225.RasMessage_DisengageRequest: "DRQ", h225.RasMessage_DisengageConfirm: "DCF", h225.RasMessage_DisengageReject: "DRJ",
	h225.RasMessage_LocationRequest: "LRQ", h225.RasMessage_LocationConfirm: "LCF", h225.RasMessage_LocationReject: "LRJ",
	h225.RasMessage_InfoRequest: "IRQ", h225.RasMessage_InfoRequestResponse: "IRR", h225.RasMessage_NonStandardMessage: "NSM",
	h225.RasMessage_UnknownMessageResponse: "XRS", h225.RasMessage_RequestInProgress: "RIP",
	h225.RasMessage_ResourcesAvailableIndicate: "RAI", h225.RasMessage_ResourcesAvailableConfirm: "RAC",
	h225.RasMessage_InfoRequestAck: "IACK", h225.RasMessage_InfoRequestNak: "INAK",
	h225.RasMessage_ServiceControlIndication: "SCI", h225.RasMessage_ServiceControlResponse: "SCR",
	h225.RasMessage_AdmissionConfirmSequence: "ACFs",
}

// Name returns the abbreviation of m's kind ("RRQ", "LCF", ...).
func Name(m *h225.RasMessage) string {
	if n, ok := names[m.Choice]; ok {
		return n
	}
	return "unknown"
}

// responses maps each request to the alternatives that answer it.
// RequestInProgress (RIP) answers any request.
var responses = map[int][]int{
	h225.RasMessage_GatekeeperRequest:          {h225.RasMessage_GatekeeperConfirm, h225.RasMessage_GatekeeperReject},
	h225.RasMessage_RegistrationRequest:        {h225.RasMessage_RegistrationConfirm, h225.RasMessage_RegistrationReject},
	h225.RasMessage_UnregistrationRequest:      {h225.RasMessage_UnregistrationConfirm, h225.RasMessage_UnregistrationReject},
	h225.RasMessage_AdmissionRequest:           {h225.RasMessage_AdmissionConfirm, h225.RasMessage_AdmissionReject, h225.RasMessage_AdmissionConfirmSequence},
	h225.RasMessage_BandwidthRequest:           {h225.RasMessage_BandwidthConfirm, h225.RasMessage_BandwidthReject},
	h225.RasMessage_DisengageRequest:           {h225.RasMessage_DisengageConfirm, h225.RasMessage_DisengageReject},
	h225.RasMessage_LocationRequest:            {h225.RasMessage_LocationConfirm, h225.RasMessage_LocationReject},
	h225.RasMessage_InfoRequest:                {h225.RasMessage_InfoRequestResponse},
	h225.RasMessage_InfoRequestResponse:        {h225.RasMessage_InfoRequestAck, h225.RasMessage_InfoRequestNak},
	h225.RasMessage_ResourcesAvailableIndicate: {h225.RasMessage_ResourcesAvailableConfirm},
	h225.RasMessage_ServiceControlIndication:   {h225.RasMessage_ServiceControlResponse},
}

// IsRequest reports whether m expects a response.
func IsRequest(m *h225.RasMessage) bool { return responses[m.Choice] != nil }

// SeqNum returns m's requestSeqNum. It reports false for an alternative
// without one or an unset message.
func SeqNum(m *h225.RasMessage) (int, bool) {
	var s h225.RequestSeqNum
	switch m.Choice {
	case h225.RasMessage_GatekeeperRequest:
		if m.GatekeeperRequest == nil {
			return 0, false
		}
		s = m.GatekeeperRequest.RequestSeqNum
	case h225.RasMessage_GatekeeperConfirm:
		if m.GatekeeperConfirm == nil {
			return 0, false
		}
		s = m.GatekeeperConfirm.RequestSeqNum
	case h225.RasMessage_GatekeeperReject:
		if m.GatekeeperReject == nil {
			return 0, false
		}
		s = m.GatekeeperReject.RequestSeqNum
	case h225.RasMessage_RegistrationRequest:
		if m.RegistrationRequest == nil {
			return 0, false
		}
		s = m.RegistrationRequest.RequestSeqNum
	case h225.RasMessage_RegistrationConfirm:
		if m.RegistrationConfirm == nil {
			return 0, false
		}
		s = m.RegistrationConfirm.RequestSeqNum
	case h225.RasMessage_RegistrationReject:
		if m.RegistrationReject == nil {
			return 0, false
		}
		s = m.RegistrationReject.RequestSeqNum
	case h225.RasMessage_UnregistrationRequest:
		if m.UnregistrationRequest == nil {
			return 0, false
		}
		s = m.UnregistrationRequest.RequestSeqNum
	case h225.RasMessage_UnregistrationConfirm:
		if m.UnregistrationConfirm == nil {
			return 0, false
		}
		s = m.UnregistrationConfirm.RequestSeqNum
	case h225.RasMessage_UnregistrationReject:
		if m.UnregistrationReject == nil {
			return 0, false
		}
		s = m.UnregistrationReject.RequestSeqNum
	case h225.RasMessage_AdmissionRequest:
		if m.AdmissionRequest == nil {
			return 0, false
		}
		s = m.AdmissionRequest.RequestSeqNum
	case h225.RasMessage_AdmissionConfirm:
		if m.AdmissionConfirm == nil {
			return 0, false
		}
		s = m.AdmissionConfirm.RequestSeqNum
	case h225.RasMessage_AdmissionReject:
		if m.AdmissionReject == nil {
			return 0, false
		}
		s = m.AdmissionReject.RequestSeqNum
	case h225.RasMessage_BandwidthRequest:
		if m.BandwidthRequest == nil {
			return 0, false
		}
		s = m.BandwidthRequest.RequestSeqNum
	case h225.RasMessage_BandwidthConfirm:
		if m.BandwidthConfirm == nil {
			return 0, false
		}
		s = m.BandwidthConfirm.RequestSeqNum
	case h225.RasMessage_BandwidthReject:
		if m.BandwidthReject == nil {
			return 0, false
		}
		s = m.BandwidthReject.RequestSeqNum
	case h225.RasMessage_DisengageRequest:
		if m.DisengageRequest == nil {
			return 0, false
		}
		s = m.DisengageRequest.RequestSeqNum
	case h225.RasMessage_DisengageConfirm:
		if m.DisengageConfirm == nil {
			return 0, false
		}
		s = m.DisengageConfirm.RequestSeqNum
	case h225.RasMessage_DisengageReject:
		if m.DisengageReject == nil {
			return 0, false
		}
		s = m.DisengageReject.RequestSeqNum
	case h225.RasMessage_LocationRequest:
		if m.LocationRequest == nil {
			return 0, false
		}
		s = m.LocationRequest.RequestSeqNum
	case h225.RasMessage_LocationConfirm:
		if m.LocationConfirm == nil {
			return 0, false
		}
		s = m.LocationConfirm.RequestSeqNum
	case h225.RasMessage_LocationReject:
		if m.LocationReject == nil {
			return 0, false
		}
		s = m.LocationReject.RequestSeqNum
	case h225.RasMessage_InfoRequest:
		if m.InfoRequest == nil {
			return 0, false
		}
		s = m.InfoRequest.RequestSeqNum
	case h225.RasMessage_InfoRequestResponse:
		if m.InfoRequestResponse == nil {
			return 0, false
		}
		s = m.InfoRequestResponse.RequestSeqNum
	case h225.RasMessage_RequestInProgress:
		if m.RequestInProgress == nil {
			return 0, false
		}
		s = m.RequestInProgress.RequestSeqNum
	case h225.RasMessage_InfoRequestAck:
		if m.InfoRequestAck == nil {
			return 0, false
		}
		s = m.InfoRequestAck.RequestSeqNum
	case h225.RasMessage_InfoRequestNak:
		if m.InfoRequestNak == nil {
			return 0, false
		}
		s = m.InfoRequestNak.RequestSeqNum
	case h225.RasMessage_ResourcesAvailableIndicate:
		if m.ResourcesAvailableIndicate == nil {
			return 0, false
		}
		s = m.ResourcesAvailableIndicate.RequestSeqNum
	case h225.RasMessage_ResourcesAvailableConfirm:
		if m.ResourcesAvailableConfirm == nil {
			return 0, false
		}
		s = m.ResourcesAvailableConfirm.RequestSeqNum
	case h225.RasMessage_ServiceControlIndication:
		if m.ServiceControlIndication == nil {
			return 0, false
		}
		s = m.ServiceControlIndication.RequestSeqNum
	case h225.RasMessage_ServiceControlResponse:
		if m.ServiceControlResponse == nil {
			return 0, false
		}
		s = m.ServiceControlResponse.RequestSeqNum
	case h225.RasMessage_UnknownMessageResponse:
		if m.UnknownMessageResponse == nil {
			return 0, false
		}
		s = m.UnknownMessageResponse.RequestSeqNum
	case h225.RasMessage_NonStandardMessage:
		if m.NonStandardMessage == nil {
			return 0, false
		}
		s = m.NonStandardMessage.RequestSeqNum
	case h225.RasMessage_AdmissionConfirmSequence:
		if len(m.AdmissionConfirmSequence) == 0 {
			return 0, false
		}
		s = m.AdmissionConfirmSequence[0].RequestSeqNum
	default:
		return 0, false
	}
	return int(s), true
}

// Matches reports whether resp answers req: same requestSeqNum and a
// response kind of req's kind (RequestInProgress and
// UnknownMessageResponse answer any request).
func Matches(req, resp *h225.RasMessage) bool {
	rs, ok1 := SeqNum(req)
	ps, ok2 := SeqNum(resp)
	if !ok1 || !ok2 || rs != ps {
		return false
	}
	if resp.Choice == h225.RasMessage_RequestInProgress || resp.Choice == h225.RasMessage_UnknownMessageResponse {
		return responses[req.Choice] != nil
	}
	for _, c := range responses[req.Choice] {
		if c == resp.Choice {
			return true
		}
	}
	return false
}
