// Package web serves Portico's management console: server-rendered pages
// (html/template) with a little hand-written JavaScript and server-sent
// events for live data, all embedded in the binary (no build step, no CDN,
// works air-gapped).
//
// The console holds no business rules of its own. Every read and every
// change is a request to the REST API handler, made in-process with the
// caller's session cookie and client address, so sign-in, lockout, roles
// (auditors read only), validation and the audit log are the API's. The
// console adds what a browser needs on top: a CSRF token on every form
// (an HMAC of the session secret), a strict Content-Security-Policy with no
// inline script, X-Frame-Options DENY, and a bounded in-memory ring of
// samples from the node's Prometheus registry from which the dashboard's
// plots of the last hour are drawn as SVG on the server.
package web
