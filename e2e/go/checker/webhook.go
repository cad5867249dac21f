package main

// A kubebuilder-style webhook server: controller-runtime's manager and
// webhook builder, a typed Defaulter and Validator for the CronTab custom
// resource of upstream's CRD examples (stable.example.com/v1), served on
// the paths the builder derives (/mutate-stable-example-com-v1-crontab,
// /validate-stable-example-com-v1-crontab).

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// CronTab is stable.example.com/v1 CronTab.
type CronTab struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              CronTabSpec `json:"spec,omitempty"`
}

// CronTabSpec is its spec.
type CronTabSpec struct {
	CronSpec string `json:"cronSpec,omitempty"`
	Image    string `json:"image,omitempty"`
	Replicas *int64 `json:"replicas,omitempty"`
}

// DeepCopyObject implements runtime.Object.
func (c *CronTab) DeepCopyObject() runtime.Object {
	out := *c
	c.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	if c.Spec.Replicas != nil {
		r := *c.Spec.Replicas
		out.Spec.Replicas = &r
	}
	return &out
}

type cronTabDefaulter struct{}

// Default gives a CronTab one replica and marks it defaulted.
func (cronTabDefaulter) Default(_ context.Context, c *CronTab) error {
	if c.Spec.Replicas == nil {
		one := int64(1)
		c.Spec.Replicas = &one
	}
	if c.Labels == nil {
		c.Labels = map[string]string{}
	}
	c.Labels["defaulted-by"] = "controller-runtime"
	return nil
}

type cronTabValidator struct{}

func validCronSpec(c *CronTab) error {
	if n := len(strings.Fields(c.Spec.CronSpec)); n != 5 {
		return fmt.Errorf("spec.cronSpec must have 5 fields, not %d", n)
	}
	return nil
}

func (cronTabValidator) ValidateCreate(_ context.Context, c *CronTab) (admission.Warnings, error) {
	return nil, validCronSpec(c)
}

func (cronTabValidator) ValidateUpdate(_ context.Context, _, c *CronTab) (admission.Warnings, error) {
	return admission.Warnings{"updated by a kubebuilder-style webhook"}, validCronSpec(c)
}

func (cronTabValidator) ValidateDelete(context.Context, *CronTab) (admission.Warnings, error) {
	return nil, nil
}

// runWebhook serves the CronTab webhooks until interrupted.
func runWebhook(args []string) {
	fs := flag.NewFlagSet("webhook", flag.ExitOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig of the API server the manager talks to")
	host := fs.String("host", "", "address to listen on (default: all)")
	port := fs.Int("port", 9443, "HTTPS port")
	certDir := fs.String("cert-dir", "", "directory with tls.crt and tls.key")
	_ = fs.Parse(args)
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		fail("load kubeconfig: %v", err)
	}
	scheme := runtime.NewScheme()
	gv := schema.GroupVersion{Group: "stable.example.com", Version: "v1"}
	scheme.AddKnownTypes(gv, &CronTab{})
	metav1.AddToGroupVersion(scheme, gv)
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		WebhookServer: webhook.NewServer(webhook.Options{
			Host: *host, Port: *port, CertDir: *certDir, CertName: "tls.crt", KeyName: "tls.key",
		}),
	})
	if err != nil {
		fail("manager: %v", err)
	}
	if err := builder.WebhookManagedBy(mgr, &CronTab{}).
		WithDefaulter(cronTabDefaulter{}).
		WithValidator(cronTabValidator{}).
		Complete(); err != nil {
		fail("webhook: %v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Printf("serving CronTab webhooks on %s:%d\n", *host, *port)
	if err := mgr.Start(ctx); err != nil {
		fail("manager: %v", err)
	}
}
