// Command proxy benchmarks Portico's access proxy (HTTPS termination and
// reverse proxying to an inside nginx) against nginx configured as a TLS
// reverse proxy to the same inside nginx (and haproxy when installed), and
// against a Go net/http TLS server answering by itself (what Go's HTTPS
// server side costs before any proxying), with
// wrk, for a small and a 100 KiB response. It prints a Markdown table of
// requests/s, p50 and p99 latency, and the CPU time the answering process
// (the proxy, or nginx itself for the direct case) spent per request, which
// moves less than requests/s when other work shares the machine.
//
//	go run ./bench/proxy -duration 10s -conns 64
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/portico-edge/portico/internal/accessproxy"
	"github.com/portico-edge/portico/internal/certs"
)

func main() {
	duration := flag.Duration("duration", 10*time.Second, "wrk run length per case")
	conns := flag.Int("conns", 64, "wrk connections")
	threads := flag.Int("threads", 2, "wrk threads")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the Portico runs to this file")
	only := flag.String("only", "", "run only targets whose name contains this")
	memprofile := flag.String("memprofile", "", "write an allocation profile (of the whole run) to this file")
	flag.Parse()
	for _, p := range []string{"nginx", "wrk"} {
		if _, err := exec.LookPath(p); err != nil {
			log.Fatalf("%s not installed (apt-get install nginx wrk haproxy)", p)
		}
	}
	dir, err := os.MkdirTemp("", "portico-bench-proxy-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	certPEM, keyPEM := selfSigned()
	crt, key := filepath.Join(dir, "c.crt"), filepath.Join(dir, "c.key")
	must(os.WriteFile(crt, certPEM, 0o644))
	must(os.WriteFile(key, keyPEM, 0o644))
	must(os.WriteFile(filepath.Join(dir, "both.pem"), append(append([]byte{}, certPEM...), keyPEM...), 0o644))
	www := filepath.Join(dir, "www")
	must(os.MkdirAll(www, 0o755))
	must(os.MkdirAll(filepath.Join(dir, "tmp"), 0o755))
	must(os.WriteFile(filepath.Join(www, "small"), []byte("hello from the inside web server\n"), 0o644))
	big := make([]byte, 100<<10)
	for i := range big {
		big[i] = "0123456789abcdef"[i%16]
	}
	must(os.WriteFile(filepath.Join(www, "big"), big, 0o644))

	backend, nginxProxy, porticoPort, haPort := freePort(), freePort(), freePort(), freePort()
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;"
	}
	// The inside nginx and the proxying nginx are separate instances, so
	// the proxy's own CPU time can be read from its workers.
	common := fmt.Sprintf(`%[2]s
worker_processes auto;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %[1]s/tmp; proxy_temp_path %[1]s/tmp; fastcgi_temp_path %[1]s/tmp;
  uwsgi_temp_path %[1]s/tmp; scgi_temp_path %[1]s/tmp;
  keepalive_requests 1000000;
`, dir, user)
	backendConf := common + fmt.Sprintf(`  server { listen 127.0.0.1:%[2]d; root %[1]s/www; default_type text/plain; }
}
error_log %[1]s/backend-error.log;
pid %[1]s/backend.pid;
`, dir, backend)
	proxyConf := common + fmt.Sprintf(`  upstream inside { server 127.0.0.1:%[2]d; keepalive 128; }
  server {
    listen 127.0.0.1:%[3]d ssl;
    ssl_certificate %[4]s; ssl_certificate_key %[5]s;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / { proxy_pass http://inside; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For $remote_addr; proxy_set_header X-Forwarded-Proto https; proxy_buffering on; }
  }
}
error_log %[1]s/proxy-error.log;
pid %[1]s/proxy.pid;
`, dir, backend, nginxProxy, crt, key)
	ngBackend := startNginx(dir, "backend", backendConf)
	defer stop(ngBackend)
	ngProxy := startNginx(dir, "proxy", proxyConf)
	defer stop(ngProxy)
	waitPort(backend)
	waitPort(nginxProxy)

	var ha *exec.Cmd
	if _, err := exec.LookPath("haproxy"); err == nil {
		hc := fmt.Sprintf(`global
  pidfile %[1]s/haproxy.pid
  nbthread %[4]d
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
frontend fe
  bind 127.0.0.1:%[2]d ssl crt %[1]s/both.pem
  default_backend be
backend be
  http-reuse always
  server inside 127.0.0.1:%[3]d
`, dir, haPort, backend, runtime.NumCPU())
		must(os.WriteFile(filepath.Join(dir, "haproxy.cfg"), []byte(hc), 0o644))
		ha = exec.Command("haproxy", "-db", "-f", filepath.Join(dir, "haproxy.cfg"))
		ha.Stderr = os.Stderr
		must(ha.Start())
		defer stop(ha)
		waitPort(haPort)
	}

	store := certs.NewStore(certs.Options{})
	if _, err := store.Import(context.Background(), "bench", certPEM, keyPEM, ""); err != nil {
		log.Fatal(err)
	}
	cfg := accessproxy.Config{
		Listen: fmt.Sprintf("127.0.0.1:%d", porticoPort),
		Routes: []accessproxy.Route{{Name: "inside", Action: accessproxy.ActionHTTP, Upstream: fmt.Sprintf("http://127.0.0.1:%d", backend)}},
	}
	srv, err := accessproxy.New(cfg, accessproxy.Deps{Certs: store, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go srv.Run(ctx)
	waitPort(porticoPort)

	// A Go TLS web server answering by itself: what net/http and
	// crypto/tls cost for the client side alone, before any proxying.
	goURL := serveGoTLS(certPEM, keyPEM, map[string][]byte{"/small": []byte("hello from the inside web server\n"), "/big": big})

	// cpu reads the CPU time used so far by the process answering wrk.
	type target struct {
		name, url string
		cpu       func() time.Duration
	}
	targets := []target{
		{"direct to nginx (plain HTTP, no proxy)", fmt.Sprintf("http://127.0.0.1:%d", backend), func() time.Duration { return treeCPU(ngBackend.Process.Pid) }},
		{"nginx TLS reverse proxy → nginx", fmt.Sprintf("https://127.0.0.1:%d", nginxProxy), func() time.Duration { return treeCPU(ngProxy.Process.Pid) }},
		{"Portico access proxy → nginx", fmt.Sprintf("https://127.0.0.1:%d", porticoPort), selfCPU},
		{"Go net/http TLS server (answers itself, no proxy)", goURL, selfCPU},
	}
	if ha != nil {
		targets = append(targets, target{"haproxy TLS reverse proxy → nginx", fmt.Sprintf("https://127.0.0.1:%d", haPort), func() time.Duration { return treeCPU(ha.Process.Pid) }})
	}
	fmt.Printf("wrk -t%d -c%d -d%s --latency, GOMAXPROCS=%d, %d CPUs, Go %s\n\n", *threads, *conns, *duration, runtime.GOMAXPROCS(0), runtime.NumCPU(), runtime.Version())
	fmt.Println("| target | response | requests/s | p50 | p99 | server CPU per request |")
	fmt.Println("|---|---|---:|---:|---:|---:|")
	for _, path := range []string{"/small", "/big"} {
		for _, tg := range targets {
			if *only != "" && !strings.Contains(tg.name, *only) {
				continue
			}
			isPortico := strings.HasPrefix(tg.name, "Portico")
			if isPortico && *cpuprofile != "" {
				f, err := os.Create(*cpuprofile + strings.TrimPrefix(path, "/"))
				must(err)
				must(pprof.StartCPUProfile(f))
			}
			// Warm up (TLS sessions, upstream keep-alive pools), then measure.
			wrk(tg.url+path, *threads, *conns, 2*time.Second)
			cpu0 := tg.cpu()
			rps, p50, p99 := wrk(tg.url+path, *threads, *conns, *duration)
			cpuPerReq := (tg.cpu() - cpu0) / time.Duration(max(rps*duration.Seconds(), 1))
			size := "33 B"
			if path == "/big" {
				size = "100 KiB"
			}
			if isPortico && *cpuprofile != "" {
				pprof.StopCPUProfile()
			}
			fmt.Printf("| %s | %s | %.0f | %s | %s | %.0f µs |\n", tg.name, size, rps, p50, p99, float64(cpuPerReq)/float64(time.Microsecond))
		}
	}
	srv.Close()
	if *memprofile != "" {
		f, err := os.Create(*memprofile)
		must(err)
		must(pprof.Lookup("allocs").WriteTo(f, 0))
		f.Close()
	}
}

var (
	reRPS = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	reP50 = regexp.MustCompile(`\s50%\s+([0-9.]+[a-z]+)`)
	reP99 = regexp.MustCompile(`\s99%\s+([0-9.]+[a-z]+)`)
	reErr = regexp.MustCompile(`(Non-2xx or 3xx responses: \d+|Socket errors: .*)`)
)

func wrk(url string, threads, conns int, d time.Duration) (float64, string, string) {
	ctx, cancel := context.WithTimeout(context.Background(), d+30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "wrk", "-t"+strconv.Itoa(threads), "-c"+strconv.Itoa(conns),
		"-d"+strconv.Itoa(int(d.Seconds()))+"s", "--latency", url).CombinedOutput()
	if err != nil {
		panic(fmt.Sprintf("wrk %s: %v\n%s", url, err, out)) // panic, not exit: deferred stops still run
	}
	if m := reErr.FindAllString(string(out), -1); len(m) > 0 {
		log.Printf("wrk %s: %s", url, strings.Join(m, "; "))
	}
	m := reRPS.FindStringSubmatch(string(out))
	p50 := reP50.FindStringSubmatch(string(out))
	p99 := reP99.FindStringSubmatch(string(out))
	if m == nil || p50 == nil || p99 == nil {
		panic(fmt.Sprintf("cannot parse wrk output:\n%s", out))
	}
	rps, _ := strconv.ParseFloat(m[1], 64)
	return rps, p50[1], p99[1]
}

func selfSigned() (certPEM, keyPEM []byte) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench.example.test"},
		DNSNames: []string{"bench.example.test"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	must(err)
	kd, _ := x509.MarshalPKCS8PrivateKey(k)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd})
}

// serveGoTLS starts an in-process HTTPS server answering the given paths
// and returns its URL.
func serveGoTLS(certPEM, keyPEM []byte, files map[string][]byte) string {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	must(err)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Write(files[r.URL.Path])
		}),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		ErrorLog:  log.New(io.Discard, "", 0),
	}
	go srv.ServeTLS(l, "", "")
	return "https://" + l.Addr().String()
}

func startNginx(dir, name, conf string) *exec.Cmd {
	file := filepath.Join(dir, name+".conf")
	must(os.WriteFile(file, []byte(conf), 0o644))
	c := exec.Command("nginx", "-p", dir, "-c", file, "-g", "daemon off;")
	must(c.Start())
	return c
}

// selfCPU is this process's user and system CPU time (the in-process
// Portico; wrk runs as a child and is not counted).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	must(syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// treeCPU is the user and system CPU time of pid and its children (nginx's
// master and workers), from /proc in clock ticks (100 Hz on Linux).
func treeCPU(pid int) time.Duration {
	var total time.Duration
	pids := []int{pid}
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid)); err == nil {
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				pids = append(pids, n)
			}
		}
	}
	for _, p := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		// Fields after the parenthesised command name; utime and stime are
		// fields 14 and 15 of the line, 12 and 13 after the name.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) < 13 {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		total += time.Duration(ut+st) * 10 * time.Millisecond
	}
	return total
}

// stop ends a peer with SIGTERM (nginx's master then stops its workers).
func stop(c *exec.Cmd) {
	c.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { c.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		c.Process.Kill()
		<-done
	}
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitPort(port int) {
	for i := 0; i < 200; i++ {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	panic(fmt.Sprintf("port %d never opened", port))
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}
