// Go TLS peers for the wirelens integration tests (tests/tests/gotls.rs): an HTTPS server and
// client (net/http over crypto/tls, HTTP/1.1 and HTTP/2) and a gRPC-Go server and client over
// TLS (the standard health service: Check is unary, Watch server-streaming). Built by the test
// set-up from Debian's golang-go and golang-google-grpc-dev in GOPATH mode: no module download.
//
// Usage:
//
//	gotls https-server PORT CERT KEY
//	gotls https-client URL PROTO(h1|h2) CONNS REQUESTS_PER_CONN
//	gotls https-hold URL GO_FILE   (h2: /hold/r0 now, /hold/r1 to r3 once GO_FILE exists)
//	gotls grpc-server PORT CERT KEY
//	gotls grpc-client PORT UNARY_CALLS WATCH_MESSAGES
//
// Clients print one JSON line with what they did.
package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

const userAgent = "wirelens-gotls-test"

func die(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		die("not a number: %q", s)
	}
	return n
}

func httpsServer(port, cert, key string) {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/r2"):
			// Every third request of a connection: a 404.
			http.NotFound(w, r)
		default:
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "hello from "+r.URL.Path+"\n")
		}
	})
	srv := &http.Server{Addr: "127.0.0.1:" + port, Handler: mux}
	fmt.Println("listening")
	die("serve: %v", srv.ListenAndServeTLS(cert, key))
}

// httpsClient opens `conns` connections at once, each sending `perConn` GETs in turn to
// URL + "/<proto>/c<conn>/r<request>".
func httpsClient(url, proto string, conns, perConn int) {
	cfg := &tls.Config{InsecureSkipVerify: true}
	var wg sync.WaitGroup
	var mu sync.Mutex
	failures := 0
	protos := map[string]int{}
	for c := 0; c < conns; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			var transport http.RoundTripper
			if proto == "h2" {
				transport = &http2.Transport{TLSClientConfig: cfg}
			} else {
				transport = &http.Transport{TLSClientConfig: cfg, MaxIdleConnsPerHost: 1}
			}
			client := &http.Client{Transport: transport, Timeout: 30 * time.Second}
			for r := 0; r < perConn; r++ {
				req, _ := http.NewRequest("GET", fmt.Sprintf("%s/%s/c%d/r%d", url, proto, c, r), nil)
				req.Header.Set("User-Agent", userAgent)
				resp, err := client.Do(req)
				mu.Lock()
				if err != nil {
					failures++
					fmt.Fprintln(os.Stderr, err)
				} else {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					protos[resp.Proto]++
				}
				mu.Unlock()
			}
		}(c)
	}
	wg.Wait()
	fmt.Printf("{\"failures\": %d, \"protos\": {", failures)
	first := true
	for p, n := range protos {
		if !first {
			fmt.Print(", ")
		}
		first = false
		fmt.Printf("%q: %d", p, n)
	}
	fmt.Println("}}")
	if failures > 0 {
		os.Exit(1)
	}
}

// httpsHold keeps one HTTP/2 connection: a GET now, three more once goFile exists (the agent
// starts in between, so it misses the handshake and the connection preface).
func httpsHold(url, goFile string) {
	client := &http.Client{Transport: &http2.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
		Timeout: 30 * time.Second}
	get := func(path string) {
		req, _ := http.NewRequest("GET", url+path, nil)
		req.Header.Set("User-Agent", userAgent)
		resp, err := client.Do(req)
		if err != nil {
			die("get %s: %v", path, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	get("/hold/r0")
	fmt.Println("{\"first\": true}")
	for {
		if _, err := os.Stat(goFile); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	get("/hold/r1")
	get("/hold/r2")
	get("/hold/r3")
	fmt.Println("{\"done\": true}")
	// Stay a while: the agent reads the connection's addresses from /proc.
	time.Sleep(2 * time.Second)
}

func grpcServer(port, cert, key string) {
	creds, err := credentials.NewServerTLSFromFile(cert, key)
	if err != nil {
		die("credentials: %v", err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		die("listen: %v", err)
	}
	s := grpc.NewServer(grpc.Creds(creds))
	h := health.NewServer()
	h.SetServingStatus("wirelens", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(s, h)
	go func() {
		// Watch streams a message at every status change: flip one service back and forth.
		for i := 0; ; i++ {
			time.Sleep(100 * time.Millisecond)
			st := healthpb.HealthCheckResponse_SERVING
			if i%2 == 0 {
				st = healthpb.HealthCheckResponse_NOT_SERVING
			}
			h.SetServingStatus("flapping", st)
		}
	}()
	fmt.Println("listening")
	die("serve: %v", s.Serve(lis))
}

func grpcClient(port string, unary, watch int) {
	creds := credentials.NewTLS(&tls.Config{InsecureSkipVerify: true})
	conn, err := grpc.Dial("localhost:"+port, grpc.WithTransportCredentials(creds), grpc.WithBlock(),
		grpc.WithUserAgent(userAgent))
	if err != nil {
		die("dial: %v", err)
	}
	defer conn.Close()
	c := healthpb.NewHealthClient(conn)
	for i := 0; i < unary; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		r, err := c.Check(ctx, &healthpb.HealthCheckRequest{Service: "wirelens"})
		cancel()
		if err != nil || r.Status != healthpb.HealthCheckResponse_SERVING {
			die("check: %v %v", r, err)
		}
	}
	got := 0
	if watch > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		stream, err := c.Watch(ctx, &healthpb.HealthCheckRequest{Service: "flapping"})
		if err != nil {
			die("watch: %v", err)
		}
		for got < watch {
			if _, err := stream.Recv(); err != nil {
				die("watch recv: %v", err)
			}
			got++
		}
		cancel()
		// Let the RST_STREAM of the cancel go out before the connection closes.
		time.Sleep(200 * time.Millisecond)
	}
	fmt.Printf("{\"unary\": %d, \"watch_messages\": %d}\n", unary, got)
}

func main() {
	a := os.Args
	if len(a) < 2 {
		die("usage: gotls https-server|https-client|grpc-server|grpc-client ...")
	}
	switch {
	case a[1] == "https-server" && len(a) == 5:
		httpsServer(a[2], a[3], a[4])
	case a[1] == "https-client" && len(a) == 6:
		httpsClient(a[2], a[3], atoi(a[4]), atoi(a[5]))
	case a[1] == "https-hold" && len(a) == 4:
		httpsHold(a[2], a[3])
	case a[1] == "grpc-server" && len(a) == 5:
		grpcServer(a[2], a[3], a[4])
	case a[1] == "grpc-client" && len(a) == 5:
		grpcClient(a[2], atoi(a[3]), atoi(a[4]))
	default:
		die("bad arguments: %v", a[1:])
	}
}
