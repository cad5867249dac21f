// Command webhook runs cert-manager's own admission webhook server
// (internal/webhook.NewCertManagerWebhookServer of the cert-manager module:
// its admission chain — CertificateRequest identity and approval, resource
// validation and defaulting — served by controller-runtime's webhook
// server) with its TLS certificate from files.
//
// Upstream's cmd/webhook is a separate Go module the module proxy does not
// serve; this command is the part of it the e2e tests need, under the same
// module path so that it may import cert-manager's internal packages.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/cert-manager/cert-manager/internal/apis/config/shared"
	config "github.com/cert-manager/cert-manager/internal/apis/config/webhook"
	"github.com/cert-manager/cert-manager/internal/webhook"
	logf "github.com/cert-manager/cert-manager/pkg/logs"
)

func main() {
	var opts config.WebhookConfiguration
	var securePort, healthzPort int
	// A flag set of its own: controller-runtime registers --kubeconfig on
	// the global one.
	flag := flag.NewFlagSet(os.Args[0], flag.ExitOnError)
	flag.IntVar(&securePort, "secure-port", 6443, "port of the HTTPS admission endpoints (/validate, /mutate)")
	flag.IntVar(&healthzPort, "healthz-port", 6080, "port of the plain-HTTP /healthz and /livez endpoints")
	flag.StringVar(&opts.KubeConfig, "kubeconfig", "", "kubeconfig of the API server the webhook serves (SubjectAccessReviews of CertificateRequest approval)")
	flag.StringVar(&opts.TLSConfig.Filesystem.CertFile, "tls-cert-file", "", "serving certificate (PEM)")
	flag.StringVar(&opts.TLSConfig.Filesystem.KeyFile, "tls-private-key-file", "", "serving key (PEM)")
	_ = flag.Parse(os.Args[1:])
	opts.SecurePort = int32(securePort)
	opts.HealthzPort = int32(healthzPort)
	opts.MetricsListenAddress = "0" // no metrics listener
	opts.MetricsTLSConfig = shared.TLSConfig{}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := logf.Log.WithName("webhook")
	ctx = logf.NewContext(ctx, log)
	srv, err := webhook.NewCertManagerWebhookServer(log, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := srv.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
